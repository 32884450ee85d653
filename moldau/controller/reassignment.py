"""Partition reassignment, the decisions (Kafka's KIP-455 algorithm, pure).

A partition being reassigned from its original replicas (ORS) to target replicas (TRS)
is assigned, meanwhile, to both: ``replicas`` = TRS then the rest of ORS, with
``adding`` = TRS - ORS and ``removing`` = ORS - TRS recorded next to it (Kafka's
``adding_replicas`` / ``removing_replicas`` in the topic znode). The new replicas
follow the leader and join the ISR as they catch up; once every target replica is in
the ISR the reassignment completes: the removed replicas leave the ISR (and are told
to delete their copy), the leader moves into TRS if it is not there, the leader epoch
goes up, and the assignment becomes TRS alone. A reassignment can be replaced by
another one (its original replicas stay the ones before the first) or cancelled (the
target becomes the original replicas again; in the order the reassignment left them,
as in Kafka: only replicas, adding and removing are stored).
"""

from __future__ import annotations

from dataclasses import dataclass

from moldau.controller.coordination import LeaderAndIsr
from moldau.protocol.errors import ErrorCode


class ReassignmentError(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ReplicaAssignment:
    replicas: tuple[int, ...]
    adding: tuple[int, ...] = ()
    removing: tuple[int, ...] = ()

    @property
    def is_reassigning(self) -> bool:
        return bool(self.adding or self.removing)

    @property
    def original(self) -> tuple[int, ...]:
        """The replicas before the reassignment began."""
        return tuple(r for r in self.replicas if r not in self.adding)

    @property
    def target(self) -> tuple[int, ...]:
        return tuple(r for r in self.replicas if r not in self.removing)


def plan(current: ReplicaAssignment, target: list[int] | None, live: set[int]) -> ReplicaAssignment:
    """The assignment a partition gets when asked to move to ``target`` (None: cancel
    the reassignment in progress). ReassignmentError with Kafka's code when refused."""
    if target is None:
        if not current.is_reassigning:
            raise ReassignmentError(ErrorCode.no_reassignment_in_progress,
                                    "No reassignment is in progress for this partition.")
        target = list(current.original)
    elif not target:
        raise ReassignmentError(ErrorCode.invalid_replica_assignment, "The replica list is empty.")
    elif len(set(target)) != len(target):
        raise ReassignmentError(ErrorCode.invalid_replica_assignment,
                                f"The replica list {target} has duplicate broker ids.")
    elif any(b not in live for b in target if b not in current.replicas):
        missing = sorted(b for b in target if b not in live and b not in current.replicas)
        raise ReassignmentError(ErrorCode.invalid_replica_assignment,
                                f"Replica assignment has brokers that are not alive: {missing}.")
    original = current.original
    if tuple(target) == original:
        return ReplicaAssignment(original)
    replicas = tuple(target) + tuple(r for r in original if r not in target)
    return ReplicaAssignment(replicas, tuple(r for r in target if r not in original),
                             tuple(r for r in original if r not in target))


def is_complete(assignment: ReplicaAssignment, isr: tuple[int, ...]) -> bool:
    """Every target replica is in sync: the reassignment can complete."""
    return set(assignment.target) <= set(isr)


def completed_state(
    assignment: ReplicaAssignment, current: LeaderAndIsr, live: set[int], controller_epoch: int
) -> LeaderAndIsr:
    """The partition state that completes a reassignment: the removed replicas out of
    the ISR, a leader from the target replicas (the current one if it stays, is alive and
    in sync), the leader epoch bumped."""
    target = assignment.target
    isr = tuple(b for b in current.isr if b in target)
    leader = current.leader
    if leader not in target or leader not in live or leader not in isr:
        leader = next((b for b in target if b in isr and b in live), -1)
    return LeaderAndIsr(leader, current.leader_epoch + 1, isr, controller_epoch)


def in_progress_state(current: LeaderAndIsr, controller_epoch: int) -> LeaderAndIsr:
    """While the new replicas catch up: same leader and ISR at a new leader epoch, so that
    every replica, old and new, takes the new replica set from LeaderAndIsr."""
    return LeaderAndIsr(current.leader, current.leader_epoch + 1, current.isr, controller_epoch)

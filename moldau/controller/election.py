"""Partition leader elections, as pure functions of (assignment, current state, live brokers).

Kafka's ZooKeeper-mode controller (``PartitionLeaderElectionAlgorithms`` and
``Election.scala``), one function per strategy. Each returns an :class:`ElectionResult`:
the new :class:`LeaderAndIsr` to write (compare-and-set) and send, or ``None`` with the
error Kafka's ElectLeaders API would answer. Nothing here reads ZooKeeper, the clock or
the network: the controller decides with these, then persists and sends (STYLE.md §6).

Rules every election keeps (the tests check them as properties):

* the new leader is a live broker of the assignment, and is in the ISR unless the
  election is *unclean* (``ElectionResult.unclean``: the caller must log possible data
  loss);
* every new state has ``leader_epoch = current.leader_epoch + 1`` and the controller epoch
  of the controller that decided it;
* the new ISR contains the new leader (so it is never empty); an offline election drops
  the dead ISR members, a controlled-shutdown election the shutting-down ones, a preferred
  election leaves the ISR as it is (Kafka's ``newLeader``).

``live`` is the set of brokers the controller considers online for leadership: registered
and not in controlled shutdown (Kafka's ``isReplicaOnline`` without shutting-down brokers),
except for :func:`controlled_shutdown_election`, which takes the shutting-down brokers
separately.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kio.schema.errors import ErrorCode

from moldau.controller.coordination import LeaderAndIsr

__all__ = [
    "NO_LEADER",
    "ElectionResult",
    "controlled_shutdown_election",
    "initial_state",
    "offline_election",
    "preferred_election",
    "shrink_isr_for_dead_brokers",
]

NO_LEADER = -1
"""``LeaderAndIsr.leader`` of a partition without a leader (Kafka's ``NO_LEADER``)."""


@dataclass(frozen=True)
class ElectionResult:
    """The outcome of one election.

    ``leader_and_isr``: the state to write, or None when no leader could be (or needed to
    be) elected; then ``error`` says why, as Kafka's ElectLeaders would:
    ELECTION_NOT_NEEDED, PREFERRED_LEADER_NOT_AVAILABLE or ELIGIBLE_LEADERS_NOT_AVAILABLE.
    ``recipients``: the replicas to send the LeaderAndIsr request to (the live replicas of
    the assignment, in assignment order). ``unclean``: the leader was not in the ISR, so
    acknowledged writes may be lost; the controller logs it.
    """

    leader_and_isr: LeaderAndIsr | None
    recipients: tuple[int, ...]
    unclean: bool = False
    error: ErrorCode | None = None

    @property
    def elected(self) -> bool:
        return self.leader_and_isr is not None

    @property
    def leader(self) -> int:
        """The elected leader, or NO_LEADER."""
        return self.leader_and_isr.leader if self.leader_and_isr is not None else NO_LEADER


def _live_replicas(assignment: Sequence[int], live: Iterable[int]) -> tuple[int, ...]:
    alive = set(live)
    return tuple(r for r in assignment if r in alive)


def _new_leader_and_isr(current: LeaderAndIsr, leader: int, isr: Sequence[int], controller_epoch: int) -> LeaderAndIsr:
    """Kafka's ``LeaderAndIsr.newLeaderAndIsr``: every leader change bumps the leader epoch."""
    return LeaderAndIsr(
        leader=leader,
        leader_epoch=current.leader_epoch + 1,
        isr=tuple(isr),
        controller_epoch=controller_epoch,
    )


def initial_state(assignment: Sequence[int], live: set[int], controller_epoch: int) -> LeaderAndIsr | None:
    """The first state of a new partition (NewPartition -> OnlinePartition): the first live
    replica leads, the ISR is every live replica (assignment order), leader epoch 0.
    None when no replica is live (the partition stays NewPartition)."""
    replicas = _live_replicas(assignment, live)
    if not replicas:
        return None
    return LeaderAndIsr(leader=replicas[0], leader_epoch=0, isr=replicas, controller_epoch=controller_epoch)


def offline_election(
    assignment: Sequence[int],
    current: LeaderAndIsr,
    live: set[int],
    unclean_allowed: bool,
    controller_epoch: int,
) -> ElectionResult:
    """Elect a leader for a partition whose leader is dead or absent (Kafka's
    OfflinePartitionLeaderElectionStrategy; also ElectLeaders with type UNCLEAN).

    The leader is the first replica, in assignment order, that is live and in the ISR; the
    new ISR is the live members of the current ISR (ISR order). If there is none and
    ``unclean_allowed``, the first live replica leads and the ISR is just that leader
    (``unclean=True``). A partition whose current leader is live needs no election
    (ELECTION_NOT_NEEDED, as Kafka's ElectLeaders answers); with no eligible replica, the
    result is ELIGIBLE_LEADERS_NOT_AVAILABLE and the partition stays offline.
    """
    recipients = _live_replicas(assignment, live)
    if current.leader != NO_LEADER and current.leader in live:
        return ElectionResult(None, recipients, error=ErrorCode.election_not_needed)
    isr = set(current.isr)
    leader = next((r for r in recipients if r in isr), None)
    if leader is not None:
        new_isr = [r for r in current.isr if r in live]
        return ElectionResult(_new_leader_and_isr(current, leader, new_isr, controller_epoch), recipients)
    if unclean_allowed and recipients:
        leader = recipients[0]
        return ElectionResult(
            _new_leader_and_isr(current, leader, [leader], controller_epoch), recipients, unclean=True
        )
    return ElectionResult(None, recipients, error=ErrorCode.eligible_leaders_not_available)


def preferred_election(
    assignment: Sequence[int],
    current: LeaderAndIsr,
    live: set[int],
    controller_epoch: int,
) -> ElectionResult:
    """Move leadership back to the preferred replica, the first of the assignment (Kafka's
    PreferredReplicaPartitionLeaderElectionStrategy), if it is live and in the ISR. The ISR
    is unchanged. ELECTION_NOT_NEEDED when it already leads; PREFERRED_LEADER_NOT_AVAILABLE
    when it is dead or out of the ISR."""
    recipients = _live_replicas(assignment, live)
    if not assignment:
        return ElectionResult(None, recipients, error=ErrorCode.preferred_leader_not_available)
    preferred = assignment[0]
    if current.leader == preferred:
        return ElectionResult(None, recipients, error=ErrorCode.election_not_needed)
    if preferred in live and preferred in current.isr:
        return ElectionResult(_new_leader_and_isr(current, preferred, current.isr, controller_epoch), recipients)
    return ElectionResult(None, recipients, error=ErrorCode.preferred_leader_not_available)


def controlled_shutdown_election(
    assignment: Sequence[int],
    current: LeaderAndIsr,
    live: set[int],
    shutting_down: set[int],
    controller_epoch: int,
) -> ElectionResult:
    """Move leadership off brokers in controlled shutdown (Kafka's
    ControlledShutdownPartitionLeaderElectionStrategy): the first replica, in assignment
    order, that is live, in the ISR and not shutting down leads; the shutting-down brokers
    leave the ISR. ``live`` may include the shutting-down brokers (they are still
    registered); they get the LeaderAndIsr request too, so they become followers.

    Kafka calls this only for partitions led by a shutting-down broker with more than one
    replica; a partition it cannot move keeps its leader until the broker is gone
    (ELIGIBLE_LEADERS_NOT_AVAILABLE).
    """
    recipients = _live_replicas(assignment, live | shutting_down)
    isr = set(current.isr)
    leader = next((r for r in assignment if r in live and r in isr and r not in shutting_down), None)
    if leader is None:
        return ElectionResult(None, recipients, error=ErrorCode.eligible_leaders_not_available)
    new_isr = [r for r in current.isr if r not in shutting_down]
    return ElectionResult(_new_leader_and_isr(current, leader, new_isr, controller_epoch), recipients)


def shrink_isr_for_dead_brokers(
    current: LeaderAndIsr,
    dead: set[int],
    *,
    controller_epoch: int | None = None,
) -> LeaderAndIsr:
    """Remove dead (or shutting-down follower) replicas from the ISR, as Kafka's controller
    does when replicas go OfflineReplica (``ReplicaStateMachine.doRemoveReplicasFromIsr``).

    Kafka's ZooKeeper mode, which we follow:

    * the write bumps the leader epoch (``newLeaderAndIsr``), so the leader and followers
      learn the new ISR through a LeaderAndIsr request they will not ignore as stale;
    * if the leader itself is dead, the leader becomes NO_LEADER (-1): run
      :func:`offline_election` first and shrink only what it could not fix;
    * the ISR never becomes empty: Kafka removes replicas one at a time and keeps the last
      ISR member even when it is dead, so that broker can come back as a clean leader.
      Removing several at once, we keep the last dead member in ISR order.

    ``controller_epoch``: the deciding controller's epoch (default: keep the current one).
    Returns ``current`` itself when no ISR member and not the leader is dead (nothing to
    write).
    """
    epoch = current.controller_epoch if controller_epoch is None else controller_epoch
    leader_dead = current.leader != NO_LEADER and current.leader in dead
    if not leader_dead and not any(r in dead for r in current.isr):
        return current
    new_isr = [r for r in current.isr if r not in dead]
    if not new_isr and current.isr:
        new_isr = [current.isr[-1]]
    return LeaderAndIsr(
        leader=NO_LEADER if leader_dead else current.leader,
        leader_epoch=current.leader_epoch + 1,
        isr=tuple(new_isr),
        controller_epoch=epoch,
    )

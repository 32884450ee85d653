"""The controller's partition state machine: its states and THE table of allowed transitions.

Everything that decides whether a partition may move from one state to another lives here
(Kafka: ``PartitionStateMachine.scala``, each state's ``validPreviousStates``). The
controller (``controller.py``) keeps one state per partition and changes it only after
checking the move against :data:`VALID_PREVIOUS_STATES`: before it writes a partition's
leader and ISR, and when a topic is created or deleted. An illegal move is a controller
bug: it is logged and the partition is left as it is (Kafka's ``handleStateChanges`` does
the same), never written.

===================== ================================================ ===============================
state                 what the controller does on entering it          entered from
===================== ================================================ ===============================
NonExistentPartition  forgets the partition (never created, or         OfflinePartition (topic
                      deleted); the default of an unknown partition    deletion)
NewPartition          replicas assigned, no leader/ISR yet              NonExistentPartition (topic or
                                                                        partition created)
OnlinePartition       New -> Online: ``initial_state`` (first live      NewPartition, OnlinePartition
                      replica leads, ISR = live replicas, epoch 0);     (preferred / controlled
                      Online/Offline -> Online: an election from        shutdown election, ISR change,
                      ``election.py``; writes the state (CAS), sends    reassignment),
                      LeaderAndIsr to the replicas, UpdateMetadata      OfflinePartition (offline
                      to every live broker                              election)
OfflinePartition      its leader died: only marks the partition; when   NewPartition, OnlinePartition,
                      no replica can lead, writes leader -1 (ISR        OfflinePartition
                      kept); before a topic's deletion
===================== ================================================ ===============================

Which written state means which state is :func:`state_for_leader` (Online: its leader is a
live broker). Departure from Kafka: a partition created while none of its replicas is alive
gets leader -1 written and goes Offline (Kafka leaves it New with nothing written); both then
elect a leader when a replica comes back. A new controller does not replay transitions: it
sets each partition's state from what it reads (:func:`loaded_state`, Kafka's
``initializePartitionState``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from enum import Enum

__all__ = [
    "VALID_PREVIOUS_STATES",
    "IllegalStateTransition",
    "PartitionState",
    "can_transition",
    "loaded_state",
    "state_for_leader",
    "transition",
]


class PartitionState(Enum):
    """A partition's state in the controller; the value is Kafka's name (logs, status)."""

    NEW = "NewPartition"
    ONLINE = "OnlinePartition"
    OFFLINE = "OfflinePartition"
    NON_EXISTENT = "NonExistentPartition"

    def __str__(self) -> str:
        return self.value


_NEW, _ONLINE, _OFFLINE, _NON_EXISTENT = (
    PartitionState.NEW,
    PartitionState.ONLINE,
    PartitionState.OFFLINE,
    PartitionState.NON_EXISTENT,
)

VALID_PREVIOUS_STATES: Mapping[PartitionState, frozenset[PartitionState]] = {
    _NEW: frozenset({_NON_EXISTENT}),
    _ONLINE: frozenset({_NEW, _ONLINE, _OFFLINE}),
    _OFFLINE: frozenset({_NEW, _ONLINE, _OFFLINE}),
    _NON_EXISTENT: frozenset({_OFFLINE}),
}
"""For each state, the states a partition may enter it from (Kafka's ``validPreviousStates``)."""


class IllegalStateTransition(RuntimeError):
    """A transition the table does not allow: a controller bug."""

    def __init__(self, current: Enum, target: Enum, valid_previous: frozenset[Enum]) -> None:
        allowed = ", ".join(sorted(str(s) for s in valid_previous))
        super().__init__(f"illegal state transition {current} -> {target}: {target} may only be entered from {allowed}")
        self.current = current
        self.target = target


def can_transition(current: PartitionState, target: PartitionState) -> bool:
    return current in VALID_PREVIOUS_STATES[target]


def transition(current: PartitionState, target: PartitionState) -> PartitionState:
    """``target`` if ``current -> target`` is in the table, else IllegalStateTransition."""
    valid = VALID_PREVIOUS_STATES[target]
    if current not in valid:
        raise IllegalStateTransition(current, target, frozenset(valid))
    return target


def state_for_leader(leader: int, live_brokers: Collection[int]) -> PartitionState:
    """The state a partition with this leader is in: Online if the leader is a live broker,
    Offline if it has none (-1) or its leader died."""
    return PartitionState.ONLINE if leader >= 0 and leader in live_brokers else PartitionState.OFFLINE


def loaded_state(leader: int | None, live_brokers: Collection[int]) -> PartitionState:
    """A partition's state when a new controller reads it (Kafka's initializePartitionState):
    New if no leader and ISR were ever written (``leader`` None), else by its leader."""
    return PartitionState.NEW if leader is None else state_for_leader(leader, live_brokers)

"""The controller's partition state machine: its states and THE table of allowed transitions.

Everything that decides whether a partition may move from one state to another lives here
(Kafka: ``PartitionStateMachine.scala``, each state's ``validPreviousStates``). The
controller changes a partition's state only through :func:`transition`, so an illegal move
is a bug that raises, never a silent state.

===================== ================================================ ===============================
state                 what the controller does on entering it          entered from
===================== ================================================ ===============================
NonExistentPartition  forgets the partition (never created, or         OfflinePartition (topic
                      deleted); the default of an unknown partition    deletion)
NewPartition          replicas assigned, no leader/ISR yet              NonExistentPartition (topic or
                                                                        partition created)
OnlinePartition       New -> Online: ``initial_state`` (first live      NewPartition, OnlinePartition
                      replica leads, ISR = live replicas, epoch 0);     (preferred / controlled
                      Online/Offline -> Online: an election from        shutdown election),
                      ``election.py``; writes the state (CAS), sends    OfflinePartition (offline
                      LeaderAndIsr to the replicas, UpdateMetadata      election)
                      to every live broker
OfflinePartition      only marks the partition: its leader died (or     NewPartition, OnlinePartition,
                      the topic is being deleted)                       OfflinePartition
===================== ================================================ ===============================
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum

__all__ = [
    "VALID_PREVIOUS_STATES",
    "IllegalStateTransition",
    "PartitionState",
    "can_transition",
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
    """A transition the table does not allow: a controller bug. Shared by the partition and
    replica state machines (``replica_state.py``)."""

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

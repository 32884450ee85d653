"""The controller's replica state machine: its states and THE table of allowed transitions.

Everything that decides whether a replica (one partition on one broker) may move from one
state to another lives here (Kafka: ``ReplicaStateMachine.scala``, each state's
``validPreviousStates``). The controller changes a replica's state only through
:func:`transition`, which raises :class:`IllegalStateTransition` on a move the table does
not allow.

========================= ============================================ ===================================
state                     what the controller does on entering it      entered from
========================= ============================================ ===================================
NewReplica                LeaderAndIsr (current leader/ISR) to the     NonExistentReplica
                          new replica, which may only become a
                          follower
OnlineReplica             LeaderAndIsr to the replica, UpdateMetadata  NewReplica, OnlineReplica,
                          to every live broker; it may lead or follow  OfflineReplica,
                                                                       ReplicaDeletionIneligible
OfflineReplica            StopReplica (no delete) to the replica;      NewReplica, OnlineReplica,
                          removed from the ISR (``election.            OfflineReplica,
                          shrink_isr_for_dead_brokers``), LeaderAndIsr ReplicaDeletionIneligible
                          with the new ISR to the remaining replicas
ReplicaDeletionStarted    StopReplica (delete) to the replica          OfflineReplica
ReplicaDeletionSuccessful only marks it: the broker deleted the data   ReplicaDeletionStarted
ReplicaDeletionIneligible only marks it: deletion failed (broker dead) OfflineReplica, ReplicaDeletionStarted
NonExistentReplica        removes it from the assignment; the default  ReplicaDeletionSuccessful
                          of an unknown replica
========================= ============================================ ===================================
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum

from moldau.controller.partition_state import IllegalStateTransition

__all__ = [
    "VALID_PREVIOUS_STATES",
    "IllegalStateTransition",
    "ReplicaState",
    "can_transition",
    "transition",
]


class ReplicaState(Enum):
    """A replica's state in the controller; the value is Kafka's name (logs, status)."""

    NEW = "NewReplica"
    ONLINE = "OnlineReplica"
    OFFLINE = "OfflineReplica"
    DELETION_STARTED = "ReplicaDeletionStarted"
    DELETION_SUCCESSFUL = "ReplicaDeletionSuccessful"
    DELETION_INELIGIBLE = "ReplicaDeletionIneligible"
    NON_EXISTENT = "NonExistentReplica"

    def __str__(self) -> str:
        return self.value


_NEW, _ONLINE, _OFFLINE, _STARTED, _SUCCESSFUL, _INELIGIBLE, _NON_EXISTENT = (
    ReplicaState.NEW,
    ReplicaState.ONLINE,
    ReplicaState.OFFLINE,
    ReplicaState.DELETION_STARTED,
    ReplicaState.DELETION_SUCCESSFUL,
    ReplicaState.DELETION_INELIGIBLE,
    ReplicaState.NON_EXISTENT,
)

VALID_PREVIOUS_STATES: Mapping[ReplicaState, frozenset[ReplicaState]] = {
    _NEW: frozenset({_NON_EXISTENT}),
    _ONLINE: frozenset({_NEW, _ONLINE, _OFFLINE, _INELIGIBLE}),
    _OFFLINE: frozenset({_NEW, _ONLINE, _OFFLINE, _INELIGIBLE}),
    _STARTED: frozenset({_OFFLINE}),
    _SUCCESSFUL: frozenset({_STARTED}),
    _INELIGIBLE: frozenset({_OFFLINE, _STARTED}),
    _NON_EXISTENT: frozenset({_SUCCESSFUL}),
}
"""For each state, the states a replica may enter it from (Kafka's ``validPreviousStates``)."""


def can_transition(current: ReplicaState, target: ReplicaState) -> bool:
    return current in VALID_PREVIOUS_STATES[target]


def transition(current: ReplicaState, target: ReplicaState) -> ReplicaState:
    """``target`` if ``current -> target`` is in the table, else IllegalStateTransition."""
    valid = VALID_PREVIOUS_STATES[target]
    if current not in valid:
        raise IllegalStateTransition(current, target, frozenset(valid))
    return target

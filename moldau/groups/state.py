"""The classic group state machine: its states and THE table of allowed transitions.

Everything that decides whether a group may move from one state to another lives here
(Kafka: ``ClassicGroupState.java``). The coordinator changes a group's state only through
:func:`check_transition`, so an illegal move is a bug that raises, never a silent state.

==================== ============================================ ==========================================
state                what the coordinator does in it              entered from (and why)
==================== ============================================ ==========================================
Empty                JoinGroup from new members starts a          PreparingRebalance (the join phase ended
                     rebalance; Sync/Heartbeat/Leave →            with no member)
                     UNKNOWN_MEMBER_ID; simple offset commits
                     (generation -1) allowed; offsets expire
PreparingRebalance   JoinGroups are parked until every known      Empty (first member joins), Stable (member
                     member rejoined or the rebalance timeout;    joins/leaves/fails, leader rejoins, metadata
                     Heartbeat/Sync → REBALANCE_IN_PROGRESS;      changes), CompletingRebalance (same, before
                     Leave removes the member; commits from the   the leader's SyncGroup)
                     previous generation allowed
CompletingRebalance  Waits for the leader's SyncGroup; followers' PreparingRebalance (join phase completed
                     syncs are parked; Heartbeat → NONE;          with at least one member)
                     OffsetCommit → REBALANCE_IN_PROGRESS
Stable               Heartbeats, syncs answered with the current  CompletingRebalance (leader's assignment
                     assignment; commits of the current           persisted)
                     generation allowed
Dead                 The group is being removed (deleted,         any state, also Dead (deletion, expiry,
                     expired, or its partition unloaded)          partition unloaded)
==================== ============================================ ==========================================
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum


class GroupState(Enum):
    """A classic group's state; the value is the name Kafka uses on the wire
    (DescribeGroups, ListGroups)."""

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"

    def __str__(self) -> str:
        return self.value


E, P, C, S, D = (
    GroupState.EMPTY,
    GroupState.PREPARING_REBALANCE,
    GroupState.COMPLETING_REBALANCE,
    GroupState.STABLE,
    GroupState.DEAD,
)

VALID_PREVIOUS_STATES: Mapping[GroupState, frozenset[GroupState]] = {
    E: frozenset({P}),
    P: frozenset({S, C, E}),
    C: frozenset({P}),
    S: frozenset({C}),
    D: frozenset({S, P, C, E, D}),
}
"""For each state, the states a group may enter it from (Kafka's ``validPreviousStates``)."""


class IllegalStateTransition(RuntimeError):
    """A transition the table does not allow: a coordinator bug."""

    def __init__(self, group_id: str, current: GroupState, target: GroupState) -> None:
        super().__init__(f"group {group_id!r}: illegal transition {current} -> {target}")
        self.current = current
        self.target = target


def can_transition(current: GroupState, target: GroupState) -> bool:
    return current in VALID_PREVIOUS_STATES[target]


def check_transition(group_id: str, current: GroupState, target: GroupState) -> None:
    """Raise :class:`IllegalStateTransition` unless ``current -> target`` is in the table."""
    if not can_transition(current, target):
        raise IllegalStateTransition(group_id, current, target)


def parse_state(name: str) -> GroupState | None:
    """A state from its Kafka name, case-insensitively (ListGroups' states filter)."""
    lowered = name.lower()
    for state in GroupState:
        if state.value.lower() == lowered:
            return state
    return None

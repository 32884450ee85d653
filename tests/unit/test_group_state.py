"""The classic group transition table: every allowed transition works, every other raises."""

from __future__ import annotations

import itertools

import pytest

from moldau.groups.group import ClassicGroup
from moldau.groups.state import (
    VALID_PREVIOUS_STATES,
    GroupState,
    IllegalStateTransition,
    can_transition,
    check_transition,
    parse_state,
)

E, P, C, S, D = (
    GroupState.EMPTY,
    GroupState.PREPARING_REBALANCE,
    GroupState.COMPLETING_REBALANCE,
    GroupState.STABLE,
    GroupState.DEAD,
)

# Kafka's ClassicGroupState, written out as (from, to) pairs.
ALLOWED: set[tuple[GroupState, GroupState]] = {
    (P, E),
    (S, P),
    (C, P),
    (E, P),
    (P, C),
    (C, S),
    (S, D),
    (P, D),
    (C, D),
    (E, D),
    (D, D),
}


def test_table_is_kafkas() -> None:
    table = {(frm, to) for to, froms in VALID_PREVIOUS_STATES.items() for frm in froms}
    assert table == ALLOWED
    assert set(VALID_PREVIOUS_STATES) == set(GroupState)


@pytest.mark.parametrize("frm,to", sorted(ALLOWED, key=str))
def test_allowed_transition(frm: GroupState, to: GroupState) -> None:
    group = ClassicGroup("g", now_ms=0, state=frm)
    group.transition_to(to, 42)
    assert group.state is to
    assert group.previous_state is frm
    assert group.state_timestamp_ms == 42


@pytest.mark.parametrize(
    "frm,to",
    [pair for pair in itertools.product(GroupState, GroupState) if pair not in ALLOWED],
)
def test_illegal_transition_raises(frm: GroupState, to: GroupState) -> None:
    assert not can_transition(frm, to)
    group = ClassicGroup("g", now_ms=0, state=frm)
    with pytest.raises(IllegalStateTransition):
        group.transition_to(to, 1)
    assert group.state is frm  # unchanged
    with pytest.raises(IllegalStateTransition):
        check_transition("g", frm, to)


def test_transition_without_clock_keeps_timestamp() -> None:
    group = ClassicGroup("g", now_ms=5)
    group.transition_to(D, None)
    assert group.state_timestamp_ms == 5


def test_state_names_as_kafka_spells_them() -> None:
    assert [s.value for s in GroupState] == ["Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead"]
    assert str(S) == "Stable"
    assert parse_state("stable") is S
    assert parse_state("PREPARINGREBALANCE") is P
    assert parse_state("bogus") is None

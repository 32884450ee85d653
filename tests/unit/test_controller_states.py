"""The controller's partition transition table: every allowed transition works (Kafka's
validPreviousStates, written out again here as (from, to) pairs), every other raises; and
which state a written leader means."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moldau.controller import partition_state
from moldau.controller.partition_state import IllegalStateTransition, PartitionState

NEW_P, ONLINE_P, OFFLINE_P, NONEXISTENT_P = (
    PartitionState.NEW,
    PartitionState.ONLINE,
    PartitionState.OFFLINE,
    PartitionState.NON_EXISTENT,
)

# PartitionStateMachine.scala
PARTITION_ALLOWED: set[tuple[PartitionState, PartitionState]] = {
    (NONEXISTENT_P, NEW_P),
    (NEW_P, ONLINE_P),
    (ONLINE_P, ONLINE_P),
    (OFFLINE_P, ONLINE_P),
    (NEW_P, OFFLINE_P),
    (ONLINE_P, OFFLINE_P),
    (OFFLINE_P, OFFLINE_P),
    (OFFLINE_P, NONEXISTENT_P),
}


def test_kafka_names() -> None:
    assert [str(s) for s in PartitionState] == [
        "NewPartition",
        "OnlinePartition",
        "OfflinePartition",
        "NonExistentPartition",
    ]


def test_tables_cover_every_state() -> None:
    assert set(partition_state.VALID_PREVIOUS_STATES) == set(PartitionState)


@pytest.mark.parametrize(("current", "target"), sorted(itertools.product(PartitionState, repeat=2), key=str))
def test_partition_transitions(current: PartitionState, target: PartitionState) -> None:
    allowed = (current, target) in PARTITION_ALLOWED
    assert partition_state.can_transition(current, target) is allowed
    if allowed:
        assert partition_state.transition(current, target) is target
    else:
        with pytest.raises(IllegalStateTransition) as info:
            partition_state.transition(current, target)
        assert info.value.current is current and info.value.target is target
        assert f"{current} -> {target}" in str(info.value)


def test_partition_lifecycle() -> None:
    """Create, lose the leader, re-elect, delete: the path the controller takes."""
    s = NONEXISTENT_P
    for target in (NEW_P, ONLINE_P, OFFLINE_P, ONLINE_P, OFFLINE_P, NONEXISTENT_P):
        s = partition_state.transition(s, target)
    assert s is NONEXISTENT_P


@given(st.lists(st.sampled_from(list(PartitionState)), max_size=30))
def test_partition_walks_follow_the_table(targets: list[PartitionState]) -> None:
    s = NONEXISTENT_P
    for target in targets:
        if (s, target) in PARTITION_ALLOWED:
            s = partition_state.transition(s, target)
        else:
            with pytest.raises(IllegalStateTransition):
                partition_state.transition(s, target)


def test_a_written_leader_means_online_only_if_it_is_alive() -> None:
    live = {1, 2}
    assert partition_state.state_for_leader(1, live) is ONLINE_P
    assert partition_state.state_for_leader(3, live) is OFFLINE_P  # its leader died
    assert partition_state.state_for_leader(-1, live) is OFFLINE_P  # no replica could lead
    assert partition_state.state_for_leader(-1, {-1}) is OFFLINE_P


def test_a_new_controller_loads_states_from_what_it_reads() -> None:
    """Kafka's initializePartitionState: no leader and ISR written yet = New."""
    assert partition_state.loaded_state(None, {1}) is NEW_P
    assert partition_state.loaded_state(1, {1}) is ONLINE_P
    assert partition_state.loaded_state(2, {1}) is OFFLINE_P
    assert partition_state.loaded_state(-1, {1}) is OFFLINE_P

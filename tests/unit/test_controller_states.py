"""The controller's partition and replica transition tables: every allowed transition works
(Kafka's validPreviousStates, written out again here as (from, to) pairs), every other raises."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moldau.controller import partition_state, replica_state
from moldau.controller.partition_state import IllegalStateTransition, PartitionState
from moldau.controller.replica_state import ReplicaState

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

NEW_R, ONLINE_R, OFFLINE_R, STARTED, SUCCESSFUL, INELIGIBLE, NONEXISTENT_R = (
    ReplicaState.NEW,
    ReplicaState.ONLINE,
    ReplicaState.OFFLINE,
    ReplicaState.DELETION_STARTED,
    ReplicaState.DELETION_SUCCESSFUL,
    ReplicaState.DELETION_INELIGIBLE,
    ReplicaState.NON_EXISTENT,
)

# ReplicaStateMachine.scala
REPLICA_ALLOWED: set[tuple[ReplicaState, ReplicaState]] = {
    (NONEXISTENT_R, NEW_R),
    (NEW_R, ONLINE_R),
    (ONLINE_R, ONLINE_R),
    (OFFLINE_R, ONLINE_R),
    (INELIGIBLE, ONLINE_R),
    (NEW_R, OFFLINE_R),
    (ONLINE_R, OFFLINE_R),
    (OFFLINE_R, OFFLINE_R),
    (INELIGIBLE, OFFLINE_R),
    (OFFLINE_R, STARTED),
    (STARTED, SUCCESSFUL),
    (OFFLINE_R, INELIGIBLE),
    (STARTED, INELIGIBLE),
    (SUCCESSFUL, NONEXISTENT_R),
}


def test_kafka_names() -> None:
    assert [str(s) for s in PartitionState] == [
        "NewPartition",
        "OnlinePartition",
        "OfflinePartition",
        "NonExistentPartition",
    ]
    assert [str(s) for s in ReplicaState] == [
        "NewReplica",
        "OnlineReplica",
        "OfflineReplica",
        "ReplicaDeletionStarted",
        "ReplicaDeletionSuccessful",
        "ReplicaDeletionIneligible",
        "NonExistentReplica",
    ]


def test_tables_cover_every_state() -> None:
    assert set(partition_state.VALID_PREVIOUS_STATES) == set(PartitionState)
    assert set(replica_state.VALID_PREVIOUS_STATES) == set(ReplicaState)


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


@pytest.mark.parametrize(("current", "target"), sorted(itertools.product(ReplicaState, repeat=2), key=str))
def test_replica_transitions(current: ReplicaState, target: ReplicaState) -> None:
    allowed = (current, target) in REPLICA_ALLOWED
    assert replica_state.can_transition(current, target) is allowed
    if allowed:
        assert replica_state.transition(current, target) is target
    else:
        with pytest.raises(IllegalStateTransition):
            replica_state.transition(current, target)


def test_replica_module_reexports_the_same_exception() -> None:
    assert replica_state.IllegalStateTransition is partition_state.IllegalStateTransition


def test_partition_lifecycle() -> None:
    """Create, lose the leader, re-elect, delete: the path the controller takes."""
    s = NONEXISTENT_P
    for target in (NEW_P, ONLINE_P, OFFLINE_P, ONLINE_P, OFFLINE_P, NONEXISTENT_P):
        s = partition_state.transition(s, target)
    assert s is NONEXISTENT_P


def test_replica_deletion_lifecycle() -> None:
    """Topic deletion with a broker down: Ineligible, then retried once it is back."""
    s = NONEXISTENT_R
    for target in (NEW_R, ONLINE_R, OFFLINE_R, STARTED, INELIGIBLE, OFFLINE_R, STARTED, SUCCESSFUL, NONEXISTENT_R):
        s = replica_state.transition(s, target)
    assert s is NONEXISTENT_R


@given(st.lists(st.sampled_from(list(PartitionState)), max_size=30))
def test_partition_walks_follow_the_table(targets: list[PartitionState]) -> None:
    s = NONEXISTENT_P
    for target in targets:
        if (s, target) in PARTITION_ALLOWED:
            s = partition_state.transition(s, target)
        else:
            with pytest.raises(IllegalStateTransition):
                partition_state.transition(s, target)


@given(st.lists(st.sampled_from(list(ReplicaState)), max_size=30))
def test_replica_walks_follow_the_table(targets: list[ReplicaState]) -> None:
    s = NONEXISTENT_R
    for target in targets:
        if (s, target) in REPLICA_ALLOWED:
            s = replica_state.transition(s, target)
        else:
            with pytest.raises(IllegalStateTransition):
                replica_state.transition(s, target)

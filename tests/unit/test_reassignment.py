"""Partition reassignment decisions (KIP-455), pure."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moldau.controller.coordination import LeaderAndIsr
from moldau.controller.reassignment import (
    ReassignmentError,
    ReplicaAssignment,
    completed_state,
    in_progress_state,
    is_complete,
    plan,
)
from moldau.protocol.errors import ErrorCode

LIVE = {0, 1, 2, 3, 4}


def test_moving_one_replica() -> None:
    r = plan(ReplicaAssignment((0, 1, 2)), [0, 1, 3], LIVE)
    assert r == ReplicaAssignment((0, 1, 3, 2), adding=(3,), removing=(2,))
    assert r.original == (0, 1, 2) and r.target == (0, 1, 3)
    assert r.is_reassigning
    assert not is_complete(r, (0, 1, 2))
    assert is_complete(r, (0, 1, 2, 3))


def test_growing_and_shrinking_the_replication_factor() -> None:
    grow = plan(ReplicaAssignment((0,)), [0, 1, 2], LIVE)
    assert (grow.replicas, grow.adding, grow.removing) == ((0, 1, 2), (1, 2), ())
    shrink = plan(ReplicaAssignment((0, 1, 2)), [1], LIVE)
    assert (shrink.replicas, shrink.adding, shrink.removing) == ((1, 0, 2), (), (0, 2))
    assert is_complete(shrink, (0, 1, 2))  # nothing to wait for


def test_same_replicas_is_no_reassignment_and_order_matters() -> None:
    assert plan(ReplicaAssignment((0, 1)), [0, 1], LIVE) == ReplicaAssignment((0, 1))
    reorder = plan(ReplicaAssignment((0, 1)), [1, 0], LIVE)  # a new preferred leader
    assert reorder.replicas == (1, 0) and not reorder.is_reassigning


def test_a_new_reassignment_replaces_the_one_in_progress_from_the_same_original() -> None:
    first = plan(ReplicaAssignment((0, 1, 2)), [3, 4, 2], LIVE)
    second = plan(first, [0, 1, 4], LIVE)
    assert second.original == (0, 1, 2)
    assert (second.adding, second.removing) == ((4,), (2,))
    assert 3 not in second.replicas  # 3 was only ever being added: dropped


def test_cancel_goes_back_to_the_original_replicas() -> None:
    moving = plan(ReplicaAssignment((0, 1, 2)), [2, 3, 4], LIVE)
    # The replicas in their reassignment order, as Kafka keeps them: the order before is not stored.
    assert plan(moving, None, LIVE) == ReplicaAssignment((2, 0, 1))
    with pytest.raises(ReassignmentError) as err:
        plan(ReplicaAssignment((0, 1, 2)), None, LIVE)
    assert err.value.code == ErrorCode.no_reassignment_in_progress


@pytest.mark.parametrize("target", [[], [1, 1], [0, 9]])
def test_bad_targets_are_refused(target: list[int]) -> None:
    with pytest.raises(ReassignmentError) as err:
        plan(ReplicaAssignment((0, 1)), target, LIVE)
    assert err.value.code == ErrorCode.invalid_replica_assignment


def test_a_dead_current_replica_may_stay_in_the_target() -> None:
    assert plan(ReplicaAssignment((0, 7)), [7, 1], LIVE).adding == (1,)


def test_completion_moves_the_leader_into_the_target_and_drops_removed_replicas() -> None:
    r = plan(ReplicaAssignment((0, 1, 2)), [3, 1], LIVE)
    done = completed_state(r, LeaderAndIsr(0, 5, (0, 1, 2, 3), 1), LIVE, 2)
    assert done == LeaderAndIsr(3, 6, (1, 3), 2)  # first target replica in sync
    stays = completed_state(r, LeaderAndIsr(1, 5, (0, 1, 3), 1), LIVE, 2)
    assert stays.leader == 1 and stays.isr == (1, 3)
    dead_leader = completed_state(r, LeaderAndIsr(1, 5, (0, 1, 3), 1), LIVE - {1}, 2)
    assert dead_leader.leader == 3


def test_in_progress_bumps_only_the_epoch() -> None:
    assert in_progress_state(LeaderAndIsr(0, 5, (0, 1), 1), 3) == LeaderAndIsr(0, 6, (0, 1), 3)


@given(st.lists(st.integers(0, 6), min_size=1, max_size=4, unique=True),
       st.lists(st.integers(0, 6), min_size=1, max_size=4, unique=True),
       st.lists(st.integers(0, 6), min_size=1, max_size=4, unique=True))
def test_any_sequence_of_reassignments_keeps_the_original_and_reaches_the_target(
    start: list[int], first: list[int], second: list[int]
) -> None:
    live = set(range(7))
    a = plan(ReplicaAssignment(tuple(start)), first, live)
    b = plan(a, second, live)
    assert set(b.original) == set(start)
    assert b.target == tuple(second)
    assert set(b.replicas) == set(start) | set(second)
    assert set(b.adding) == set(second) - set(start) and set(b.removing) == set(start) - set(second)
    full_isr = tuple(b.replicas)
    done = completed_state(b, LeaderAndIsr(start[0], 0, full_isr, 0), live, 0)
    assert set(done.isr) == set(second) and done.leader in second

"""Replica assignment: Kafka's expected assignments (AdminRackAwareTest, AddPartitionsTest)
and properties (RF distinct brokers, even leaders, distinct racks)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kio.schema.errors import ErrorCode

from moldau.controller.assignment import (
    AssignmentError,
    BrokerNotAvailable,
    IncompleteRackInfo,
    InvalidPartitions,
    InvalidReplicaAssignment,
    InvalidReplicationFactor,
    add_partitions_assignment,
    assign_replicas,
    rack_alternated_brokers,
    validate_assignment,
)

# --------------------------------------------------------------------------------------
# helpers: Kafka's RackAwareTest.checkReplicaDistribution
# --------------------------------------------------------------------------------------


def check_distribution(
    assignment: Mapping[int, Sequence[int]],
    racks: Mapping[int, str],
    n_partitions: int,
    rf: int,
    *,
    rack_aware: bool = True,
    leaders_even: bool = True,
    replicas_even: bool = True,
) -> None:
    n_brokers = len(racks)
    for replicas in assignment.values():
        assert len(set(replicas)) == len(replicas), "two replicas of a partition on one broker"
    if rack_aware:
        for p, replicas in assignment.items():
            assert len({racks[b] for b in replicas}) == rf, f"partition {p}: two replicas on one rack"
    if leaders_even:
        leaders = Counter(replicas[0] for replicas in assignment.values())
        assert sorted(leaders.values()) == [n_partitions // n_brokers] * n_brokers
    if replicas_even:
        counts = Counter(b for replicas in assignment.values() for b in replicas)
        assert sorted(counts.values()) == [n_partitions * rf // n_brokers] * n_brokers


def no_racks(n: int) -> dict[int, str | None]:
    return dict.fromkeys(range(n))


# --------------------------------------------------------------------------------------
# rack-unaware: Kafka's expected assignments
# --------------------------------------------------------------------------------------


def test_kafka_replica_assignment_fixed_start_index() -> None:
    """AdminRackAwareTest.testReplicaAssignment (and the AdminUtils javadoc table)."""
    expected = {
        0: [0, 1, 2],
        1: [1, 2, 3],
        2: [2, 3, 4],
        3: [3, 4, 0],
        4: [4, 0, 1],
        5: [0, 2, 3],
        6: [1, 3, 4],
        7: [2, 4, 0],
        8: [3, 0, 1],
        9: [4, 1, 2],
    }
    assert assign_replicas(10, 3, no_racks(5), fixed_start_index=0) == expected


def test_start_shift_is_separate_from_start_index() -> None:
    # start index 0, shift 1: followers of partition 0 start two brokers after the leader
    got = assign_replicas(5, 3, no_racks(5), fixed_start_index=0, start_shift=1)
    assert got[0] == [0, 2, 3]
    assert [r[0] for r in got.values()] == [0, 1, 2, 3, 4]
    # start index 2: partition 0 is led by the third broker (id order, not dict order)
    brokers: dict[int, str | None] = {30: None, 10: None, 20: None, 40: None}
    assert assign_replicas(4, 1, brokers, fixed_start_index=2) == {0: [30], 1: [40], 2: [10], 3: [20]}


def test_random_start_is_reproducible_with_rng() -> None:
    a = assign_replicas(12, 3, no_racks(6), rng=random.Random(7))
    b = assign_replicas(12, 3, no_racks(6), rng=random.Random(7))
    assert a == b


def test_invalid_parameters() -> None:
    """AdminRackAwareTest.testAssignReplicasToBrokersWithInvalidParameters."""
    racks: dict[int, str | None] = {0: "rack1", 1: "rack3", 2: "rack3", 3: "rack2", 4: None}
    with pytest.raises(InvalidPartitions, match="Number of partitions must be larger than 0"):
        assign_replicas(0, 0, racks)
    with pytest.raises(InvalidReplicationFactor, match="Replication factor must be larger than 0"):
        assign_replicas(10, 0, racks)
    with pytest.raises(InvalidReplicationFactor, match="Replication factor: 6 larger than available brokers: 5."):
        assign_replicas(10, 6, racks)
    with pytest.raises(IncompleteRackInfo, match="Not all brokers have rack information"):
        assign_replicas(10, 5, racks)
    with pytest.raises(ValueError):
        assign_replicas(1, 1, no_racks(1), fixed_start_index=-1)


def test_error_codes() -> None:
    assert InvalidPartitions.error_code == ErrorCode.invalid_partitions
    assert InvalidReplicationFactor.error_code == ErrorCode.invalid_replication_factor
    assert InvalidReplicaAssignment.error_code == ErrorCode.invalid_replica_assignment
    assert IncompleteRackInfo.error_code == ErrorCode.invalid_replica_assignment
    assert BrokerNotAvailable.error_code == ErrorCode.broker_not_available


def test_start_partition_continues_numbering() -> None:
    got = assign_replicas(3, 2, no_racks(3), start_partition=4, fixed_start_index=0)
    assert sorted(got) == [4, 5, 6]
    # negative start partition is treated as 0, like Kafka's math.max(0, startPartitionId)
    assert sorted(assign_replicas(2, 1, no_racks(3), start_partition=-1, fixed_start_index=0)) == [0, 1]


# --------------------------------------------------------------------------------------
# rack-aware: Kafka's expected assignments and distribution checks
# --------------------------------------------------------------------------------------


def test_rack_alternated_broker_list() -> None:
    racks = {0: "rack1", 1: "rack3", 2: "rack3", 3: "rack2", 4: "rack2", 5: "rack1"}
    assert rack_alternated_brokers(racks) == [0, 3, 1, 5, 4, 2]
    del racks[5]
    assert rack_alternated_brokers(racks) == [0, 3, 1, 4, 2]
    # the javadoc example
    racks9 = {b: f"rack{b // 3 + 1}" for b in range(9)}
    assert rack_alternated_brokers(racks9) == [0, 3, 6, 1, 4, 7, 2, 5, 8]


def test_kafka_rack_aware_assignment() -> None:
    """AdminRackAwareTest.testGetRackAlternatedBrokerListAndAssignReplicasToBrokers."""
    racks: dict[int, str | None] = {0: "rack1", 1: "rack3", 2: "rack3", 3: "rack2", 4: "rack2", 5: "rack1"}
    expected = {
        0: [0, 3, 1],
        1: [3, 1, 5],
        2: [1, 5, 4],
        3: [5, 4, 2],
        4: [4, 2, 0],
        5: [2, 0, 3],
        6: [0, 4, 2],
    }
    assert assign_replicas(7, 3, racks, fixed_start_index=0) == expected


SIX_IN_THREE_RACKS = {0: "rack1", 1: "rack2", 2: "rack2", 3: "rack3", 4: "rack3", 5: "rack1"}


def test_rack_aware_fixed_start() -> None:
    """testAssignmentWithRackAware (start index 2) and ...WithUnevenReplicas (13 partitions)."""
    got = assign_replicas(6, 3, dict(SIX_IN_THREE_RACKS), fixed_start_index=2)
    check_distribution(got, SIX_IN_THREE_RACKS, 6, 3)
    got = assign_replicas(13, 3, dict(SIX_IN_THREE_RACKS), fixed_start_index=0)
    check_distribution(got, SIX_IN_THREE_RACKS, 13, 3, leaders_even=False, replicas_even=False)


@pytest.mark.parametrize("seed", range(20))
def test_rack_aware_random_start(seed: int) -> None:
    """testAssignmentWithRackAwareWithRandomStartIndex, ...With2ReplicasRackAware,
    ...With6Partitions, ...UnevenRacks, testRackAwareExpansion, testLargeNumberPartitionsAssignment."""
    rng = random.Random(seed)
    check_distribution(assign_replicas(6, 3, dict(SIX_IN_THREE_RACKS), rng=rng), SIX_IN_THREE_RACKS, 6, 3)
    check_distribution(assign_replicas(12, 2, dict(SIX_IN_THREE_RACKS), rng=rng), SIX_IN_THREE_RACKS, 12, 2)
    check_distribution(assign_replicas(6, 2, dict(SIX_IN_THREE_RACKS), rng=rng), SIX_IN_THREE_RACKS, 6, 2)
    three = {0: "rack1", 1: "rack2", 4: "rack3"}
    check_distribution(assign_replicas(3, 2, dict(three), rng=rng), three, 3, 2)
    uneven = {0: "rack1", 1: "rack1", 2: "rack2", 3: "rack3", 4: "rack3", 5: "rack1"}
    check_distribution(assign_replicas(12, 3, dict(uneven), rng=rng), uneven, 12, 3, replicas_even=False)
    expansion = {6: "rack1", 7: "rack2", 8: "rack2", 9: "rack3", 10: "rack3", 11: "rack1"}
    got = assign_replicas(12, 2, dict(expansion), start_partition=12, rng=rng)
    assert sorted(got) == list(range(12, 24))
    check_distribution(got, expansion, 12, 2)
    large = {0: "rack1", 1: "rack2", 2: "rack2", 3: "rack3", 4: "rack3", 5: "rack1"}
    large.update({6: "rack1", 7: "rack2", 8: "rack2", 9: "rack3", 10: "rack1", 11: "rack3"})
    check_distribution(assign_replicas(96, 3, dict(large), rng=rng), large, 96, 3)


@pytest.mark.parametrize("seed", range(10))
def test_more_and_fewer_replicas_than_racks(seed: int) -> None:
    """testMoreReplicasThanRacks, testLessReplicasThanRacks, testSingleRack."""
    rng = random.Random(seed)
    racks = {0: "rack1", 1: "rack2", 2: "rack2", 3: "rack3", 4: "rack3", 5: "rack2"}
    got = assign_replicas(6, 5, dict(racks), rng=rng)
    assert all(len(r) == 5 and len({racks[b] for b in r}) == 3 for r in got.values())
    got = assign_replicas(6, 2, dict(racks), rng=rng)
    assert all(len(r) == 2 and len({racks[b] for b in r}) == 2 for r in got.values())
    single = dict.fromkeys(range(6), "rack1")
    got = assign_replicas(6, 3, dict(single), rng=rng)
    assert all(len(r) == 3 for r in got.values())
    assert Counter(r[0] for r in got.values()) == Counter(range(6))


def test_skip_broker_with_replica_already_assigned() -> None:
    """testSkipBrokerWithReplicaAlreadyAssigned: RF 4 over 3 racks with start index 2."""
    racks = {0: "a", 1: "b", 2: "c", 3: "a", 4: "a"}
    got = assign_replicas(6, 4, dict(racks), fixed_start_index=2, start_partition=-1)
    check_distribution(got, racks, 6, 4, rack_aware=False, leaders_even=False, replicas_even=False)
    assert all(len(r) == 4 for r in got.values())


# --------------------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------------------


@st.composite
def cluster(draw: st.DrawFn, racks: bool) -> dict[int, str | None]:
    ids = draw(st.sets(st.integers(0, 1000), min_size=1, max_size=12))
    if not racks:
        return dict.fromkeys(ids)
    n_racks = draw(st.integers(1, 5))
    return {b: f"r{draw(st.integers(0, n_racks - 1))}" for b in ids}


@settings(max_examples=300, deadline=None)
@given(data=st.data(), racks=st.booleans())
def test_every_partition_gets_rf_distinct_brokers(data: st.DataObject, racks: bool) -> None:
    brokers = data.draw(cluster(racks))
    rf = data.draw(st.integers(1, len(brokers)))
    n = data.draw(st.integers(1, 60))
    start = data.draw(st.integers(0, 50))
    seed = data.draw(st.integers(0, 2**32))
    got = assign_replicas(n, rf, brokers, start_partition=start, rng=random.Random(seed))
    assert sorted(got) == list(range(start, start + n))
    for replicas in got.values():
        assert len(replicas) == rf
        assert len(set(replicas)) == rf
        assert set(replicas) <= set(brokers)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), racks=st.booleans())
def test_leaders_spread_evenly(data: st.DataObject, racks: bool) -> None:
    brokers = data.draw(cluster(racks))
    rf = data.draw(st.integers(1, len(brokers)))
    n = len(brokers) * data.draw(st.integers(1, 5))
    got = assign_replicas(n, rf, brokers, rng=random.Random(data.draw(st.integers(0, 2**32))))
    leaders = Counter(r[0] for r in got.values())
    counts = [leaders.get(b, 0) for b in brokers]
    assert max(counts) - min(counts) <= 1
    # a multiple of the broker count: exactly even
    assert set(counts) == {n // len(brokers)}


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_rack_aware_distinct_racks_when_enough_racks(data: st.DataObject) -> None:
    brokers = data.draw(cluster(True))
    n_racks = len(set(brokers.values()))
    rf = data.draw(st.integers(1, min(n_racks, len(brokers))))
    n = data.draw(st.integers(1, 40))
    got = assign_replicas(n, rf, brokers, rng=random.Random(data.draw(st.integers(0, 2**32))))
    for replicas in got.values():
        assert len({brokers[b] for b in replicas}) == rf
    # more replicas than racks: every rack gets at least one
    if len(brokers) > n_racks:
        rf = data.draw(st.integers(n_racks, len(brokers)))
        got = assign_replicas(n, rf, brokers, rng=random.Random(0))
        for replicas in got.values():
            assert len({brokers[b] for b in replicas}) == n_racks


# --------------------------------------------------------------------------------------
# explicit assignments (CreateTopics)
# --------------------------------------------------------------------------------------


def test_valid_explicit_assignment() -> None:
    validate_assignment({0: [1, 2], 1: [2, 3], 2: [3, 1]}, {1, 2, 3})


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ({}, "no partitions"),
        ({0: [1, 2], 2: [2, 1]}, "consecutive 0-based integer sequence"),
        ({1: [1, 2], 2: [2, 1]}, "consecutive 0-based integer sequence"),
        ({0: [1, 2], 1: [2]}, r"a partition with 1 replica\(s\), .* which have 2 replica\(s\)"),
        ({0: [1, 1]}, "includes the broker 1 more than once"),
        ({0: [1, 9]}, "includes broker 9, but no such broker is registered"),
        ({0: []}, "empty replica list"),
    ],
)
def test_invalid_explicit_assignment(assignment: dict[int, list[int]], message: str) -> None:
    with pytest.raises(InvalidReplicaAssignment, match=message):
        validate_assignment(assignment, {1, 2, 3})


# --------------------------------------------------------------------------------------
# CreatePartitions
# --------------------------------------------------------------------------------------

FOUR_BROKERS: dict[int, str | None] = no_racks(4)


def test_add_partitions_kafka_all_servers() -> None:
    """AddPartitionsTest.testReplicaPlacementAllServers: [2,3,0,1] grown to 7 partitions."""
    got = add_partitions_assignment({0: [2, 3, 0, 1]}, 7, FOUR_BROKERS)
    expected_leaders = {1: 3, 2: 0, 3: 1, 4: 2, 5: 3, 6: 0}
    assert {p: r[0] for p, r in got.items()} == expected_leaders
    assert all(set(r) == {0, 1, 2, 3} for r in got.values())


def test_add_partitions_kafka_partial_servers() -> None:
    """AddPartitionsTest.testReplicaPlacementPartialServers: [1,2] grown to 3 partitions."""
    got = add_partitions_assignment({0: [1, 2]}, 3, FOUR_BROKERS)
    assert got[1][0] == 2 and set(got[1]) == {0, 2}
    assert got[2][0] == 3 and set(got[2]) == {1, 3}
    assert sorted(got) == [1, 2]


def test_add_partitions_start_index_from_partition0_leader() -> None:
    # partition 0 is led by broker 25, which is gone: the start index is the position of the
    # first broker with a larger id (30, index 2); partition 2 -> (2 + 2) % 3 = index 1
    brokers: dict[int, str | None] = {10: None, 20: None, 30: None}
    assert add_partitions_assignment({0: [25], 1: [10]}, 3, brokers) == {2: [20]}
    # no larger id: index 0; partition 2 -> (2 + 0) % 3 = index 2
    assert add_partitions_assignment({0: [99], 1: [10]}, 3, brokers) == {2: [30]}


def test_add_partitions_errors() -> None:
    with pytest.raises(InvalidPartitions, match="Topic already has 2 partitions."):
        add_partitions_assignment({0: [1], 1: [2]}, 2, FOUR_BROKERS)
    with pytest.raises(
        InvalidPartitions, match="Topic currently has 2 partitions, which is higher than the requested 1."
    ):
        add_partitions_assignment({0: [1], 1: [2]}, 1, FOUR_BROKERS)
    with pytest.raises(AssignmentError, match="partition id 0 is missing"):
        add_partitions_assignment({1: [1]}, 3, FOUR_BROKERS)
    with pytest.raises(InvalidReplicationFactor):
        add_partitions_assignment({0: [0, 1, 2, 3]}, 2, no_racks(3))


def test_add_partitions_explicit() -> None:
    """AddPartitionsTest.testManualAssignmentOfReplicas / testWrongReplicaCount and
    ZkAdminManager.createPartitions' checks."""
    existing = {0: [0, 1]}
    assert add_partitions_assignment(existing, 3, FOUR_BROKERS, assignments=[[0, 1], [2, 3]]) == {
        1: [0, 1],
        2: [2, 3],
    }
    with pytest.raises(InvalidReplicaAssignment, match="Inconsistent replication factor between partitions"):
        add_partitions_assignment(existing, 2, FOUR_BROKERS, assignments=[[0, 1, 2]])
    with pytest.raises(
        InvalidReplicaAssignment,
        match=r"partition 0 has 2 while partitions \[1, 3\] have replication factors \[3, 1\], respectively.",
    ):
        add_partitions_assignment(existing, 4, FOUR_BROKERS, assignments=[[0, 1, 2], [2, 3], [1]])
    with pytest.raises(InvalidReplicaAssignment, match="Unknown broker\\(s\\) in replica assignment: 7, 9."):
        add_partitions_assignment(existing, 2, FOUR_BROKERS, assignments=[[9, 7]])
    with pytest.raises(InvalidReplicaAssignment, match="Increasing the number of partitions by 2 but 1 assignments"):
        add_partitions_assignment(existing, 3, FOUR_BROKERS, assignments=[[0, 1]])
    with pytest.raises(InvalidReplicaAssignment, match="Duplicate brokers not allowed in replica assignment: 1, 1"):
        add_partitions_assignment(existing, 2, FOUR_BROKERS, assignments=[[1, 1]])
    with pytest.raises(InvalidReplicaAssignment, match="Cannot have replication factor of 0 for partition id 1."):
        add_partitions_assignment(existing, 2, FOUR_BROKERS, assignments=[[]])


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_add_partitions_properties(data: st.DataObject) -> None:
    brokers = data.draw(cluster(data.draw(st.booleans())))
    rf = data.draw(st.integers(1, len(brokers)))
    n = data.draw(st.integers(1, 20))
    existing = assign_replicas(n, rf, brokers, rng=random.Random(data.draw(st.integers(0, 2**32))))
    new_total = n + data.draw(st.integers(1, 20))
    got = add_partitions_assignment(existing, new_total, brokers)
    assert sorted(got) == list(range(n, new_total))
    assert all(len(set(r)) == rf and set(r) <= set(brokers) for r in got.values())

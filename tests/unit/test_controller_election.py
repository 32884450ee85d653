"""Leader elections and the leader-imbalance check: Kafka's cases (PartitionLeaderElectionAlgorithmsTest,
ControllerIntegrationTest) as examples, plus properties: never a dead leader, never a non-ISR leader unless
unclean, always a bumped epoch."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kio.schema.errors import ErrorCode

from moldau.controller.coordination import LeaderAndIsr
from moldau.controller.election import (
    NO_LEADER,
    ElectionResult,
    controlled_shutdown_election,
    initial_state,
    offline_election,
    preferred_election,
    shrink_isr_for_dead_brokers,
)
from moldau.controller.preferred import imbalanced_partitions

CE = 7  # the deciding controller's epoch


def state(leader: int, isr: tuple[int, ...], epoch: int = 5, controller_epoch: int = 3) -> LeaderAndIsr:
    return LeaderAndIsr(leader=leader, leader_epoch=epoch, isr=isr, controller_epoch=controller_epoch)


# --------------------------------------------------------------------------------------
# initial state
# --------------------------------------------------------------------------------------


def test_initial_state_first_live_replica_leads() -> None:
    assert initial_state([2, 4, 6], {4, 6}, CE) == LeaderAndIsr(4, 0, (4, 6), CE)
    assert initial_state([2, 4, 6], {2, 4, 6}, CE) == LeaderAndIsr(2, 0, (2, 4, 6), CE)
    assert initial_state([2, 4, 6], {1, 3}, CE) is None


# --------------------------------------------------------------------------------------
# offline election (PartitionLeaderElectionAlgorithmsTest)
# --------------------------------------------------------------------------------------


def test_offline_election() -> None:
    """testOfflinePartitionLeaderElection: assignment [2, 4], ISR [2, 4], live {4} -> 4."""
    result = offline_election([2, 4], state(2, (2, 4)), {4}, False, CE)
    assert result.leader_and_isr == LeaderAndIsr(4, 6, (4,), CE)
    assert not result.unclean and result.error is None and result.recipients == (4,)


def test_offline_election_last_isr_member_offline_unclean_disabled() -> None:
    """testOfflinePartitionLeaderElectionLastIsrOfflineUncleanLeaderElectionDisabled."""
    result = offline_election([2, 4], state(2, (2,)), {4}, False, CE)
    assert result.leader_and_isr is None
    assert result.error == ErrorCode.eligible_leaders_not_available
    assert result.leader == NO_LEADER and not result.elected


def test_offline_election_last_isr_member_offline_unclean_enabled() -> None:
    """testOfflinePartitionLeaderElectionLastIsrOfflineUncleanLeaderElectionEnabled."""
    result = offline_election([2, 4], state(2, (2,)), {4}, True, CE)
    assert result.leader_and_isr == LeaderAndIsr(4, 6, (4,), CE)
    assert result.unclean


def test_offline_election_prefers_assignment_order_and_keeps_isr_order() -> None:
    # ISR order (3, 1, 2); assignment order decides the leader, ISR keeps its order minus the dead
    result = offline_election([1, 2, 3], state(NO_LEADER, (3, 1, 2)), {2, 3}, False, CE)
    assert result.leader_and_isr == LeaderAndIsr(2, 6, (3, 2), CE)
    assert result.recipients == (2, 3)


def test_offline_election_not_needed_when_leader_alive() -> None:
    result = offline_election([1, 2], state(1, (1, 2)), {1, 2}, True, CE)
    assert result.leader_and_isr is None and result.error == ErrorCode.election_not_needed


def test_offline_election_nobody_alive() -> None:
    result = offline_election([1, 2], state(1, (1, 2)), set(), True, CE)
    assert result.leader_and_isr is None and result.error == ErrorCode.eligible_leaders_not_available
    assert result.recipients == ()


# --------------------------------------------------------------------------------------
# preferred election
# --------------------------------------------------------------------------------------


def test_preferred_election() -> None:
    """testPreferredReplicaPartitionLeaderElection: assignment [2, 4], ISR [2, 4], live {2, 4} -> 2."""
    result = preferred_election([2, 4], state(4, (2, 4)), {2, 4}, CE)
    assert result.leader_and_isr == LeaderAndIsr(2, 6, (2, 4), CE)


@pytest.mark.parametrize(
    ("isr", "live"),
    [
        ((2,), set()),  # testPreferredReplicaPartitionLeaderElectionPreferredReplicaInIsrNotLive
        ((4,), {2, 4}),  # ...PreferredReplicaNotInIsrLive
        ((), set()),  # ...PreferredReplicaNotInIsrNotLive
        ((2, 4), {4}),
    ],
)
def test_preferred_replica_not_available(isr: tuple[int, ...], live: set[int]) -> None:
    result = preferred_election([2, 4], state(NO_LEADER if not live else 4, isr), live, CE)
    assert result.leader_and_isr is None and result.error == ErrorCode.preferred_leader_not_available


def test_preferred_election_not_needed() -> None:
    result = preferred_election([2, 4], state(2, (2, 4)), {2, 4}, CE)
    assert result.leader_and_isr is None and result.error == ErrorCode.election_not_needed


# --------------------------------------------------------------------------------------
# controlled shutdown
# --------------------------------------------------------------------------------------


def test_controlled_shutdown_election() -> None:
    """testControlledShutdownPartitionLeaderElection: [2, 4], ISR [2, 4], 2 shutting down -> 4, ISR [4]."""
    result = controlled_shutdown_election([2, 4], state(2, (2, 4)), {2, 4}, {2}, CE)
    assert result.leader_and_isr == LeaderAndIsr(4, 6, (4,), CE)
    assert result.recipients == (2, 4)  # the shutting-down broker learns it is a follower now


def test_controlled_shutdown_last_isr_member() -> None:
    """testControlledShutdownPartitionLeaderElectionLastIsrShuttingDown."""
    result = controlled_shutdown_election([2, 4], state(2, (2,)), {2, 4}, {2}, CE)
    assert result.leader_and_isr is None and result.error == ErrorCode.eligible_leaders_not_available


def test_controlled_shutdown_all_isr_simultaneously_shutting_down() -> None:
    """testControlledShutdownPartitionLeaderElectionAllIsrSimultaneouslyShutdown."""
    result = controlled_shutdown_election([2, 4], state(2, (2, 4)), {2, 4}, {2, 4}, CE)
    assert result.leader_and_isr is None


def test_controlled_shutdown_live_set_without_shutting_down_brokers() -> None:
    # ``live`` may or may not contain the shutting-down broker: the result is the same
    a = controlled_shutdown_election([1, 2, 3], state(1, (1, 2, 3)), {2, 3}, {1}, CE)
    b = controlled_shutdown_election([1, 2, 3], state(1, (1, 2, 3)), {1, 2, 3}, {1}, CE)
    assert a == b
    assert a.leader_and_isr == LeaderAndIsr(2, 6, (2, 3), CE)


# --------------------------------------------------------------------------------------
# ISR shrink for dead replicas (ReplicaStateMachine OfflineReplica)
# --------------------------------------------------------------------------------------


def test_shrink_removes_dead_follower_and_bumps_epoch() -> None:
    got = shrink_isr_for_dead_brokers(state(1, (1, 2, 3)), {2}, controller_epoch=CE)
    assert got == LeaderAndIsr(1, 6, (1, 3), CE)


def test_shrink_dead_leader_leaves_no_leader() -> None:
    got = shrink_isr_for_dead_brokers(state(1, (1, 2)), {1})
    assert got == LeaderAndIsr(NO_LEADER, 6, (2,), 3)


def test_shrink_keeps_the_last_isr_member() -> None:
    # Kafka never empties the ISR: the last member stays, so it can come back as a clean leader
    assert shrink_isr_for_dead_brokers(state(1, (1,)), {1}) == LeaderAndIsr(NO_LEADER, 6, (1,), 3)
    assert shrink_isr_for_dead_brokers(state(1, (1, 2)), {1, 2}).isr == (2,)


def test_shrink_nothing_to_do_returns_current() -> None:
    current = state(1, (1, 2))
    assert shrink_isr_for_dead_brokers(current, {3}) is current


# --------------------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------------------


@st.composite
def partition(draw: st.DrawFn) -> tuple[list[int], LeaderAndIsr, set[int]]:
    """An assignment, a current state whose ISR is a non-empty subset of it, and a live set."""
    assignment = draw(st.lists(st.integers(0, 9), min_size=1, max_size=6, unique=True))
    isr = draw(st.lists(st.sampled_from(assignment), min_size=1, unique=True))
    leader = draw(st.sampled_from([*isr, NO_LEADER]))
    live = draw(st.sets(st.integers(0, 9)))
    current = LeaderAndIsr(leader, draw(st.integers(0, 1000)), tuple(isr), draw(st.integers(0, 50)))
    return assignment, current, live


def check_election(
    result: ElectionResult, assignment: list[int], current: LeaderAndIsr, live: set[int], eligible: set[int]
) -> None:
    new = result.leader_and_isr
    assert result.recipients == tuple(r for r in assignment if r in live or r in eligible)
    if new is None:
        assert result.error is not None
        return
    assert result.error is None
    assert new.leader in eligible, "elected a dead or shutting-down broker"
    assert new.leader in assignment
    assert new.leader_epoch == current.leader_epoch + 1
    assert new.controller_epoch == CE
    assert new.isr and new.leader in new.isr
    if not result.unclean:
        assert new.leader in current.isr, "elected a replica outside the ISR"
        assert set(new.isr) <= set(current.isr)
    else:
        assert new.leader not in current.isr
        assert new.isr == (new.leader,)


@settings(max_examples=500, deadline=None)
@given(p=partition(), unclean=st.booleans())
def test_offline_election_properties(p: tuple[list[int], LeaderAndIsr, set[int]], unclean: bool) -> None:
    assignment, current, live = p
    result = offline_election(assignment, current, live, unclean, CE)
    check_election(result, assignment, current, live, live)
    if result.leader_and_isr is not None:
        assert set(result.leader_and_isr.isr) <= live, "a dead replica left in the ISR"
        if result.unclean:
            assert unclean
            assert not (set(current.isr) & live & set(assignment))
    elif result.error == ErrorCode.eligible_leaders_not_available:
        eligible = [r for r in assignment if r in live and (r in current.isr or unclean)]
        assert not eligible


@settings(max_examples=500, deadline=None)
@given(p=partition())
def test_preferred_election_properties(p: tuple[list[int], LeaderAndIsr, set[int]]) -> None:
    assignment, current, live = p
    result = preferred_election(assignment, current, live, CE)
    check_election(result, assignment, current, live, live)
    assert not result.unclean
    if result.leader_and_isr is not None:
        assert result.leader_and_isr.leader == assignment[0]
        assert result.leader_and_isr.isr == current.isr


@settings(max_examples=500, deadline=None)
@given(p=partition(), data=st.data())
def test_controlled_shutdown_properties(p: tuple[list[int], LeaderAndIsr, set[int]], data: st.DataObject) -> None:
    assignment, current, live = p
    shutting_down = data.draw(st.sets(st.sampled_from(assignment)))
    result = controlled_shutdown_election(assignment, current, live, shutting_down, CE)
    eligible = live - shutting_down
    check_election(result, assignment, current, live | shutting_down, eligible)
    assert not result.unclean
    if result.leader_and_isr is not None:
        assert not set(result.leader_and_isr.isr) & shutting_down


@settings(max_examples=500, deadline=None)
@given(p=partition())
def test_shrink_properties(p: tuple[list[int], LeaderAndIsr, set[int]]) -> None:
    assignment, current, live = p
    dead = set(assignment) - live
    got = shrink_isr_for_dead_brokers(current, dead, controller_epoch=CE)
    if got is current:
        assert not dead & set(current.isr)
        return
    assert got.leader_epoch == current.leader_epoch + 1
    assert got.isr, "the ISR never empties"
    assert set(got.isr) <= set(current.isr)
    assert len(set(got.isr) & dead) <= (1 if set(current.isr) <= dead else 0)
    assert got.leader == (NO_LEADER if current.leader in dead else current.leader)


# --------------------------------------------------------------------------------------
# leader imbalance (auto.leader.rebalance.enable)
# --------------------------------------------------------------------------------------


def test_imbalance_above_threshold() -> None:
    # broker 1 prefers 4 partitions and leads 3: ratio 25% > 10%
    assignments = {("t", p): [1, 2] for p in range(4)}
    states = {("t", p): state(1, (1, 2)) for p in range(3)}
    states[("t", 3)] = state(2, (1, 2))
    assert imbalanced_partitions(assignments, states, {1, 2}) == {1: [("t", 3)]}
    # 25% is not above 25%
    assert imbalanced_partitions(assignments, states, {1, 2}, imbalance_percentage=25) == {}
    assert imbalanced_partitions(assignments, states, {1, 2}, imbalance_percentage=24) == {1: [("t", 3)]}


def test_imbalance_skips_brokers_that_cannot_lead() -> None:
    assignments = {("t", 0): [1, 2], ("u", 0): [3, 2]}
    states = {("t", 0): state(2, (2,)), ("u", 0): state(2, (2, 3))}
    # 1 is out of the ISR; 3 is dead
    assert imbalanced_partitions(assignments, states, {1, 2}) == {}
    # 3 alive and in the ISR
    assert imbalanced_partitions(assignments, states, {1, 2, 3}) == {3: [("u", 0)]}


def test_imbalance_partitions_without_state_count_in_denominator_only() -> None:
    # 10 partitions prefer broker 1, one has no state yet, one is led by 2: 1/10 = 10%, not above
    assignments = {("t", p): [1, 2] for p in range(10)}
    states = {("t", p): state(1, (1, 2)) for p in range(1, 9)}
    states[("t", 9)] = state(2, (1, 2))
    assert imbalanced_partitions(assignments, states, {1, 2}) == {}
    assert imbalanced_partitions(assignments, states, {1, 2}, imbalance_percentage=9) == {1: [("t", 9)]}


def test_imbalance_counts_leaderless_partitions() -> None:
    assignments = {("t", 0): [1, 2]}
    states = {("t", 0): state(NO_LEADER, (1,))}
    assert imbalanced_partitions(assignments, states, {1}) == {1: [("t", 0)]}


@settings(max_examples=300, deadline=None)
@given(data=st.data(), pct=st.integers(0, 100))
def test_imbalance_properties(data: st.DataObject, pct: int) -> None:
    n = data.draw(st.integers(1, 15))
    assignments: dict[tuple[str, int], list[int]] = {}
    states: dict[tuple[str, int], LeaderAndIsr] = {}
    for p in range(n):
        replicas = data.draw(st.lists(st.integers(0, 4), min_size=1, max_size=3, unique=True))
        assignments[("t", p)] = replicas
        if data.draw(st.booleans()):
            isr = data.draw(st.lists(st.sampled_from(replicas), min_size=1, unique=True))
            states[("t", p)] = state(data.draw(st.sampled_from([*isr, NO_LEADER])), tuple(isr))
    live = data.draw(st.sets(st.integers(0, 4)))
    got = imbalanced_partitions(assignments, states, live, pct)
    for broker, tps in got.items():
        assert broker in live and tps == sorted(tps)
        preferred_of_broker = [tp for tp, r in assignments.items() if r[0] == broker]
        not_led = [tp for tp in preferred_of_broker if tp in states and states[tp].leader != broker]
        assert len(not_led) / len(preferred_of_broker) > pct / 100
        for tp in tps:
            assert assignments[tp][0] == broker
            assert states[tp].leader != broker and broker in states[tp].isr
            # exactly the partitions a preferred election would move
            assert preferred_election(assignments[tp], states[tp], live, CE).leader_and_isr is not None

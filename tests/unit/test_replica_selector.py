"""Follower fetching (KIP-392): Kafka's RackAwareReplicaSelector and the leader's choice
of a preferred read replica (pure), then a replica manager with in-memory seams: a
consumer in a follower's rack is sent there, the follower serves it up to its own high
watermark, and Kafka's errors for follower reads."""
from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from moldau.protocol.errors import ErrorCode
from moldau.replication.leader_state import LeaderState
from moldau.replication.replica_manager import FetchParams, FetchPartitionRequest, FetchResults, ReplicaManager
from moldau.replication.replica_selector import (
    RACK_AWARE_REPLICA_SELECTOR,
    ReplicaView,
    preferred_read_replica,
    select_rack_aware,
)
from tests.unit.test_replica_manager import TP, make_cluster, produce, records, replicate

LEADER = ReplicaView(0, "a", 100, 0)


def test_no_client_rack_or_no_replica_in_it_means_the_leader() -> None:
    followers = [LEADER, ReplicaView(1, "b", 100, 0), ReplicaView(2, "c", 100, 0)]
    assert select_rack_aware(None, LEADER, followers) == LEADER
    assert select_rack_aware("", LEADER, followers) == LEADER
    assert select_rack_aware("z", LEADER, followers) == LEADER


def test_the_leader_in_the_client_rack_wins_over_its_followers_there() -> None:
    replicas = [LEADER, ReplicaView(1, "a", 100, 0)]
    assert select_rack_aware("a", LEADER, replicas) == LEADER


def test_the_most_caught_up_replica_of_the_rack_then_the_most_recently_caught_up() -> None:
    behind = ReplicaView(1, "b", 90, 0)
    ahead = ReplicaView(2, "b", 100, 500)
    ahead_recent = ReplicaView(3, "b", 100, 10)
    assert select_rack_aware("b", LEADER, [LEADER, behind, ahead]) == ahead
    assert select_rack_aware("b", LEADER, [LEADER, behind, ahead, ahead_recent]) == ahead_recent
    tie = ReplicaView(4, "b", 100, 10)
    assert select_rack_aware("b", LEADER, [tie, ahead_recent]) == ahead_recent  # lowest id breaks a tie


def leader_state(isr: set[int]) -> LeaderState:
    state = LeaderState.become_leader("t", 0, 0, 1, 0, [0, 1, 2], sorted(isr), 100, 100, 10_000, 1_000)
    for b in (1, 2):
        state.on_follower_fetch(b, 100, 100, 1_000, log_start_offset=20)
    return state


RACKS = {0: "a", 1: "b", 2: "c"}


def test_only_live_in_sync_followers_holding_the_offset_are_preferred() -> None:
    state = leader_state({0, 1, 2})
    assert preferred_read_replica(state, 100, 50, "b", RACKS, 1_000) == 1
    assert preferred_read_replica(state, 100, 50, "c", RACKS, 1_000) == 2
    assert preferred_read_replica(state, 100, 50, "a", RACKS, 1_000) is None  # the leader's own rack
    assert preferred_read_replica(state, 100, 50, None, RACKS, 1_000) is None
    # Out of the ISR: never chosen, however caught up.
    assert preferred_read_replica(leader_state({0, 2}), 100, 50, "b", RACKS, 1_000) is None
    # Not live (no longer in the metadata's live brokers): not chosen.
    assert preferred_read_replica(state, 100, 50, "b", {0: "a", 2: "c"}, 1_000) is None
    # The follower lacks the offset: past its log end, or below its log start.
    assert preferred_read_replica(state, 101, 101, "b", RACKS, 1_000) is None
    assert preferred_read_replica(state, 100, 10, "b", RACKS, 1_000) is None


# --- the replica manager -------------------------------------------------------------------


def consumer_fetch(rm: ReplicaManager, offset: int, rack: str | None, epoch: int = -1,
                   max_wait_ms: int = 0) -> list[FetchResults]:
    out: list[FetchResults] = []
    rm.fetch_records(FetchParams(-1, max_wait_ms, 1, 1 << 20, ((TP, FetchPartitionRequest(offset, 1 << 20, epoch)),),
                                 client_rack=rack), out.append)
    return out


def with_selector(rm: ReplicaManager) -> None:
    rm.config = replace(rm.config, replica_selector=RACK_AWARE_REPLICA_SELECTOR)
    rm.live_racks = lambda: RACKS


def test_a_consumer_is_sent_to_its_rack_and_the_follower_serves_it(tmp_path: Path) -> None:
    async def test() -> None:
        cluster = make_cluster(tmp_path)
        leader, follower = cluster.brokers[0], cluster.brokers[1]
        with_selector(leader)
        produce(leader, 1, records(3))
        await replicate(cluster, 5)  # truncate, fetch, report, and learn the high watermark
        # The leader answers with the follower in the client's rack, and no records.
        [answer] = consumer_fetch(leader, 0, "b")
        [(tp, result)] = answer
        assert (result.error, result.preferred_read_replica, result.records) == (ErrorCode.none, 1, b"")
        assert result.high_watermark == 3
        # Its own rack, no rack, or an old client (no rack sent): the leader serves it.
        for rack in ("a", "", None):
            [[(_, own)]] = consumer_fetch(leader, 0, rack)
            assert own.preferred_read_replica == -1 and own.records
        # Without replica.selector.class, never redirected.
        leader.config = replace(leader.config, replica_selector=None)
        [[(_, plain)]] = consumer_fetch(leader, 0, "b")
        assert plain.preferred_read_replica == -1 and plain.records
        # The follower serves it (it would serve any Fetch v11+ consumer).
        [[(_, served)]] = consumer_fetch(follower, 0, "b", epoch=0)
        assert served.error == ErrorCode.none and served.records == leader.logs.get(*TP).read(0, 1 << 20)
        assert served.preferred_read_replica == -1
    asyncio.run(test())


def test_follower_reads_stop_at_its_high_watermark_and_wait_for_it(tmp_path: Path) -> None:
    async def test() -> None:
        cluster = make_cluster(tmp_path)
        leader, follower = cluster.brokers[0], cluster.brokers[1]
        produce(leader, 1, records(2))
        await replicate(cluster, 5)
        produce(leader, 1, records(1))
        await replicate(cluster, 1, followers=(1,))  # copied; its high watermark still 2
        assert follower.logs.get(*TP).log_end_offset == 3 and follower.partitions[TP].high_watermark == 2
        waiting = consumer_fetch(follower, 2, "b", max_wait_ms=5_000)
        assert waiting == []  # nothing below the follower's high watermark yet
        await replicate(cluster, 3)  # the leader's high watermark reaches the follower
        assert waiting and waiting[0][0][1].records and waiting[0][0][1].high_watermark == 3
    asyncio.run(test())


def test_follower_read_errors(tmp_path: Path) -> None:
    async def test() -> None:
        cluster = make_cluster(tmp_path, replicas=(0, 1))
        leader, follower = cluster.brokers[0], cluster.brokers[1]
        produce(leader, 1, records(2))
        await replicate(cluster, followers=(1,))
        # An old consumer (no rack sent) may read only from the leader.
        [[(_, old)]] = consumer_fetch(follower, 0, None)
        assert old.error == ErrorCode.not_leader_or_follower
        # Past the follower's log end: OFFSET_OUT_OF_RANGE (the client goes back to the leader).
        [[(_, past)]] = consumer_fetch(follower, 5, "b")
        assert past.error == ErrorCode.offset_out_of_range
        # Leader epochs are checked on followers too (KIP-320).
        [[(_, newer)]] = consumer_fetch(follower, 0, "b", epoch=1)
        assert newer.error == ErrorCode.unknown_leader_epoch
        # A broker that does not host the partition.
        cluster.start(2)
        [[(_, elsewhere)]] = consumer_fetch(cluster.brokers[2], 0, "c")
        assert elsewhere.error == ErrorCode.not_leader_or_follower
        # ListOffsets and produce stay with the leader: the follower is no leader.
        assert follower.leader_partition_or_none(TP) is None
    asyncio.run(test())


def test_replica_selector_class_takes_kafkas_name_only() -> None:
    from moldau.server.config import BrokerConfig, ConfigError

    assert BrokerConfig.from_sources({})["replica.selector.class"] is None  # the leader only
    config = BrokerConfig.from_sources({"replica.selector.class": RACK_AWARE_REPLICA_SELECTOR})
    assert config["replica.selector.class"] == RACK_AWARE_REPLICA_SELECTOR
    with pytest.raises(ConfigError, match=r"replica\.selector\.class: 'com\.example\.Mine' is not one of"):
        BrokerConfig.from_sources({"replica.selector.class": "com.example.Mine"})


def test_a_follower_out_of_the_isr_is_no_longer_named_but_still_serves(tmp_path: Path) -> None:
    async def test() -> None:
        cluster = make_cluster(tmp_path)
        leader, follower = cluster.brokers[0], cluster.brokers[1]
        with_selector(leader)
        produce(leader, 1, records(3))
        await replicate(cluster, 5)
        [[(_, before)]] = consumer_fetch(leader, 0, "b")
        assert before.preferred_read_replica == 1
        state = cluster.controller.states[TP]
        state.isr, state.leader_epoch = (0, 2), state.leader_epoch + 1  # broker 1 fell out
        cluster.send_leader_and_isr(TP)
        [[(_, after)]] = consumer_fetch(leader, 0, "b")
        assert after.preferred_read_replica == -1 and after.records  # the leader serves it now
        # A consumer still sent there reads what the follower has below its high watermark.
        [[(_, stale)]] = consumer_fetch(follower, 0, "b")
        assert stale.error == ErrorCode.none and stale.records
    asyncio.run(test())

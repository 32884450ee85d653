"""Replication quotas (KIP-73): the throttled-replicas topic configs, the quota's rate, and
replica managers with in-memory seams on a manual clock: a leader throttles what it sends
a throttled follower that is not in sync, a follower throttles its own fetching, each at
about the configured rate, while unthrottled partitions and in-sync followers replicate
at once."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from moldau.log.config import TOPIC_CONFIGS, LogConfig, replica_throttled
from moldau.protocol.records import RecordInput, build_batch
from moldau.quotas.replication import UNLIMITED, ReplicationQuotaManager
from moldau.replication.replica_manager import ReplicaManager
from tests.unit.replication_fakes import Cluster, ControllerState, FakeController, ManualClock, ManualScheduler
from tests.unit.test_replica_manager import produce, replicate

THROTTLED = ("t", 0)
FREE = ("t", 1)
RATE = 2_000  # bytes/s
BATCH = 500  # about the bytes of one batch below


def test_throttled_replicas_lists() -> None:
    assert replica_throttled("*", 3, 7)
    assert replica_throttled("0:1, 2:1", 2, 1)
    assert not replica_throttled("0:1,2:1", 2, 2)  # partition 2's replica on broker 2 is not listed
    assert not replica_throttled("0:1", 1, 1)
    assert not replica_throttled("", 0, 0)
    spec = TOPIC_CONFIGS["leader.replication.throttled.replicas"]
    for good in ("", "*", "0:1", "0:1,1:2", " 0:1 , 1:2 "):
        spec.parse(good)
    for bad in ("0", "0:", "a:1", "0:1;1:2", "*,0:1", "0-1", "0 : 1"):
        with pytest.raises(ValueError, match=r"\[partitionId\]:\[brokerId\]"):
            spec.parse(bad)
    assert TOPIC_CONFIGS["follower.replication.throttled.replicas"].parse("1:0") == "1:0"
    overridden = LogConfig().with_overrides({"leader.replication.throttled.replicas": "*"})
    assert overridden.leader_replication_throttled_replicas == "*"


def test_the_quota_is_a_windowed_rate() -> None:
    unlimited = ReplicationQuotaManager(lambda: UNLIMITED, 2, 1000)
    unlimited.record(10**9, 0)
    assert not unlimited.is_quota_exceeded(0)
    limit = [1000.0]
    quota = ReplicationQuotaManager(lambda: limit[0], 2, 1000)
    quota.record(900, 0)
    assert not quota.is_quota_exceeded(0)
    quota.record(300, 100)
    assert quota.is_quota_exceeded(100)  # 1200 bytes over Kafka's window: 100 ms plus one whole sample
    assert not quota.is_quota_exceeded(2_500)  # the samples expired
    quota.record(1100, 2_500)
    limit[0] = 5000  # a dynamic config change applies at the next check
    assert not quota.is_quota_exceeded(2_500)


def start(tmp_path: Path, log_config: LogConfig, isr: tuple[int, ...]) -> Cluster:
    clock = ManualClock()
    controller = FakeController()
    cluster = Cluster(tmp_path, log_config, clock, ManualScheduler(clock), controller)
    for b in (0, 1):
        cluster.start(b)
        for direction in ("leader_quota", "follower_quota"):
            setattr(cluster.brokers[b], direction, ReplicationQuotaManager(lambda: RATE, 2, 1000))
    for tp in (THROTTLED, FREE):
        controller.states[tp] = ControllerState(0, 0, isr, (0, 1))
        cluster.send_leader_and_isr(tp)
    for fetcher in cluster.brokers[1].fetchers.values():
        fetcher.fetch_max_bytes = BATCH  # one batch per partition and fetch
    return cluster


def fill(leader: ReplicaManager, batches: int = 40) -> None:
    for tp in (THROTTLED, FREE):
        for i in range(batches):
            produce(leader, 1, build_batch([RecordInput(b"x" * (BATCH - 80), b"k%d" % i)], timestamp=1), tp=tp)


def copied(cluster: Cluster, tp: tuple[str, int]) -> int:
    return cluster.brokers[1].logs.get(*tp).size_in_bytes


async def run_for(cluster: Cluster, seconds: float) -> None:
    """Replicate for `seconds` of the manual clock, in 50 ms steps."""
    for _ in range(int(seconds * 20)):
        await replicate(cluster, 1, followers=(1,))
        cluster.scheduler.advance(50)


@pytest.mark.parametrize("side", ["leader", "follower"])
def test_a_catching_up_throttled_replica_runs_at_about_the_rate(tmp_path: Path, side: str) -> None:
    async def test() -> None:
        throttled = {"leader": {"leader.replication.throttled.replicas": "0:0"},
                     "follower": {"follower.replication.throttled.replicas": "0:1"}}[side]
        cluster = start(tmp_path, LogConfig().with_overrides(throttled), isr=(0,))
        leader = cluster.brokers[0]
        fill(leader)
        total = leader.logs.get(*THROTTLED).size_in_bytes
        await run_for(cluster, 4)
        # The unthrottled partition is copied whole at once; the throttled one at about
        # RATE over the window (2 s here) plus the 4 s that passed.
        assert copied(cluster, FREE) == leader.logs.get(*FREE).size_in_bytes
        done = copied(cluster, THROTTLED)
        assert RATE * 4 * 0.5 <= done <= RATE * (4 + 2) + BATCH, done
        assert done < total
        # Replication goes on at that pace until the replica is complete.
        await run_for(cluster, 15)
        assert copied(cluster, THROTTLED) == total
    asyncio.run(test())


def test_in_sync_followers_are_not_held_back(tmp_path: Path) -> None:
    async def test() -> None:
        config = LogConfig().with_overrides({"leader.replication.throttled.replicas": "*",
                                             "follower.replication.throttled.replicas": "*"})
        cluster = start(tmp_path, config, isr=(0, 1))
        leader, follower = cluster.brokers[0], cluster.brokers[1]
        await replicate(cluster, 2, followers=(1,))  # truncated, and in sync (nothing to copy)
        for quota in (leader.leader_quota, follower.follower_quota):
            quota.record(10 * RATE, cluster.clock())  # both far over their quota
            assert quota.is_quota_exceeded(cluster.clock())
        fill(leader, 4)
        await replicate(cluster, 6, followers=(1,))  # a batch per partition and fetch
        for tp in (THROTTLED, FREE):
            assert copied(cluster, tp) == leader.logs.get(*tp).size_in_bytes
    asyncio.run(test())

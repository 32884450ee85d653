"""Replication quotas in a real cluster (ZooKeeper, three broker processes): a partition
moved with `moldau reassign --throttle` catches up at about the throttled rate, while a
partition moved at the same time without a throttle is copied at full speed; the
throttle's configs are where Kafka's tool puts them, and removed again."""
from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import ConfigResource, NewTopic, ResourceType

from tests.cluster.test_cluster import Cluster, running_cluster, wait_for
from tests.helpers import env_with_repo_on_path

RATE = 250_000  # bytes/s
DATA = 1_000_000  # bytes per partition
RECORD = 5_000


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    # Two 1 s samples: the rate is measured over the last 1-2 s (Kafka's default, 11
    # samples, lets a burst of 10 s worth of the rate through first).
    with running_cluster(tmp_path, request, {"replication.quota.window.num": "2",
                                             "replica.fetch.max.bytes": "65536"}) as c:
        yield c


def moldau(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "moldau.cli.main", *args], capture_output=True, text=True,
                          timeout=120, env=env_with_repo_on_path())


def fill(cluster: Cluster, topic: str) -> None:
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "1", "batch.size": 16384,
                         "linger.ms": 5})
    for i in range(DATA // RECORD):
        producer.produce(topic, b"x" * RECORD, key=b"%d" % i, partition=0)
        producer.poll(0)
    assert producer.flush(30) == 0


def isr(cluster: Cluster, topic: str) -> list[int]:
    return sorted(cluster.admin().list_topics(topic, timeout=5).topics[topic].partitions[0].isrs)


def configs(cluster: Cluster, resource: ConfigResource) -> dict[str, str | None]:
    [future] = cluster.admin().describe_configs([resource]).values()
    return {name: entry.value for name, entry in future.result(10).items()}


def test_a_throttled_move_runs_at_about_the_rate_and_an_unthrottled_one_is_unaffected(cluster: Cluster) -> None:
    throttled, free = (f"{name}-{uuid.uuid4().hex[:6]}" for name in ("slow", "fast"))
    admin = cluster.admin()
    for topic in (throttled, free):
        admin.create_topics([NewTopic(topic, 1, replica_assignment=[[0]])])[topic].result(20)
        fill(cluster, topic)
    b = ("--bootstrap-server", cluster.bootstrap)
    slow = moldau("reassign", *b, f"{throttled}:0=0,1", "--throttle", str(RATE))
    started = {throttled: time.monotonic()}  # the move began before the command returned
    assert slow.returncode == 0, slow.stderr
    fast = moldau("reassign", *b, f"{free}:0=0,2")
    started[free] = time.monotonic()
    assert fast.returncode == 0, fast.stderr
    assert "--remove-throttle" in slow.stdout  # no --wait: the tool says how to remove it
    # Where Kafka's tool puts the throttle: rates on the brokers, replicas on the topic.
    topic_configs = configs(cluster, ConfigResource(ResourceType.TOPIC, throttled))
    assert topic_configs["leader.replication.throttled.replicas"] == "0:0"
    assert topic_configs["follower.replication.throttled.replicas"] == "0:1"
    broker_configs = configs(cluster, ConfigResource(ResourceType.BROKER, "1"))
    assert broker_configs["follower.replication.throttled.rate"] == str(RATE)

    done: dict[str, float] = {}
    wanted = {throttled: [0, 1], free: [0, 2]}

    def both_in_sync() -> bool:
        for topic, replicas in wanted.items():
            if topic not in done and isr(cluster, topic) == replicas:
                done[topic] = time.monotonic() - started[topic]
        return len(done) == 2

    wait_for(both_in_sync, 60, "both moves to complete")
    expected = DATA / RATE  # 4 s, less the first window's burst
    # About the rate: neither much faster (the throttle holds) nor stalled.
    assert 0.4 * expected <= done[throttled] <= 4 * expected, done
    assert done[free] < done[throttled] / 2, done  # the unthrottled move is not held back

    removed = moldau("reassign", *b, "--remove-throttle", throttled)
    assert removed.returncode == 0, removed.stderr
    topic_configs = configs(cluster, ConfigResource(ResourceType.TOPIC, throttled))
    assert topic_configs["leader.replication.throttled.replicas"] == ""
    assert configs(cluster, ConfigResource(ResourceType.BROKER, "1"))["follower.replication.throttled.rate"] == str(
        9223372036854775807)

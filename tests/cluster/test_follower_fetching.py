"""Follower fetching (KIP-392) in a real cluster: ZooKeeper and three broker processes in
racks a, b and c with Kafka's RackAwareReplicaSelector. A confluent-kafka consumer with
`client.rack=b` reads every record from the follower in rack b (the brokers' BytesOut
metric shows the bytes left from there, none from the leader), and goes back to the
leader when that follower is killed."""
from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import NewTopic

from tests.cluster.test_cluster import Cluster, produce_some, running_cluster, wait_for
from tests.cluster.test_metrics_cluster import metrics_port
from tests.integration.test_metrics import scrape, total

RACKS = ("a", "b", "c")
SELECTOR = "org.apache.kafka.common.replica.RackAwareReplicaSelector"


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    with running_cluster(tmp_path, request,
                         {"metrics.port": "0", "replica.selector.class": SELECTOR, "replica.lag.time.max.ms": "1000"},
                         {i: {"broker.rack": rack} for i, rack in enumerate(RACKS)}) as c:
        yield c


def bytes_out(cluster: Cluster, broker: int, topic: str) -> float:
    """What broker `broker` sent consumers of `topic` (Kafka's BytesOutPerSec count)."""
    return total(scrape(metrics_port(cluster.brokers[broker])), "kafka_server_brokertopicmetrics_bytesout_total",
                 topic=topic)


def consume(consumer: Consumer, n: int, timeout: float = 30) -> list[str]:
    out: list[str] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        for m in consumer.consume(500, 0.2):
            if not m.error():
                out.append(m.value().decode())
    return out


def test_a_rack_local_consumer_reads_from_its_follower_and_falls_back_to_the_leader(cluster: Cluster) -> None:
    topic = f"racks-{uuid.uuid4().hex[:8]}"
    cluster.admin().create_topics([NewTopic(topic, 1, replica_assignment=[[0, 1, 2]])])[topic].result(20)
    wait_for(lambda: sorted(cluster.admin().list_topics(topic, timeout=5).topics[topic].partitions[0].isrs)
             == [0, 1, 2], 20, "the topic fully in sync")
    assert cluster.leader(topic, 0) == 0  # rack a; the consumer is in rack b
    first = [f"v{i:04d}" for i in range(300)]
    assert len(produce_some(cluster.bootstrap, topic, first, partition=0, acks="all")) == len(first)
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": f"g-{topic}",
                         "enable.auto.commit": False, "client.rack": "b", "topic.metadata.refresh.interval.ms": 1000,
                         "reconnect.backoff.max.ms": 500})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        assert consume(consumer, len(first)) == first
        served = [bytes_out(cluster, b, topic) for b in range(3)]
        # Every record came from broker 1 (rack b): the leader only named it.
        assert served[0] == 0 and served[2] == 0, served
        assert served[1] >= sum(len(v) for v in first), served

        # The follower dies: the consumer goes back to the leader (its preferred replica
        # is gone, and the leader no longer names it once it left the ISR).
        cluster.brokers[1].kill()
        second = [f"w{i:04d}" for i in range(100)]
        assert len(produce_some(cluster.bootstrap, topic, second, partition=0, acks="1")) == len(second)
        assert consume(consumer, len(second), timeout=40) == second
        assert bytes_out(cluster, 0, topic) > 0
        assert bytes_out(cluster, 2, topic) == 0
    finally:
        consumer.close()

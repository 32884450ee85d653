"""Offset commits are acknowledged as Kafka acknowledges them: only once the write to
`__consumer_offsets` is acks=all safe. With the followers of the coordinator's partition
paused, a commit waits until the ISR shrinks to the live replicas; an acknowledged
commit survives kill -9 of the coordinator."""
from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import NewTopic

from tests.cluster.test_cluster import Cluster, running_cluster, wait_for

LAG_MS = 1500
OFFSETS = "__consumer_offsets"


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    with running_cluster(tmp_path, request, {
            "replica.lag.time.max.ms": str(LAG_MS), "offsets.topic.num.partitions": "1",
            "offsets.topic.replication.factor": "3", "offsets.commit.timeout.ms": "30000"}) as c:
        yield c


def offsets_isr(cluster: Cluster, via: int) -> list[int]:
    md = cluster.admin(cluster.brokers[via]).list_topics(OFFSETS, timeout=5)
    return sorted(md.topics[OFFSETS].partitions[0].isrs)


def consumer(bootstrap: str, group: str) -> Consumer:
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                     "socket.timeout.ms": 60000})


def committed(bootstrap: str, group: str, topic: str) -> int:
    c = consumer(bootstrap, group)
    try:
        return c.committed([TopicPartition(topic, 0)], timeout=30)[0].offset
    finally:
        c.close()


def test_commits_wait_for_the_isr_and_survive_the_coordinator(cluster: Cluster) -> None:
    name = f"o-{uuid.uuid4().hex[:8]}"
    cluster.admin().create_topics([NewTopic(name, 1, 3)])[name].result(20)
    group = f"g-{uuid.uuid4().hex[:6]}"
    c = consumer(cluster.bootstrap, group)
    try:
        c.commit(offsets=[TopicPartition(name, 0, 1)], asynchronous=False)  # creates __consumer_offsets
    finally:
        c.close()
    wait_for(lambda: len(offsets_isr(cluster, 0)) == 3, 20, "the offsets partition's ISR of 3")
    coordinator = cluster.leader(OFFSETS, 0)
    followers = [b for b in range(3) if b != coordinator]

    # 1. Acknowledged with every replica in sync: kill -9 of the coordinator right after
    #    the acknowledgement loses nothing.
    c = consumer(cluster.brokers[coordinator].bootstrap, group)
    try:
        c.commit(offsets=[TopicPartition(name, 0, 7)], asynchronous=False)
    finally:
        c.close()
    cluster.brokers[coordinator].kill()
    wait_for(lambda: cluster.agreed_leader(OFFSETS, 0, followers) in followers, 30, "a new coordinator")
    assert committed(cluster.brokers[followers[0]].bootstrap, group, name) == 7
    cluster.brokers[coordinator].start()
    wait_for(lambda: len(offsets_isr(cluster, followers[0])) == 3, 30, "the old coordinator back in the ISR")

    # 2. Followers of the coordinator's partition paused: the commit is not acknowledged
    #    while they are in the ISR, and is once the ISR has shrunk to the coordinator.
    coordinator = cluster.leader(OFFSETS, 0)
    followers = [b for b in range(3) if b != coordinator]
    done = threading.Event()
    errors: list[BaseException] = []
    c = consumer(cluster.brokers[coordinator].bootstrap, group)
    c.committed([TopicPartition(name, 0)], timeout=30)  # connected to the coordinator before the pause

    def commit() -> None:
        try:
            c.commit(offsets=[TopicPartition(name, 0, 42)], asynchronous=False)
        except BaseException as exc:  # noqa: BLE001 (reported by the test)
            errors.append(exc)
        finally:
            done.set()

    for f in followers:
        cluster.brokers[f].proc.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
    try:
        thread = threading.Thread(target=commit)
        thread.start()
        time.sleep(LAG_MS / 1000 / 3)  # well within replica.lag.time.max.ms: both followers still in sync
        assert offsets_isr(cluster, coordinator) == [0, 1, 2]
        assert not done.is_set(), "the commit was acknowledged while paused followers were in the ISR"
        assert done.wait(LAG_MS / 1000 + 20), "the commit was not acknowledged after the ISR shrank"
        assert not errors, errors
        assert offsets_isr(cluster, coordinator) == [coordinator]
    finally:
        for f in followers:
            cluster.brokers[f].proc.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
        c.close()
    wait_for(lambda: len(offsets_isr(cluster, coordinator)) == 3, 30, "the followers back in the ISR")
    cluster.brokers[coordinator].kill()
    wait_for(lambda: cluster.agreed_leader(OFFSETS, 0, followers) in followers, 30, "a new coordinator")
    assert committed(cluster.brokers[followers[0]].bootstrap, group, name) == 42

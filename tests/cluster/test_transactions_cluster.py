"""Exactly-once across a failover: a consume-transform-produce loop (confluent-kafka,
read_committed, send_offsets_to_transaction) on three brokers, whose transaction
coordinator is killed with -9 while it writes a commit's markers (and restarted), and
later the leader of an output partition. Every input must be in the
output exactly once, and the group's committed offsets at the end of the input."""
from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from tests.cluster.test_cluster import Cluster, produce_some, running_cluster, wait_for

TXN_STATE = "__transaction_state"
INPUTS = 200


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    with running_cluster(tmp_path, request, {
            "transaction.state.log.num.partitions": "1", "transaction.state.log.replication.factor": "3",
            "offsets.topic.num.partitions": "1", "offsets.topic.replication.factor": "3"}) as c:
        yield c


# A librdkafka call blocked in C cannot be interrupted by pytest-timeout's signal: the
# thread method ends the run instead of letting it hang (seen once, before the fix of the
# Metadata a restarted broker gives before it has heard from the controller).
@pytest.mark.timeout(300, method="thread")
def test_exactly_once_when_the_transaction_coordinator_is_killed(cluster: Cluster) -> None:
    source, sink = f"src-{uuid.uuid4().hex[:6]}", f"sink-{uuid.uuid4().hex[:6]}"
    for name in (source, sink):
        cluster.admin().create_topics([NewTopic(name, 2, 3, config={"min.insync.replicas": "2"})])[name].result(20)
    inputs = [f"in-{i:03d}" for i in range(INPUTS)]
    for p in (0, 1):
        acked = produce_some(cluster.bootstrap, source, inputs[p::2], partition=p, acks="all")
        assert len(acked) == INPUTS // 2
    group = f"eos-{uuid.uuid4().hex[:6]}"
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    consumer.subscribe([source])
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "transactional.id": f"eos-{group}",
                         "linger.ms": 5, "transaction.timeout.ms": 60000})
    producer.init_transactions(30)
    killed: int | None = None
    leader_killed: int | None = None
    aborts = 0

    def rewind() -> None:
        for tp in consumer.committed(consumer.assignment(), 30):
            consumer.seek(TopicPartition(tp.topic, tp.partition, max(tp.offset, 0)))

    try:
        deadline = time.monotonic() + 150
        done = 0
        while done < INPUTS and time.monotonic() < deadline:
            batch = [m for m in consumer.consume(10, 1.0) if not m.error()]
            if not batch:
                continue
            try:
                producer.begin_transaction()
                for m in batch:
                    producer.produce(sink, m.value().replace(b"in-", b"out-"), partition=m.partition())
                positions = consumer.position(consumer.assignment())
                producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
                coordinator = cluster.leader(TXN_STATE, 0) if killed is None else None
                producer.commit_transaction(60)
                done = sum(max(tp.offset, 0) for tp in positions)
                if coordinator is not None and done >= INPUTS // 3:
                    # Right after EndTxn is answered: the markers are still being written,
                    # so the new coordinator finds the transaction in PrepareCommit and
                    # must write them again (across the leaders that moved with the kill).
                    killed = coordinator
                    cluster.brokers[killed].kill()
                    cluster.brokers[killed].start()  # back, to be in the ISRs for the second kill
                elif killed is not None and leader_killed is None and done >= 2 * INPUTS // 3:
                    # Then a leader of the output, once every replica is back in sync.
                    wait_for(lambda: all(len(p.isrs) == 3 for t in (sink, TXN_STATE) for p in
                                         cluster.admin().list_topics(t, timeout=5).topics[t].partitions.values()),
                             60, "every replica back in the ISRs")
                    leader_killed = cluster.leader(sink, 0)
                    cluster.brokers[leader_killed].kill()
            except KafkaException as exc:
                error = exc.args[0]
                if error.fatal():
                    raise
                if error.txn_requires_abort():
                    aborts += 1
                    producer.abort_transaction(60)
                    rewind()
                elif error.retriable():
                    producer.commit_transaction(60)  # librdkafka: retry the commit itself
                    done = sum(max(tp.offset, 0) for tp in consumer.position(consumer.assignment()))
                else:
                    raise
        assert done == INPUTS, f"processed {done} of {INPUTS} inputs (aborts: {aborts})"
    finally:
        consumer.close()
    assert killed is not None and leader_killed is not None

    survivors = [b for b in range(3) if b != leader_killed]
    bootstrap = ",".join(cluster.brokers[b].bootstrap for b in survivors)
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex,
                       "isolation.level": "read_committed", "enable.auto.commit": False})
    reader.assign([TopicPartition(sink, p, 0) for p in (0, 1)])
    outputs: list[bytes] = []
    try:
        idle = time.monotonic() + 5
        while time.monotonic() < idle:
            m = reader.poll(0.5)
            if m is not None and not m.error():
                outputs.append(m.value())
                idle = time.monotonic() + 5
    finally:
        reader.close()
    counts = Counter(outputs)
    assert sorted(counts) == sorted(v.replace("in-", "out-").encode() for v in inputs), "an input is missing"
    assert [v for v, n in counts.items() if n > 1] == [], "an input was written twice"

    check = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        committed = check.committed([TopicPartition(source, 0), TopicPartition(source, 1)], 30)
        assert [tp.offset for tp in committed] == [INPUTS // 2, INPUTS // 2]
    finally:
        check.close()

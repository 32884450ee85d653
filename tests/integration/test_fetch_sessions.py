"""Fetch sessions (KIP-227) with raw requests and with kafka-python, whose consumer uses
them: a session is created, incremental fetches carry only what changed, errors for
unknown sessions and wrong epochs, and a consumer reads everything through a session."""
from __future__ import annotations

import datetime
import uuid
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer

from tests.helpers import BrokerProcess
from tests.raw import connect, decode, encode, recv_frame

FETCH = 1


def fetch(broker: BrokerProcess, session_id: int, epoch: int, partitions: dict[tuple[str, int], int],
          forgotten: dict[str, list[int]] | None = None) -> Any:
    t = __import__("kio.schema.fetch.v12.request", fromlist=["x"])
    by_topic: dict[str, list[Any]] = {}
    for (topic, p), offset in partitions.items():
        by_topic.setdefault(topic, []).append(t.FetchPartition(
            partition=p, current_leader_epoch=-1, fetch_offset=offset, last_fetched_epoch=-1, log_start_offset=-1,
            partition_max_bytes=1 << 20))
    request = t.FetchRequest(
        cluster_id=None, replica_id=-1, max_wait=datetime.timedelta(milliseconds=10), min_bytes=1,
        max_bytes=50 << 20, isolation_level=0, session_id=session_id, session_epoch=epoch,
        topics=tuple(t.FetchTopic(topic=name, partitions=tuple(ps)) for name, ps in by_topic.items()),
        forgotten_topics_data=tuple(t.ForgottenTopic(topic=name, partitions=tuple(ps))
                                    for name, ps in (forgotten or {}).items()),
        rack_id="")
    with connect(broker) as s:
        s.sendall(encode(FETCH, 12, request))
        return decode(FETCH, 12, recv_frame(s))


def answered(response: Any) -> dict[tuple[str, int], int]:
    """(topic, partition) -> bytes of records, for each partition in the answer."""
    return {(t.topic, p.partition_index): len(p.records or b"") for t in response.responses for p in t.partitions}


def new_topic(broker: BrokerProcess, partitions: int) -> str:
    name = f"fs-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})  # must outlive its futures
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(10)
    return name


def produce(broker: BrokerProcess, topic: str, partition: int, n: int) -> None:
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(n):
        p.produce(topic, b"m%d" % i, partition=partition)
    assert p.flush(10) == 0


def test_incremental_fetches_answer_only_what_changed(broker: BrokerProcess) -> None:
    topic = new_topic(broker, 3)
    produce(broker, topic, 0, 5)
    full = fetch(broker, 0, 0, {(topic, 0): 0, (topic, 1): 0, (topic, 2): 0})
    assert full.error_code == 0 and full.session_id != 0
    assert answered(full) == {(topic, 0): answered(full)[(topic, 0)], (topic, 1): 0, (topic, 2): 0}
    assert answered(full)[(topic, 0)] > 0
    sid = full.session_id
    # Epoch 1: the client moved partition 0's offset to 5; nothing new anywhere.
    quiet = fetch(broker, sid, 1, {(topic, 0): 5})
    assert quiet.error_code == 0 and quiet.session_id == sid
    assert answered(quiet) == {}
    produce(broker, topic, 2, 3)
    news = fetch(broker, sid, 2, {})
    assert set(answered(news)) == {(topic, 2)} and answered(news)[(topic, 2)] > 0
    # Forget partition 2: new data there is no longer answered.
    assert answered(fetch(broker, sid, 3, {(topic, 2): 3}, forgotten={topic: [2]})) == {}
    produce(broker, topic, 2, 1)
    assert answered(fetch(broker, sid, 4, {})) == {}
    produce(broker, topic, 1, 1)
    assert set(answered(fetch(broker, sid, 5, {}))) == {(topic, 1)}
    # Errors: a stale epoch, an unknown session; closing the session.
    assert fetch(broker, sid, 5, {}).error_code == 71  # INVALID_FETCH_SESSION_EPOCH
    assert fetch(broker, sid + 10_000, 1, {}).error_code == 70  # FETCH_SESSION_ID_NOT_FOUND
    closed = fetch(broker, sid, -1, {(topic, 0): 0})
    assert closed.error_code == 0 and closed.session_id == 0 and answered(closed)[(topic, 0)] > 0
    assert fetch(broker, sid, 6, {}).error_code == 70


def test_sessionless_fetches_are_unchanged(broker: BrokerProcess) -> None:
    topic = new_topic(broker, 2)
    produce(broker, topic, 1, 2)
    response = fetch(broker, 0, -1, {(topic, 0): 0, (topic, 1): 0})
    assert response.session_id == 0
    assert set(answered(response)) == {(topic, 0), (topic, 1)}


def test_kafka_python_consumer_reads_everything_through_a_session(broker: BrokerProcess) -> None:
    topic = new_topic(broker, 4)
    for p in range(4):
        produce(broker, topic, p, 250)
    consumer = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                             group_id=None, consumer_timeout_ms=5000, fetch_max_wait_ms=50)
    try:
        got = [(m.partition, m.offset) for m in consumer]
    finally:
        consumer.close()
    assert sorted(got) == [(p, o) for p in range(4) for o in range(250)]

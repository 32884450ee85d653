"""Regressions found by librdkafka's own integration suite, with raw requests (the
fields at stake are ones the Python clients do not expose):

* a produce to a compacted topic with keyless records is refused INVALID_RECORD with
  `record_errors` naming each such record by its index in the batch (Kafka's answer);
* Fetch honours the request's `max_bytes` across partitions: only the first partition
  with data may exceed it, by one whole batch (KIP-74).
"""
from __future__ import annotations

import datetime
import uuid
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import RecordInput, build_batch
from tests.helpers import BrokerProcess
from tests.raw import connect, decode, encode, produce_request, recv_frame

PRODUCE, FETCH = 0, 1


def new_topic(broker: BrokerProcess, partitions: int, configs: dict[str, str] | None = None) -> str:
    name = f"dp-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1, config=configs or {})])[name].result(10)
    return name


def roundtrip(broker: BrokerProcess, api_key: int, version: int, request: object) -> Any:
    with connect(broker) as s:
        s.sendall(encode(api_key, version, request))
        return decode(api_key, version, recv_frame(s))


def test_keyless_records_in_a_compacted_topic_are_named_in_record_errors(broker: BrokerProcess) -> None:
    topic = new_topic(broker, 1, {"cleanup.policy": "compact"})
    batch = build_batch([RecordInput(b"v0", b"k0"), RecordInput(b"v1", None), RecordInput(b"v2", b"k2"),
                         RecordInput(b"v3", None)], timestamp=1)
    response = None
    for _ in range(50):  # the topic's leader may take a moment
        response = roundtrip(broker, PRODUCE, 8, produce_request(topic, 0, batch, version=8))
        part = response.responses[0].partition_responses[0]
        if part.error_code != ErrorCode.not_leader_or_follower:
            break
    assert response is not None
    part = response.responses[0].partition_responses[0]
    assert part.error_code == ErrorCode.invalid_record
    assert [e.batch_index for e in part.record_errors] == [1, 3]
    assert all("Compacted topic cannot accept message without key" in (e.batch_index_error_message or "")
               for e in part.record_errors)
    assert "2 record errors" in (part.error_message or "")
    # Nothing of the refused batch was written; a batch with keys only is accepted.
    keyed = build_batch([RecordInput(b"v", b"k")], timestamp=1)
    ok = roundtrip(broker, PRODUCE, 8, produce_request(topic, 0, keyed, version=8))
    assert ok.responses[0].partition_responses[0].error_code == ErrorCode.none
    assert ok.responses[0].partition_responses[0].base_offset == 0


def fetch_request(topic: str, partitions: int, max_bytes: int) -> Any:
    t = __import__("kio.schema.fetch.v12.request", fromlist=["x"])
    return t.FetchRequest(
        cluster_id=None, replica_id=-1, max_wait=datetime.timedelta(milliseconds=10), min_bytes=1,
        max_bytes=max_bytes, isolation_level=0, session_id=0, session_epoch=-1,
        topics=(t.FetchTopic(topic=topic, partitions=tuple(
            t.FetchPartition(partition=p, current_leader_epoch=-1, fetch_offset=0, last_fetched_epoch=-1,
                             log_start_offset=-1, partition_max_bytes=1 << 20) for p in range(partitions))),),
        forgotten_topics_data=(), rack_id="")


def test_fetch_max_bytes_bounds_the_answer_across_partitions(broker: BrokerProcess) -> None:
    partitions = 6
    topic = new_topic(broker, partitions)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "none"})
    for p in range(partitions):  # one batch of about 120 KB per partition
        producer.produce(topic, b"x" * 120_000, partition=p)
    assert producer.flush(10) == 0

    def sizes(max_bytes: int) -> list[int]:
        response = roundtrip(broker, FETCH, 12, fetch_request(topic, partitions, max_bytes))
        parts = sorted(response.responses[0].partitions, key=lambda part: part.partition_index)
        assert all(part.error_code == ErrorCode.none for part in parts)
        return [len(part.records or b"") for part in parts]

    everything = sizes(50 << 20)
    batch = everything[0]
    assert all(size >= 120_000 for size in everything)
    # A limit below one batch: the first partition's whole batch, nothing more.
    assert sizes(1000) == [batch] + [0] * (partitions - 1)
    # A limit of about two and a half batches: two whole batches, and no more than the limit.
    answer = sizes(int(2.5 * batch))
    assert sum(answer) <= int(2.5 * batch) and answer[:2] == everything[:2] and answer[2:] == [0] * 4


def test_timestamps_outside_the_topic_window_are_refused(broker: BrokerProcess) -> None:
    """KIP-937's message.timestamp.before/after.max.ms: a record stamped an hour ago or an
    hour ahead is refused INVALID_TIMESTAMP; one stamped now is written."""
    topic = new_topic(broker, 1, {"message.timestamp.before.max.ms": "60000",
                                  "message.timestamp.after.max.ms": "60000"})
    outcome: dict[str, Any] = {}
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0, "retries": 0})
    now_ms = int(datetime.datetime.now(datetime.UTC).timestamp() * 1000)
    for name, ts in (("past", now_ms - 3_600_000), ("now", now_ms), ("future", now_ms + 3_600_000)):
        p.produce(topic, name.encode(), timestamp=ts,
                  on_delivery=lambda err, msg, name=name: outcome.__setitem__(name, err))
        p.flush(10)
    assert outcome["now"] is None
    assert outcome["past"] is not None and outcome["past"].code() == ErrorCode.invalid_timestamp
    assert outcome["future"] is not None and outcome["future"].code() == ErrorCode.invalid_timestamp

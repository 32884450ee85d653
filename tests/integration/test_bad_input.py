"""Bad input on a raw socket: each gets a Kafka error code or a closed connection, and
the broker goes on serving a real client without losing acknowledged data."""
from __future__ import annotations

import datetime
import struct
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from moldau.protocol.records import RecordInput, build_batch
from tests.helpers import BrokerProcess
from tests.raw import connect, decode, encode, is_closed, produce_request, recv_frame


@pytest.fixture(scope="module")
def topic(broker: BrokerProcess) -> str:
    name = f"bad-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(10)
    return name


def still_serves(broker: BrokerProcess, topic: str) -> None:
    """A real client produces and reads back everything acknowledged so far."""
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    marker = uuid.uuid4().hex.encode()
    p.produce(topic, marker, partition=0)
    assert p.flush(10) == 0
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "x",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    values = []
    for _ in range(100):
        m = c.poll(0.2)
        if m is not None and not m.error():
            values.append(m.value())
            if m.value() == marker:
                break
    c.close()
    assert marker in values
    assert all(v.startswith(b"good") or len(v) == 32 for v in values)


def test_truncated_frame_then_close(broker: BrokerProcess, topic: str) -> None:
    with connect(broker) as s:
        s.sendall(struct.pack(">i", 100) + b"\x00\x03\x00\x01")
    still_serves(broker, topic)


def test_frame_larger_than_socket_request_max_bytes(broker: BrokerProcess, topic: str) -> None:
    with connect(broker) as s:
        s.sendall(struct.pack(">i", 200 * 1024 * 1024))
        assert is_closed(s)
    still_serves(broker, topic)


def test_negative_frame_size(broker: BrokerProcess, topic: str) -> None:
    with connect(broker) as s:
        s.sendall(struct.pack(">i", -1))
        assert is_closed(s)
    still_serves(broker, topic)


@pytest.mark.parametrize("body", [
    struct.pack(">i", 0x7FFFFFFF),  # Metadata v1: a huge topic array
    struct.pack(">ih", 1, -5),  # a topic name with negative length
    struct.pack(">ih", 1, 30000) + b"x",  # a topic name longer than the frame
])
def test_huge_or_negative_lengths(broker: BrokerProcess, topic: str, body: bytes) -> None:
    payload = struct.pack(">hhih", 3, 1, 9, -1) + body
    with connect(broker) as s:
        s.sendall(struct.pack(">i", len(payload)) + payload)
        assert is_closed(s)
    still_serves(broker, topic)


def test_unknown_api_key_closes(broker: BrokerProcess, topic: str) -> None:
    payload = struct.pack(">hhih", 9999, 0, 1, -1)
    with connect(broker) as s:
        s.sendall(struct.pack(">i", len(payload)) + payload)
        assert is_closed(s)
    still_serves(broker, topic)


def test_unsupported_version_closes(broker: BrokerProcess, topic: str) -> None:
    payload = struct.pack(">hhih", 0, 1, 1, -1)  # Produce v1: below Kafka 4's floor
    with connect(broker) as s:
        s.sendall(struct.pack(">i", len(payload)) + payload)
        assert is_closed(s)
    still_serves(broker, topic)


def test_unknown_api_versions_version_gets_v0_error(broker: BrokerProcess) -> None:
    payload = struct.pack(">hhih", 18, 77, 42, -1) + b"\x00garbage"
    with connect(broker) as s:
        s.sendall(struct.pack(">i", len(payload)) + payload)
        frame = recv_frame(s)
    assert frame is not None
    assert struct.unpack_from(">i", frame)[0] == 42
    response = decode(18, 0, frame)
    assert response.error_code == 35  # UNSUPPORTED_VERSION
    assert any(k.api_key == 0 for k in response.api_keys)


def test_corrupt_crc_is_refused(broker: BrokerProcess, topic: str) -> None:
    batch = bytearray(build_batch([RecordInput(b"corrupt-me")]))
    batch[-1] ^= 0x55
    with connect(broker) as s:
        s.sendall(encode(0, 8, produce_request(topic, 0, bytes(batch))))
        response = decode(0, 8, recv_frame(s))
    part = response.responses[0].partition_responses[0]
    assert part.error_code == 2  # CORRUPT_MESSAGE
    still_serves(broker, topic)


def test_produce_to_missing_partition(broker: BrokerProcess, topic: str) -> None:
    batch = build_batch([RecordInput(b"good")])
    with connect(broker) as s:
        s.sendall(encode(0, 8, produce_request(topic, 7, batch)))
        response = decode(0, 8, recv_frame(s))
        assert response.responses[0].partition_responses[0].error_code == 3
        s.sendall(encode(0, 8, produce_request("no-such-topic-" + uuid.uuid4().hex, 0, batch)))
        response = decode(0, 8, recv_frame(s))
        assert response.responses[0].partition_responses[0].error_code == 3
    still_serves(broker, topic)


def test_record_larger_than_max_message_bytes(broker: BrokerProcess, topic: str) -> None:
    batch = build_batch([RecordInput(b"x" * 1_100_000)])
    with connect(broker) as s:
        s.sendall(encode(0, 8, produce_request(topic, 0, batch)))
        response = decode(0, 8, recv_frame(s))
    assert response.responses[0].partition_responses[0].error_code == 10  # MESSAGE_TOO_LARGE
    still_serves(broker, topic)


@pytest.mark.parametrize("name", ["bad/name", "..", "", "x" * 250, "spa ce"])
def test_invalid_topic_name(broker: BrokerProcess, topic: str, name: str) -> None:
    t = __import__("kio.schema.create_topics.v5.request", fromlist=["x"])
    request = t.CreateTopicsRequest(topics=(t.CreatableTopic(
        name=name, num_partitions=1, replication_factor=1, assignments=(), configs=()),),
        timeout=datetime.timedelta(seconds=5), validate_only=False)
    with connect(broker) as s:
        s.sendall(encode(19, 5, request))
        response = decode(19, 5, recv_frame(s))
    assert response.topics[0].error_code == 17  # INVALID_TOPIC_EXCEPTION
    still_serves(broker, topic)

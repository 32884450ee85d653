"""Bad input to the group coordinator on a raw socket: Kafka error codes, no crash, and no
harm to another group's state."""
from __future__ import annotations

import datetime
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.helpers import BrokerProcess
from tests.integration.test_bad_input import connect, decode, encode, recv_frame


def kio(module: str) -> object:
    return __import__(f"kio.schema.{module}", fromlist=["x"])


@pytest.fixture(scope="module")
def setup(broker: BrokerProcess) -> tuple[str, str]:
    """A topic, and a healthy group with a committed offset that bad input must not touch."""
    topic = f"gb-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(10)
    healthy = f"healthy-{uuid.uuid4().hex[:6]}"
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": healthy})
    c.commit(offsets=[TopicPartition(topic, 0, 42)], asynchronous=False)
    c.close()
    return topic, healthy


def committed(broker: BrokerProcess, group: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:
        return c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    finally:
        c.close()


def call(broker: BrokerProcess, api_key: int, version: int, request: object) -> object:
    with connect(broker) as s:
        s.sendall(encode(api_key, version, request))
        frame = recv_frame(s)
    assert frame is not None, "the broker closed the connection instead of answering"
    return decode(api_key, version, frame)


def join(broker: BrokerProcess, group: str, member_id: str = "", protocol_type: str = "consumer",
         metadata: bytes = b"\x00\x01", session_ms: int = 10000) -> object:
    m = kio("join_group.v5.request")
    return call(broker, 11, 5, m.JoinGroupRequest(  # type: ignore[attr-defined]
        group_id=group, session_timeout=datetime.timedelta(milliseconds=session_ms),
        rebalance_timeout=datetime.timedelta(milliseconds=10000), member_id=member_id, group_instance_id=None,
        protocol_type=protocol_type,
        protocols=(m.JoinGroupRequestProtocol(name="range", metadata=metadata),)))  # type: ignore[attr-defined]


def commit(broker: BrokerProcess, group: str, topic: str, partition: int, generation: int = -1,
           member: str = "") -> int:
    m = kio("offset_commit.v8.request")
    r = call(broker, 8, 8, m.OffsetCommitRequest(  # type: ignore[attr-defined]
        group_id=group, generation_id_or_member_epoch=generation, member_id=member, group_instance_id=None,
        topics=(m.OffsetCommitRequestTopic(name=topic, partitions=(  # type: ignore[attr-defined]
            m.OffsetCommitRequestPartition(partition_index=partition, committed_offset=5,  # type: ignore[attr-defined]
                                           committed_leader_epoch=-1, committed_metadata=None),)),)))
    return r.topics[0].partitions[0].error_code  # type: ignore[attr-defined]


def test_commit_for_unknown_topic_or_partition(broker: BrokerProcess, setup: tuple[str, str]) -> None:
    topic, healthy = setup
    assert commit(broker, "g-unknown", "no-such-topic", 0) == 3
    assert commit(broker, "g-unknown", topic, 99) == 3
    assert committed(broker, healthy, topic) == 42


def test_stale_generation_and_unknown_member(broker: BrokerProcess, setup: tuple[str, str]) -> None:
    topic, healthy = setup
    group = f"g-{uuid.uuid4().hex[:6]}"
    first = join(broker, group)
    assert first.error_code == 79  # MEMBER_ID_REQUIRED (KIP-394)
    joined = join(broker, group, member_id=first.member_id)
    assert joined.error_code == 0
    assert commit(broker, group, topic, 0, generation=joined.generation_id + 7, member=joined.member_id) == 22
    assert commit(broker, group, topic, 0, generation=joined.generation_id, member="who-is-this") == 25
    assert committed(broker, healthy, topic) == 42


def test_unknown_protocol_type_is_inconsistent(broker: BrokerProcess, setup: tuple[str, str]) -> None:
    topic, healthy = setup
    group = f"g-{uuid.uuid4().hex[:6]}"
    first = join(broker, group)
    joined = join(broker, group, member_id=first.member_id)
    assert joined.error_code == 0
    other = join(broker, group, protocol_type="made-up")
    assert other.error_code == 23  # INCONSISTENT_GROUP_PROTOCOL
    assert committed(broker, healthy, topic) == 42


def test_oversized_member_metadata_is_refused(broker: BrokerProcess, setup: tuple[str, str]) -> None:
    topic, healthy = setup
    group = f"g-{uuid.uuid4().hex[:6]}"
    first = join(broker, group)
    huge = join(broker, group, member_id=first.member_id, metadata=b"x" * (1024 * 1024 + 1))
    assert huge.error_code == 42  # INVALID_REQUEST
    assert committed(broker, healthy, topic) == 42


def test_invalid_session_timeout(broker: BrokerProcess, setup: tuple[str, str]) -> None:
    _, _ = setup
    r = join(broker, f"g-{uuid.uuid4().hex[:6]}", session_ms=10)
    assert r.error_code == 26  # INVALID_SESSION_TIMEOUT

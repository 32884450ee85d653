"""Idempotent producers: InitProducerId, duplicates written once, sequence and epoch
checks, producer state that survives kill -9 — with real clients and raw requests."""
from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaProducer

from moldau.protocol.records import RecordInput, build_batch
from tests.helpers import BrokerProcess
from tests.raw import connect, decode, encode, produce_request, recv_frame

INIT_PRODUCER_ID = 22


def new_topic(broker: BrokerProcess, partitions: int = 1) -> str:
    name = f"idem-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(10)
    return name


def init_producer_id(broker: BrokerProcess, transactional_id: str | None = None, version: int = 4) -> Any:
    t = __import__(f"kio.schema.init_producer_id.v{version}.request", fromlist=["x"])
    import datetime

    kwargs: dict[str, Any] = {"transactional_id": transactional_id,
                              "transaction_timeout": datetime.timedelta(milliseconds=60000)}
    if version >= 3:
        kwargs.update(producer_id=-1, producer_epoch=-1)
    with connect(broker) as s:
        s.sendall(encode(INIT_PRODUCER_ID, version, t.InitProducerIdRequest(**kwargs)))
        frame = recv_frame(s)
    assert frame is not None
    return decode(INIT_PRODUCER_ID, version, frame)


class RawProducer:
    """An idempotent producer by hand: it chooses every sequence number and epoch."""

    def __init__(self, broker: BrokerProcess, topic: str, producer_id: int, epoch: int = 0) -> None:
        self.broker, self.topic, self.producer_id, self.epoch = broker, topic, producer_id, epoch

    def send(self, values: list[bytes], sequence: int, epoch: int | None = None) -> tuple[int, int]:
        """(error code, base offset) of a produce of one batch. UNKNOWN_TOPIC_OR_PARTITION
        and NOT_LEADER_OR_FOLLOWER (a broker just restarted, not yet told about the topic or
        that it leads) write nothing and are retriable: tried again, as a client would."""
        batch = build_batch([RecordInput(v) for v in values], producer_id=self.producer_id,
                            producer_epoch=self.epoch if epoch is None else epoch, base_sequence=sequence,
                            timestamp=int(time.time() * 1000))
        deadline = time.monotonic() + 15
        while True:
            with connect(self.broker) as s:
                s.sendall(encode(0, 8, produce_request(self.topic, 0, batch, acks=-1)))
                frame = recv_frame(s)
            assert frame is not None
            part = decode(0, 8, frame).responses[0].partition_responses[0]  # type: ignore[attr-defined]
            if part.error_code not in (3, 6) or time.monotonic() > deadline:
                return part.error_code, part.base_offset
            time.sleep(0.1)


def read_all(broker: BrokerProcess, topic: str, partition: int = 0) -> list[tuple[int, bytes]]:
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "reader", "enable.auto.commit": False,
                  "enable.partition.eof": True})
    c.assign([TopicPartition(topic, partition, 0)])
    out: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == -191:  # _PARTITION_EOF
                    return out
                raise AssertionError(m.error())
            out.append((m.offset(), m.value()))
    finally:
        c.close()
    raise AssertionError(f"no end of partition within 30 s; read {len(out)} records")


def test_init_producer_id_hands_out_distinct_ids(broker: BrokerProcess) -> None:
    seen = set()
    for version in (0, 1, 2, 3, 4, 5):
        response = init_producer_id(broker, version=version)
        assert response.error_code == 0
        assert response.producer_epoch == 0
        assert response.producer_id >= 0
        seen.add(response.producer_id)
    assert len(seen) == 6


def test_a_transactional_id_goes_to_its_coordinator_first(broker: BrokerProcess) -> None:
    # Without a FindCoordinator first, __transaction_state does not exist yet: no broker
    # coordinates the id (NOT_COORDINATOR, as Kafka answers; the client looks it up).
    response = init_producer_id(broker, transactional_id=f"tx-{uuid.uuid4().hex[:8]}")
    assert response.error_code == 16


def test_a_retried_batch_is_written_once_and_answered_with_its_first_offsets(broker: BrokerProcess) -> None:
    topic = new_topic(broker)
    p = RawProducer(broker, topic, init_producer_id(broker).producer_id)
    assert p.send([b"a0", b"a1"], 0) == (0, 0)
    assert p.send([b"b0"], 2) == (0, 2)
    assert p.send([b"a0", b"a1"], 0) == (0, 0)  # a retry of the first batch: not written again
    assert p.send([b"b0"], 2) == (0, 2)
    assert p.send([b"c0"], 3) == (0, 3)
    assert read_all(broker, topic) == [(0, b"a0"), (1, b"a1"), (2, b"b0"), (3, b"c0")]


def test_sequence_gaps_and_old_epochs_are_refused(broker: BrokerProcess) -> None:
    topic = new_topic(broker)
    p = RawProducer(broker, topic, init_producer_id(broker).producer_id, epoch=1)
    assert p.send([b"x"], 0) == (0, 0)
    assert p.send([b"gap"], 5)[0] == 45  # OUT_OF_ORDER_SEQUENCE_NUMBER
    assert p.send([b"old"], 1, epoch=0)[0] == 47  # INVALID_PRODUCER_EPOCH
    assert p.send([b"new epoch not at 0"], 7, epoch=2)[0] == 45
    assert p.send([b"new epoch"], 0, epoch=2) == (0, 1)
    assert [v for _, v in read_all(broker, topic)] == [b"x", b"new epoch"]


def test_producer_state_survives_kill_9(make_broker: Callable[..., BrokerProcess]) -> None:
    broker = make_broker()
    topic = new_topic(broker)
    p = RawProducer(broker, topic, init_producer_id(broker).producer_id)
    for i in range(5):
        assert p.send([b"v%d" % i], i) == (0, i)
    broker.kill()
    broker.start()
    assert p.send([b"v4"], 4) == (0, 4)  # still known as a duplicate
    assert p.send([b"v9"], 9)[0] == 45  # still a gap
    assert p.send([b"v5"], 5) == (0, 5)
    broker.stop()  # clean shutdown: from the snapshot this time
    broker.start()
    assert p.send([b"v5"], 5) == (0, 5)
    assert p.send([b"v6"], 6) == (0, 6)
    assert [v for _, v in read_all(broker, topic)] == [b"v%d" % i for i in range(7)]
    again = init_producer_id(broker).producer_id
    assert again != p.producer_id  # ids are never handed out twice, even across restarts


def test_confluent_idempotent_producer(broker: BrokerProcess) -> None:
    topic = new_topic(broker, partitions=3)
    errors: list[Any] = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True,
                         "linger.ms": 2, "error_cb": errors.append})
    acked: list[tuple[int, int]] = []

    def delivered(err: Any, msg: Any) -> None:
        assert err is None, err
        acked.append((msg.partition(), msg.offset()))

    for i in range(3000):
        producer.produce(topic, b"m%05d" % i, key=b"k%d" % (i % 7), on_delivery=delivered)
        if i % 500 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0
    assert not errors
    assert len(acked) == 3000 and len(set(acked)) == 3000
    values = [v for p in range(3) for _, v in read_all(broker, topic, p)]
    assert sorted(values) == [b"m%05d" % i for i in range(3000)]


def test_kafka_python_idempotent_producer(broker: BrokerProcess) -> None:
    topic = new_topic(broker)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True, acks="all")
    try:
        futures = [producer.send(topic, b"kp%d" % i, partition=0) for i in range(200)]
        offsets = [f.get(timeout=20).offset for f in futures]
    finally:
        producer.close(5)
    assert offsets == list(range(200))
    assert [v for _, v in read_all(broker, topic)] == [b"kp%d" % i for i in range(200)]


def test_aiokafka_idempotent_producer(broker: BrokerProcess) -> None:
    topic = new_topic(broker)

    async def run() -> list[bytes]:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True)
        await producer.start()
        try:
            for i in range(100):
                await producer.send(topic, b"ak%d" % i, partition=0)
            await producer.flush()
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        got: list[bytes] = []
        try:
            while len(got) < 100:
                batch = await asyncio.wait_for(consumer.getmany(timeout_ms=500), 20)
                for messages in batch.values():
                    got += [m.value for m in messages]
        finally:
            await consumer.stop()
        return got

    assert asyncio.run(run()) == [b"ak%d" % i for i in range(100)]


def test_kcat_idempotent_producer(broker: BrokerProcess) -> None:
    import subprocess

    topic = new_topic(broker)
    lines = "\n".join(f"kc{i}" for i in range(50)) + "\n"
    done = subprocess.run(["kcat", "-P", "-b", broker.bootstrap, "-t", topic, "-p", "0",
                           "-X", "enable.idempotence=true"],  # implies acks=all
                          input=lines.encode(), capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert [v for _, v in read_all(broker, topic)] == [b"kc%d" % i for i in range(50)]


def test_describe_producers_with_kafka_python(broker: BrokerProcess) -> None:
    from kafka import TopicPartition as KpPartition
    from kafka.admin import KafkaAdminClient

    topic = new_topic(broker, partitions=2)
    a = RawProducer(broker, topic, init_producer_id(broker).producer_id, epoch=3)
    b = RawProducer(broker, topic, init_producer_id(broker).producer_id)
    assert a.send([b"a0", b"a1"], 0)[0] == 0
    assert a.send([b"a2"], 2)[0] == 0
    assert b.send([b"b0"], 0)[0] == 0
    kp = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        states = kp.describe_producers([KpPartition(topic, 0), KpPartition(topic, 1)])
    finally:
        kp.close()
    text = repr(states)
    active = {p.producer_id: p for p in states[KpPartition(topic, 0)].active_producers}
    assert set(active) == {a.producer_id, b.producer_id}, text
    assert (active[a.producer_id].producer_epoch, active[a.producer_id].last_sequence) == (3, 2)
    assert (active[b.producer_id].producer_epoch, active[b.producer_id].last_sequence) == (0, 0)
    assert active[a.producer_id].last_timestamp > 0
    assert list(states[KpPartition(topic, 1)].active_producers) == []

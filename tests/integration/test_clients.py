"""Every client we promise: create a topic, produce keyed records with headers under
every codec, and read them back in order per partition."""
from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections import defaultdict

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.helpers import BrokerProcess

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
N = 60


def new_topic(broker: BrokerProcess, partitions: int = 3) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(10)
    return name


def expected(codec: str) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    return [
        (f"key-{i % 7}".encode(), f"{codec}-value-{i}".encode(), [("n", str(i).encode()), ("c", codec.encode())])
        for i in range(N)
    ]


def check_per_partition_order(got: dict[int, list[tuple[int, bytes, bytes]]], codec: str) -> None:
    """All records arrived, with dense offsets and production order inside each partition,
    and one key always in one partition."""
    values = sorted(v for recs in got.values() for _, _, v in recs)
    assert values == sorted(v for _, v, _ in expected(codec))
    key_partition: dict[bytes, int] = {}
    for p, recs in got.items():
        offsets = [o for o, _, _ in recs]
        assert offsets == list(range(offsets[0], offsets[0] + len(offsets)))
        seq = [int(v.rsplit(b"-", 1)[1]) for _, _, v in recs]
        assert seq == sorted(seq)
        for _, k, _ in recs:
            assert key_partition.setdefault(k, p) == p


def confluent_consume(broker: BrokerProcess, topic: str, partitions: int, n: int) -> list:
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        out = []
        deadline = 0
        while len(out) < n and deadline < 200:
            msg = c.poll(0.1)
            deadline += 1
            if msg is None or msg.error():
                continue
            out.append(msg)
        return out
    finally:
        c.close()


@pytest.mark.parametrize("codec", CODECS)
def test_confluent_kafka(broker: BrokerProcess, codec: str) -> None:
    topic = new_topic(broker)
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": codec,
                  "linger.ms": 5, "acks": "all"})
    errors: list = []
    for k, v, h in expected(codec):
        p.produce(topic, v, k, headers=h, on_delivery=lambda e, m: e and errors.append(e))
    assert p.flush(15) == 0
    assert not errors
    msgs = confluent_consume(broker, topic, 3, N)
    got: dict[int, list] = defaultdict(list)
    for m in msgs:
        got[m.partition()].append((m.offset(), m.key(), m.value()))
        n = dict(m.headers())["n"]
        assert m.value().endswith(b"-" + n)
    check_per_partition_order(got, codec)


@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python(broker: BrokerProcess, codec: str) -> None:
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KTP

    topic = new_topic(broker)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap,
                             compression_type=None if codec == "none" else codec, acks=1)
    for k, v, h in expected(codec):
        producer.send(topic, value=v, key=k, headers=h)
    producer.flush(15)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             consumer_timeout_ms=3000)
    consumer.assign([KTP(topic, p) for p in range(3)])
    consumer.seek_to_beginning()
    got: dict[int, list] = defaultdict(list)
    for m in consumer:
        got[m.partition].append((m.offset, m.key, m.value))
        assert dict(m.headers)["c"] == codec.encode()
        if sum(len(v) for v in got.values()) == N:
            break
    consumer.close()
    check_per_partition_order(got, codec)


@pytest.mark.parametrize("codec", CODECS)
def test_aiokafka(broker: BrokerProcess, codec: str) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition as ATP

    topic = new_topic(broker)

    async def run() -> dict[int, list]:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap,
                                    compression_type=None if codec == "none" else codec)
        await producer.start()
        try:
            futs = [await producer.send(topic, value=v, key=k, headers=h) for k, v, h in expected(codec)]
            await asyncio.gather(*futs)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        got: dict[int, list] = defaultdict(list)
        try:
            consumer.assign([ATP(topic, p) for p in range(3)])
            await consumer.seek_to_beginning()
            while sum(len(v) for v in got.values()) < N:
                batch = await asyncio.wait_for(consumer.getmany(timeout_ms=500), 10)
                for tp, msgs in batch.items():
                    for m in msgs:
                        got[tp.partition].append((m.offset, m.key, m.value))
        finally:
            await consumer.stop()
        return got

    check_per_partition_order(asyncio.run(run()), codec)


@pytest.mark.parametrize("codec", CODECS)
def test_kcat(broker: BrokerProcess, codec: str) -> None:
    topic = new_topic(broker)
    lines = "".join(f"{k.decode()}\t{v.decode()}\n" for k, v, _ in expected(codec))
    subprocess.run(
        ["kcat", "-P", "-b", broker.bootstrap, "-t", topic, "-K", "\t", "-z", codec,
         "-H", f"c={codec}"],
        input=lines.encode(), check=True, timeout=30,
    )
    out = subprocess.run(
        ["kcat", "-C", "-b", broker.bootstrap, "-t", topic, "-o", "beginning", "-e",
         "-c", str(N), "-f", "%p\t%o\t%k\t%s\t%h\n"],
        capture_output=True, check=True, timeout=30,
    ).stdout
    got: dict[int, list] = defaultdict(list)
    for line in out.decode().splitlines():
        p, o, k, v, h = line.split("\t")
        assert h == f"c={codec}"
        got[int(p)].append((int(o), k.encode(), v.encode()))
    check_per_partition_order(got, codec)

"""Data on disk: survives a clean restart and kill -9; retention moves the log start;
ListOffsets by timestamp finds the first record at or after it."""
from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.helpers import BrokerProcess


def create(broker: BrokerProcess, partitions: int = 1, config: dict[str, str] | None = None) -> str:
    name = f"d-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1, config=config or {})])[name].result(10)
    return name


def read_all(broker: BrokerProcess, topic: str, partition: int = 0) -> list[tuple[int, bytes]]:
    """Every record from the log start to the high watermark."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "x",
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, partition, -2)])
        out: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    return out
                continue
            out.append((m.offset(), m.value()))
        raise AssertionError(f"did not reach the end of {topic}; got {len(out)} records")
    finally:
        c.close()


def watermarks(broker: BrokerProcess, topic: str) -> tuple[int, int]:
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "x"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    finally:
        c.close()


def test_clean_restart_keeps_everything(make_broker: Callable[..., BrokerProcess]) -> None:
    b = make_broker({"log.segment.bytes": "4096"})
    topic = create(b)
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 2, "batch.size": 1024})
    errors: list[object] = []
    for i in range(500):
        p.produce(topic, f"v{i}".encode(), on_delivery=lambda e, m: e and errors.append(e))
    assert p.flush(10) == 0
    assert not errors
    assert b.stop() == 0
    assert (b.data_dir / "logs" / ".kafka_cleanshutdown").exists()
    b.start()
    got = read_all(b, topic)
    assert got == [(i, f"v{i}".encode()) for i in range(500)]
    segments = sorted((b.data_dir / "logs" / f"{topic}-0").glob("*.log"))
    assert len(segments) > 1, "small segment.bytes should have rolled segments"
    assert segments[0].name == "00000000000000000000.log"


def test_kill_9_mid_stream_loses_nothing_acknowledged(make_broker: Callable[..., BrokerProcess]) -> None:
    b = make_broker({"log.segment.bytes": "65536"})
    topic = create(b)
    acked: dict[bytes, int] = {}
    stop = threading.Event()

    def produce() -> None:
        p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 1,
                      "message.timeout.ms": 3000, "retries": 0})

        def on_delivery(err: object, msg: object) -> None:
            if err is None:
                acked[msg.value()] = msg.offset()  # type: ignore[attr-defined]

        i = 0
        while not stop.is_set():
            try:
                p.produce(topic, f"r{i}".encode(), partition=0, on_delivery=on_delivery)
                i += 1
            except BufferError:
                pass
            p.poll(0.001)
        p.flush(5)

    t = threading.Thread(target=produce)
    t.start()
    try:
        deadline = time.monotonic() + 10
        while len(acked) < 2000 and time.monotonic() < deadline:
            time.sleep(0.05)
        b.kill()
        time.sleep(0.5)
    finally:
        stop.set()
        t.join(15)
    assert len(acked) >= 2000
    b.start()
    got = dict((v, o) for o, v in read_all(b, topic))
    missing = {v: o for v, o in acked.items() if got.get(v) != o}
    assert not missing, f"{len(missing)} acknowledged records lost or moved"
    offsets = sorted(got.values())
    assert offsets == list(range(len(offsets)))


def test_retention_by_size_and_time_moves_log_start(make_broker: Callable[..., BrokerProcess]) -> None:
    b = make_broker({"log.retention.check.interval.ms": "200"})
    by_size = create(b, config={"segment.bytes": "2000", "retention.bytes": "4000"})
    by_time = create(b, config={"segment.bytes": "2000", "retention.ms": "1000"})
    forever = create(b, config={"segment.bytes": "2000", "retention.ms": "-1"})
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 0, "batch.num.messages": 1})
    for topic in (by_size, by_time, forever):
        for i in range(200):
            p.produce(topic, b"x" * 100 + str(i).encode())
            p.poll(0)
    assert p.flush(10) == 0
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        size_low, size_high = watermarks(b, by_size)
        time_low, time_high = watermarks(b, by_time)
        if size_low > 0 and time_low == time_high == 200:
            break
        time.sleep(0.2)
    assert size_high == 200 and 0 < size_low < 200
    assert (time_low, time_high) == (200, 200)
    assert watermarks(b, forever) == (0, 200)
    kept = read_all(b, by_size)
    assert kept[0][0] == size_low and kept[-1][0] == 199
    logs = sum(1 for _ in (b.data_dir / "logs" / f"{by_size}-0").glob("*.log"))
    assert logs <= 4


def test_list_offsets_by_timestamp(make_broker: Callable[..., BrokerProcess]) -> None:
    b = make_broker()
    topic = create(b)
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 20})
    base = 1_700_000_000_000
    stamps = [base + 10 * i for i in range(100)]
    stamps[50] = base + 5  # one late record inside the run
    for i, ts in enumerate(stamps):
        p.produce(topic, str(i).encode(), partition=0, timestamp=ts)
    assert p.flush(10) == 0
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "x"})
    try:
        for target, want in [(base, 0), (base + 5, 1), (base + 11, 2), (base + 495, 51),
                             (base + 500, 51), (base + 990, 99), (base + 991, -1)]:
            got = c.offsets_for_times([TopicPartition(topic, 0, target)], timeout=10)[0]
            assert got.offset == want, (target, got)
    finally:
        c.close()


def test_dynamic_broker_config_survives_restart(make_broker: Callable[..., BrokerProcess]) -> None:
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    b = make_broker()
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    alter = ConfigResource(ConfigResource.Type.BROKER, "0", incremental_configs=[
        ConfigEntry("log.retention.bytes", "987654321", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([alter])[alter].result(10)
    assert b.stop() == 0
    b.start()
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    res = ConfigResource(ConfigResource.Type.BROKER, "0")
    assert admin.describe_configs([res])[res].result(10)["log.retention.bytes"].value == "987654321"

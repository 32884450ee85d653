"""Compacted topics with real clients: keyless records refused, cleaner configs shown,
and a broker that compacts while clients produce and consume."""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from moldau.groups.records import OffsetCommitKey, decode_key
from tests.helpers import BrokerProcess


def new_topic(admin: AdminClient, config: dict[str, str]) -> str:
    topic = f"c-{uuid.uuid4().hex[:10]}"
    admin.create_topics([NewTopic(topic, 1, 1, config=config)])[topic].result(10)
    return topic


def test_keyless_records_are_refused_by_a_compacted_topic(broker: BrokerProcess) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    topic = new_topic(admin, {"cleanup.policy": "compact"})
    errors: list[KafkaError] = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "retries": 0})
    producer.produce(topic, value=b"keyed", key=b"k")
    producer.produce(topic, value=b"no key", on_delivery=lambda err, msg: errors.append(err))
    producer.flush(10)
    assert [e.code() for e in errors] == [KafkaError.INVALID_RECORD]

    from kafka import KafkaProducer
    from kafka.errors import InvalidRecordError

    kp = KafkaProducer(bootstrap_servers=broker.bootstrap, retries=0)
    with pytest.raises(InvalidRecordError):
        kp.send(topic, value=b"no key").get(10)
    kp.send(topic, value=b"v", key=b"k").get(10)  # keyed records still go in
    kp.close()

    plain = new_topic(admin, {})
    producer.produce(plain, value=b"no key needed", on_delivery=lambda err, msg: errors.append(err))
    producer.flush(10)
    assert errors[1:] == [None]


def test_cleaner_configs_are_described_with_kafka_defaults(broker: BrokerProcess) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    topic = new_topic(admin, {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.01"})
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = admin.describe_configs([res])[res].result(10)
    assert configs["min.cleanable.dirty.ratio"].value == "0.01"
    assert configs["delete.retention.ms"].value == "86400000"
    assert configs["min.compaction.lag.ms"].value == "0"
    assert configs["max.compaction.lag.ms"].value == "9223372036854775807"
    with pytest.raises(KafkaException):
        admin.create_topics([NewTopic("c-bad-ratio", 1, 1, config={"min.cleanable.dirty.ratio": "3"})])[
            "c-bad-ratio"].result(10)
    res = ConfigResource(ConfigResource.Type.BROKER, "0")
    broker_configs = admin.describe_configs([res])[res].result(10)
    assert broker_configs["log.cleaner.min.cleanable.ratio"].value == "0.5"
    assert broker_configs["log.cleaner.backoff.ms"].value == "15000"
    assert broker_configs["log.cleaner.enable"].value == "true"


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def read_from_start(bootstrap: str, topic: str, partition: int = 0) -> list[tuple[int, bytes | None, bytes | None]]:
    """Every record of a partition from its first offset, as a confluent-kafka consumer
    reads it (up to the high watermark at the time of the call)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"r-{uuid.uuid4().hex[:6]}",
                         "enable.auto.commit": False})
    try:
        deadline = time.monotonic() + 10
        while True:  # right after a restart the broker may not lead the partition yet: retry, as clients do
            try:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
                break
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError._UNKNOWN_PARTITION or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        out: list[tuple[int, bytes | None, bytes | None]] = []
        deadline = time.monotonic() + 20
        while (not out or out[-1][0] < high - 1) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            out.append((message.offset(), message.key(), message.value()))
        assert not out or out[-1][0] == high - 1, (out[-1:], high)
        return out
    finally:
        consumer.close()


def test_the_broker_compacts_while_clients_produce_and_consume(make_broker: Callable[..., BrokerProcess]) -> None:
    broker = make_broker({"log.cleaner.backoff.ms": "200"})
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    topic = new_topic(admin, {"cleanup.policy": "compact", "segment.bytes": "4096", "segment.ms": "400",
                              "min.cleanable.dirty.ratio": "0.01"})
    keys = [b"key-%d" % i for i in range(8)]
    # Batches well below segment.bytes (a produce larger than a segment is refused).
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, "batch.size": 1024})
    for i in range(600):  # many updates to few keys, in many small segments
        producer.produce(topic, key=keys[i % 8], value=b"confluent-%04d" % i)
        if i % 100 == 99:
            producer.flush(10)
    producer.flush(10)

    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KTP

    kp = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5, batch_size=1024)
    for i in range(400):
        kp.send(topic, key=keys[i % 8], value=b"kafka-python-%04d" % i)
    kp.flush(10)
    time.sleep(0.5)  # segment.ms passes: the next append rolls
    latest = {key: b"final-" + key for key in keys}
    for key, value in latest.items():
        kp.send(topic, key=key, value=value)
    kp.flush(10)
    time.sleep(0.5)  # and once more, so the final values are below the active segment
    kp.send(topic, key=b"sentinel", value=b"last").get(10)
    kp.close()
    latest[b"sentinel"] = b"last"

    # Until the cleaner has caught up, a reader sees more than one record per key.
    wait_for(lambda: len(read_from_start(broker.bootstrap, topic)) == len(latest), 30, "compaction")
    records = read_from_start(broker.bootstrap, topic)
    assert {key: value for _, key, value in records} == latest
    offsets = [offset for offset, _, _ in records]
    assert offsets == sorted(offsets) and offsets[-1] == 1000 + len(keys)  # offsets are kept, with gaps
    assert "log cleaner: cleaned " + topic in broker.log()
    directory = broker.data_dir / "logs" / f"{topic}-0"
    assert not list(directory.glob("*.cleaned")) and not list(directory.glob("*.swap"))

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", consumer_timeout_ms=3000)
    consumer.assign([KTP(topic, 0)])
    consumer.seek_to_beginning()
    seen = {m.key: m.value for m in consumer}
    consumer.close()
    assert seen == latest

    broker.stop()  # a clean restart reads the compacted segments as they are
    broker.start()
    assert {key: value for _, key, value in read_from_start(broker.bootstrap, topic)} == latest


def offsets_records(bootstrap: str) -> list[tuple[object, bytes | None]]:
    """The decoded keys and raw values of __consumer_offsets partition 0."""
    return [(decode_key(key), value) for _, key, value in read_from_start(bootstrap, "__consumer_offsets")
            if key is not None]


def committed(admin: AdminClient, group: str) -> dict[int, int]:
    future = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group]
    return {tp.partition: tp.offset for tp in future.result(timeout=30).topic_partitions if tp.offset >= 0}


def test_consumer_offsets_are_compacted_and_load_after_a_restart(make_broker: Callable[..., BrokerProcess]) -> None:
    broker = make_broker({
        "log.cleaner.backoff.ms": "200",
        "offsets.topic.num.partitions": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.segment.bytes": "1024",
        "log.cleaner.delete.retention.ms": "0",
    })
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    topic = new_topic(admin, {})
    kept, deleted = f"g-kept-{uuid.uuid4().hex[:6]}", f"g-deleted-{uuid.uuid4().hex[:6]}"

    def commit(group: str, offset: int) -> None:
        request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, offset)])
        admin.alter_consumer_group_offsets([request])[group].result(timeout=30)

    commit(deleted, 7)
    admin.delete_consumer_groups([deleted])[deleted].result(timeout=30)  # tombstones
    for offset in range(1, 151):
        commit(kept, offset)
    assert committed(admin, kept) == {0: 150}

    def compacted() -> bool:
        records = offsets_records(broker.bootstrap)
        commits = [k for k, _ in records if isinstance(k, OffsetCommitKey) and k.group == kept]
        return len(commits) < 20 and not [k for k, _ in records if getattr(k, "group", None) == deleted]

    # A few more commits: each cleaning's horizon comes from the newest cleaned segment,
    # so the deleted group's tombstones go once segments after theirs are cleaned.
    offset = 150
    deadline = time.monotonic() + 40
    while not compacted():
        assert time.monotonic() < deadline, offsets_records(broker.bootstrap)
        offset += 1
        commit(kept, offset)
        time.sleep(0.3)
    assert "log cleaner: cleaned __consumer_offsets-0" in broker.log()

    broker.stop()
    broker.start()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    wait_for(lambda: committed(admin, kept) == {0: offset}, 30, "the latest commit after the restart")
    assert committed(admin, deleted) == {}

"""Compacted topics with real clients: keyless records refused, cleaner configs shown,
and a broker that compacts while clients produce and consume."""
from __future__ import annotations

import uuid

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

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

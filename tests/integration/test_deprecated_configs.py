"""Deprecated topic configs that Kafka 3.9 still accepts (message.format.version,
message.downconversion.enable, message.timestamp.difference.max.ms; removed in 4.0), as
librdkafka's own tests and older tools set them: CreateTopics, AlterConfigs and
IncrementalAlterConfigs accept them, DescribeConfigs shows them, records flow as before,
and the broker logs once per topic and config that it ignores them."""
from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from tests.helpers import BrokerProcess

DYNAMIC_TOPIC_CONFIG = 1


@pytest.fixture(scope="module")
def admin(broker: BrokerProcess) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def name() -> str:
    return f"dep-{uuid.uuid4().hex[:10]}"


def ignored_lines(broker: BrokerProcess, topic: str) -> list[str]:
    return [line for line in broker.log().splitlines() if f"of topic {topic} is ignored" in line]


def wait_for_lines(broker: BrokerProcess, topic: str, count: int) -> list[str]:
    deadline = time.monotonic() + 10
    while len(ignored_lines(broker, topic)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return ignored_lines(broker, topic)


def test_create_describe_alter_and_produce(admin: AdminClient, broker: BrokerProcess) -> None:
    t = name()
    admin.create_topics([NewTopic(t, 2, 1, config={
        "message.format.version": "2.8", "message.downconversion.enable": "true"})])[t].result(10)
    res = ConfigResource(ConfigResource.Type.TOPIC, t)
    configs = admin.describe_configs([res])[res].result(10)
    assert configs["message.format.version"].value == "2.8"
    assert configs["message.format.version"].source == DYNAMIC_TOPIC_CONFIG
    assert configs["message.downconversion.enable"].value == "true"
    assert configs["message.timestamp.difference.max.ms"].value == "9223372036854775807"  # Kafka 3.9's default

    # Records go in and out as on any topic.
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(5):
        p.produce(t, f"v{i}".encode(), partition=0)
    assert p.flush(10) == 0
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": t, "auto.offset.reset": "earliest"})
    try:
        c.subscribe([t])
        got: list[bytes] = []
        deadline = time.monotonic() + 15
        while len(got) < 5 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m.value())
        assert got == [f"v{i}".encode() for i in range(5)]
    finally:
        c.close()

    alter = ConfigResource(ConfigResource.Type.TOPIC, t, incremental_configs=[
        ConfigEntry("message.timestamp.difference.max.ms", "60000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("message.downconversion.enable", "false", incremental_operation=AlterConfigOpType.SET),
    ])
    admin.incremental_alter_configs([alter])[alter].result(10)
    configs = admin.describe_configs([res])[res].result(10)
    assert configs["message.timestamp.difference.max.ms"].value == "60000"
    assert configs["message.downconversion.enable"].value == "false"
    assert configs["message.format.version"].value == "2.8"

    # One line per topic and config, however many requests set it again.
    lines = wait_for_lines(broker, t, 3)
    assert len(lines) == 3, lines
    assert sum("message.format.version=2.8" in line for line in lines) == 1
    assert sum("message.timestamp.difference.max.ms=60000" in line for line in lines) == 1
    admin.incremental_alter_configs([alter])[alter].result(10)
    time.sleep(0.5)
    assert len(ignored_lines(broker, t)) == 3


def test_legacy_alter_configs_with_kafka_python(admin: AdminClient, broker: BrokerProcess) -> None:
    from kafka.admin import ConfigResource as KpConfigResource
    from kafka.admin import ConfigResourceType, KafkaAdminClient

    t = name()
    admin.create_topics([NewTopic(t, 1, 1)])[t].result(10)
    kp = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        response = kp.alter_configs([KpConfigResource(ConfigResourceType.TOPIC, t, configs={
            "message.format.version": "0.10.2", "retention.ms": "3600000"})], incremental=False)
    finally:
        kp.close()
    assert response == {"topic": {t: "OK"}}
    res = ConfigResource(ConfigResource.Type.TOPIC, t)
    configs = admin.describe_configs([res])[res].result(10)
    assert configs["message.format.version"].value == "0.10.2"
    assert configs["retention.ms"].value == "3600000"
    assert len(wait_for_lines(broker, t, 1)) == 1


def test_bad_values_are_invalid_config(admin: AdminClient) -> None:
    """Deprecated is not unchecked: Kafka 3.9 refuses these values too."""
    for config in ({"message.format.version": "banana"}, {"message.downconversion.enable": "maybe"},
                   {"message.timestamp.difference.max.ms": "-1"}):
        t = name()
        with pytest.raises(KafkaException) as info:
            admin.create_topics([NewTopic(t, 1, 1, config=config)])[t].result(10)
        assert info.value.args[0].name() == "INVALID_CONFIG"

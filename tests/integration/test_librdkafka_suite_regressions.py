"""Regressions found by running librdkafka's own integration tests against Moldau
(tools/librdkafka_suite.sh; results in docs/compatibility.md), each reproduced here with
a real client."""
from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from tests.helpers import BrokerProcess

SESSION_TIMEOUT_MS = 6000  # what librdkafka's test harness gives its consumers


def test_group_deleted_as_soon_as_its_static_member_session_ends(broker: BrokerProcess) -> None:
    """librdkafka 0081 (do_test_DescribeConsumerGroups) closes static members (they send
    no LeaveGroup, KIP-345), sleeps 6 s, their session timeout, and deletes the groups.
    Kafka's heartbeat purgatory has expired them by then; Moldau, which ticked its groups
    every 100 ms only, answered NON_EMPTY_GROUP."""
    topic = f"static-{uuid.uuid4().hex[:8]}"
    group = f"{topic}-group"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(10)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(10):
        producer.produce(topic, f"record-{i}".encode())
    assert producer.flush(10) == 0

    consumer = Consumer({
        "bootstrap.servers": broker.bootstrap, "group.id": group, "group.instance.id": "static-member-0",
        "session.timeout.ms": SESSION_TIMEOUT_MS, "auto.offset.reset": "earliest",
    })
    consumer.subscribe([topic])
    consumed = 0
    deadline = time.monotonic() + 30
    while consumed < 10 and time.monotonic() < deadline:
        message = consumer.poll(1)
        if message is not None and message.error() is None:
            consumed += 1
    assert consumed == 10
    # close() commits the offsets (which refreshes the member's session) and returns after
    # the answer: the session ends SESSION_TIMEOUT_MS after this at the latest.
    consumer.close()
    closed = time.monotonic()
    time.sleep(closed + SESSION_TIMEOUT_MS / 1000 + 0.005 - time.monotonic())

    admin.delete_consumer_groups([group])[group].result(10)  # raises on NON_EMPTY_GROUP


def test_broker_accepts_kafkas_dynamic_kerberos_config(broker: BrokerProcess) -> None:
    """librdkafka 0081 (do_test_AlterConfigs, do_test_IncrementalAlterConfigs) sets
    `sasl.kerberos.min.time.before.relogin` on a broker and expects NO_ERROR, as Kafka
    answers (a dynamic listener config there); Moldau answered INVALID_CONFIG, "Unknown
    config". It has no GSSAPI: the value is stored and has no effect."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    name = "sasl.kerberos.min.time.before.relogin"
    legacy = ConfigResource(ConfigResource.Type.BROKER, "0", set_config={name: "58000"})
    admin.alter_configs([legacy])[legacy].result(10)
    incremental = ConfigResource(ConfigResource.Type.BROKER, "0", incremental_configs=[
        ConfigEntry(name, "59000", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([incremental])[incremental].result(10)
    other = ConfigResource(ConfigResource.Type.BROKER, "0", incremental_configs=[
        ConfigEntry("log.retention.bytes", "123456789", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([other])[other].result(10)  # the broker's other configs still apply
    described = ConfigResource(ConfigResource.Type.BROKER, "0")
    assert admin.describe_configs([described])[described].result(10)["log.retention.bytes"].value == "123456789"
    cleanup = ConfigResource(ConfigResource.Type.BROKER, "0", incremental_configs=[
        ConfigEntry(name, None, incremental_operation=AlterConfigOpType.DELETE),
        ConfigEntry("log.retention.bytes", None, incremental_operation=AlterConfigOpType.DELETE)])
    admin.incremental_alter_configs([cleanup])[cleanup].result(10)

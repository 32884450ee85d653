"""The configs of replication quotas and follower fetching through the admin API of a real
broker: throttled-replicas topic configs in Kafka's format (INVALID_CONFIG otherwise), the
throttled rates as dynamic broker configs."""
from __future__ import annotations

import uuid

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType

from tests.helpers import BrokerProcess

INVALID_CONFIG = 40


@pytest.fixture(scope="module")
def admin(broker: BrokerProcess) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def alter(admin: AdminClient, resource_type: ResourceType, name: str, **configs: str) -> None:
    entries = [ConfigEntry(k.replace("_", "."), v, incremental_operation=AlterConfigOpType.SET)
               for k, v in configs.items()]
    [future] = admin.incremental_alter_configs([ConfigResource(resource_type, name,
                                                               incremental_configs=entries)]).values()
    future.result(10)


def described(admin: AdminClient, resource_type: ResourceType, name: str) -> dict[str, str | None]:
    [future] = admin.describe_configs([ConfigResource(resource_type, name)]).values()
    return {k: e.value for k, e in future.result(10).items()}


def test_throttled_replicas_topic_configs(admin: AdminClient) -> None:
    topic = f"thr-{uuid.uuid4().hex[:8]}"
    bad = admin.create_topics([NewTopic(topic, 1, 1, config={"leader.replication.throttled.replicas": "0-1"})])
    with pytest.raises(KafkaException) as refused:
        bad[topic].result(10)
    assert refused.value.args[0].code() == INVALID_CONFIG
    assert "[partitionId]:[brokerId]" in refused.value.args[0].str()
    admin.create_topics([NewTopic(topic, 1, 1, config={"leader.replication.throttled.replicas": "0:0"})])[
        topic].result(10)
    assert described(admin, ResourceType.TOPIC, topic)["leader.replication.throttled.replicas"] == "0:0"
    assert described(admin, ResourceType.TOPIC, topic)["follower.replication.throttled.replicas"] == ""
    alter(admin, ResourceType.TOPIC, topic, follower_replication_throttled_replicas="*")
    assert described(admin, ResourceType.TOPIC, topic)["follower.replication.throttled.replicas"] == "*"
    with pytest.raises(KafkaException) as refused:
        alter(admin, ResourceType.TOPIC, topic, follower_replication_throttled_replicas="all")
    assert refused.value.args[0].code() == INVALID_CONFIG


def test_throttled_rates_are_dynamic_broker_configs(admin: AdminClient) -> None:
    with pytest.raises(KafkaException) as refused:
        alter(admin, ResourceType.BROKER, "0", leader_replication_throttled_rate="-1")
    assert refused.value.args[0].code() == INVALID_CONFIG
    alter(admin, ResourceType.BROKER, "0", leader_replication_throttled_rate="1000000")
    try:
        configs = described(admin, ResourceType.BROKER, "0")
        assert configs["leader.replication.throttled.rate"] == "1000000"
        assert configs["follower.replication.throttled.rate"] == str(2**63 - 1)  # Kafka's default: none
    finally:
        [future] = admin.incremental_alter_configs([ConfigResource(ResourceType.BROKER, "0", incremental_configs=[
            ConfigEntry("leader.replication.throttled.rate", None,
                        incremental_operation=AlterConfigOpType.DELETE)])]).values()
        future.result(10)

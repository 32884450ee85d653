"""Authorization (ACLs) on one broker with real clients: confluent-kafka's AdminClient
creates, describes and deletes ACLs (CreateAcls/DescribeAcls/DeleteAcls), and SASL PLAIN
users are allowed or denied by them with Kafka's errors reaching the client.

The broker runs `authorizer.class.name=kafka.security.authorizer.AclAuthorizer` with
`super.users=User:admin`; its inter-broker traffic (LeaderAndIsr to itself) logs in as
admin over SASL_PLAINTEXT, so it needs no ACL of its own.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)
from kafka.admin import ACLFilter as KpAclFilter
from kafka.admin import ACLOperation as KpAclOperation
from kafka.admin import ACLPermissionType as KpPermission
from kafka.admin import ACLResourcePatternType as KpPatternType
from kafka.admin import KafkaAdminClient
from kafka.admin import ResourcePatternFilter as KpPatternFilter
from kafka.admin import ResourceType as KpResourceType
from kafka.errors import ClusterAuthorizationFailedError

from tests.helpers import BrokerProcess, free_port

JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" '
        'password="admin-secret" user_admin="admin-secret" user_alice="alice-secret" user_bob="bob-secret";')
AUTHORIZER = "kafka.security.authorizer.AclAuthorizer"


class AclBroker:
    def __init__(self, broker: BrokerProcess, sasl_port: int) -> None:
        self.broker = broker
        self.sasl_port = sasl_port

    def conf(self, user: str) -> dict[str, Any]:
        return {"bootstrap.servers": f"127.0.0.1:{self.sasl_port}", "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "PLAIN", "sasl.username": user, "sasl.password": f"{user}-secret",
                "socket.timeout.ms": 10000}

    def admin(self, user: str = "admin") -> AdminClient:
        return AdminClient(self.conf(user))


def start_acl_broker(tmp: Path, extra: dict[str, str] | None = None) -> AclBroker:
    sasl_port = free_port()
    broker = BrokerProcess(tmp, {
        "group.initial.rebalance.delay.ms": "0",
        "offsets.topic.num.partitions": "2",
        "offsets.topic.replication.factor": "1",
        "sasl.enabled.mechanisms": "PLAIN",
        "sasl.jaas.config": JAAS,
        "security.inter.broker.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "authorizer.class.name": AUTHORIZER,
        "super.users": "User:admin",
        **(extra or {}),
    })
    broker.overrides["listeners"] = f"PLAINTEXT://127.0.0.1:{broker.port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}"
    broker.start()
    return AclBroker(broker, sasl_port)


@pytest.fixture(scope="module")
def acl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AclBroker]:
    b = start_acl_broker(tmp_path_factory.mktemp("acls"))
    try:
        yield b
    finally:
        b.broker.kill()
        print(f"\n===== broker log =====\n{b.broker.log()[-8000:]}")


def _name(prefix: str = "acl") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _allow(principal: str, resource_type: ResourceType, name: str, operation: AclOperation,
           pattern: ResourcePatternType = ResourcePatternType.LITERAL,
           permission: AclPermissionType = AclPermissionType.ALLOW) -> AclBinding:
    return AclBinding(resource_type, name, pattern, principal, "*", operation, permission)


def _create(admin: AdminClient, bindings: list[AclBinding]) -> None:
    for future in admin.create_acls(bindings).values():
        assert future.result(15) is None


def _create_topic(admin: AdminClient, topic: str, partitions: int = 1) -> None:
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(15)


def test_create_describe_delete_acls_with_admin_client(acl_broker: AclBroker) -> None:
    admin = acl_broker.admin()
    topic = _name()
    read = _allow("User:alice", ResourceType.TOPIC, topic, AclOperation.READ)
    prefixed = _allow("User:alice", ResourceType.TOPIC, topic[:6], AclOperation.WRITE, ResourcePatternType.PREFIXED)
    deny = _allow("User:bob", ResourceType.GROUP, "g", AclOperation.READ, permission=AclPermissionType.DENY)
    _create(admin, [read, prefixed, deny])
    _create(admin, [read])  # creating an ACL that exists succeeds
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    assert {read, prefixed, deny} <= set(admin.describe_acls(everything).result(15))
    # MATCH: the ACLs that apply to the topic: its literal ACL and the prefixed one.
    match = AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.MATCH, None, None,
                             AclOperation.ANY, AclPermissionType.ANY)
    assert set(admin.describe_acls(match).result(15)) == {read, prefixed}
    # A non-super user may not describe ACLs (Describe on the cluster). librdkafka drops
    # DescribeAcls' top-level error (alice gets an empty list); kafka-python raises it.
    alice_kp = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{acl_broker.sasl_port}",
                                security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                                sasl_plain_username="alice", sasl_plain_password="alice-secret")
    try:
        with pytest.raises(ClusterAuthorizationFailedError):
            alice_kp.describe_acls(KpAclFilter(
                principal=None, host=None, operation=KpAclOperation.ANY, permission_type=KpPermission.ANY,
                resource_pattern=KpPatternFilter(KpResourceType.ANY, None, KpPatternType.ANY)))
    finally:
        alice_kp.close()
    alice = acl_broker.admin("alice")
    # Nor create them (Alter on the cluster).
    with pytest.raises(KafkaException) as denied:
        for f in alice.create_acls([read]).values():
            f.result(15)
    assert denied.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    # A creation Kafka refuses fails alone, as INVALID_REQUEST.
    bad = _allow("User:alice", ResourceType.TOPIC, "a/b", AclOperation.READ)
    with pytest.raises(KafkaException) as refused:
        admin.create_acls([bad])[bad].result(15)
    assert refused.value.args[0].code() == KafkaError.INVALID_REQUEST
    deleted = admin.delete_acls([match])[match].result(15)
    assert set(deleted) == {read, prefixed}
    assert admin.describe_acls(match).result(15) == []
    assert deny in admin.describe_acls(everything).result(15)

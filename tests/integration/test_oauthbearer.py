"""SASL OAUTHBEARER with unsecured JWS tokens (Kafka's default validator) and librdkafka's
unsecured token mode: the token's `sub` is the principal ACLs apply to, and with
connections.max.reauth.ms the client renews its session with a fresh token."""
from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from tests.helpers import BrokerProcess, free_port

JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" '
        'password="admin-secret" user_admin="admin-secret";')


def _produce(conf: dict[str, Any], topic: str, seconds: float = 0.0) -> list[KafkaError | None]:
    results: list[KafkaError | None] = []
    producer = Producer({**conf, "message.timeout.ms": 8000})
    deadline = time.monotonic() + seconds
    while True:
        producer.produce(topic, b"v", on_delivery=lambda err, _msg: results.append(err))
        producer.poll(0.1)
        if time.monotonic() >= deadline:
            break
    producer.flush(15)
    return results


def test_oauthbearer_unsecured_tokens(tmp_path: Path) -> None:
    sasl_port = free_port()
    broker = BrokerProcess(tmp_path, {
        "offsets.topic.replication.factor": "1",
        "sasl.enabled.mechanisms": "PLAIN,OAUTHBEARER",
        "sasl.jaas.config": JAAS,
        "security.inter.broker.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
        "super.users": "User:admin",
        "connections.max.reauth.ms": "1500",
    })
    broker.overrides["listeners"] = f"PLAINTEXT://127.0.0.1:{broker.port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}"
    broker.start()
    try:
        base = {"bootstrap.servers": f"127.0.0.1:{sasl_port}", "security.protocol": "SASL_PLAINTEXT"}
        admin = AdminClient({**base, "sasl.mechanism": "PLAIN", "sasl.username": "admin",
                             "sasl.password": "admin-secret"})
        allowed, other = f"oauth-{uuid.uuid4().hex[:8]}", f"oauth-{uuid.uuid4().hex[:8]}"
        for topic in (allowed, other):
            admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(15)
        binding = AclBinding(ResourceType.TOPIC, allowed, ResourcePatternType.LITERAL, "User:alice", "*",
                             AclOperation.WRITE, AclPermissionType.ALLOW)
        admin.create_acls([binding])[binding].result(15)
        alice = {**base, "sasl.mechanism": "OAUTHBEARER", "enable.sasl.oauthbearer.unsecure.jwt": True,
                 "sasl.oauthbearer.config": "principal=alice lifeSeconds=3600"}
        # Across three 1.5 s sessions, each renewed with a new token on the same connection.
        log_before = len(broker.log())
        results = _produce(alice, allowed, seconds=4)
        assert len(results) > 10 and set(results) == {None}
        assert "SASL session expired" not in broker.log()[log_before:]
        denied = _produce(alice, other)
        assert denied and denied[0] is not None and denied[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    finally:
        broker.kill()

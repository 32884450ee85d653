"""SASL OAUTHBEARER with signed tokens (KIP-768) and librdkafka's OIDC mode
(`sasl.oauthbearer.method=oidc`): librdkafka gets its tokens from the test's own issuer
(client_credentials, RS256 JWTs), a real broker checks them against the issuer's JWKS. The
token's `sub` is the principal ACLs apply to; a token signed by a key the issuer does not
publish is refused; a rotated key (new kid) is picked up by the broker's JWKS refresh."""
from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
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
from tests.oidc import Client, OidcIssuer, SigningKey

JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" '
        'password="admin-secret" user_admin="admin-secret";')
VALIDATOR = "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"


def _produce(conf: dict[str, Any], topic: str, count: int = 3) -> tuple[list[KafkaError | None], list[KafkaError]]:
    """(delivery results, client errors such as authentication failures)."""
    results: list[KafkaError | None] = []
    errors: list[KafkaError] = []
    producer = Producer({**conf, "message.timeout.ms": 6000, "error_cb": errors.append})
    for i in range(count):
        producer.produce(topic, f"v{i}".encode(), on_delivery=lambda err, _msg: results.append(err))
    producer.flush(10)
    return results, errors


def _oidc(base: dict[str, Any], issuer: OidcIssuer, client_id: str, secret: str) -> dict[str, Any]:
    return {**base, "sasl.mechanism": "OAUTHBEARER", "sasl.oauthbearer.method": "oidc",
            "sasl.oauthbearer.client.id": client_id, "sasl.oauthbearer.client.secret": secret,
            "sasl.oauthbearer.token.endpoint.url": f"{issuer.url}/token", "sasl.oauthbearer.scope": "kafka"}


def _allow(admin: AdminClient, principal: str, resource: ResourceType, name: str, operation: AclOperation) -> None:
    binding = AclBinding(resource, name, ResourcePatternType.LITERAL, principal, "*", operation,
                         AclPermissionType.ALLOW)
    admin.create_acls([binding])[binding].result(15)


def test_oidc_tokens_from_librdkafka(tmp_path: Path) -> None:
    first_key = SigningKey("key-1")
    with OidcIssuer(first_key, issuer="https://issuer.test", audience="moldau") as issuer:
        issuer.clients["alice-app"] = Client("alice-secret", sub="alice")
        issuer.clients["mallory-app"] = Client("mallory-secret", sub="admin", key=SigningKey("rogue"))
        sasl_port = free_port()
        broker = BrokerProcess(tmp_path, {
            "offsets.topic.replication.factor": "1",
            "sasl.enabled.mechanisms": "PLAIN,OAUTHBEARER",
            "sasl.jaas.config": JAAS,
            "security.inter.broker.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism.inter.broker.protocol": "PLAIN",
            "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
            "super.users": "User:admin",
            "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class": VALIDATOR,
            "sasl.oauthbearer.jwks.endpoint.url": f"{issuer.url}/jwks",
            "sasl.oauthbearer.expected.audience": "moldau",
            "sasl.oauthbearer.expected.issuer": "https://issuer.test",
        })
        broker.overrides["listeners"] = f"PLAINTEXT://127.0.0.1:{broker.port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}"
        broker.start()
        try:
            assert issuer.jwks_requests == 1  # fetched when the broker started
            base = {"bootstrap.servers": f"127.0.0.1:{sasl_port}", "security.protocol": "SASL_PLAINTEXT"}
            admin = AdminClient({**base, "sasl.mechanism": "PLAIN", "sasl.username": "admin",
                                 "sasl.password": "admin-secret"})
            allowed, other = f"oidc-{uuid.uuid4().hex[:8]}", f"oidc-{uuid.uuid4().hex[:8]}"
            group = f"g-{uuid.uuid4().hex[:8]}"
            for topic in (allowed, other):
                admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(15)
            _allow(admin, "User:alice", ResourceType.TOPIC, allowed, AclOperation.WRITE)
            _allow(admin, "User:alice", ResourceType.TOPIC, allowed, AclOperation.READ)
            _allow(admin, "User:alice", ResourceType.GROUP, group, AclOperation.READ)

            # alice's token is librdkafka's, from the issuer; her sub is the principal ACLs see
            alice = _oidc(base, issuer, "alice-app", "alice-secret")
            results, errors = _produce(alice, allowed)
            assert results == [None] * 3, (results, errors)
            assert issuer.token_requests >= 1
            denied, _ = _produce(alice, other, count=1)
            assert denied and denied[0] is not None and denied[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
            consumer = Consumer({**alice, "group.id": group, "auto.offset.reset": "earliest",
                                 "enable.auto.commit": False})
            try:
                consumer.subscribe([allowed])
                values: list[bytes] = []
                deadline = time.monotonic() + 15
                while len(values) < 3 and time.monotonic() < deadline:
                    msg = consumer.poll(0.5)
                    if msg is not None and msg.error() is None:
                        values.append(msg.value())
                assert values == [b"v0", b"v1", b"v2"]
                consumer.commit(asynchronous=False)
            finally:
                consumer.close()

            # the issuer rotates its signing key: the new kid is unknown to the broker until
            # it refreshes the JWKS, which the first login naming it triggers
            issuer.key = SigningKey("key-2")
            issuer.published.append(issuer.key)
            requests_before = issuer.jwks_requests
            results, errors = _produce(alice, allowed)
            assert results == [None] * 3, (results, errors)
            assert issuer.jwks_requests > requests_before
            assert "a token names key id 'key-2'" in broker.log()

            # a token signed by a key the issuer never published is refused, even though its
            # sub is a super user
            results, errors = _produce(_oidc(base, issuer, "mallory-app", "mallory-secret"), allowed, count=1)
            assert results and results[0] is not None
            auth_errors = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
            assert auth_errors and "invalid_token" in auth_errors[0].str(), errors
            assert "no key with kid 'rogue'" in broker.log()
        finally:
            broker.kill()


def test_brokers_log_in_with_tokens_from_the_issuer(tmp_path: Path) -> None:
    """The inter-broker listener takes signed tokens only; the broker gets its own from the
    issuer (client_credentials, Kafka's OAuthBearerLoginCallbackHandler) and logs in to
    itself with it (LeaderAndIsr, UpdateMetadata), as a super user by its token's sub."""
    with OidcIssuer(SigningKey("key-1"), issuer="https://issuer.test", audience="moldau") as issuer:
        issuer.clients["broker-app"] = Client("broker-secret", sub="kafka-broker")
        issuer.clients["admin-app"] = Client("admin-secret", sub="admin")
        sasl_port = free_port()
        broker = BrokerProcess(tmp_path, {
            "offsets.topic.replication.factor": "1",
            "sasl.enabled.mechanisms": "OAUTHBEARER",
            "inter.broker.listener.name": "SASL_PLAINTEXT",
            "sasl.mechanism.inter.broker.protocol": "OAUTHBEARER",
            "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config":
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
                'clientId="broker-app" clientSecret="broker-secret" scope="kafka";',
            "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class": VALIDATOR,
            "listener.name.sasl_plaintext.oauthbearer.sasl.login.callback.handler.class":
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler",
            "sasl.oauthbearer.token.endpoint.url": f"{issuer.url}/token",
            "sasl.oauthbearer.jwks.endpoint.url": f"{issuer.url}/jwks",
            "sasl.oauthbearer.expected.audience": "moldau",
            "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
            "super.users": "User:kafka-broker;User:admin",
        })
        broker.overrides["listeners"] = f"PLAINTEXT://127.0.0.1:{broker.port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}"
        broker.start()
        try:
            base = {"bootstrap.servers": f"127.0.0.1:{sasl_port}", "security.protocol": "SASL_PLAINTEXT"}
            admin_conf = _oidc(base, issuer, "admin-app", "admin-secret")
            topic = f"oidc-{uuid.uuid4().hex[:8]}"
            admin = AdminClient(admin_conf)
            admin.poll(1)  # serves librdkafka's token refresh (an AdminClient has no other poll)
            admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(15)
            # the partitions have a leader only if the controller's LeaderAndIsr got through
            results, errors = _produce(admin_conf, topic)
            assert results == [None] * 3, (results, errors)
            assert issuer.tokens_issued.get("broker-app", 0) >= 1
            assert "authentication failed" not in broker.log()
        finally:
            broker.kill()


def test_a_brokers_login_reuses_its_token_and_reports_a_refusal() -> None:
    """ClientCredentialsLogin against the test's issuer, no broker: one token until 80% of
    its lifetime has passed; a wrong secret is an error naming the endpoint."""
    from moldau.server.security.oauth_login import ClientCredentials, ClientCredentialsLogin

    with OidcIssuer(SigningKey("key-1"), lifetime_s=1) as issuer:
        issuer.clients["broker-app"] = Client("broker-secret", sub="kafka-broker")

        async def scenario() -> None:
            login = ClientCredentialsLogin(ClientCredentials(f"{issuer.url}/token", "broker-app", "broker-secret"))
            first = await asyncio.gather(login.token(), login.token())
            assert first[0] == first[1] and issuer.tokens_issued["broker-app"] == 1
            await asyncio.sleep(0.9)  # past 80% of its one second
            await login.token()
            assert issuer.tokens_issued["broker-app"] == 2
            wrong = ClientCredentialsLogin(ClientCredentials(f"{issuer.url}/token", "broker-app", "nope"))
            with pytest.raises(ConnectionError, match=f"could not get an OAUTHBEARER token from {issuer.url}/token"):
                await wrong.token()

        asyncio.run(scenario())

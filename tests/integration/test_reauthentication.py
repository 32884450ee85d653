"""SASL re-authentication (KIP-368, connections.max.reauth.ms): the broker announces each
session's lifetime, closes a connection whose session expired at its next request,
accepts a new SaslHandshake + SaslAuthenticate on an authenticated connection (the same
principal only), and librdkafka keeps producing across several sessions on one
connection. The broker's own inter-broker connections (SASL too) renew theirs."""
from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kio.schema.metadata.v12.request import MetadataRequest
from kio.schema.sasl_authenticate.v2.request import SaslAuthenticateRequest
from kio.schema.sasl_handshake.v1.request import SaslHandshakeRequest

from moldau.protocol.apis import ApiKey
from tests.helpers import BrokerProcess, free_port
from tests.raw import decode, encode, is_closed, recv_frame

JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" '
        'password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";')
REAUTH_MS = 1500


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BrokerProcess, int]]:
    sasl_port = free_port()
    b = BrokerProcess(tmp_path_factory.mktemp("reauth"), {
        "offsets.topic.replication.factor": "1",
        "sasl.enabled.mechanisms": "PLAIN",
        "sasl.jaas.config": JAAS,
        "security.inter.broker.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "connections.max.reauth.ms": str(REAUTH_MS),
    })
    b.overrides["listeners"] = f"PLAINTEXT://127.0.0.1:{b.port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}"
    b.start()
    try:
        yield b, sasl_port
    finally:
        b.kill()
        print(f"\n===== broker log =====\n{b.log()[-6000:]}")


class Raw:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.correlation_id = 0

    def call(self, api_key: int, version: int, request: Any) -> Any:
        self.correlation_id += 1
        self.sock.sendall(encode(api_key, version, request, self.correlation_id))
        frame = recv_frame(self.sock)
        assert frame is not None, "connection closed"
        return decode(api_key, version, frame)

    def login(self, user: str) -> Any:
        assert self.call(ApiKey.SASL_HANDSHAKE, 1, SaslHandshakeRequest(mechanism="PLAIN")).error_code == 0
        return self.call(ApiKey.SASL_AUTHENTICATE, 2, SaslAuthenticateRequest(
            auth_bytes=f"\x00{user}\x00{user}-secret".encode()))

    def metadata(self) -> Any:
        return self.call(ApiKey.METADATA, 12, MetadataRequest(
            topics=(), allow_auto_topic_creation=False, include_topic_authorized_operations=False))


def test_a_session_expires_unless_renewed(broker: tuple[BrokerProcess, int]) -> None:
    _, port = broker
    expiring = Raw(port)
    answer = expiring.login("alice")
    assert answer.error_code == 0 and answer.session_lifetime.total_seconds() * 1000 == REAUTH_MS
    assert expiring.metadata().brokers
    renewed = Raw(port)
    assert renewed.login("alice").error_code == 0
    time.sleep(REAUTH_MS / 1000 * 0.6)
    again = renewed.login("alice")  # re-authentication on the same connection
    assert again.error_code == 0 and again.session_lifetime.total_seconds() * 1000 == REAUTH_MS
    time.sleep(REAUTH_MS / 1000 * 0.6)  # past the first session's end, inside the second's
    assert renewed.metadata().brokers
    # The session that was not renewed: the next request closes the connection.
    expiring.sock.sendall(encode(ApiKey.METADATA, 12, MetadataRequest(
        topics=(), allow_auto_topic_creation=False, include_topic_authorized_operations=False), 9))
    assert recv_frame(expiring.sock) is None
    # Re-authenticating as someone else is refused, and the connection closed.
    other = renewed.login("admin")
    assert other.error_code == 58  # SASL_AUTHENTICATION_FAILED
    assert "Cannot change principals" in other.error_message
    assert is_closed(renewed.sock)


def test_librdkafka_reauthenticates_across_sessions(broker: tuple[BrokerProcess, int]) -> None:
    b, port = broker
    conf = {"bootstrap.servers": f"127.0.0.1:{port}", "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN", "sasl.username": "alice", "sasl.password": "alice-secret"}
    topic = f"reauth-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(conf)
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(15)
    errors: list[object] = []
    producer = Producer({**conf, "acks": "all", "message.timeout.ms": 10000})
    log_before = len(b.log())
    deadline = time.monotonic() + 3 * REAUTH_MS / 1000  # three sessions
    sent = 0
    while time.monotonic() < deadline:
        producer.produce(topic, b"v", on_delivery=lambda err, _m: err is not None and errors.append(err))
        sent += 1
        producer.poll(0.1)
    assert producer.flush(15) == 0 and not errors, errors
    assert sent > 20
    # librdkafka renewed its sessions in time: the broker closed none of its connections,
    # nor any of its own inter-broker ones.
    assert "SASL session expired" not in b.log()[log_before:], b.log()[log_before:]

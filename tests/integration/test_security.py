"""TLS and SASL listeners with real clients: confluent-kafka, kafka-python, aiokafka and
kcat produce and consume over SSL, SASL_PLAINTEXT (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)
and SASL_SSL; wrong passwords, unauthenticated requests and missing client certificates
are refused while the broker keeps serving everyone else.

Certificates are made at test time (tests/certs.py); SCRAM users are created through a
real AdminClient (AlterUserScramCredentials) before anyone logs in with them.
"""
from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    NewTopic,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from moldau.protocol.apis import ApiKey
from tests.certs import Pki, make_pki
from tests.helpers import BrokerProcess, aiokafka_round_trip, free_port
from tests.raw import decode, encode, is_closed, recv_frame

PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" '
              'password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";')
SCRAM_USER, SCRAM_PASSWORD = "scram-user", "scram-secret"


@dataclass
class SecureBroker:
    broker: BrokerProcess
    pki: Pki
    ports: dict[str, int]  # listener name -> port

    def conf(self, protocol: str, mechanism: str | None = None, user: str | None = None,
             password: str | None = None) -> dict[str, Any]:
        """librdkafka settings for a listener."""
        conf: dict[str, Any] = {"bootstrap.servers": f"127.0.0.1:{self.ports[protocol]}",
                                "security.protocol": protocol, "socket.timeout.ms": 10000}
        if "SSL" in protocol:
            conf["ssl.ca.location"] = str(self.pki.ca)
        if mechanism is not None:
            conf.update({"sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password})
        return conf


def _start(tmp: Path, pki: Pki, extra: dict[str, str] | None = None) -> SecureBroker:
    ports = {name: free_port() for name in ("SSL", "SASL_PLAINTEXT", "SASL_SSL")}
    broker = BrokerProcess(tmp, {
        "group.initial.rebalance.delay.ms": "0",
        "offsets.topic.num.partitions": "2",
        "offsets.topic.replication.factor": "1",
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "sasl.jaas.config": PLAIN_JAAS,
        "ssl.keystore.location": str(pki.server),
        **(extra or {}),
    })
    ports["PLAINTEXT"] = broker.port
    broker.overrides["listeners"] = ",".join(f"{name}://127.0.0.1:{port}" for name, port in ports.items())
    broker.start()
    return SecureBroker(broker, pki, ports)


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    s = _start(tmp_path_factory.mktemp("secure"), pki)
    try:
        admin = AdminClient(s.conf("SASL_PLAINTEXT", "PLAIN", "admin", "admin-secret"))
        upserts = [UserScramCredentialUpsertion(SCRAM_USER, ScramCredentialInfo(m, 4096), SCRAM_PASSWORD.encode())
                   for m in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512)]
        for future in admin.alter_user_scram_credentials(upserts).values():
            assert future.result(15) is None
        yield s
    finally:
        s.broker.kill()
        print(f"\n===== broker log =====\n{s.broker.log()[-8000:]}")


CASES = [
    ("SSL", None, None, None),
    ("SASL_PLAINTEXT", "PLAIN", "alice", "alice-secret"),
    ("SASL_PLAINTEXT", "SCRAM-SHA-256", SCRAM_USER, SCRAM_PASSWORD),
    ("SASL_PLAINTEXT", "SCRAM-SHA-512", SCRAM_USER, SCRAM_PASSWORD),
    ("SASL_SSL", "PLAIN", "alice", "alice-secret"),
    ("SASL_SSL", "SCRAM-SHA-512", SCRAM_USER, SCRAM_PASSWORD),
]
IDS = [f"{p}-{m or 'tls'}" for p, m, _, _ in CASES]


def _topic() -> str:
    return f"sec-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("protocol,mechanism,user,password", CASES, ids=IDS)
def test_confluent_kafka(secure: SecureBroker, protocol: str, mechanism: str | None, user: str | None,
                         password: str | None) -> None:
    conf = secure.conf(protocol, mechanism, user, password)
    topic = _topic()
    producer = Producer(conf)
    for i in range(5):
        producer.produce(topic, f"v{i}".encode(), key=b"k")
    assert producer.flush(20) == 0
    # A group: FindCoordinator must name the coordinator on this same listener.
    consumer = Consumer({**conf, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(got) < 5 and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None:
            assert msg.error() is None, msg.error()
            got.append(msg.value())
    consumer.commit(asynchronous=False)
    consumer.close()
    assert got == [f"v{i}".encode() for i in range(5)]
    # Metadata names this listener's endpoint, not the PLAINTEXT one.
    brokers = AdminClient(conf).list_topics(timeout=10).brokers
    assert [(b.host, b.port) for b in brokers.values()] == [("127.0.0.1", secure.ports[protocol])]


@pytest.mark.parametrize("protocol,mechanism,user,password", CASES, ids=IDS)
def test_kafka_python(secure: SecureBroker, protocol: str, mechanism: str | None, user: str | None,
                      password: str | None) -> None:
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KTopicPartition

    kw: dict[str, Any] = {"bootstrap_servers": f"127.0.0.1:{secure.ports[protocol]}", "security_protocol": protocol}
    if "SSL" in protocol:
        kw["ssl_cafile"] = str(secure.pki.ca)
    if mechanism:
        kw.update(sasl_mechanism=mechanism, sasl_plain_username=user, sasl_plain_password=password)
    topic = _topic()
    producer = KafkaProducer(**kw)
    for i in range(5):
        producer.send(topic, f"v{i}".encode()).get(timeout=20)
    producer.close()
    consumer = KafkaConsumer(**kw, consumer_timeout_ms=10000, auto_offset_reset="earliest")
    consumer.assign([KTopicPartition(topic, 0)])
    got = [m.value for _, m in zip(range(5), consumer, strict=False)]
    consumer.close()
    assert got == [f"v{i}".encode() for i in range(5)]


@pytest.mark.parametrize("protocol,mechanism,user,password", CASES, ids=IDS)
def test_aiokafka(secure: SecureBroker, protocol: str, mechanism: str | None, user: str | None,
                  password: str | None) -> None:
    from aiokafka.helpers import create_ssl_context

    kw: dict[str, Any] = {"bootstrap_servers": f"127.0.0.1:{secure.ports[protocol]}", "security_protocol": protocol}
    if "SSL" in protocol:
        kw["ssl_context"] = create_ssl_context(cafile=str(secure.pki.ca))
    if mechanism:
        kw.update(sasl_mechanism=mechanism, sasl_plain_username=user, sasl_plain_password=password)
    assert asyncio.run(aiokafka_round_trip(kw, _topic())) == [f"v{i}".encode() for i in range(5)]


def _kcat_args(secure: SecureBroker, protocol: str, mechanism: str | None, user: str | None,
               password: str | None) -> list[str]:
    kcat = shutil.which("kcat")
    if kcat is None:
        pytest.skip("kcat is not installed (make system-deps)")
    args = [kcat, "-b", f"127.0.0.1:{secure.ports[protocol]}", "-X", f"security.protocol={protocol}"]
    if "SSL" in protocol:
        args += ["-X", f"ssl.ca.location={secure.pki.ca}"]
    if mechanism:
        args += ["-X", f"sasl.mechanisms={mechanism}", "-X", f"sasl.username={user}", "-X", f"sasl.password={password}"]
    return args


@pytest.mark.parametrize("protocol,mechanism,user,password", CASES, ids=IDS)
def test_kcat(secure: SecureBroker, protocol: str, mechanism: str | None, user: str | None,
              password: str | None) -> None:
    args = _kcat_args(secure, protocol, mechanism, user, password)
    topic = _topic()
    subprocess.run(args + ["-P", "-t", topic], input=b"one\ntwo\nthree\n", check=True, timeout=30)
    out = subprocess.run(args + ["-C", "-t", topic, "-o", "beginning", "-e", "-q"], capture_output=True,
                         check=True, timeout=30)
    assert out.stdout.split() == [b"one", b"two", b"three"]


# --- refusals ---------------------------------------------------------------------------


def _still_serves(secure: SecureBroker) -> None:
    conf = secure.conf("SASL_SSL", "SCRAM-SHA-256", SCRAM_USER, SCRAM_PASSWORD)
    assert AdminClient(conf).list_topics(timeout=10).brokers


@pytest.mark.parametrize("protocol,mechanism,user", [("SASL_PLAINTEXT", "PLAIN", "alice"),
                                                     ("SASL_SSL", "SCRAM-SHA-256", SCRAM_USER),
                                                     ("SASL_PLAINTEXT", "SCRAM-SHA-512", "nobody")])
def test_wrong_password_every_client(secure: SecureBroker, protocol: str, mechanism: str, user: str,
                                     caplog: pytest.LogCaptureFixture) -> None:
    conf = secure.conf(protocol, mechanism, user, "wrong-password")
    expected = ("Invalid username or password" if mechanism == "PLAIN"
                else f"invalid credentials with SASL mechanism {mechanism}")
    # confluent-kafka
    errors: list[KafkaError] = []
    admin = AdminClient({**conf, "error_cb": errors.append})
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=5)
    admin.poll(0.5)
    assert any(e.code() == KafkaError._AUTHENTICATION and expected in e.str() for e in errors), errors
    # kafka-python: bootstrapping fails; the reason it logs is the broker's.
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError as KPError

    kw: dict[str, Any] = {"bootstrap_servers": conf["bootstrap.servers"], "security_protocol": protocol,
                          "sasl_mechanism": mechanism, "sasl_plain_username": user,
                          "sasl_plain_password": "wrong-password"}
    caplog.clear()
    with caplog.at_level(logging.INFO), pytest.raises(KPError):
        KafkaAdminClient(**kw, bootstrap_timeout_ms=3000, **({"ssl_cafile": str(secure.pki.ca)}
                                                            if "SSL" in protocol else {}))
    assert any(expected in r.getMessage() for r in caplog.records if r.name.startswith("kafka")), \
        [r.getMessage() for r in caplog.records]
    # aiokafka: start() fails; the reason it logs is the broker's.
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError as AIOError
    from aiokafka.helpers import create_ssl_context

    async def aio() -> None:
        producer = AIOKafkaProducer(**kw, **({"ssl_context": create_ssl_context(cafile=str(secure.pki.ca))}
                                             if "SSL" in protocol else {}))
        try:
            await producer.start()
        finally:
            await producer.stop()

    caplog.clear()
    with caplog.at_level(logging.INFO), pytest.raises(AIOError):
        asyncio.run(aio())
    assert any(expected in r.getMessage() for r in caplog.records if r.name.startswith("aiokafka")), \
        [r.getMessage() for r in caplog.records]
    # kcat
    args = _kcat_args(secure, protocol, mechanism, user, "wrong-password")
    out = subprocess.run(args + ["-L", "-m", "5"], capture_output=True, timeout=30)
    assert out.returncode != 0
    assert b"Authentication failed" in out.stderr or b"authentication" in out.stderr.lower(), out.stderr
    _still_serves(secure)


def _raw(port: int, context: ssl.SSLContext | None = None) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return context.wrap_socket(sock, server_hostname="localhost") if context else sock


def test_requests_before_authentication_close_the_connection(secure: SecureBroker) -> None:
    from kio.schema.api_versions.v3.request import ApiVersionsRequest
    from kio.schema.metadata.v12.request import MetadataRequest
    from kio.schema.sasl_authenticate.v2.request import SaslAuthenticateRequest
    from kio.schema.sasl_handshake.v1.request import SaslHandshakeRequest

    metadata = MetadataRequest(topics=None, allow_auto_topic_creation=False,
                               include_topic_authorized_operations=False)
    port = secure.ports["SASL_PLAINTEXT"]
    # A request other than ApiVersions/SaslHandshake before authenticating: closed, no answer.
    with _raw(port) as sock:
        sock.sendall(encode(ApiKey.METADATA, 12, metadata))
        assert recv_frame(sock) is None
    # ApiVersions is answered; then a handshake for a mechanism not enabled: refused with
    # the enabled list, then closed.
    with _raw(port) as sock:
        sock.sendall(encode(ApiKey.API_VERSIONS, 3, ApiVersionsRequest(
            client_software_name="raw", client_software_version="1")))
        versions = decode(ApiKey.API_VERSIONS, 3, recv_frame(sock) or b"")
        assert versions.error_code == 0  # type: ignore[attr-defined]
        sock.sendall(encode(ApiKey.SASL_HANDSHAKE, 1, SaslHandshakeRequest(mechanism="GSSAPI"), 2))
        answer = decode(ApiKey.SASL_HANDSHAKE, 1, recv_frame(sock) or b"")
        assert answer.error_code == 33  # type: ignore[attr-defined]
        assert list(answer.mechanisms) == ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]  # type: ignore[attr-defined]
        assert is_closed(sock)
    # After a handshake, only SaslAuthenticate: a Metadata request closes the connection.
    with _raw(port) as sock:
        sock.sendall(encode(ApiKey.SASL_HANDSHAKE, 1, SaslHandshakeRequest(mechanism="PLAIN")))
        assert decode(ApiKey.SASL_HANDSHAKE, 1, recv_frame(sock) or b"").error_code == 0  # type: ignore[attr-defined]
        sock.sendall(encode(ApiKey.METADATA, 12, metadata, 2))
        assert recv_frame(sock) is None
    # A failed SaslAuthenticate: SASL_AUTHENTICATION_FAILED with Kafka's message, then closed.
    with _raw(port) as sock:
        sock.sendall(encode(ApiKey.SASL_HANDSHAKE, 1, SaslHandshakeRequest(mechanism="PLAIN")))
        recv_frame(sock)
        sock.sendall(encode(ApiKey.SASL_AUTHENTICATE, 2, SaslAuthenticateRequest(auth_bytes=b"\0alice\0nope"), 2))
        answer = decode(ApiKey.SASL_AUTHENTICATE, 2, recv_frame(sock) or b"")
        assert answer.error_code == 58  # type: ignore[attr-defined]
        assert answer.error_message == "Authentication failed: Invalid username or password"  # type: ignore
        assert is_closed(sock)
    # Legacy handshake v0 then a bare PLAIN token (KIP-43): authenticated, then Metadata works.
    with _raw(port) as sock:
        sock.sendall(encode(ApiKey.SASL_HANDSHAKE, 0, SaslHandshakeRequest(mechanism="PLAIN")))
        assert decode(ApiKey.SASL_HANDSHAKE, 0, recv_frame(sock) or b"").error_code == 0  # type: ignore
        token = b"\0alice\0alice-secret"
        sock.sendall(len(token).to_bytes(4, "big") + token)
        assert recv_frame(sock) == b""
        sock.sendall(encode(ApiKey.METADATA, 12, metadata, 3))
        brokers = decode(ApiKey.METADATA, 12, recv_frame(sock) or b"").brokers  # type: ignore[attr-defined]
        assert [b.port for b in brokers] == [port]
    # On a PLAINTEXT listener, SaslHandshake is an ILLEGAL_SASL_STATE answer, as in Kafka.
    with _raw(secure.ports["PLAINTEXT"]) as sock:
        sock.sendall(encode(ApiKey.SASL_HANDSHAKE, 1, SaslHandshakeRequest(mechanism="PLAIN")))
        assert decode(ApiKey.SASL_HANDSHAKE, 1, recv_frame(sock) or b"").error_code == 34  # type: ignore
    _still_serves(secure)


def test_scram_user_admin(secure: SecureBroker) -> None:
    """AlterUserScramCredentials / DescribeUserScramCredentials through a real AdminClient:
    a new user logs in; a deleted one no longer can; Kafka's errors for bad alterations."""
    admin = AdminClient(secure.conf("SASL_SSL", "SCRAM-SHA-512", SCRAM_USER, SCRAM_PASSWORD))
    sha256 = ScramMechanism.SCRAM_SHA_256
    futures = admin.alter_user_scram_credentials([
        UserScramCredentialUpsertion("carol", ScramCredentialInfo(sha256, 8192), b"carol-pw", b"salt-of-carol")])
    futures["carol"].result(15)
    described = admin.describe_user_scram_credentials(["carol"])["carol"].result(15)
    assert [(i.mechanism, i.iterations) for i in described.scram_credential_infos] == [(sha256, 8192)]
    conf = secure.conf("SASL_PLAINTEXT", "SCRAM-SHA-256", "carol", "carol-pw")
    assert AdminClient(conf).list_topics(timeout=10).brokers
    # Refusals, Kafka's codes.
    futures = admin.alter_user_scram_credentials([
        UserScramCredentialUpsertion("dave", ScramCredentialInfo(sha256, 1000), b"pw"),
        UserScramCredentialDeletion("erin", sha256)])
    with pytest.raises(KafkaException) as few:
        futures["dave"].result(15)
    assert few.value.args[0].code() == KafkaError.UNACCEPTABLE_CREDENTIAL
    with pytest.raises(KafkaException) as missing:
        futures["erin"].result(15)
    assert missing.value.args[0].code() == KafkaError.RESOURCE_NOT_FOUND
    # kafka-python's admin client sees the same users.
    from kafka.admin import KafkaAdminClient

    kp_admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{secure.ports['PLAINTEXT']}")
    users = kp_admin.describe_user_scram_credentials(["carol", SCRAM_USER])
    kp_admin.close()
    assert [c["iterations"] for c in users["carol"]["credential_infos"]] == [8192]
    assert len(users[SCRAM_USER]["credential_infos"]) == 2
    # Deleted: carol can no longer log in.
    admin.alter_user_scram_credentials([UserScramCredentialDeletion("carol", sha256)])["carol"].result(15)
    with pytest.raises(KafkaException):
        AdminClient(conf).list_topics(timeout=4)


def test_mutual_tls_required(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    s = _start(tmp_path / "mtls", pki, {"listener.name.ssl.ssl.client.auth": "required",
                                         "listener.name.ssl.ssl.truststore.location": str(pki.ca)})
    try:
        conf = s.conf("SSL")
        with pytest.raises(KafkaException):
            AdminClient(conf).list_topics(timeout=4)
        with_cert = {**conf, "ssl.certificate.location": str(pki.client_cert),
                     "ssl.key.location": str(pki.client_key)}
        topic = _topic()
        admin = AdminClient(with_cert)
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(15)
        producer = Producer(with_cert)
        producer.produce(topic, b"mtls")
        assert producer.flush(15) == 0
        consumer = Consumer({**with_cert, "group.id": "x", "enable.auto.commit": False})
        consumer.assign([TopicPartition(topic, 0, 0)])
        msg = consumer.poll(15)
        consumer.close()
        assert msg is not None and msg.value() == b"mtls"
        # A certificate from a CA the broker does not trust is refused too.
        other = make_pki(tmp_path / "other")
        stranger = {**conf, "ssl.certificate.location": str(other.client_cert),
                    "ssl.key.location": str(other.client_key)}
        with pytest.raises(KafkaException):
            AdminClient(stranger).list_topics(timeout=4)
    finally:
        s.broker.kill()



def test_passwords_are_sensitive_in_describe_configs(secure: SecureBroker) -> None:
    from confluent_kafka.admin import ConfigResource, ResourceType

    admin = AdminClient(secure.conf("SASL_SSL", "SCRAM-SHA-512", SCRAM_USER, SCRAM_PASSWORD))
    resource = ConfigResource(ResourceType.BROKER, "0")
    entries = admin.describe_configs([resource])[resource].result(15)
    assert entries["sasl.jaas.config"].is_sensitive and entries["sasl.jaas.config"].value is None
    assert not entries["ssl.keystore.location"].is_sensitive
    assert entries["ssl.keystore.location"].value == str(secure.pki.server)


def test_users_cli_through_a_broker(secure: SecureBroker) -> None:
    from tests.helpers import env_with_repo_on_path

    def users(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "moldau.cli.main", "users", *args, "--bootstrap-server",
                               f"127.0.0.1:{secure.ports['PLAINTEXT']}", "--timeout", "10"], input=stdin,
                              capture_output=True, text=True, timeout=60, env=env_with_repo_on_path())

    added = users("add", "dan", "--mechanism", "SCRAM-SHA-512", "--iterations", "5000", stdin="dan-pw\n")
    assert added.returncode == 0, added.stderr
    assert "dan\tSCRAM-SHA-512 (iterations 5000)" in users("list").stdout
    conf = secure.conf("SASL_SSL", "SCRAM-SHA-512", "dan", "dan-pw")
    assert AdminClient(conf).list_topics(timeout=10).brokers
    assert users("delete", "dan").returncode == 0
    assert "dan\t" not in users("list").stdout
    refused = users("delete", "dan")
    assert refused.returncode == 1 and "RESOURCE_NOT_FOUND" in refused.stderr, refused.stderr
    assert users("add", "x", "--password", "p", "--iterations", "100").returncode == 1

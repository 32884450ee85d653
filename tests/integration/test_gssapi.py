"""SASL GSSAPI (Kerberos) against a real MIT KDC (tests/kerberos.py) with real clients:
kafka-python and aiokafka (python-gssapi) and kcat (librdkafka through cyrus-sasl's GSSAPI
plugin, which runs `kinit` with the keytab) produce and consume, over SASL_PLAINTEXT and
SASL_SSL; the principal that `sasl.kerberos.principal.to.local.rules` give is the one ACLs
see; the broker logs in to itself (inter-broker, `sasl.mechanism.inter.broker.protocol=GSSAPI`)
with its keytab; the RFC 4752 exchange byte by byte, framed and legacy; re-authentication; a
ticket for another service, a garbage token, a security layer not offered and a principal the
rules cannot map are refused with SASL_AUTHENTICATION_FAILED while the broker keeps serving.
confluent-kafka's PyPI wheels have no GSSAPI (librdkafka built without cyrus-sasl): a test
says so if that changes.

Principals: kafka/localhost (the broker; rules map it to `broker`, a super user),
alice (DEFAULT rule: `alice`), BOB (a rule lower-cases it: `bob`), eve/admin (a rule leaves it
`eve/admin@MOLDAU.TEST`, not a short name: refused).
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import struct
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from moldau.protocol.apis import ApiKey
from tests.certs import Pki, make_pki
from tests.helpers import BrokerProcess, aiokafka_round_trip, free_port
from tests.kerberos import INSTALL_HINT, REALM, Kdc, missing_binaries, start_kdc
from tests.raw import decode, encode, is_closed, recv_frame

pytestmark = pytest.mark.skipif(bool(missing_binaries()), reason=INSTALL_HINT)

PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" '
              'password="admin-secret" user_admin="admin-secret";')
# The third rule leaves */admin principals non-simple, which Kafka refuses ("Non-simple name").
RULES = (r"RULE:[2:$1](kafka)s/kafka/broker/,RULE:[1:$1@$0](BOB@MOLDAU\.TEST)s/@.*//L,"
         r"RULE:[2:$1/$2@$0](.*/admin@MOLDAU\.TEST),DEFAULT")


@dataclass
class KerberizedBroker:
    broker: BrokerProcess
    kdc: Kdc
    port: int  # SASL_PLAINTEXT, advertised as localhost (the host in kafka/localhost)
    keytabs: dict[str, Path]
    ssl_port: int  # SASL_SSL, GSSAPI only
    pki: Pki

    @property
    def bootstrap(self) -> str:
        return f"localhost:{self.port}"

    def admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.bootstrap, "security.protocol": "SASL_PLAINTEXT",
                            "sasl.mechanism": "PLAIN", "sasl.username": "admin", "sasl.password": "admin-secret",
                            "socket.timeout.ms": 10000})


def _krb5_jaas(keytab: Path) -> str:
    return ("com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true storeKey=true "
            f'keyTab="{keytab}" principal="kafka/localhost@{REALM}";')


@pytest.fixture(scope="module")
def kerberized(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KerberizedBroker]:
    root = tmp_path_factory.mktemp("gssapi")
    kdc = start_kdc(root / "kdc")
    broker: BrokerProcess | None = None
    saved = kdc.activate()  # the broker inherits it; kafka-python uses it in this process
    try:
        keytabs = {name: kdc.add_principal(name) for name in ("kafka/localhost", "alice", "BOB", "eve/admin",
                                                              "other/localhost")}
        port, ssl_port = free_port(), free_port()
        pki = make_pki(root / "pki")
        broker = BrokerProcess(root / "broker", {
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "2",
            "group.initial.rebalance.delay.ms": "0",
            "sasl.enabled.mechanisms": "GSSAPI,PLAIN",
            "listener.name.sasl_plaintext.gssapi.sasl.jaas.config": _krb5_jaas(keytabs["kafka/localhost"]),
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
            "sasl.kerberos.service.name": "kafka",
            "sasl.kerberos.principal.to.local.rules": RULES,
            "security.inter.broker.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism.inter.broker.protocol": "GSSAPI",
            "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
            "super.users": "User:broker;User:admin",
            "connections.max.reauth.ms": "600000",  # KIP-368 on, long enough for no client to need it
            "ssl.keystore.location": str(pki.server),
            "listener.name.sasl_ssl.sasl.enabled.mechanisms": "GSSAPI",
            "listener.name.sasl_ssl.gssapi.sasl.jaas.config": _krb5_jaas(keytabs["kafka/localhost"]),
        })
        broker.overrides["listeners"] = (f"PLAINTEXT://127.0.0.1:{broker.port},SASL_PLAINTEXT://127.0.0.1:{port},"
                                         f"SASL_SSL://127.0.0.1:{ssl_port}")
        broker.overrides["advertised.listeners"] = (f"PLAINTEXT://127.0.0.1:{broker.port},"
                                                    f"SASL_PLAINTEXT://localhost:{port},SASL_SSL://localhost:{ssl_port}")
        broker.start()
        yield KerberizedBroker(broker, kdc, port, keytabs, ssl_port, pki)
    finally:
        if broker is not None:
            broker.kill()
            print(f"\n===== broker log =====\n{broker.log()[-8000:]}")
        kdc.stop()
        print(f"\n===== KDC log =====\n{kdc.log()[-4000:]}")
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _topic() -> str:
    return f"krb-{uuid.uuid4().hex[:8]}"


def _grant(k: KerberizedBroker, topic: str, user: str) -> None:
    admin = k.admin()
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(15)
    bindings = [AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, f"User:{user}", "*", op,
                           AclPermissionType.ALLOW)
                for op in (AclOperation.WRITE, AclOperation.READ, AclOperation.DESCRIBE)]
    bindings.append(AclBinding(ResourceType.GROUP, "*", ResourcePatternType.LITERAL, f"User:{user}", "*",
                               AclOperation.READ, AclPermissionType.ALLOW))
    for future in admin.create_acls(bindings).values():
        future.result(15)


def _kafka_python_as(monkeypatch: pytest.MonkeyPatch, k: KerberizedBroker, principal: str) -> dict[str, Any]:
    """kafka-python settings; its python-gssapi takes the client's keys from the keytab
    (MIT's KRB5_CLIENT_KTNAME) into a credential cache of its own."""
    monkeypatch.setenv("KRB5_CLIENT_KTNAME", str(k.keytabs[principal]))
    monkeypatch.setenv("KRB5CCNAME", f"MEMORY:kp-{uuid.uuid4().hex}")
    return {"bootstrap_servers": k.bootstrap, "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "GSSAPI",
            "sasl_kerberos_service_name": "kafka"}


def test_kafka_python_produce_consume_as_mapped_principal(kerberized: KerberizedBroker,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KTopicPartition
    from kafka.errors import TopicAuthorizationFailedError

    allowed, denied = _topic(), _topic()
    _grant(kerberized, allowed, "alice")
    _grant(kerberized, denied, "bob")
    kw = _kafka_python_as(monkeypatch, kerberized, "alice")
    producer = KafkaProducer(**kw, max_block_ms=10000)
    for i in range(5):
        producer.send(allowed, f"v{i}".encode()).get(timeout=20)
    # bob's topic: alice (User:alice by the DEFAULT rule) may not write it.
    with pytest.raises(TopicAuthorizationFailedError):
        producer.send(denied, b"x").get(timeout=20)
    producer.close()
    consumer = KafkaConsumer(**kw, consumer_timeout_ms=10000, auto_offset_reset="earliest")
    consumer.assign([KTopicPartition(allowed, 0)])
    got = [m.value for _, m in zip(range(5), consumer, strict=False)]
    consumer.close()
    assert got == [f"v{i}".encode() for i in range(5)]


def test_aiokafka_produce_consume(kerberized: KerberizedBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    topic = _topic()
    _grant(kerberized, topic, "alice")
    _kafka_python_as(monkeypatch, kerberized, "alice")  # the same environment: keys from alice's keytab
    kw: dict[str, Any] = {"bootstrap_servers": kerberized.bootstrap, "security_protocol": "SASL_PLAINTEXT",
                          "sasl_mechanism": "GSSAPI", "sasl_kerberos_service_name": "kafka"}
    assert asyncio.run(aiokafka_round_trip(kw, topic)) == [f"v{i}".encode() for i in range(5)]


def _kcat(k: KerberizedBroker, principal: str, tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    kcat = shutil.which("kcat")
    if kcat is None:
        pytest.fail("kcat is not installed (make system-deps)")
    features = subprocess.run([kcat, "-V"], capture_output=True, text=True, timeout=10).stdout
    assert "sasl_gssapi" in features, f"this kcat's librdkafka has no GSSAPI: {features}"
    if shutil.which("kinit") is None:
        pytest.fail("kinit is not installed (krb5-user; make system-deps): librdkafka runs it with the keytab")
    args = [kcat, "-b", k.bootstrap, "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=GSSAPI",
            "-X", "sasl.kerberos.service.name=kafka", "-X", f"sasl.kerberos.keytab={k.keytabs[principal]}",
            "-X", f"sasl.kerberos.principal={principal}@{REALM}"]
    env = {**os.environ, **k.kdc.env, "KRB5CCNAME": f"FILE:{tmp_path}/kcat-ccache"}
    env.pop("KRB5_CLIENT_KTNAME", None)
    return args, env


def test_kcat_produce_consume_as_mapped_principal(kerberized: KerberizedBroker, tmp_path: Path) -> None:
    mine, alices = _topic(), _topic()
    _grant(kerberized, mine, "bob")  # BOB@MOLDAU.TEST is User:bob by the second rule
    _grant(kerberized, alices, "alice")
    args, env = _kcat(kerberized, "BOB", tmp_path)
    subprocess.run(args + ["-P", "-t", mine], input=b"one\ntwo\nthree\n", env=env, check=True, timeout=30)
    out = subprocess.run(args + ["-C", "-t", mine, "-o", "beginning", "-e", "-q"], capture_output=True, env=env,
                         check=True, timeout=30)
    assert out.stdout.split() == [b"one", b"two", b"three"]
    refused = subprocess.run(args + ["-P", "-t", alices], input=b"nope\n", env=env, capture_output=True, timeout=30)
    assert refused.returncode != 0 and b"authoriz" in refused.stderr.lower(), refused.stderr


def test_sasl_ssl(kerberized: KerberizedBroker, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """GSSAPI inside TLS (SASL_SSL, the listener's only mechanism): kafka-python as alice and
    kcat as BOB, each on its own topic."""
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KTopicPartition

    alices, bobs = _topic(), _topic()
    _grant(kerberized, alices, "alice")
    _grant(kerberized, bobs, "bob")
    kw = {**_kafka_python_as(monkeypatch, kerberized, "alice"), "bootstrap_servers": f"localhost:{kerberized.ssl_port}",
          "security_protocol": "SASL_SSL", "ssl_cafile": str(kerberized.pki.ca)}
    producer = KafkaProducer(**kw, max_block_ms=10000)
    producer.send(alices, b"over tls").get(timeout=20)
    producer.close()
    consumer = KafkaConsumer(**kw, consumer_timeout_ms=10000, auto_offset_reset="earliest")
    consumer.assign([KTopicPartition(alices, 0)])
    assert [m.value for _, m in zip(range(1), consumer, strict=False)] == [b"over tls"]
    consumer.close()
    args, env = _kcat(kerberized, "BOB", tmp_path)
    args = [a.replace(kerberized.bootstrap, f"localhost:{kerberized.ssl_port}") for a in args]
    args = [a.replace("security.protocol=SASL_PLAINTEXT", "security.protocol=SASL_SSL") for a in args]
    args += ["-X", f"ssl.ca.location={kerberized.pki.ca}"]
    subprocess.run(args + ["-P", "-t", bobs], input=b"tls\n", env=env, check=True, timeout=30)
    out = subprocess.run(args + ["-C", "-t", bobs, "-o", "beginning", "-e", "-q"], capture_output=True, env=env,
                         check=True, timeout=30)
    assert out.stdout.split() == [b"tls"]


def test_confluent_kafka_wheel_has_no_gssapi() -> None:
    """If a confluent-kafka wheel ever ships GSSAPI, this says so (and it should be tested)."""
    with pytest.raises(KafkaException) as exc:
        AdminClient({"bootstrap.servers": "localhost:1", "security.protocol": "SASL_PLAINTEXT",
                     "sasl.mechanism": "GSSAPI"})
    assert "No provider for SASL mechanism GSSAPI" in str(exc.value)


# --- the exchange on the wire, and refusals ----------------------------------------------


def _raw_client(k: KerberizedBroker, principal: str, service: str = "kafka") -> Any:
    import gssapi

    creds = gssapi.Credentials(name=gssapi.Name(f"{principal}@{REALM}", gssapi.NameType.kerberos_principal),
                               usage="initiate", store={"client_keytab": str(k.keytabs[principal]),
                                                        "ccache": f"MEMORY:raw-{uuid.uuid4().hex}"})
    target = gssapi.Name(f"{service}@localhost", gssapi.NameType.hostbased_service)
    return gssapi.SecurityContext(name=target, creds=creds, usage="initiate",
                                  flags=[gssapi.RequirementFlag.mutual_authentication])


def _authenticate(sock: socket.socket, token: bytes, correlation_id: int) -> Any:
    from kio.schema.sasl_authenticate.v2.request import SaslAuthenticateRequest

    sock.sendall(encode(ApiKey.SASL_AUTHENTICATE, 2, SaslAuthenticateRequest(auth_bytes=token), correlation_id))
    return decode(ApiKey.SASL_AUTHENTICATE, 2, recv_frame(sock) or b"")


def _metadata_ok(sock: socket.socket, correlation_id: int) -> bool:
    from kio.schema.metadata.v12.request import MetadataRequest

    sock.sendall(encode(ApiKey.METADATA, 12, MetadataRequest(
        topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=False), correlation_id))
    frame = recv_frame(sock)
    return frame is not None and [b.host for b in decode(ApiKey.METADATA, 12, frame).brokers] == ["localhost"]  # type: ignore[attr-defined]


def test_rfc4752_exchange_framed_and_legacy(kerberized: KerberizedBroker) -> None:
    """SaslHandshake v1 + SaslAuthenticate, and v0 with bare tokens (KIP-43), byte by byte:
    the server offers only "no security layer" with Java's 65536-octet maximum, and the
    last step of the legacy exchange sends nothing (Java's GssKrb5Server returns null)."""
    from kio.schema.sasl_handshake.v1.request import SaslHandshakeRequest

    with socket.create_connection(("127.0.0.1", kerberized.port), timeout=10) as sock:
        sock.sendall(encode(ApiKey.SASL_HANDSHAKE, 1, SaslHandshakeRequest(mechanism="GSSAPI")))
        answer = decode(ApiKey.SASL_HANDSHAKE, 1, recv_frame(sock) or b"")
        assert answer.error_code == 0 and list(answer.mechanisms) == ["GSSAPI", "PLAIN"]  # type: ignore
        ctx = _raw_client(kerberized, "alice")
        reply = _authenticate(sock, ctx.step(None), 2)
        assert reply.error_code == 0  # type: ignore[attr-defined]
        assert ctx.step(bytes(reply.auth_bytes)) is None and ctx.complete  # type: ignore[attr-defined]
        offer = _authenticate(sock, b"", 3)
        unwrapped = ctx.unwrap(bytes(offer.auth_bytes))  # type: ignore[attr-defined]
        assert unwrapped.message == b"\x01\x01\x00\x00" and not unwrapped.encrypted
        final = _authenticate(sock, ctx.wrap(b"\x01\x01\x00\x00" + f"alice@{REALM}".encode(), False).message, 4)
        assert final.error_code == 0 and bytes(final.auth_bytes) == b""  # type: ignore[attr-defined]
        assert _metadata_ok(sock, 5)
    with socket.create_connection(("127.0.0.1", kerberized.port), timeout=10) as sock:
        sock.sendall(encode(ApiKey.SASL_HANDSHAKE, 0, SaslHandshakeRequest(mechanism="GSSAPI")))
        assert decode(ApiKey.SASL_HANDSHAKE, 0, recv_frame(sock) or b"").error_code == 0  # type: ignore

        def raw(token: bytes) -> bytes | None:
            sock.sendall(struct.pack(">i", len(token)) + token)
            return recv_frame(sock)

        ctx = _raw_client(kerberized, "alice")
        assert ctx.step(raw(ctx.step(None))) is None and ctx.complete
        assert ctx.unwrap(raw(b"")).message == b"\x01\x01\x00\x00"
        final = ctx.wrap(b"\x01\x00\x00\x00", False).message
        sock.sendall(struct.pack(">i", len(final)) + final)  # no answer: straight to requests
        assert _metadata_ok(sock, 6)


def _refused(sock: socket.socket, token: bytes) -> str:
    from kio.schema.sasl_handshake.v1.request import SaslHandshakeRequest

    sock.sendall(encode(ApiKey.SASL_HANDSHAKE, 1, SaslHandshakeRequest(mechanism="GSSAPI")))
    assert decode(ApiKey.SASL_HANDSHAKE, 1, recv_frame(sock) or b"").error_code == 0  # type: ignore
    answer = _authenticate(sock, token, 2)
    assert answer.error_code == 58, answer  # type: ignore[attr-defined]  # SASL_AUTHENTICATION_FAILED
    assert is_closed(sock)
    return str(answer.error_message)  # type: ignore[attr-defined]


def test_refusals(kerberized: KerberizedBroker, monkeypatch: pytest.MonkeyPatch,
                  caplog: pytest.LogCaptureFixture) -> None:
    generic = "Authentication failed during authentication due to invalid credentials with SASL mechanism GSSAPI"
    # A ticket for another service (its key is not in the broker's keytab).
    with socket.create_connection(("127.0.0.1", kerberized.port), timeout=10) as sock:
        assert _refused(sock, _raw_client(kerberized, "alice", service="other").step(None)) == generic
    # Not a Kerberos token at all.
    with socket.create_connection(("127.0.0.1", kerberized.port), timeout=10) as sock:
        assert _refused(sock, b"\x60\x03garbage") == generic
    # A valid login whose principal sasl.kerberos.principal.to.local.rules cannot map.
    with socket.create_connection(("127.0.0.1", kerberized.port), timeout=10) as sock:
        from kio.schema.sasl_handshake.v1.request import SaslHandshakeRequest

        sock.sendall(encode(ApiKey.SASL_HANDSHAKE, 1, SaslHandshakeRequest(mechanism="GSSAPI")))
        recv_frame(sock)
        ctx = _raw_client(kerberized, "eve/admin")
        ctx.step(bytes(_authenticate(sock, ctx.step(None), 2).auth_bytes))  # type: ignore[attr-defined]
        offer = _authenticate(sock, b"", 3)
        answer = _authenticate(sock, ctx.wrap(b"\x01\x00\x00\x00", False).message, 4)
        assert offer.error_code == 0 and answer.error_code == 58  # type: ignore[attr-defined]
        assert "Non-simple name eve/admin@MOLDAU.TEST" in answer.error_message  # type: ignore[attr-defined]
        assert is_closed(sock)
    # A security layer the broker did not offer (integrity protection).
    with socket.create_connection(("127.0.0.1", kerberized.port), timeout=10) as sock:
        answer = _login(sock, kerberized, "alice", 1, layer=b"\x02")
        assert answer.error_code == 58  # type: ignore[attr-defined]
        assert "client selected unsupported protection 2" in answer.error_message  # type: ignore[attr-defined]
        assert is_closed(sock)
    # kafka-python as eve: refused, and the reason it logs is the broker's.
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError as KPError

    kw = _kafka_python_as(monkeypatch, kerberized, "eve/admin")
    caplog.clear()
    with caplog.at_level(logging.INFO), pytest.raises(KPError):
        KafkaAdminClient(**kw, bootstrap_timeout_ms=4000)
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("kafka")]
    assert any("Non-simple name eve/admin@MOLDAU.TEST" in m for m in messages), messages
    # The broker still serves everyone else.
    assert kerberized.admin().list_topics(timeout=10).brokers
    assert kerberized.broker.alive()
    assert "Traceback" not in kerberized.broker.log()


def test_broker_logs_in_to_itself_with_gssapi(kerberized: KerberizedBroker) -> None:
    """Inter-broker: LeaderAndIsr to itself went over SASL GSSAPI as kafka/localhost (User:broker,
    a super user): a topic created now gets a leader and takes writes."""
    topic = _topic()
    admin = kerberized.admin()
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(15)
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": kerberized.bootstrap, "security.protocol": "SASL_PLAINTEXT",
                         "sasl.mechanism": "PLAIN", "sasl.username": "admin", "sasl.password": "admin-secret",
                         "message.timeout.ms": 10000})
    errors: list[KafkaError | None] = []
    for p in range(2):
        producer.produce(topic, b"v", partition=p, on_delivery=lambda err, _m: errors.append(err))
    assert producer.flush(15) == 0 and errors == [None, None]
    assert "CLUSTER_AUTHORIZATION_FAILED" not in kerberized.broker.log()


def test_startup_refuses_a_keytab_without_the_principal(kerberized: KerberizedBroker) -> None:
    """The broker's keys are checked when the config is read: a keytab holding another
    principal's keys is a config error naming both, not a failure at the first login."""
    from moldau.server.config import BrokerConfig, ConfigError

    with pytest.raises(ConfigError, match=r"cannot use principal kafka/localhost@MOLDAU.TEST from keyTab "
                                          r".*alice.keytab: .*"):
        BrokerConfig.from_sources({
            "listeners": "SASL_PLAINTEXT://127.0.0.1:0,PLAINTEXT://127.0.0.1:0", "sasl.enabled.mechanisms": "GSSAPI",
            "sasl.kerberos.service.name": "kafka", "sasl.jaas.config": _krb5_jaas(kerberized.keytabs["alice"])})


def test_concurrent_logins(kerberized: KerberizedBroker) -> None:
    """Logins run on worker threads sharing the listener's acceptor credentials: sixteen at
    once all complete, each connection then served."""
    from concurrent.futures import ThreadPoolExecutor

    from kio.schema.sasl_handshake.v1.request import SaslHandshakeRequest

    contexts = [_raw_client(kerberized, "alice") for _ in range(16)]
    first_tokens = [ctx.step(None) for ctx in contexts]  # tickets fetched here, not in the race below

    def login(n: int) -> bool:
        ctx = contexts[n]
        with socket.create_connection(("127.0.0.1", kerberized.port), timeout=10) as sock:
            sock.sendall(encode(ApiKey.SASL_HANDSHAKE, 1, SaslHandshakeRequest(mechanism="GSSAPI")))
            recv_frame(sock)
            ctx.step(bytes(_authenticate(sock, first_tokens[n], 2).auth_bytes))  # type: ignore[attr-defined]
            ctx.unwrap(bytes(_authenticate(sock, b"", 3).auth_bytes))  # type: ignore[attr-defined]
            final = _authenticate(sock, ctx.wrap(b"\x01\x00\x00\x00", False).message, 4)
            return final.error_code == 0 and _metadata_ok(sock, 5)  # type: ignore[attr-defined]

    with ThreadPoolExecutor(16) as pool:
        assert list(pool.map(login, range(16))) == [True] * 16


def test_listener_overrides(kerberized: KerberizedBroker) -> None:
    """listener.name.<l>.sasl.kerberos.service.name and ...principal.to.local.rules override
    the broker-wide ones for that listener only, as Kafka's listener prefix does."""
    from moldau.server.config import BrokerConfig, ConfigError
    from moldau.server.security.kerberos_name import KerberosName

    props = {"listeners": "PLAINTEXT://127.0.0.1:0,A://127.0.0.1:0,B://127.0.0.1:0",
             "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,A:SASL_PLAINTEXT,B:SASL_PLAINTEXT",
             "sasl.enabled.mechanisms": "GSSAPI", "sasl.kerberos.service.name": "kafka",
             "sasl.jaas.config": _krb5_jaas(kerberized.keytabs["kafka/localhost"]),
             "listener.name.b.sasl.kerberos.service.name": "kafka-b",
             "listener.name.b.sasl.kerberos.principal.to.local.rules": "RULE:[1:$1]/U"}
    c = BrokerConfig.from_sources(props)
    a, b = c.security.listeners["A"].gssapi, c.security.listeners["B"].gssapi
    assert (a.service_name, b.service_name) == ("kafka", "kafka-b")
    alice = KerberosName.parse(f"alice@{REALM}")
    assert (a.short_namer.short_name(alice), b.short_namer.short_name(alice)) == ("alice", "ALICE")
    with pytest.raises(ConfigError, match=r"listener.name.b.sasl.kerberos.principal.to.local.rules: Invalid rule"):
        BrokerConfig.from_sources({**props, "listener.name.b.sasl.kerberos.principal.to.local.rules": "RULE:x"})


def _login(sock: socket.socket, k: KerberizedBroker, principal: str, correlation_id: int,
           layer: bytes = b"\x01") -> Any:
    """A framed GSSAPI login on `sock`; the last SaslAuthenticate answer."""
    from kio.schema.sasl_handshake.v1.request import SaslHandshakeRequest

    sock.sendall(encode(ApiKey.SASL_HANDSHAKE, 1, SaslHandshakeRequest(mechanism="GSSAPI"), correlation_id))
    assert decode(ApiKey.SASL_HANDSHAKE, 1, recv_frame(sock) or b"").error_code == 0  # type: ignore
    ctx = _raw_client(k, principal)
    ctx.step(bytes(_authenticate(sock, ctx.step(None), correlation_id + 1).auth_bytes))  # type: ignore
    ctx.unwrap(bytes(_authenticate(sock, b"", correlation_id + 2).auth_bytes))  # type: ignore[attr-defined]
    return _authenticate(sock, ctx.wrap(layer + b"\x00\x00\x00", False).message, correlation_id + 3)


def test_reauthentication(kerberized: KerberizedBroker) -> None:
    """KIP-368 with Kerberos: the session lifetime is announced; a new login on the same
    connection as the same principal goes on, as another principal is refused and closed."""
    with socket.create_connection(("127.0.0.1", kerberized.port), timeout=10) as sock:
        first = _login(sock, kerberized, "alice", 10)
        assert first.error_code == 0 and first.session_lifetime.total_seconds() == 600  # type: ignore
        again = _login(sock, kerberized, "alice", 20)
        assert again.error_code == 0 and _metadata_ok(sock, 30)  # type: ignore[attr-defined]
        other = _login(sock, kerberized, "BOB", 40)
        assert other.error_code == 58  # type: ignore[attr-defined]
        assert "Cannot change principals during re-authentication from User:alice: User:bob" in \
            other.error_message  # type: ignore[attr-defined]
        assert is_closed(sock)

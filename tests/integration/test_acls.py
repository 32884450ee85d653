"""Authorization (ACLs) on one broker with real clients: confluent-kafka's AdminClient
creates, describes and deletes ACLs (CreateAcls/DescribeAcls/DeleteAcls), and SASL PLAIN
users are allowed or denied by them with Kafka's errors reaching the client.

The broker runs `authorizer.class.name=kafka.security.authorizer.AclAuthorizer` with
`super.users=User:admin`; its inter-broker traffic (LeaderAndIsr to itself) logs in as
admin over SASL_PLAINTEXT, so it needs no ACL of its own.
"""
from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
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

from tests.certs import make_pki
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


def _produce(conf: dict[str, Any], topic: str, extra: dict[str, Any] | None = None) -> KafkaError | None:
    """Produce one record; the delivery error (None: delivered)."""
    errors: list[KafkaError | None] = []
    producer = Producer({**conf, "message.timeout.ms": 8000, **(extra or {})})
    producer.produce(topic, b"v", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(12)
    assert errors, "no delivery report"
    return errors[0]


def test_produce_and_consume_allowed_and_denied(acl_broker: AclBroker) -> None:
    admin = acl_broker.admin()
    topic, group = _name(), _name("group")
    _create_topic(admin, topic)
    _create(admin, [
        _allow("User:alice", ResourceType.TOPIC, topic, AclOperation.WRITE),
        _allow("User:alice", ResourceType.TOPIC, topic, AclOperation.READ),
        _allow("User:alice", ResourceType.GROUP, group, AclOperation.READ),
        _allow("User:bob", ResourceType.TOPIC, topic, AclOperation.READ),
    ])
    # Write on the topic: produce, also idempotently (InitProducerId: Write on some topic).
    assert _produce(acl_broker.conf("alice"), topic) is None
    assert _produce(acl_broker.conf("alice"), topic, {"enable.idempotence": True}) is None
    denied = _produce(acl_broker.conf("bob"), topic)
    assert denied is not None and denied.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # Read on the topic and the group: consume and commit.
    consumer = Consumer({**acl_broker.conf("alice"), "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    try:
        consumer.subscribe([topic])
        got = []
        for _ in range(40):
            msg = consumer.poll(0.5)
            if msg is not None:
                assert msg.error() is None, msg.error()
                got.append(msg)
            if len(got) == 2:
                break
        assert len(got) == 2
        consumer.commit(got[-1], asynchronous=False)
    finally:
        consumer.close()
    # bob may read the topic but not join a group he has no ACL for.
    consumer = Consumer({**acl_broker.conf("bob"), "group.id": group, "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe([topic])
        errors = []
        for _ in range(20):
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is not None:
                errors.append(msg.error().code())
                break
        assert errors == [KafkaError.GROUP_AUTHORIZATION_FAILED]
    finally:
        consumer.close()
    # bob reads by assignment: a Fetch with Read on the topic (librdkafka still looks up
    # the coordinator of its group.id, which reports GROUP_AUTHORIZATION_FAILED meanwhile).
    consumer = Consumer({**acl_broker.conf("bob"), "group.id": "unused", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        values = []
        for _ in range(20):
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                values.append(msg.value())
                break
        assert values == [b"v"]
    finally:
        consumer.close()


def test_prefixed_patterns_deny_wins_and_hidden_topics(acl_broker: AclBroker) -> None:
    admin = acl_broker.admin()
    prefix = _name("pfx") + "-"
    open_topic, closed_topic, secret = prefix + "open", prefix + "closed", _name("secret")
    for topic in (open_topic, closed_topic, secret):
        _create_topic(admin, topic)
    _create(admin, [
        # Everyone may write every topic under the prefix ...
        _allow("User:*", ResourceType.TOPIC, prefix, AclOperation.WRITE, ResourcePatternType.PREFIXED),
        # ... but bob may not write one of them: deny wins.
        _allow("User:bob", ResourceType.TOPIC, closed_topic, AclOperation.WRITE,
               permission=AclPermissionType.DENY),
    ])
    assert _produce(acl_broker.conf("alice"), open_topic) is None
    assert _produce(acl_broker.conf("alice"), closed_topic) is None
    assert _produce(acl_broker.conf("bob"), open_topic) is None
    denied = _produce(acl_broker.conf("bob"), closed_topic)
    assert denied is not None and denied.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # Metadata for all topics shows only what the principal may Describe (Write implies it).
    alice = acl_broker.admin("alice")
    visible = set(alice.list_topics(timeout=10).topics)
    assert {open_topic, closed_topic} <= visible and secret not in visible
    assert secret in acl_broker.admin().list_topics(timeout=10).topics  # the super user sees it
    # Named, it is refused, as is a topic that does not exist (auto-creation needs Create).
    named = alice.list_topics(secret, timeout=10).topics[secret]
    assert named.error is not None and named.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    missing = _name("missing")
    named = alice.list_topics(missing, timeout=10).topics[missing]
    assert named.error is not None and named.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert missing not in acl_broker.admin().list_topics(timeout=10).topics
    # Admin operations a plain user lacks: CreateTopics (Create) and DeleteTopics (Delete).
    new = _name("new")
    with pytest.raises(KafkaException) as refused:
        alice.create_topics([NewTopic(new, 1, 1)])[new].result(15)
    assert refused.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    with pytest.raises(KafkaException) as refused:
        alice.delete_topics([open_topic])[open_topic].result(15)
    assert refused.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_acls_survive_a_restart_and_plaintext_is_anonymous(tmp_path: Path) -> None:
    b = start_acl_broker(tmp_path)
    try:
        topic = _name()
        _create_topic(b.admin(), topic)
        _create(b.admin(), [_allow("User:ANONYMOUS", ResourceType.TOPIC, topic, AclOperation.WRITE)])
        b.broker.stop()
        b.broker.start()
        plaintext = {"bootstrap.servers": b.broker.bootstrap}
        assert _produce(plaintext, topic) is None  # the PLAINTEXT listener's User:ANONYMOUS
        other = _name()
        _create_topic(b.admin(), other)
        denied = _produce(plaintext, other)
        assert denied is not None and denied.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    finally:
        b.broker.kill()


def test_mutual_tls_principal_from_mapping_rules(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    ssl_port = free_port()
    broker = BrokerProcess(tmp_path / "broker", {
        "offsets.topic.replication.factor": "1",
        "ssl.keystore.location": str(pki.server),
        "ssl.truststore.location": str(pki.ca),
        "ssl.client.auth": "required",
        # The client certificate's subject is CN=client: its principal is
        # User:CLIENT-VIA-TLS (/U upper-cases the whole result, as in Kafka).
        "ssl.principal.mapping.rules": "RULE:^CN=([a-z]+)$/$1-via-tls/U,DEFAULT",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:ANONYMOUS",  # the PLAINTEXT listener: inter-broker and our admin
    })
    broker.overrides["listeners"] = f"PLAINTEXT://127.0.0.1:{broker.port},SSL://127.0.0.1:{ssl_port}"
    broker.start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        allowed, other = _name(), _name()
        for topic in (allowed, other):
            _create_topic(admin, topic)
        _create(admin, [_allow("User:CLIENT-VIA-TLS", ResourceType.TOPIC, allowed, AclOperation.WRITE)])
        tls = {"bootstrap.servers": f"127.0.0.1:{ssl_port}", "security.protocol": "SSL",
               "ssl.ca.location": str(pki.ca), "ssl.certificate.location": str(pki.client_cert),
               "ssl.key.location": str(pki.client_key)}
        assert _produce(tls, allowed) is None
        denied = _produce(tls, other)
        assert denied is not None and denied.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    finally:
        broker.kill()


def test_inter_broker_and_cluster_apis_need_cluster_permissions(acl_broker: AclBroker) -> None:
    """User:ANONYMOUS (the PLAINTEXT listener here) may not act as a broker: AlterPartition
    needs ClusterAction, ListPartitionReassignments Describe on the cluster."""
    from kio.schema.alter_partition.v2.request import AlterPartitionRequest
    from kio.schema.list_partition_reassignments.v0.request import ListPartitionReassignmentsRequest
    from kio.static.primitive import i32Timedelta

    from moldau.protocol.apis import ApiKey
    from tests.raw import connect, decode, encode, recv_frame

    sock = connect(acl_broker.broker)
    try:
        sock.sendall(encode(ApiKey.ALTER_PARTITION, 2, AlterPartitionRequest(broker_id=0, broker_epoch=-1, topics=())))
        frame = recv_frame(sock)
        assert frame is not None
        assert decode(ApiKey.ALTER_PARTITION, 2, frame).error_code == 31  # type: ignore[attr-defined]
        sock.sendall(encode(ApiKey.LIST_PARTITION_REASSIGNMENTS, 0, ListPartitionReassignmentsRequest(
            timeout=i32Timedelta.parse(datetime.timedelta(seconds=5)), topics=None), correlation_id=2))
        frame = recv_frame(sock)
        assert frame is not None
        assert decode(ApiKey.LIST_PARTITION_REASSIGNMENTS, 0, frame).error_code == 31  # type: ignore[attr-defined]
    finally:
        sock.close()


def test_acls_cli(acl_broker: AclBroker, tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.helpers import env_with_repo_on_path

    config = tmp_path / "admin.properties"
    config.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
                      "sasl.username=admin\nsasl.password=admin-secret\n")

    def acls(*args: str, user_config: Path = config) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "moldau.cli.main", "acls", *args, "--bootstrap-server",
                               f"127.0.0.1:{acl_broker.sasl_port}", "--command-config", str(user_config),
                               "--timeout", "10"], capture_output=True, text=True, timeout=60,
                              env=env_with_repo_on_path())

    topic, group = _name(), _name("group")
    _create_topic(acl_broker.admin(), topic)
    added = acls("add", "--allow-principal", "User:alice", "--consumer", "--topic", topic, "--group", group)
    assert added.returncode == 0, added.stderr
    listed = acls("list", "--topic", topic)
    assert listed.returncode == 0, listed.stderr
    assert (f"Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name={topic}, patternType=LITERAL)`:"
            in listed.stdout)
    assert "(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)" in listed.stdout
    assert "(principal=User:alice, host=*, operation=DESCRIBE, permissionType=ALLOW)" in listed.stdout
    assert group not in listed.stdout
    assert group in acls("list", "--principal", "User:alice").stdout
    prefix = topic[:8]
    assert acls("add", "--deny-principal", "User:bob", "--operation", "Write", "--topic", prefix,
                "--resource-pattern-type", "prefixed").returncode == 0
    # MATCH: the prefixed ACL applies to the topic too.
    match = acls("list", "--topic", topic, "--resource-pattern-type", "match").stdout
    assert f"name={prefix}, patternType=PREFIXED" in match and "operation=WRITE, permissionType=DENY" in match
    denied = _produce(acl_broker.conf("bob"), topic)
    assert denied is not None and denied.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # Removing one operation leaves the others; removing without one removes them all.
    removed = acls("remove", "--allow-principal", "User:alice", "--operation", "Read", "--topic", topic, "--force")
    assert removed.returncode == 0 and "Removed 1 ACL(s)" in removed.stdout, removed.stdout + removed.stderr
    assert "operation=READ" not in acls("list", "--topic", topic).stdout
    assert "Removed 1 ACL(s)" in acls("remove", "--topic", topic).stdout
    assert acls("remove", "--topic", prefix, "--resource-pattern-type", "prefixed").returncode == 0
    # Bad input: a clear message, exit 1 or 2.
    assert acls("add", "--topic", topic).returncode == 1  # no principal
    assert acls("add", "--allow-principal", "alice", "--topic", topic).returncode == 2  # no Type:
    assert acls("add", "--allow-principal", "User:a", "--operation", "Fly", "--topic", topic).returncode == 2
    alice_config = tmp_path / "alice.properties"
    alice_config.write_text(config.read_text().replace("admin", "alice"))
    refused = acls("add", "--allow-principal", "User:alice", "--operation", "All", "--cluster",
                   user_config=alice_config)
    assert refused.returncode == 1 and "CLUSTER_AUTHORIZATION_FAILED" in refused.stderr, refused.stderr


def test_acls_without_an_authorizer(broker: BrokerProcess) -> None:
    """Kafka's answer without authorizer.class.name: SECURITY_DISABLED, and the CLI says why."""
    import subprocess
    import sys

    from tests.helpers import env_with_repo_on_path

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    binding = _allow("User:alice", ResourceType.TOPIC, "t", AclOperation.READ)
    with pytest.raises(KafkaException) as refused:
        admin.create_acls([binding])[binding].result(10)
    assert refused.value.args[0].code() == KafkaError.SECURITY_DISABLED
    listed = subprocess.run([sys.executable, "-m", "moldau.cli.main", "acls", "list", "--bootstrap-server",
                             broker.bootstrap, "--timeout", "10"], capture_output=True, text=True, timeout=60,
                            env=env_with_repo_on_path())
    assert listed.returncode == 1 and "no authorizer" in listed.stderr, listed.stderr


def test_authorized_operations(acl_broker: AclBroker) -> None:
    """DescribeTopics (Metadata v12), DescribeCluster and DescribeGroups report what the
    principal may do when asked (include_authorized_operations)."""
    from confluent_kafka import TopicCollection

    admin = acl_broker.admin()
    topic, group = _name(), _name("group")
    _create_topic(admin, topic)
    _create(admin, [_allow("User:alice", ResourceType.TOPIC, topic, AclOperation.WRITE),
                    _allow("User:alice", ResourceType.GROUP, group, AclOperation.DESCRIBE),
                    _allow("User:alice", ResourceType.BROKER, "kafka-cluster", AclOperation.DESCRIBE_CONFIGS)])
    alice = acl_broker.admin("alice")
    described = alice.describe_topics(TopicCollection([topic]), include_authorized_operations=True)[topic].result(15)
    assert set(described.authorized_operations) == {AclOperation.WRITE, AclOperation.DESCRIBE}
    cluster = alice.describe_cluster(include_authorized_operations=True).result(15)
    assert set(cluster.authorized_operations) == {AclOperation.DESCRIBE_CONFIGS}
    groups = alice.describe_consumer_groups([group], include_authorized_operations=True)[group].result(15)
    assert set(groups.authorized_operations) == {AclOperation.DESCRIBE}
    # The super user may do everything a topic supports.
    everything = admin.describe_topics(TopicCollection([topic]), include_authorized_operations=True)[topic].result(15)
    assert AclOperation.ALTER_CONFIGS in set(everything.authorized_operations)


def test_aiokafka_and_kcat_are_refused_and_allowed(acl_broker: AclBroker) -> None:
    """The same ACLs through the other clients: aiokafka raises TopicAuthorizationFailedError
    and kcat reports the error and exits non-zero; with the ACL both write."""
    import asyncio
    import shutil
    import subprocess

    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import TopicAuthorizationFailedError

    admin = acl_broker.admin()
    topic = _name()
    _create_topic(admin, topic)

    async def aio_send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{acl_broker.sasl_port}",
                                    security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                                    sasl_plain_username="bob", sasl_plain_password="bob-secret",
                                    request_timeout_ms=10000)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"aio")
        finally:
            await producer.stop()

    kcat = shutil.which("kcat")
    if kcat is None:
        pytest.skip("kcat is not installed (make system-deps)")
    args = [kcat, "-b", f"127.0.0.1:{acl_broker.sasl_port}", "-X", "security.protocol=SASL_PLAINTEXT",
            "-X", "sasl.mechanisms=PLAIN", "-X", "sasl.username=bob", "-X", "sasl.password=bob-secret",
            "-P", "-t", topic]
    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(aio_send())
    refused = subprocess.run(args, input=b"k\n", capture_output=True, timeout=30)
    assert refused.returncode != 0 and b"authorization failed" in refused.stderr.lower(), refused.stderr
    _create(admin, [_allow("User:bob", ResourceType.TOPIC, topic, AclOperation.WRITE)])
    asyncio.run(aio_send())
    subprocess.run(args, input=b"k\n", check=True, capture_output=True, timeout=30)

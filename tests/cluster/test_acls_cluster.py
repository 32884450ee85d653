"""ACLs in a three-broker cluster: SASL_SSL only (clients and brokers alike),
`authorizer.class.name` on every broker, inter-broker traffic (LeaderAndIsr, UpdateMetadata, follower fetches,
AlterPartition) authorized as the super user the brokers log in as. An ACL created or
deleted through any broker takes effect on every broker through Kafka's change
notifications in ZooKeeper: alice's produce to a topic whose three partitions have three
different leaders succeeds or fails on all of them. SASL sessions last 3 s
(connections.max.reauth.ms): clients and brokers renew them throughout."""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

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
from kafka import KafkaProducer
from kafka.errors import KafkaError as KafkaPythonError
from kazoo.client import KazooClient

from tests.certs import make_pki
from tests.cluster.test_cluster import wait_for
from tests.cluster.zookeeper_server import ZooKeeperServer
from tests.helpers import BrokerProcess, free_port

JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" '
        'password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";')


def _conf(ports: list[int], user: str, ca: Path) -> dict[str, Any]:
    return {"bootstrap.servers": ",".join(f"127.0.0.1:{p}" for p in ports), "security.protocol": "SASL_SSL",
            "ssl.ca.location": str(ca),
            "sasl.mechanism": "PLAIN", "sasl.username": user, "sasl.password": f"{user}-secret",
            "socket.timeout.ms": 10000}


def _produce_each_partition(ports: list[int], topic: str, partitions: int, ca: Path) -> list[str | None]:
    """alice's produce to each partition: None, or the error's name. kafka-python here:
    confluent-kafka's produce() on a topic whose authorization error librdkafka has cached
    now and then leaves a stray TypeError behind its KafkaException (a SystemError later)."""
    producer = KafkaProducer(bootstrap_servers=[f"127.0.0.1:{p}" for p in ports], security_protocol="SASL_SSL",
                             ssl_cafile=str(ca), sasl_mechanism="PLAIN",
                             sasl_plain_username="alice", sasl_plain_password="alice-secret",
                             acks="all", max_block_ms=8000, retries=0, request_timeout_ms=8000)
    results: list[str | None] = []
    try:
        for p in range(partitions):
            try:
                producer.send(topic, b"v", partition=p).get(timeout=10)
                results.append(None)
            except KafkaPythonError as exc:
                results.append(type(exc).__name__)
    finally:
        producer.close(timeout=5)
    return results


def test_acls_in_a_sasl_ssl_cluster(zookeeper: ZooKeeperServer, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    ca = pki.ca
    brokers: list[BrokerProcess] = []
    try:
        for i in range(3):
            brokers.append(BrokerProcess(tmp_path / f"broker{i}", {
                "broker.id": str(i),
                "zookeeper.connect": zookeeper.connect,
                "zookeeper.session.timeout.ms": "6000",
                "offsets.topic.num.partitions": "3",
                "group.initial.rebalance.delay.ms": "0",
                "sasl.enabled.mechanisms": "PLAIN",
                "sasl.jaas.config": JAAS,
                "security.inter.broker.protocol": "SASL_SSL",
                "ssl.keystore.location": str(pki.server),
                "ssl.truststore.location": str(pki.ca),
                "sasl.mechanism.inter.broker.protocol": "PLAIN",
                "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
                "super.users": "User:admin",
                # KIP-368: sessions end every 3 s, so the brokers' own connections (fetchers,
                # the controller's channels) must renew theirs while the test runs.
                "connections.max.reauth.ms": "3000",
            }, port=free_port()))
            brokers[-1].overrides["listeners"] = f"SASL_SSL://127.0.0.1:{brokers[-1].port}"
        for b in brokers:
            b.start()
        ports = [b.port for b in brokers]
        admin = AdminClient(_conf(ports, "admin", ca))
        wait_for(lambda: len(admin.list_topics(timeout=5).brokers) == 3, 20, "three live brokers")
        topic = f"acl-{uuid.uuid4().hex[:8]}"
        # One partition led by each broker; acks=all with min.insync.replicas=3 needs every
        # follower's fetch (ClusterAction, as the super user) to pass.
        admin.create_topics([NewTopic(topic, 3, replica_assignment=[[0, 1, 2], [1, 2, 0], [2, 0, 1]],
                                      config={"min.insync.replicas": "3"})])[topic].result(20)
        wait_for(lambda: all(len(p.isrs) == 3 and p.leader == i for i, p in sorted(
            admin.list_topics(topic, timeout=5).topics[topic].partitions.items())), 20, "leaders 0, 1, 2")
        assert _produce_each_partition(ports, topic, 3, ca) == ["TopicAuthorizationFailedError"] * 3
        # The ACL written through one broker reaches the two others by notification.
        only_first = AdminClient(_conf(ports[:1], "admin", ca))
        write = AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:alice", "*",
                           AclOperation.WRITE, AclPermissionType.ALLOW)
        for future in only_first.create_acls([write]).values():
            assert future.result(15) is None

        def alice_writes_everywhere() -> bool:
            return _produce_each_partition(ports, topic, 3, ca) == [None, None, None]

        wait_for(alice_writes_everywhere, 20, "alice's Write on every partition leader")
        # Kafka's znodes: the ACL and its notification.
        zk = KazooClient(hosts=zookeeper.connect)
        zk.start()
        try:
            data, _ = zk.get(f"/kafka-acl/Topic/{topic}")
            assert data == (b'{"version":1,"acls":[{"principal":"User:alice","permissionType":"Allow",'
                            b'"operation":"Write","host":"*"}]}')
            changes = [zk.get(f"/kafka-acl-changes/{c}")[0] for c in zk.get_children("/kafka-acl-changes")]
            assert f"TOPIC:{topic}".encode() in changes
        finally:
            zk.stop()
        # Deleted through another broker: denied everywhere again.
        only_last = AdminClient(_conf(ports[2:], "admin", ca))
        match = AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, None, None,
                                 AclOperation.ANY, AclPermissionType.ANY)
        deleted = only_last.delete_acls([match])
        assert deleted[match].result(15) == [write]

        def alice_denied_everywhere() -> bool:
            return _produce_each_partition(ports, topic, 3, ca) == ["TopicAuthorizationFailedError"] * 3

        wait_for(alice_denied_everywhere, 20, "alice denied on every partition leader")
    except BaseException:
        for i, b in enumerate(brokers):
            print(f"===== broker {i} =====\n{b.log()[-20000:]}")
        raise
    finally:
        for b in brokers:
            b.kill()

"""Three brokers that log in to each other with SASL GSSAPI against a real MIT KDC
(tests/kerberos.py): each gets tickets from its keytab for kafka/<the other's advertised
host>, and the others map its principal (kafka/localhost@MOLDAU.TEST) to `User:kafka` by the
DEFAULT rule. With an authorizer on, only that super user may replicate (ClusterAction), so
acks=all with three in-sync replicas proves the controller's channels, the followers'
fetches and AlterPartition logged in with Kerberos; with connections.max.reauth.ms=2000 they
log in again (a new connection, the tickets reused from the broker's credential cache)
throughout. kafka-python logs in as alice over GSSAPI on the same listener."""
from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tests.cluster.test_cluster import wait_for
from tests.cluster.zookeeper_server import ZooKeeperServer
from tests.helpers import BrokerProcess, free_port
from tests.kerberos import INSTALL_HINT, REALM, missing_binaries, start_kdc

pytestmark = pytest.mark.skipif(bool(missing_binaries()), reason=INSTALL_HINT)


def test_brokers_replicate_over_gssapi(zookeeper: ZooKeeperServer, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    kdc = start_kdc(tmp_path / "kdc")
    brokers: list[BrokerProcess] = []
    try:
        for key, value in kdc.env.items():
            monkeypatch.setenv(key, value)  # the brokers inherit it; kafka-python uses it here
        keytab = kdc.add_principal("kafka/localhost")
        alice = kdc.add_principal("alice")
        jaas = ("com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true storeKey=true "
                f'keyTab="{keytab}" principal="kafka/localhost@{REALM}";')
        internal_ports = []
        for i in range(3):
            internal, client = free_port(), free_port()
            internal_ports.append(internal)
            brokers.append(BrokerProcess(tmp_path / f"broker{i}", {
                "broker.id": str(i),
                "zookeeper.connect": zookeeper.connect,
                "zookeeper.session.timeout.ms": "6000",
                "listeners": f"INTERNAL://127.0.0.1:{internal},CLIENT://127.0.0.1:{client}",
                "advertised.listeners": f"INTERNAL://localhost:{internal},CLIENT://127.0.0.1:{client}",
                "listener.security.protocol.map": "INTERNAL:SASL_PLAINTEXT,CLIENT:PLAINTEXT",
                "inter.broker.listener.name": "INTERNAL",
                "sasl.enabled.mechanisms": "GSSAPI",
                "sasl.mechanism.inter.broker.protocol": "GSSAPI",
                "sasl.kerberos.service.name": "kafka",
                "listener.name.internal.gssapi.sasl.jaas.config": jaas,
                "connections.max.reauth.ms": "2000",
                "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
                # The PLAINTEXT clients (User:ANONYMOUS) and alice may do anything; the
                # brokers only as the principal their keytab holds.
                "super.users": "User:kafka;User:ANONYMOUS;User:alice",
                "offsets.topic.num.partitions": "1",
                "group.initial.rebalance.delay.ms": "0",
            }, port=client))
        for b in brokers:
            b.start()
        bootstrap = ",".join(b.bootstrap for b in brokers)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        wait_for(lambda: len(admin.list_topics(timeout=5).brokers) == 3, 20, "three brokers in the metadata")
        topic = f"krb-{uuid.uuid4().hex[:8]}"
        admin.create_topics([NewTopic(topic, 3, replica_assignment=[[0, 1, 2], [1, 2, 0], [2, 0, 1]],
                                      config={"min.insync.replicas": "3"})])[topic].result(20)
        wait_for(lambda: all(len(p.isrs) == 3 and p.leader == i for i, p in sorted(
            admin.list_topics(topic, timeout=5).topics[topic].partitions.items())), 20, "leaders 0, 1, 2")
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": 20000})
        errors: list[object] = []
        deadline = time.monotonic() + 5  # past two re-authentications of every broker link
        sent = 0
        while time.monotonic() < deadline:
            producer.produce(topic, f"m{sent}".encode(), partition=sent % 3,
                             on_delivery=lambda e, m: e is not None and errors.append(e))
            producer.poll(0.05)
            sent += 1
        assert producer.flush(30) == 0 and not errors, errors
        partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
        assert all(sorted(p.isrs) == [0, 1, 2] for p in partitions.values())
        # A client over Kerberos on the brokers' own listener: alice with kafka-python.
        from kafka import KafkaProducer

        monkeypatch.setenv("KRB5_CLIENT_KTNAME", str(alice))
        monkeypatch.setenv("KRB5CCNAME", f"MEMORY:alice-{uuid.uuid4().hex}")
        kp = KafkaProducer(bootstrap_servers=[f"localhost:{p}" for p in internal_ports],
                           security_protocol="SASL_PLAINTEXT", sasl_mechanism="GSSAPI",
                           sasl_kerberos_service_name="kafka", acks="all", max_block_ms=10000)
        for p in range(3):
            kp.send(topic, b"alice", partition=p).get(timeout=15)
        kp.close()
        for b in brokers:
            assert "SASL GSSAPI authentication to" not in b.log(), b.log()[-5000:]
    except BaseException:
        for i, b in enumerate(brokers):
            print(f"===== broker {i} =====\n{b.log()[-20000:]}")
        print(f"===== KDC =====\n{kdc.log()[-5000:]}")
        raise
    finally:
        for b in brokers:
            b.kill()
        kdc.stop()

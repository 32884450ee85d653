"""A secured cluster: three brokers whose only listeners are SASL (inter-broker SCRAM over
SASL_PLAINTEXT, clients over SASL_SSL), with the SCRAM users written to ZooKeeper by
`moldau users add --zookeeper` before any broker starts, as Kafka's operators do."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

from tests.certs import make_pki
from tests.cluster.test_cluster import acks_all_on_three_replicas, wait_for
from tests.cluster.zookeeper_server import ZooKeeperServer
from tests.helpers import BrokerProcess, env_with_repo_on_path, free_port

SCRAM_JAAS = 'org.apache.kafka.common.security.scram.ScramLoginModule required username="{}" password="{}";'


def _users_add(zk: ZooKeeperServer, user: str, password: str, mechanism: str) -> None:
    subprocess.run([sys.executable, "-m", "moldau.cli.main", "users", "add", user, "--password", password,
                    "--mechanism", mechanism, "--zookeeper", zk.connect, "--timeout", "10"],
                   check=True, timeout=30, env=env_with_repo_on_path(), capture_output=True)


def test_sasl_inter_broker_replication_and_sasl_ssl_clients(zookeeper: ZooKeeperServer, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    _users_add(zookeeper, "broker", "broker-secret", "SCRAM-SHA-512")
    _users_add(zookeeper, "client", "client-secret", "SCRAM-SHA-256")
    brokers: list[BrokerProcess] = []
    external: list[int] = []
    try:
        for i in range(3):
            internal, ext = free_port(), free_port()
            external.append(ext)
            brokers.append(BrokerProcess(tmp_path / f"broker{i}", {
                "broker.id": str(i),
                "zookeeper.connect": zookeeper.connect,
                "zookeeper.session.timeout.ms": "6000",
                "listeners": f"INTERNAL://127.0.0.1:{internal},EXTERNAL://127.0.0.1:{ext}",
                "listener.security.protocol.map": "INTERNAL:SASL_PLAINTEXT,EXTERNAL:SASL_SSL",
                "inter.broker.listener.name": "INTERNAL",
                "sasl.enabled.mechanisms": "SCRAM-SHA-256,SCRAM-SHA-512",
                "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
                "listener.name.internal.scram-sha-512.sasl.jaas.config": SCRAM_JAAS.format("broker", "broker-secret"),
                "ssl.keystore.location": str(pki.server),
                "offsets.topic.num.partitions": "3",
                "group.initial.rebalance.delay.ms": "0",
            }, port=internal))
        for b in brokers:
            b.start()
        conf = {"bootstrap.servers": ",".join(f"127.0.0.1:{p}" for p in external), "security.protocol": "SASL_SSL",
                "ssl.ca.location": str(pki.ca), "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "client",
                "sasl.password": "client-secret"}
        admin = AdminClient(conf)
        # Every broker, on the listener we came in by.
        wait_for(lambda: sorted(b.port for b in admin.list_topics(timeout=5).brokers.values()) == sorted(external),
                 20, "the three brokers' EXTERNAL endpoints in the metadata")
        # acks=all with min.insync.replicas=3: answered only once both followers, logged in
        # over SCRAM on INTERNAL, fetched every batch.
        topic = acks_all_on_three_replicas(conf, admin, "sec")
        consumer = Consumer({**conf, "group.id": "sec", "auto.offset.reset": "earliest"})
        consumer.subscribe([topic])
        got: set[bytes] = set()
        deadline = time.monotonic() + 30
        while len(got) < 20 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got.add(msg.value())
        consumer.close()
        assert got == {f"m{i}".encode() for i in range(20)}
    except BaseException:
        for i, b in enumerate(brokers):
            print(f"===== broker {i} =====\n{b.log()[-20000:]}")
        raise
    finally:
        for b in brokers:
            b.kill()

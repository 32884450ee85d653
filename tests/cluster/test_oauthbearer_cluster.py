"""Brokers that log in to each other with SASL OAUTHBEARER: each builds an unsecured token
from its OAuthBearerLoginModule options (as Kafka's OAuthBearerUnsecuredLoginCallbackHandler
does), and the others take its `sub` as the principal. With an authorizer on, only a super
user may replicate (ClusterAction), so acks=all with three in-sync replicas proves the
followers' fetches logged in as that principal."""
from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from tests.cluster.test_cluster import acks_all_on_three_replicas, wait_for
from tests.cluster.zookeeper_server import ZooKeeperServer
from tests.helpers import BrokerProcess, free_port

OAUTH_JAAS = ('org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required '
              'unsecuredLoginStringClaim_sub="{}";')


def _brokers(zookeeper: ZooKeeperServer, tmp_path: Path, sub: str) -> list[BrokerProcess]:
    brokers = []
    for i in range(3):
        internal, client = free_port(), free_port()
        b = BrokerProcess(tmp_path / f"broker{i}", {
            "broker.id": str(i),
            "zookeeper.connect": zookeeper.connect,
            "zookeeper.session.timeout.ms": "6000",
            "listeners": f"INTERNAL://127.0.0.1:{internal},CLIENT://127.0.0.1:{client}",
            "listener.security.protocol.map": "INTERNAL:SASL_PLAINTEXT,CLIENT:PLAINTEXT",
            "inter.broker.listener.name": "INTERNAL",
            "sasl.enabled.mechanisms": "OAUTHBEARER",
            "sasl.mechanism.inter.broker.protocol": "OAUTHBEARER",
            "listener.name.internal.oauthbearer.sasl.jaas.config": OAUTH_JAAS.format(sub),
            "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
            # The clients (PLAINTEXT: User:ANONYMOUS) may do anything; the brokers only as
            # the principal their token names.
            "super.users": "User:kafka-broker;User:ANONYMOUS",
            "allow.everyone.if.no.acl.found": "false",
            "offsets.topic.num.partitions": "1",
            "group.initial.rebalance.delay.ms": "0",
        }, port=client)
        brokers.append(b)
    return brokers


def test_brokers_replicate_over_oauthbearer(zookeeper: ZooKeeperServer, tmp_path: Path) -> None:
    brokers = _brokers(zookeeper, tmp_path, "kafka-broker")
    try:
        for b in brokers:
            b.start()
        bootstrap = ",".join(b.bootstrap for b in brokers)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        wait_for(lambda: len(admin.list_topics(timeout=5).brokers) == 3, 20, "three brokers in the metadata")
        acks_all_on_three_replicas({"bootstrap.servers": bootstrap}, admin, "oauth")
    finally:
        for b in brokers:
            b.kill()


def test_brokers_whose_tokens_name_no_super_user_are_refused(zookeeper: ZooKeeperServer, tmp_path: Path) -> None:
    """The same cluster, the brokers' tokens naming a principal that is not a super user:
    their logins succeed, but the controller's requests are refused (ClusterAction), so no
    broker ever learns the cluster, and the controller says why."""
    brokers = _brokers(zookeeper, tmp_path, "somebody-else")
    try:
        for b in brokers:
            b.start()
        wait_for(lambda: any("refused UPDATE_METADATA: CLUSTER_AUTHORIZATION_FAILED" in b.log() for b in brokers),
                 20, "the controller to log the refusal")
        admin = AdminClient({"bootstrap.servers": ",".join(b.bootstrap for b in brokers)})
        with pytest.raises(KafkaException):  # no broker knows any broker: clients are told nothing
            admin.list_topics(timeout=3)
    finally:
        for b in brokers:
            b.kill()

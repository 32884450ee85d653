"""Metrics of a real three-broker cluster (ZooKeeper, broker processes): one active
controller across the brokers, under-replicated partitions and ISR shrinks when a
follower is killed (SIGKILL), back to none and ISR expands when it returns."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cluster.test_cluster import Cluster, create, produce_some, running_cluster, wait_for
from tests.helpers import BrokerProcess
from tests.integration.test_metrics import scrape, total

LAG_MS = 500  # the leader drops a dead follower before its ZooKeeper session (2 s) expires


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    with running_cluster(tmp_path, request, {"metrics.port": "0", "replica.lag.time.max.ms": str(LAG_MS)}) as c:
        yield c


def metrics_port(b: BrokerProcess) -> int:
    """The free port the broker's last start bound for /metrics (metrics.port=0)."""
    ports = re.findall(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", b.log().split(f"--- start #{b.starts}")[-1])
    assert ports, f"no metrics URL in the log of {b.data_dir}"
    return int(ports[-1])


def cluster_sum(brokers: list[BrokerProcess], name: str) -> float:
    """A metric summed over these brokers (each exposes what it knows)."""
    return sum(total(scrape(metrics_port(b)), name) for b in brokers)


def until(what: str, brokers: list[BrokerProcess], name: str, check: Callable[[float], bool],
          timeout: float = 20) -> None:
    seen: list[float] = []

    def ok() -> bool:
        seen.append(cluster_sum(brokers, name))
        return check(seen[-1])

    try:
        wait_for(ok, timeout, what)
    except AssertionError:
        raise AssertionError(f"{what}: {name} summed over the brokers was {seen[-5:]}") from None


def test_controller_under_replication_and_isr_changes_across_the_cluster(cluster: Cluster) -> None:
    everyone = cluster.brokers
    topic = create(cluster, partitions=3, rf=3)
    until("one active controller", everyone, "kafka_controller_kafkacontroller_activecontrollercount",
          lambda v: v == 1)
    assert [total(scrape(metrics_port(b)), "kafka_controller_kafkacontroller_activecontrollercount")
            for b in everyone].count(1) == 1
    until("every partition fully replicated", everyone, "kafka_topic_partition_in_sync_replica",
          lambda v: v == 9)
    assert len(produce_some(cluster.bootstrap, topic, [f"v{i}" for i in range(30)], acks="all")) == 30
    until("followers copying", everyone, "kafka_server_brokertopicmetrics_replicationbytesin_total",
          lambda v: v > 0)
    assert cluster_sum(everyone, "kafka_server_replicamanager_leadercount") == 3
    assert cluster_sum(everyone, "kafka_server_replicamanager_partitioncount") == 9
    until("nothing under-replicated", everyone, "kafka_server_replicamanager_underreplicatedpartitions",
          lambda v: v == 0)

    controller = cluster.controller_id()
    victim_id = next(b for b in range(3) if b != controller)
    victim = everyone[victim_id]
    survivors = [b for i, b in enumerate(everyone) if i != victim_id]
    # A loaded machine may already have made a slow follower leave and rejoin an ISR
    # (the lag limit is short): count from here.
    shrinks_before = cluster_sum(survivors, "kafka_server_replicamanager_isrshrinks_total")
    victim.kill()  # SIGKILL
    # Every partition has a replica on the victim: each is under-replicated where it is led.
    until("under-replicated partitions", survivors, "kafka_server_replicamanager_underreplicatedpartitions",
          lambda v: v == 3)
    until("ISR shrinks by the leaders", survivors, "kafka_server_replicamanager_isrshrinks_total",
          lambda v: v > shrinks_before)
    assert cluster_sum(survivors, "kafka_controller_kafkacontroller_activecontrollercount") == 1
    assert cluster_sum(survivors, "kafka_controller_kafkacontroller_offlinepartitionscount") == 0
    expands_before = cluster_sum(survivors, "kafka_server_replicamanager_isrexpands_total")

    victim.start()
    until("every partition fully replicated again", everyone,
          "kafka_server_replicamanager_underreplicatedpartitions", lambda v: v == 0, timeout=30)
    until("ISR expands", survivors, "kafka_server_replicamanager_isrexpands_total", lambda v: v > expands_before)
    assert cluster_sum(everyone, "kafka_controller_kafkacontroller_activecontrollercount") == 1

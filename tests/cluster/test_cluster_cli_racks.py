"""`moldau cluster up --racks`: each broker gets its broker.rack, and the metadata shows it."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka.admin import AdminClient

from tests.cluster.test_cluster_cli import Pids, cluster_dir, free_ports, moldau  # noqa: F401 (a fixture)


def test_up_with_a_rack_per_broker(cluster_dir: tuple[Path, Pids]) -> None:  # noqa: F811
    directory, pids = cluster_dir
    zk_port, base = free_ports(3)
    up = moldau("up", "--brokers", "3", "--racks", "east,west,east", "--dir", str(directory),
                "--base-port", str(base), "--zookeeper-port", str(zk_port),
                "--override", "replica.selector.class=org.apache.kafka.common.replica.RackAwareReplicaSelector")
    pids.record()
    assert up.returncode == 0, up.stderr
    admin = AdminClient({"bootstrap.servers": up.stdout.strip()})
    nodes = admin.describe_cluster().result(20).nodes
    assert {n.id: n.rack for n in nodes} == {0: "east", 1: "west", 2: "east"}
    down = moldau("down", "--dir", str(directory))
    assert down.returncode == 0, down.stderr

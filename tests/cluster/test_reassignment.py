"""Partition reassignment with a real ZooKeeper, three brokers and kafka-python's admin
client: a partition moves to other brokers with its data, its replication factor grows
and shrinks, removed replicas delete their copy, and the move shows in ZooKeeper and in
ListPartitionReassignments while it is in progress."""
from __future__ import annotations

import datetime
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import NewTopic
from kafka import TopicPartition as KpPartition
from kafka.admin import KafkaAdminClient
from kazoo.client import KazooClient  # type: ignore[import-untyped]

from tests.cluster.test_cluster import Cluster, wait_for
from tests.helpers import env_with_repo_on_path


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    c = Cluster(tmp_path, 3, {"replica.lag.time.max.ms": "2000"})
    try:
        c.start()
        yield c
    finally:
        c.stop_all()
        if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
            print(c.logs())


def replicas_and_isr(cluster: Cluster, topic: str) -> tuple[list[int], list[int]]:
    p = cluster.admin().list_topics(topic, timeout=5).topics[topic].partitions[0]
    return list(p.replicas), sorted(p.isrs)


def produce(cluster: Cluster, topic: str, values: list[bytes]) -> None:
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
    for v in values:
        p.produce(topic, v, partition=0)
    assert p.flush(30) == 0


def consume_all(cluster: Cluster, topic: str, n: int) -> list[bytes]:
    c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "r", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        while len(got) < n and time.monotonic() < deadline:
            for m in c.consume(1000, 0.5):
                if not m.error():
                    got.append(m.value())
    finally:
        c.close()
    return got


def test_move_grow_and_shrink_a_partition(cluster: Cluster) -> None:
    topic = f"re-{uuid.uuid4().hex[:8]}"
    admin = cluster.admin()
    admin.create_topics([NewTopic(topic, 1, replica_assignment=[[0]])])[topic].result(20)
    wait_for(lambda: replicas_and_isr(cluster, topic) == ([0], [0]), 15, "the topic on broker 0")
    values = [b"v%04d" % i for i in range(500)]
    produce(cluster, topic, values)
    kp = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=20000)
    zk = KazooClient(hosts=cluster.zk.connect)
    zk.start()
    try:
        # Move: broker 0 -> brokers 1 and 2 (RF 1 -> 2, leader moves away from 0).
        assert kp.alter_partition_reassignments({KpPartition(topic, 0): [1, 2]}) == {KpPartition(topic, 0): None}
        wait_for(lambda: replicas_and_isr(cluster, topic) == ([1, 2], [1, 2]), 30, "the move to complete")
        assert cluster.leader(topic, 0) == 1
        znode = json.loads(zk.get(f"/brokers/topics/{topic}")[0])
        assert znode["partitions"] == {"0": [1, 2]}
        assert not znode["adding_replicas"] and not znode["removing_replicas"]
        assert kp.list_partition_reassignments() == {}
        wait_for(lambda: not (cluster.brokers[0].data_dir / "logs" / f"{topic}-0").exists(), 15,
                 "broker 0 to delete its copy")
        assert consume_all(cluster, topic, len(values)) == values
        # Grow to all three, then shrink back to one replica on broker 2.
        kp.alter_partition_reassignments({KpPartition(topic, 0): [2, 1, 0]})
        wait_for(lambda: replicas_and_isr(cluster, topic) == ([2, 1, 0], [0, 1, 2]), 30, "RF 3")
        more = [b"w%04d" % i for i in range(100)]
        produce(cluster, topic, more)
        kp.alter_partition_reassignments({KpPartition(topic, 0): [2]})
        wait_for(lambda: replicas_and_isr(cluster, topic) == ([2], [2]), 30, "RF 1 on broker 2")
        assert cluster.leader(topic, 0) == 2
        assert consume_all(cluster, topic, len(values) + len(more)) == values + more
        files = [(b.data_dir / "logs" / f"{topic}-0").exists() for b in cluster.brokers]
        wait_for(lambda: [(b.data_dir / "logs" / f"{topic}-0").exists() for b in cluster.brokers]
                 == [False, False, True], 15, f"only broker 2 to keep a copy (now {files})")
    finally:
        kp.close()
        zk.stop()
        zk.close()


def test_an_unfinished_move_is_listed_and_can_be_cancelled(cluster: Cluster) -> None:
    topic = f"re-{uuid.uuid4().hex[:8]}"
    admin = cluster.admin()
    admin.create_topics([NewTopic(topic, 1, replica_assignment=[[0, 1]])])[topic].result(20)
    wait_for(lambda: replicas_and_isr(cluster, topic) == ([0, 1], [0, 1]), 15, "the topic on brokers 0 and 1")
    produce(cluster, topic, [b"x%d" % i for i in range(50)])
    cluster.brokers[2].kill()  # the target broker is down: the move cannot complete
    wait_for(lambda: 2 not in {b.id for b in cluster.admin().list_topics(timeout=5).brokers.values()}, 30,
             "broker 2 to be gone")
    kp = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=20000)
    try:
        # Broker 2 is not alive: a target that adds it is refused...
        result = kp.alter_partition_reassignments({KpPartition(topic, 0): [1, 2]})
        assert result[KpPartition(topic, 0)].errno == 39, result  # INVALID_REPLICA_ASSIGNMENT
        cluster.brokers[2].start()
        wait_for(lambda: 2 in {b.id for b in cluster.admin().list_topics(timeout=5).brokers.values()}, 30,
                 "broker 2 back")
        cluster.brokers[2].proc.send_signal(19)  # SIGSTOP: alive in ZooKeeper for now, cannot catch up
        kp.alter_partition_reassignments({KpPartition(topic, 0): [1, 2]})
        ongoing = kp.list_partition_reassignments()
        assert KpPartition(topic, 0) in ongoing, ongoing
        entry = ongoing[KpPartition(topic, 0)]
        assert (sorted(entry["replicas"]), entry["adding_replicas"], entry["removing_replicas"]) == (
            [0, 1, 2], [2], [0])
        assert kp.alter_partition_reassignments({KpPartition(topic, 0): None}) == {KpPartition(topic, 0): None}
        wait_for(lambda: replicas_and_isr(cluster, topic)[0] in ([0, 1], [1, 0]), 15, "the original replicas")
        assert kp.list_partition_reassignments() == {}
        bad = kp.alter_partition_reassignments({KpPartition(topic, 0): None})  # nothing left to cancel
        assert bad[KpPartition(topic, 0)].errno == 85, bad  # NO_REASSIGNMENT_IN_PROGRESS
    finally:
        cluster.brokers[2].proc.send_signal(18)  # SIGCONT
        kp.close()


def test_a_new_controller_finishes_a_move_the_old_one_started(cluster: Cluster) -> None:
    topic = f"re-{uuid.uuid4().hex[:8]}"
    controller = cluster.controller_id()
    others = [b for b in range(3) if b != controller]
    source, target = others[0], others[1]
    admin = cluster.admin()
    admin.create_topics([NewTopic(topic, 1, replica_assignment=[[source]])])[topic].result(20)
    wait_for(lambda: replicas_and_isr(cluster, topic) == ([source], [source]), 15, "the topic")
    values = [b"c%03d" % i for i in range(200)]
    produce(cluster, topic, values)
    target_proc = cluster.brokers[target].proc
    assert target_proc is not None
    # Straight to the controller: an admin client may pick the paused broker for a request
    # of its own (kafka-python 3 does) and time out on it.
    from kio.schema.alter_partition_reassignments.v0 import request as req

    from tests.raw import connect, decode, encode, recv_frame

    request = req.AlterPartitionReassignmentsRequest(timeout=datetime.timedelta(seconds=30), topics=(
        req.ReassignableTopic(name=topic, partitions=(
            req.ReassignablePartition(partition_index=0, replicas=(target,)),)),))
    for _attempt in range(3):
        target_proc.send_signal(19)  # SIGSTOP: the new replica cannot catch up yet
        with connect(cluster.brokers[controller]) as s:
            s.settimeout(40)
            s.sendall(encode(45, 0, request))
            response = decode(45, 0, recv_frame(s))
        assert response.error_code == 0, response
        (result,) = [p for t in response.responses for p in t.partitions]
        if result.error_code == 0:
            break
        # On a loaded machine the paused broker's 2 s session may expire before the
        # request reaches the controller, which then refuses a dead target: resume it,
        # let it register again, and start over.
        assert "not alive" in (result.error_message or "") or "dead" in (result.error_message or ""), result
        target_proc.send_signal(18)
        wait_for(lambda: target in {b.id for b in cluster.admin().list_topics(timeout=5).brokers.values()}, 30,
                 "the target broker back")
    assert result.error_code == 0, result
    cluster.brokers[controller].kill()
    wait_for(lambda: cluster.controller_id() not in (controller, -1), 30, "a new controller")
    target_proc.send_signal(18)  # SIGCONT: the new replica catches up under the new controller
    wait_for(lambda: replicas_and_isr(cluster, topic) == ([target], [target]), 40, "the move to complete")
    assert consume_all(cluster, topic, len(values)) == values


def moldau(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "moldau.cli.main", *args], capture_output=True, text=True,
                          timeout=120, env=env_with_repo_on_path())


def test_the_reassign_command(cluster: Cluster) -> None:
    topic = f"re-{uuid.uuid4().hex[:8]}"
    cluster.admin().create_topics([NewTopic(topic, 2, replica_assignment=[[0], [1]])])[topic].result(20)
    wait_for(lambda: replicas_and_isr(cluster, topic) == ([0], [0]), 15, "the topic")
    produce(cluster, topic, [b"q%d" % i for i in range(100)])
    b = ["--bootstrap-server", cluster.bootstrap, "--timeout", "10"]
    done = moldau("reassign", *b, f"{topic}:0=2,1", f"{topic}:1=0", "--wait")
    assert done.returncode == 0, done.stderr
    assert "started 2 of 2 reassignment(s)" in done.stdout and "all done" in done.stdout
    assert replicas_and_isr(cluster, topic) == ([2, 1], [1, 2])
    listed = moldau("reassign", *b, "--list")
    assert listed.returncode == 0 and "no reassignments in progress" in listed.stdout
    refused = moldau("reassign", *b, f"{topic}:0=7", f"{topic}:9=1", "--cancel", f"{topic}:1")
    assert refused.returncode == 1
    assert f"{topic}:0: INVALID_REPLICA_ASSIGNMENT" in refused.stdout
    assert f"{topic}:9: UNKNOWN_TOPIC_OR_PARTITION" in refused.stdout
    assert f"{topic}:1: NO_REASSIGNMENT_IN_PROGRESS" in refused.stdout
    bad = moldau("reassign", *b, f"{topic}:0=1,1")
    assert bad.returncode == 2 and "distinct" in bad.stderr
    nobody = moldau("reassign", "--bootstrap-server", "127.0.0.1:1", "--timeout", "2", "--list")
    assert nobody.returncode != 0 and nobody.stderr.startswith("moldau: error:") and "Traceback" not in nobody.stderr

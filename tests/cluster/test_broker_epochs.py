"""A broker killed and restarted so quickly that the controller never sees its id leave
/brokers/ids (Kafka's KIP-380 case): the id is the same, the registration is not (its
znode's czxid, the broker epoch). The controller must treat it as a failure and a
start-up: move the leadership it held, and tell the new incarnation what it hosts.
Found by the transactions cluster test in a full-suite run: the coordinator's broker came
back within the controller's notice and its partitions kept a leader that led nothing.

The race is made certain by pausing the controller across the restart (its own session
is long enough to outlive the pause)."""
from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import NewTopic

from tests.cluster.test_cluster import Cluster, produce_some, running_cluster, wait_for


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    with running_cluster(tmp_path, request, per_broker={0: {"zookeeper.session.timeout.ms": "20000"}}) as c:
        yield c


def test_a_broker_restarted_within_the_controllers_notice_is_seen(cluster: Cluster) -> None:
    wait_for(lambda: cluster.controller_id() == 0, 20, "broker 0 (the long session) to be the controller")
    topic = f"bounce-{uuid.uuid4().hex[:6]}"
    cluster.admin().create_topics([NewTopic(topic, 1, replica_assignment=[[1, 2, 0]],
                                            config={"min.insync.replicas": "2"})])[topic].result(20)
    wait_for(lambda: cluster.agreed_leader(topic, 0, [0, 1, 2]) == 1, 20, "broker 1 to lead")
    assert len(produce_some(cluster.bootstrap, topic, ["before"], partition=0, acks="all")) == 1

    controller = cluster.brokers[0]
    assert controller.proc is not None
    controller.proc.send_signal(signal.SIGSTOP)
    try:
        cluster.brokers[1].kill()
        cluster.brokers[1].start()  # registers again once its old session (2 s) has expired
    finally:
        controller.proc.send_signal(signal.SIGCONT)

    # The partition is led again by a broker that knows it, and writes go through.
    def writable() -> bool:
        return len(produce_some(cluster.bootstrap, topic, ["after"], partition=0, acks="all")) == 1

    wait_for(writable, 30, "an acks=all write after the restart")
    assert "restarted: [1]" in controller.log()
    wait_for(lambda: cluster.agreed_leader(topic, 0, [0, 1, 2]) not in (None, -1), 20,
             "every broker, the restarted one too, to agree on the leader")

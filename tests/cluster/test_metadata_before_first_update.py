"""A broker that has just (re)started answers Metadata before the controller has told it
about the cluster. It must not answer "a cluster of one: me": librdkafka decommissions
every broker missing from a Metadata response, and a transactional producer that lost
its coordinator's broker that way stalled until its transaction timed out (issue 10,
the coordinator-kill test). It answers with nothing known (no brokers, no topics),
which clients take as "ask again", and with the whole cluster once it has heard."""
from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import NewTopic
from kio.schema.metadata.v12.request import MetadataRequest, MetadataRequestTopic
from kio.schema.types import TopicName

from moldau.protocol.apis import ApiKey
from tests.cluster.test_cluster import Cluster, running_cluster, wait_for
from tests.helpers import BrokerProcess
from tests.raw import connect, decode, encode, recv_frame


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    # A session long enough that the paused controller stays the controller.
    with running_cluster(tmp_path, request, {"zookeeper.session.timeout.ms": "15000"}) as c:
        yield c


def metadata(broker: BrokerProcess, topic: str) -> Any:
    request = MetadataRequest(topics=(MetadataRequestTopic(topic_id=None, name=TopicName(topic)),),
                              allow_auto_topic_creation=True, include_topic_authorized_operations=False)
    with connect(broker) as s:
        s.settimeout(30)
        s.sendall(encode(ApiKey.METADATA, 12, request))
        frame = recv_frame(s)
    assert frame is not None
    return decode(ApiKey.METADATA, 12, frame)


def test_a_restarted_broker_tells_nothing_until_the_controller_has_told_it(cluster: Cluster) -> None:
    topic = f"t-{uuid.uuid4().hex[:6]}"
    cluster.admin().create_topics([NewTopic(topic, 3, 3)])[topic].result(20)
    controller = cluster.controller_id()
    victim = cluster.brokers[next(b for b in range(3) if b != controller)]
    victim.stop()  # a clean stop: its registration goes at once, so that it comes back at once
    paused = cluster.brokers[controller]
    assert paused.proc is not None
    paused.proc.send_signal(signal.SIGSTOP)
    try:
        victim.start()  # registers in ZooKeeper; the paused controller sends it nothing
        started = time.monotonic()
        early = metadata(victim, topic)
        assert time.monotonic() - started >= 1.0, "answered without waiting for the controller's word"
        assert [b.node_id for b in early.brokers] == []  # not [itself]: clients would drop the others
        assert list(early.topics) == []
        assert early.controller_id == -1
    finally:
        paused.proc.send_signal(signal.SIGCONT)

    def whole() -> bool:
        answer = metadata(victim, topic)
        return (sorted(b.node_id for b in answer.brokers) == [0, 1, 2]
                and [t.error_code for t in answer.topics] == [0] and len(answer.topics[0].partitions) == 3)

    wait_for(whole, 30, "the restarted broker to describe the whole cluster")

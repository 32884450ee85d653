"""A real cluster: Apache ZooKeeper and three Moldau broker processes, killed and restarted.

Every process's log is printed when a test fails.
"""
from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.cluster.zookeeper_server import ZooKeeperServer
from tests.helpers import BrokerProcess, free_port

SESSION_MS = 2000


class Cluster:
    def __init__(self, root: Path, n: int, overrides: dict[str, str] | None = None,
                 per_broker: dict[int, dict[str, str]] | None = None) -> None:
        self.root = root
        self.zk = ZooKeeperServer(root / "zk")
        self.ports = [free_port() for _ in range(n)]
        self.overrides = overrides or {}
        self.per_broker = per_broker or {}
        self.brokers: list[BrokerProcess] = []
        self._admins: list[AdminClient] = []

    def start(self) -> Cluster:
        self.zk.start()
        for i, port in enumerate(self.ports):
            b = BrokerProcess(self.root / f"broker{i}", {
                "broker.id": str(i),
                "zookeeper.connect": self.zk.connect,
                "zookeeper.session.timeout.ms": str(SESSION_MS),
                "group.initial.rebalance.delay.ms": "0",
                "offsets.topic.num.partitions": "3",
                **self.overrides,
                **self.per_broker.get(i, {}),
            }, port=port)
            self.brokers.append(b)
        for b in self.brokers:
            b.start()
        wait_for(lambda: len(self.admin().list_topics(timeout=5).brokers) == len(self.brokers), 20,
                 "every broker to be in the metadata")
        return self

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers if b.alive())

    def admin(self, broker: BrokerProcess | None = None) -> AdminClient:
        client = AdminClient({"bootstrap.servers": broker.bootstrap if broker else self.bootstrap})
        self._admins.append(client)  # a client must outlive the futures it returns
        return client

    def controller_id(self) -> int:
        return self.admin().describe_cluster().result(10).controller.id

    def leader(self, topic: str, partition: int) -> int:
        return self.admin().list_topics(topic, timeout=10).topics[topic].partitions[partition].leader

    def agreed_leader(self, topic: str, partition: int, brokers: list[int]) -> int | None:
        """The leader every listed broker reports, or None while they disagree."""
        seen = {self.admin(self.brokers[b]).list_topics(topic, timeout=5).topics[topic].partitions[partition].leader
                for b in brokers}
        return seen.pop() if len(seen) == 1 else None

    def stop_all(self) -> None:
        for b in self.brokers:
            b.kill()
        self.zk.kill()

    def logs(self) -> str:
        parts = [f"===== zookeeper =====\n{self.zk.log()[-5000:]}"]
        parts += [f"===== broker {i} =====\n{b.log()[-60000:]}" for i, b in enumerate(self.brokers)]
        return "\n".join(parts)


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception as exc:  # a client call that fails while the cluster settles
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last})")


@contextmanager
def running_cluster(tmp_path: Path, request: pytest.FixtureRequest,
                    overrides: dict[str, str] | None = None,
                    per_broker: dict[int, dict[str, str]] | None = None) -> Iterator[Cluster]:
    """ZooKeeper and three brokers, stopped at the end; every process's log is printed
    when the test failed."""
    c = Cluster(tmp_path, 3, overrides, per_broker)
    try:
        c.start()
        yield c
    finally:
        c.stop_all()
        if any(getattr(request.node, f"rep_{w}", None) is not None and getattr(request.node, f"rep_{w}").failed
               for w in ("setup", "call")):
            print(c.logs())


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    with running_cluster(tmp_path, request) as c:
        yield c


def create(cluster: Cluster, partitions: int = 6, rf: int = 3) -> str:
    name = f"c-{uuid.uuid4().hex[:8]}"
    cluster.admin().create_topics([NewTopic(name, partitions, rf)])[name].result(20)
    return name


def produce_some(bootstrap: str, topic: str, values: list[str], partition: int | None = None,
                 acks: str = "1") -> dict[str, int]:
    acked: dict[str, int] = {}
    p = Producer({"bootstrap.servers": bootstrap, "acks": acks, "linger.ms": 1, "message.timeout.ms": 20000})
    for v in values:
        kwargs = {"partition": partition} if partition is not None else {}
        p.produce(topic, v.encode(), on_delivery=lambda e, m: e is None and acked.__setitem__(m.value().decode(),
                                                                                                m.offset()), **kwargs)
    p.flush(30)
    return acked


def acks_all_on_three_replicas(conf: dict[str, object], admin: AdminClient, prefix: str) -> str:
    """A topic of two partitions on all three brokers with min.insync.replicas=3, and 20
    acks=all writes: each is answered only once both followers fetched it, over whatever
    inter-broker links the cluster has; every replica is in the ISR at the end. The topic."""
    topic = f"{prefix}-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(topic, 2, 3, config={"min.insync.replicas": "3"})])[topic].result(20)
    producer = Producer({**conf, "acks": "all", "message.timeout.ms": 20000})
    errors: list[object] = []
    for i in range(20):
        producer.produce(topic, f"m{i}".encode(), partition=i % 2,
                         on_delivery=lambda e, m: e is not None and errors.append(e))
    assert producer.flush(30) == 0 and not errors, errors
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    assert all(sorted(p.isrs) == [0, 1, 2] for p in partitions.values())
    return topic


def consume_all(bootstrap: str, topic: str, partition: int, n: int) -> list[str]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "x", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, partition, 0)])
    out: list[str] = []
    deadline = time.monotonic() + 20
    while len(out) < n and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is not None and not m.error():
            out.append(m.value().decode())
    c.close()
    return out


def test_rf3_topic_has_spread_leaders_and_the_same_view_everywhere(cluster: Cluster) -> None:
    topic = create(cluster)
    views = []
    for b in cluster.brokers:
        wait_for(lambda b=b: topic in cluster.admin(b).list_topics(timeout=5).topics, 10, "the topic everywhere")
        md = cluster.admin(b).list_topics(topic, timeout=10).topics[topic]
        views.append({p: (pm.leader, tuple(pm.replicas), tuple(sorted(pm.isrs))) for p, pm in md.partitions.items()})
    assert views[0] == views[1] == views[2]
    assert all(len(set(r)) == 3 for _, r, _ in views[0].values())
    leaders = [leader for leader, _, _ in views[0].values()]
    assert sorted(leaders.count(b) for b in range(3)) == [2, 2, 2]
    acked = produce_some(cluster.bootstrap, topic, [f"v{i}" for i in range(60)])
    assert len(acked) == 60


def test_not_leader_gets_not_leader_or_follower(cluster: Cluster) -> None:
    from moldau.protocol.records import RecordInput, build_batch
    from tests.integration.test_bad_input import connect, decode, encode, produce_request

    topic = create(cluster, partitions=1)
    leader = cluster.leader(topic, 0)
    # Once every broker knows the partition (a broker not told yet answers
    # UNKNOWN_TOPIC_OR_PARTITION, as Kafka's does: seen under load).
    wait_for(lambda: cluster.agreed_leader(topic, 0, [0, 1, 2]) == leader, 20, "every broker to know the leader")
    follower = cluster.brokers[(leader + 1) % 3]
    with connect(follower) as s:
        s.sendall(encode(0, 8, produce_request(topic, 0, build_batch([RecordInput(b"x")]))))
        from tests.integration.test_bad_input import recv_frame
        response = decode(0, 8, recv_frame(s))
    assert response.responses[0].partition_responses[0].error_code == 6  # NOT_LEADER_OR_FOLLOWER


def test_killed_leader_fails_over_and_clients_continue(cluster: Cluster) -> None:
    topic = create(cluster, partitions=1)
    # acks=all: acknowledged means on every in-sync replica (with acks=1 a leader killed at
    # once may take records its followers had not fetched yet, as in Kafka).
    before = produce_some(cluster.bootstrap, topic, [f"a{i}" for i in range(20)], partition=0, acks="all")
    assert len(before) == 20
    leader = cluster.leader(topic, 0)
    cluster.brokers[leader].kill()
    killed = time.monotonic()
    wait_for(lambda: cluster.leader(topic, 0) not in (leader, -1), SESSION_MS / 1000 + 10, "a new leader")
    elapsed = time.monotonic() - killed
    assert elapsed < SESSION_MS / 1000 + 5
    after = produce_some(cluster.bootstrap, topic, [f"b{i}" for i in range(20)], partition=0)
    assert len(after) == 20
    new_leader = cluster.leader(topic, 0)
    got = consume_all(cluster.bootstrap, topic, 0, 40)
    assert set(before) | set(after) <= set(got), "the new leader, a replica, has everything acknowledged"
    cluster.brokers[leader].start()
    wait_for(lambda: len(cluster.admin().list_topics(timeout=5).brokers) == 3, 20, "the killed broker to rejoin")
    assert new_leader != leader


def test_killed_controller_is_replaced(cluster: Cluster) -> None:
    first = cluster.controller_id()
    assert first in (0, 1, 2)
    cluster.brokers[first].kill()
    wait_for(lambda: cluster.controller_id() not in (first, -1), SESSION_MS / 1000 + 10, "a new controller")
    topic = create(cluster, partitions=2, rf=2)
    assert all(cluster.leader(topic, p) != first for p in range(2))
    cluster.brokers[first].start()
    wait_for(lambda: len(cluster.admin().list_topics(timeout=5).brokers) == 3, 20, "the old controller to rejoin")


def test_controlled_shutdown_moves_leadership_first(cluster: Cluster) -> None:
    topic = create(cluster, partitions=3)
    victim = cluster.leader(topic, 0)
    led = [p for p in range(3) if cluster.leader(topic, p) == victim]
    start = time.monotonic()
    assert cluster.brokers[victim].stop() == 0
    took = time.monotonic() - start
    assert "controlled shutdown complete" in cluster.brokers[victim].log()
    wait_for(lambda: all(cluster.leader(topic, p) not in (victim, -1) for p in led), 5, "leaders moved")
    assert took < 15


def test_stopping_every_broker_in_turn_is_a_controlled_shutdown_each(cluster: Cluster) -> None:
    """`moldau cluster down`: the last brokers too shut down at once, without waiting out
    the controlled shutdown's timeout or flooding their log."""
    create(cluster, partitions=6)
    order = sorted(range(3), key=lambda b: b == cluster.controller_id())  # the controller last
    for b in order:
        assert cluster.brokers[b].stop() == 0
        log = cluster.brokers[b].log()
        assert "controlled shutdown complete" in log, f"broker {b}"
        assert "controlled shutdown did not complete" not in log, f"broker {b}"
        assert log.count("no recent ZooKeeper round trip") <= 3, f"broker {b}"


def test_zookeeper_restart_cluster_recovers(cluster: Cluster) -> None:
    topic = create(cluster, partitions=2)
    cluster.zk.stop()
    time.sleep(0.5)
    cluster.zk.start()
    wait_for(lambda: cluster.controller_id() in (0, 1, 2), 20, "a controller after ZooKeeper restarts")
    acked = produce_some(cluster.bootstrap, topic, [f"z{i}" for i in range(10)])
    assert len(acked) == 10
    # Until a broker's ZooKeeper session is back, its admin requests fail with a
    # retriable answer (UNKNOWN_SERVER_ERROR naming ZooKeeper); a client tries again.
    topic2 = f"c-{uuid.uuid4().hex[:8]}"

    def created() -> bool:
        admin = cluster.admin()  # must outlive its futures
        result = admin.create_topics([NewTopic(topic2, 2, 3)])[topic2]
        try:
            result.result(20)
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                return True  # an earlier try got through after all
            if exc.args[0].code() in (KafkaError.UNKNOWN, KafkaError.REQUEST_TIMED_OUT):
                return False
            raise
        return True

    wait_for(created, 40, "CreateTopics to succeed once ZooKeeper is back")
    assert len(produce_some(cluster.bootstrap, topic2, ["x"])) == 1


def test_brokers_whose_sessions_outlive_a_zookeeper_outage_keep_leading(
        tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Reliability anomaly #8. ZooKeeper is down longer than brokers 1 and 2's session
    timeout, so they presume their sessions expired; but a restarted ZooKeeper restores
    sessions with a fresh timeout, and they reconnect into the same ones. The controller
    (broker 0, with a long session) never saw them leave and sends nothing: they must
    still lead what they led."""
    long_session = {"zookeeper.session.timeout.ms": "30000"}
    short_session = {"zookeeper.session.timeout.ms": "3000"}
    with running_cluster(tmp_path, request, per_broker={0: long_session, 1: short_session,
                                                        2: short_session}) as cluster:
        assert cluster.controller_id() == 0, "broker 0 starts first and should be the controller"
        topic = create(cluster, partitions=6)
        led_by = {p: cluster.leader(topic, p) for p in range(6)}
        assert {1, 2} <= set(led_by.values()), led_by
        cluster.zk.kill()
        time.sleep(4.5)  # past 3 s: brokers 1 and 2 presume their sessions lost
        cluster.zk.start()
        for b in (1, 2):
            wait_for(lambda b=b: "survived; keeping the partitions" in cluster.brokers[b].log(), 20,
                     f"broker {b} to find its session alive")
        for p in range(6):
            acked = produce_some(cluster.bootstrap, topic, [f"after-{p}"], partition=p, acks="all")
            assert acked, f"partition {p} (led by {led_by[p]}) has no serving leader after the outage"
        assert {p: cluster.leader(topic, p) for p in range(6)} == led_by


def test_duplicate_broker_id_refuses_to_start(cluster: Cluster, tmp_path: Path) -> None:
    dup = BrokerProcess(tmp_path / "dup", {"broker.id": "1", "zookeeper.connect": cluster.zk.connect,
                                           "zookeeper.session.timeout.ms": str(SESSION_MS)})
    with pytest.raises(RuntimeError, match="already registered"):
        dup.start(timeout=15)


def test_consumer_group_in_a_cluster(cluster: Cluster) -> None:
    topic = create(cluster, partitions=3)
    produce_some(cluster.bootstrap, topic, [f"g{i}" for i in range(30)])
    c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "cg", "auto.offset.reset": "earliest",
                  "session.timeout.ms": 6000})
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 30 and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is not None and not m.error():
            got.append(m.value().decode())
    c.commit(asynchronous=False)
    c.close()
    assert sorted(got) == sorted(f"g{i}" for i in range(30))


def test_paused_leader_is_fenced_after_resume(cluster: Cluster) -> None:
    from moldau.protocol.records import RecordInput, build_batch
    from tests.integration.test_bad_input import connect, decode, encode, produce_request, recv_frame

    topic = create(cluster, partitions=1)
    old = cluster.leader(topic, 0)
    victim = cluster.brokers[old]
    assert victim.proc is not None
    victim.proc.send_signal(signal.SIGSTOP)
    others = [b for b in range(3) if b != old]
    try:
        wait_for(lambda: cluster.agreed_leader(topic, 0, others) not in (None, old, -1), SESSION_MS / 1000 + 10,
                 "a new leader")
        new = cluster.agreed_leader(topic, 0, others)
        assert new is not None
        assert len(produce_some(cluster.brokers[new].bootstrap, topic, ["while-paused"], partition=0)) == 1
    finally:
        victim.proc.send_signal(signal.SIGCONT)
    # The resumed broker still believes it leads with the old epoch: it must refuse.
    with connect(victim) as s:
        s.sendall(encode(0, 8, produce_request(topic, 0, build_batch([RecordInput(b"stale")]))))
        response = decode(0, 8, recv_frame(s))
    assert response.responses[0].partition_responses[0].error_code == 6  # NOT_LEADER_OR_FOLLOWER
    wait_for(lambda: len(cluster.admin().list_topics(timeout=5).brokers) == 3, 20, "the paused broker to rejoin")
    wait_for(lambda: cluster.agreed_leader(topic, 0, [0, 1, 2]) == new, 10, "every broker to agree on the leader")
    got = consume_all(cluster.brokers[new].bootstrap, topic, 0, 1)
    assert got == ["while-paused"]


def test_preferred_leader_election_after_restart(cluster: Cluster) -> None:
    """ElectLeaders(PREFERRED) through the AdminClient: once the restarted preferred replica
    has caught up and is back in the ISR, leadership returns to it."""
    from confluent_kafka import ElectionType

    topic = create(cluster, partitions=3)
    md = cluster.admin().list_topics(topic, timeout=10).topics[topic]
    preferred = {p: pm.replicas[0] for p, pm in md.partitions.items()}
    assert all(pm.leader == preferred[p] for p, pm in md.partitions.items())
    produce_some(cluster.bootstrap, topic, [f"p{i}" for i in range(30)])
    victim = preferred[0]
    cluster.brokers[victim].kill()
    wait_for(lambda: cluster.leader(topic, 0) not in (victim, -1), SESSION_MS / 1000 + 10, "failover")
    cluster.brokers[victim].start()

    def back_in_isr() -> bool:
        parts = cluster.admin().list_topics(topic, timeout=5).topics[topic].partitions
        return all(victim in parts[p].isrs for p in range(3))

    wait_for(back_in_isr, 30, "the restarted broker to rejoin every ISR")
    assert cluster.leader(topic, 0) != victim
    admin = cluster.admin()
    result = admin.elect_leaders(ElectionType.PREFERRED, [TopicPartition(topic, p) for p in range(3)]).result(20)
    errors = {tp.partition: (e.name() if e is not None else None) for tp, e in result.items()}
    assert errors[0] is None
    wait_for(lambda: all(cluster.leader(topic, p) == preferred[p] for p in range(3)), 10, "preferred leaders back")
    again = admin.elect_leaders(ElectionType.PREFERRED, [TopicPartition(topic, 0)]).result(20)
    assert again[TopicPartition(topic, 0)].name() == "ELECTION_NOT_NEEDED"


def test_create_topic_errors_and_explicit_assignment(cluster: Cluster) -> None:
    from confluent_kafka import KafkaException

    admin = cluster.admin()
    too_big = NewTopic(f"c-{uuid.uuid4().hex[:8]}", 1, 4)
    with pytest.raises(KafkaException) as info:
        admin.create_topics([too_big])[too_big.topic].result(10)
    assert info.value.args[0].name() == "INVALID_REPLICATION_FACTOR"
    name = f"c-{uuid.uuid4().hex[:8]}"
    # An explicit replica assignment, sent as a raw CreateTopics v5 (librdkafka's binding
    # refuses some combinations of these fields client-side).
    import datetime

    from tests.integration.test_bad_input import connect, decode, encode, recv_frame

    mod = __import__("kio.schema.create_topics.v5.request", fromlist=["x"])
    request = mod.CreateTopicsRequest(topics=(mod.CreatableTopic(
        name=name, num_partitions=-1, replication_factor=-1,
        assignments=(mod.CreatableReplicaAssignment(partition_index=0, broker_ids=(2, 0)),
                     mod.CreatableReplicaAssignment(partition_index=1, broker_ids=(1, 2))),
        configs=(mod.CreatableTopicConfig(name="retention.ms", value="12345"),)),),
        timeout=datetime.timedelta(seconds=20), validate_only=False)
    with connect(cluster.brokers[0]) as sock:
        sock.sendall(encode(19, 5, request))
        assert decode(19, 5, recv_frame(sock)).topics[0].error_code == 0
    md = admin.list_topics(name, timeout=10).topics[name]
    assert [list(md.partitions[p].replicas) for p in range(2)] == [[2, 0], [1, 2]]
    assert [md.partitions[p].leader for p in range(2)] == [2, 1]
    from confluent_kafka.admin import ConfigResource

    res = ConfigResource(ConfigResource.Type.TOPIC, name)
    for b in cluster.brokers:
        cfg = cluster.admin(b).describe_configs([res])[res].result(10)
        assert cfg["retention.ms"].value == "12345"


def test_delete_topic_removes_data_on_every_broker(cluster: Cluster) -> None:
    topic = create(cluster, partitions=2)
    produce_some(cluster.bootstrap, topic, ["x", "y"])
    dirs = [b.data_dir / "logs" / f"{topic}-0" for b in cluster.brokers]
    assert all(d.exists() for d in dirs)
    admin = cluster.admin()
    admin.delete_topics([topic])[topic].result(20)
    wait_for(lambda: not any(d.exists() for d in dirs), 10, "every replica's data to be deleted")
    assert topic not in admin.list_topics(timeout=10).topics


def test_log_dir_of_another_cluster_refuses_to_start(cluster: Cluster, tmp_path: Path) -> None:
    other_zk = ZooKeeperServer(tmp_path / "other-zk")
    other_zk.start()
    try:
        stray = BrokerProcess(tmp_path / "stray", {"broker.id": "7", "zookeeper.connect": other_zk.connect,
                                                    "zookeeper.session.timeout.ms": str(SESSION_MS)})
        stray.start()
        stray.stop()
        # The same log dir, pointed at our cluster's ZooKeeper: another cluster id.
        stray.overrides["zookeeper.connect"] = cluster.zk.connect
        with pytest.raises(RuntimeError, match="belong to cluster"):
            stray.start(timeout=15)
    finally:
        other_zk.kill()


def test_stale_controller_epoch_is_ignored(cluster: Cluster) -> None:
    """A request from a controller older than the one a broker knows is refused."""
    from moldau.protocol import interbroker as ib
    from moldau.server.broker_client import decode_response, encode_request
    from tests.integration.test_bad_input import connect, recv_frame

    topic = create(cluster, partitions=1)
    stale = ib.UpdateMetadataRequest(controller_id=0, controller_epoch=0, broker_epoch=-1,
                                     topic_states=(), live_brokers=())
    with connect(cluster.brokers[0]) as s:
        s.sendall(encode_request(6, 7, 1, "old-controller", stale))
        _, response = decode_response(6, 7, recv_frame(s))
    assert response.error_code == 11  # STALE_CONTROLLER_EPOCH
    assert topic in cluster.admin(cluster.brokers[0]).list_topics(timeout=5).topics, "the broker kept its metadata"


def test_fetch_with_an_old_leader_epoch_is_fenced(cluster: Cluster) -> None:
    """KIP-320: a client that saw an older leader epoch learns it is stale."""
    import datetime

    from tests.integration.test_bad_input import connect, decode, encode, recv_frame

    topic = create(cluster, partitions=1)
    leader = cluster.leader(topic, 0)
    cluster.brokers[leader].kill()
    wait_for(lambda: cluster.leader(topic, 0) not in (leader, -1), SESSION_MS / 1000 + 10, "a new leader")
    new = cluster.brokers[cluster.leader(topic, 0)]
    mod = __import__("kio.schema.fetch.v12.request", fromlist=["x"])

    def fetch(epoch: int) -> int:
        request = mod.FetchRequest(
            cluster_id=None, replica_id=-1, max_wait=datetime.timedelta(0), min_bytes=0, max_bytes=1 << 20,
            isolation_level=0, session_id=0, session_epoch=-1,
            topics=(mod.FetchTopic(topic=topic, partitions=(mod.FetchPartition(
                partition=0, current_leader_epoch=epoch, fetch_offset=0, last_fetched_epoch=-1,
                log_start_offset=-1, partition_max_bytes=1 << 20),)),),
            forgotten_topics_data=(), rack_id="")
        with connect(new) as s:
            s.sendall(encode(1, 12, request))
            return decode(1, 12, recv_frame(s)).responses[0].partitions[0].error_code

    assert fetch(0) == 74  # FENCED_LEADER_EPOCH: epoch 0 was the killed leader's
    assert fetch(99) == 75  # UNKNOWN_LEADER_EPOCH
    assert fetch(-1) == 0


@pytest.fixture
def rebalancing_cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    with running_cluster(tmp_path, request, {"leader.imbalance.check.interval.seconds": "1"}) as c:
        yield c


def test_auto_leader_rebalance_returns_leadership(rebalancing_cluster: Cluster) -> None:
    c = rebalancing_cluster
    topic = create(c, partitions=3)
    md = c.admin().list_topics(topic, timeout=10).topics[topic]
    preferred = {p: pm.replicas[0] for p, pm in md.partitions.items()}
    victim = preferred[0]
    c.brokers[victim].kill()
    wait_for(lambda: c.leader(topic, 0) not in (victim, -1), SESSION_MS / 1000 + 10, "failover")
    c.brokers[victim].start()
    wait_for(lambda: all(c.leader(topic, p) == preferred[p] for p in range(3)), 40,
             "auto.leader.rebalance.enable to move leadership back to the preferred replicas")


def test_topic_deleted_while_a_broker_is_down_is_removed_from_it(cluster: Cluster) -> None:
    topic = create(cluster, partitions=1)
    produce_some(cluster.bootstrap, topic, ["x"])
    down = cluster.brokers[2]
    stray = down.data_dir / "logs" / f"{topic}-0"
    wait_for(stray.exists, 10, "the replica on broker 2")
    down.kill()
    wait_for(lambda: len(cluster.admin().list_topics(timeout=5).brokers) == 2, 20, "broker 2 gone")
    admin = cluster.admin()
    admin.delete_topics([topic])[topic].result(20)
    down.start()
    wait_for(lambda: not stray.exists(), 15, "broker 2 to delete its stray log")
    assert "deleting stray log" in down.log()

"""Replication with real processes: followers copy leaders byte for byte; acks=all and
min.insync.replicas; the ISR shrinks and grows; leaders killed over and over lose nothing
acknowledged (Jepsen 2013, KIP-101, KIP-279).

Each scenario checks, by reading every replica's log files back: every acknowledged value
is present at the offset it was acknowledged at, in order, and no offset holds two
different values on two replicas.
"""
from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import NewTopic

from moldau.protocol.records import iter_batches, iter_records
from tests.cluster.test_cluster import SESSION_MS, Cluster, running_cluster, wait_for

LAG_MS = 1500


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    with running_cluster(tmp_path, request, {"replica.lag.time.max.ms": str(LAG_MS), "min.insync.replicas": "2",
                                             "default.replication.factor": "3"}) as c:
        yield c


def create(cluster: Cluster) -> str:
    name = f"r-{uuid.uuid4().hex[:8]}"
    admin = cluster.admin()
    admin.create_topics([NewTopic(name, 1, 3)])[name].result(20)
    wait_for(lambda: len(admin.list_topics(name, timeout=5).topics[name].partitions[0].isrs) == 3, 10, "ISR of 3")
    return name


def replica_records(broker_dir: Path, topic: str) -> dict[int, bytes]:
    """offset -> value, read straight from one replica's segment files."""
    out: dict[int, bytes] = {}
    pdir = broker_dir / "logs" / f"{topic}-0"
    for seg in sorted(pdir.glob("*.log")):
        for _header, batch in iter_batches(seg.read_bytes()):
            for r in iter_records(batch):
                out[r.offset] = r.value or b""
    return out


def isr(cluster: Cluster, topic: str) -> list[int]:
    return sorted(cluster.admin().list_topics(topic, timeout=5).topics[topic].partitions[0].isrs)


class SteadyProducer:
    """acks=all, unique values at a steady rate; remembers what was acknowledged where."""

    def __init__(self, bootstrap: str, topic: str, interval_s: float = 0.005, idempotent: bool = False) -> None:
        self.acked: dict[bytes, int] = {}
        self.errors: list[str] = []
        self.sent = 0
        self._stop = threading.Event()
        self._p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0,
                            "message.timeout.ms": 30000, "request.timeout.ms": 5000,
                            "topic.metadata.refresh.interval.ms": 500, "retry.backoff.ms": 50,
                            "enable.idempotence": idempotent,
                            "max.in.flight.requests.per.connection": 5 if idempotent else 1})
        self._topic, self._interval = topic, interval_s
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _cb(self, err: KafkaError | None, msg: object) -> None:
        if err is None:
            self.acked[msg.value()] = msg.offset()  # type: ignore[attr-defined]
        else:
            self.errors.append(err.name())

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._p.produce(self._topic, f"v{self.sent}".encode(), partition=0, on_delivery=self._cb)
                self.sent += 1
            except BufferError:
                pass
            self._p.poll(self._interval)
        self._p.flush(30)

    def __enter__(self) -> SteadyProducer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(40)

    def wait_acked(self, n: int, timeout: float = 30) -> None:
        wait_for(lambda: len(self.acked) >= n, timeout, f"{n} acknowledged records")


def check_no_loss(cluster: Cluster, topic: str, acked: dict[bytes, int]) -> None:
    """Every acknowledged value at its offset on every replica that is in the ISR, and no
    offset with two different values on two replicas."""
    wait_for(lambda: len(isr(cluster, topic)) == 3, 30, "the ISR to be whole again")
    leader = cluster.leader(topic, 0)
    leo = max(acked.values()) + 1 if acked else 0

    def caught_up() -> bool:
        return all(len(replica_records(b.data_dir, topic)) >= leo for b in cluster.brokers)

    wait_for(caught_up, 30, "every replica to hold every acknowledged offset")
    replicas = [replica_records(b.data_dir, topic) for b in cluster.brokers]
    for value, offset in acked.items():
        for i, r in enumerate(replicas):
            assert r.get(offset) == value, f"broker {i} (leader {leader}): offset {offset} should hold {value!r}"
    for offset in set().union(*replicas):
        values = {r[offset] for r in replicas if offset in r}
        assert len(values) == 1, f"offset {offset} differs between replicas: {values}"


def test_followers_copy_the_leader_byte_for_byte(cluster: Cluster) -> None:
    topic = create(cluster)
    with SteadyProducer(cluster.bootstrap, topic) as p:
        p.wait_acked(300)
    assert not p.errors
    check_no_loss(cluster, topic, p.acked)
    files = [(b.data_dir / "logs" / f"{topic}-0" / "00000000000000000000.log").read_bytes() for b in cluster.brokers]
    assert files[0] == files[1] == files[2]


def test_leader_killed_five_times(cluster: Cluster) -> None:
    topic = create(cluster)
    with SteadyProducer(cluster.bootstrap, topic) as p:
        p.wait_acked(100)
        for round_ in range(5):
            leader = cluster.leader(topic, 0)
            cluster.brokers[leader].kill()
            wait_for(lambda old=leader: cluster.leader(topic, 0) not in (old, -1), SESSION_MS / 1000 + 15,
                     "a new leader")
            before = len(p.acked)
            p.wait_acked(before + 50, timeout=30)
            cluster.brokers[leader].start()
            wait_for(lambda: len(isr(cluster, topic)) == 3, 30, f"the ISR to heal after round {round_}")
    check_no_loss(cluster, topic, p.acked)


def test_idempotent_producer_writes_each_value_once_across_leader_kills(cluster: Cluster) -> None:
    """Five requests in flight while the leader dies: the retries that reach the new
    leader are recognised as duplicates (the followers kept the producers' state), so
    no value is written twice and none is lost."""
    topic = create(cluster)
    with SteadyProducer(cluster.bootstrap, topic, interval_s=0.002, idempotent=True) as p:
        p.wait_acked(200)
        for _ in range(3):
            leader = cluster.leader(topic, 0)
            cluster.brokers[leader].kill()
            wait_for(lambda old=leader: cluster.leader(topic, 0) not in (old, -1), SESSION_MS / 1000 + 15,
                     "a new leader")
            p.wait_acked(len(p.acked) + 100, timeout=30)
            cluster.brokers[leader].start()
            wait_for(lambda: len(isr(cluster, topic)) == 3, 30, "the ISR to heal")
    assert not p.errors
    check_no_loss(cluster, topic, p.acked)
    for b in cluster.brokers:
        values = list(replica_records(b.data_dir, topic).values())
        assert len(values) == len(set(values)), "a value was written twice"
        assert set(values) == set(p.acked), "every value written was acknowledged, and the other way round"


def test_paused_follower_leaves_and_rejoins_the_isr(cluster: Cluster) -> None:
    topic = create(cluster)
    leader = cluster.leader(topic, 0)
    follower = next(b for b in range(3) if b != leader)
    proc = cluster.brokers[follower].proc
    assert proc is not None
    with SteadyProducer(cluster.bootstrap, topic) as p:
        p.wait_acked(50)
        proc.send_signal(signal.SIGSTOP)
        try:
            wait_for(lambda: follower not in isr(cluster, topic), LAG_MS / 1000 + 10, "the ISR to shrink")
            before = len(p.acked)
            p.wait_acked(before + 100)  # writes go on with 2 in the ISR
        finally:
            proc.send_signal(signal.SIGCONT)
        wait_for(lambda: follower in isr(cluster, topic), SESSION_MS / 1000 + 30, "the follower to rejoin the ISR")
    check_no_loss(cluster, topic, p.acked)


def test_both_followers_stopped_refuses_acks_all(cluster: Cluster) -> None:
    from moldau.protocol.records import RecordInput, build_batch
    from tests.integration.test_bad_input import connect, decode, encode, produce_request, recv_frame

    topic = create(cluster)
    leader = cluster.leader(topic, 0)
    followers = [b for b in range(3) if b != leader]
    with SteadyProducer(cluster.brokers[leader].bootstrap, topic) as p:
        p.wait_acked(50)
        for f in followers:
            cluster.brokers[f].proc.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
        try:
            wait_for(lambda: cluster.agreed_leader(topic, 0, [leader]) == leader
                     and isr(cluster, topic) == [leader], SESSION_MS / 1000 + 10, "the ISR to shrink to the leader")
            acked_before = set(p.acked)
            # A direct acks=all request is refused before it is appended.
            mod = produce_request(topic, 0, build_batch([RecordInput(b"refused")]))
            mod = type(mod)(transactional_id=None, acks=-1, timeout=mod.timeout, topic_data=mod.topic_data)
            with connect(cluster.brokers[leader]) as s:
                s.sendall(encode(0, 8, mod))
                code = decode(0, 8, recv_frame(s)).responses[0].partition_responses[0].error_code
            assert code == 19  # NOT_ENOUGH_REPLICAS
            time.sleep(1.5)
            new = set(p.acked) - acked_before
            assert not new, f"{len(new)} records acknowledged with only the leader in sync"
        finally:
            for f in followers:
                cluster.brokers[f].proc.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
    assert b"refused" not in p.acked
    check_no_loss(cluster, topic, p.acked)


def test_follower_restart_then_leader_killed_kip101(cluster: Cluster) -> None:
    topic = create(cluster)
    with SteadyProducer(cluster.bootstrap, topic) as p:
        p.wait_acked(100)
        leader = cluster.leader(topic, 0)
        controller = cluster.controller_id()
        # The harder case when possible: the restarted follower is also the controller.
        follower = controller if controller != leader else next(b for b in range(3) if b != leader)
        cluster.brokers[follower].kill()
        cluster.brokers[follower].start()
        leader = cluster.leader(topic, 0)
        cluster.brokers[leader].kill()
        wait_for(lambda: cluster.leader(topic, 0) not in (leader, -1), SESSION_MS / 1000 + 15, "a new leader")
        before = len(p.acked)
        p.wait_acked(before + 50)
        cluster.brokers[leader].start()
    check_no_loss(cluster, topic, p.acked)


def test_unclean_election_off_keeps_partition_offline_until_enabled(cluster: Cluster) -> None:
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    name = f"u-{uuid.uuid4().hex[:8]}"
    admin = cluster.admin()
    admin.create_topics([NewTopic(name, 1, 2, config={"min.insync.replicas": "1"})])[name].result(20)
    wait_for(lambda: len(isr(cluster, name)) == 2, 10, "ISR of 2")
    leader = cluster.leader(name, 0)
    follower = next(b for b in admin.list_topics(name, timeout=5).topics[name].partitions[0].replicas if b != leader)
    fproc = cluster.brokers[follower].proc
    assert fproc is not None
    fproc.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: isr(cluster, name) == [leader], SESSION_MS / 1000 + 10, "the ISR to shrink to the leader")
        p = Producer({"bootstrap.servers": cluster.brokers[leader].bootstrap, "acks": "1"})
        p.produce(name, b"only-on-the-leader", partition=0)
        assert p.flush(10) == 0
        cluster.brokers[leader].kill()
    finally:
        fproc.send_signal(signal.SIGCONT)
    others = [b for b in range(3) if b != leader]
    wait_for(lambda: len(cluster.admin().list_topics(timeout=5).brokers) == 2, 20, "the leader gone")
    time.sleep(SESSION_MS / 1000 + 1)
    assert cluster.agreed_leader(name, 0, others) == -1, "no unclean election by default: the partition stays offline"
    res = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=[
        ConfigEntry("unclean.leader.election.enable", "true", incremental_operation=AlterConfigOpType.SET)])
    cluster.admin().incremental_alter_configs([res])[res].result(10)
    wait_for(lambda: cluster.agreed_leader(name, 0, others) == follower, 15, "the out-of-sync replica to lead")
    controller = cluster.controller_id()
    assert "UNCLEAN leader election" in cluster.brokers[controller].log()

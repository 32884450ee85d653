"""Both `Coordination` backends against one contract, then the ZooKeeper backend against a
real ZooKeeper: Kafka's znode bytes, chroot, several brokers' sessions, fencing, session
loss and ZooKeeper restarts."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient  # type: ignore[import-untyped]

from moldau.controller.coordination import (
    BadVersionError,
    BrokerIdInUseError,
    BrokerInfo,
    Coordination,
    CoordinationError,
    Endpoint,
    LeaderAndIsr,
    NotControllerError,
    TopicAssignment,
    TopicExistsError,
)
from moldau.controller.embedded_coordination import EmbeddedCoordination
from moldau.controller.zookeeper import ZooKeeperCoordination, encode_topic_id
from tests.cluster.zookeeper_server import ZooKeeperServer, free_port

SESSION_MS = 4000
# ZooKeeper restarted under a live session: a JVM start on a loaded CI machine has taken
# more than 8 s, and on a machine running other suites at once the clients stayed
# disconnected for more than 30 s (they presumed their sessions lost, and the server then
# expired them). The longest session the test server grants (its maxSessionTimeout).
RESTART_SESSION_MS = 60000


class Events:
    """A watch callback that counts its calls (from any thread)."""

    def __init__(self) -> None:
        self.count = 0
        self._cond = threading.Condition()

    def __call__(self) -> None:
        with self._cond:
            self.count += 1
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.count >= count, timeout)


def eventually(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout}s")


def broker(broker_id: int, port: int = 9092, rack: str | None = None) -> BrokerInfo:
    return BrokerInfo(broker_id, (Endpoint("PLAINTEXT", "127.0.0.1", port),), rack)


def state(leader: int, leader_epoch: int, isr: tuple[int, ...], controller_epoch: int) -> LeaderAndIsr:
    return LeaderAndIsr(leader, leader_epoch, isr, controller_epoch)


@pytest.fixture
def started() -> Iterator[Callable[[Coordination], Any]]:
    """Start coordinations and close them after the test, in reverse order."""
    opened: list[Coordination] = []

    def start(c: Coordination) -> Any:
        c.start()
        opened.append(c)
        return c

    try:
        yield start
    finally:
        for c in reversed(opened):
            c.close()


@pytest.fixture
def raw(zk_connect: str) -> Iterator[KazooClient]:
    """A plain kazoo client in the test's chroot, to read and poke znodes directly."""
    # The coordination under test creates the chroot; this client only starts after that.
    client = KazooClient(hosts=zk_connect, timeout=SESSION_MS / 1000)
    yield client
    client.stop()
    client.close()


# --- the contract: both backends -----------------------------------------------------------


@pytest.fixture(params=["embedded", "zookeeper"])
def coordination(
    request: pytest.FixtureRequest, tmp_path: Path, started: Callable[[Coordination], Any]
) -> Coordination:
    if request.param == "embedded":
        return started(EmbeddedCoordination(tmp_path / "logs"))  # type: ignore[no-any-return]
    return started(ZooKeeperCoordination(request.getfixturevalue("zk_connect"), SESSION_MS))  # type: ignore[no-any-return]


def test_cluster_id_is_created_once(coordination: Coordination) -> None:
    assert coordination.get_or_create_cluster_id("first") == "first"
    assert coordination.get_or_create_cluster_id("second") == "first"


def test_brokers_register_and_are_listed(coordination: Coordination) -> None:
    assert coordination.live_brokers() == {}
    one = BrokerInfo(
        1, (Endpoint("PLAINTEXT", "127.0.0.1", 9092), Endpoint("INTERNAL", "10.0.0.1", 9093, "PLAINTEXT")), "rack-a"
    )
    coordination.register_broker(one)
    coordination.register_broker(broker(2, 9094))
    assert coordination.live_brokers() == {1: one, 2: broker(2, 9094)}
    coordination.register_broker(one)  # the same session again: an update, not a conflict
    assert coordination.live_brokers()[1] == one


def test_controller_election_bumps_the_epoch(coordination: Coordination) -> None:
    assert coordination.controller_id() is None
    assert coordination.controller_epoch() == 0
    assert coordination.try_become_controller(1) == 1
    assert coordination.controller_id() == 1
    assert coordination.controller_epoch() == 1
    assert coordination.try_become_controller(2) is None
    assert coordination.controller_id() == 1


def test_topics_and_configs(coordination: Coordination) -> None:
    tid = uuid.uuid4()
    assert coordination.topics() == {}
    coordination.create_topic(TopicAssignment("orders", tid, {0: [1, 2], 1: [2, 1]}), {"cleanup.policy": "compact"})
    assert coordination.topics() == {"orders": TopicAssignment("orders", tid, {0: [1, 2], 1: [2, 1]})}
    assert coordination.topic_configs("orders") == {"cleanup.policy": "compact"}
    with pytest.raises(TopicExistsError):
        coordination.create_topic(TopicAssignment("orders", uuid.uuid4(), {0: [1]}), {})
    assert coordination.topics()["orders"].topic_id == tid

    coordination.set_topic_configs("orders", {"retention.ms": "1000"})
    assert coordination.topic_configs("orders") == {"retention.ms": "1000"}
    assert coordination.topic_configs("missing") == {}


def test_controller_only_writes_need_the_controller(coordination: Coordination) -> None:
    tid = uuid.uuid4()
    coordination.create_topic(TopicAssignment("t", tid, {0: [1]}), {})
    with pytest.raises(NotControllerError):
        coordination.create_partition_state("t", 0, state(1, 0, (1,), 1))
    with pytest.raises(NotControllerError):
        coordination.set_assignment(TopicAssignment("t", tid, {0: [1], 1: [1]}))
    with pytest.raises(NotControllerError):
        coordination.complete_topic_deletion("t")
    assert coordination.partition_state("t", 0) is None


def test_partition_state_is_compare_and_set(coordination: Coordination) -> None:
    tid = uuid.uuid4()
    coordination.create_topic(TopicAssignment("t", tid, {0: [1, 2]}), {})
    epoch = coordination.try_become_controller(1)
    assert epoch == 1
    assert coordination.partition_state("t", 0) is None
    assert coordination.create_partition_state("t", 0, state(1, 0, (1, 2), epoch)) == 0
    assert coordination.partition_state("t", 0) == (state(1, 0, (1, 2), epoch), 0)
    with pytest.raises(BadVersionError):
        coordination.create_partition_state("t", 0, state(2, 0, (2,), epoch))

    assert coordination.update_partition_state("t", 0, state(2, 1, (2,), epoch), 0) == 1
    with pytest.raises(BadVersionError):
        coordination.update_partition_state("t", 0, state(1, 2, (1,), epoch), 0)  # stale version
    with pytest.raises(BadVersionError):
        coordination.update_partition_state("t", 7, state(1, 2, (1,), epoch), 0)  # no such state
    assert coordination.partition_state("t", 0) == (state(2, 1, (2,), epoch), 1)

    with pytest.raises(CoordinationError):
        coordination.create_partition_state("missing", 0, state(1, 0, (1,), epoch))


def test_partition_states_in_batches(coordination: Coordination) -> None:
    """The controller's batched writes: many creates (more than one multi-op's worth, and
    some that exist already or whose topic is gone), then many compare-and-sets."""
    tid = uuid.uuid4()
    coordination.create_topic(TopicAssignment("t", tid, {p: [1] for p in range(1200)}), {})
    assert not coordination.topic_exists("missing") and coordination.topic_exists("t")
    epoch = coordination.try_become_controller(1)
    assert epoch is not None
    assert coordination.create_partition_state("t", 700, state(1, 0, (1,), epoch)) == 0
    created = coordination.create_partition_states(
        {**{("t", p): state(1, 0, (1,), epoch) for p in range(1200)}, ("missing", 0): state(1, 0, (1,), epoch)})
    assert created == {**{("t", p): 0 for p in range(1200) if p != 700}, ("t", 700): None, ("missing", 0): None}
    assert coordination.partition_state("t", 1199) == (state(1, 0, (1,), epoch), 0)
    updated = coordination.update_partition_states({
        ("t", 0): (state(1, 1, (1,), epoch), 0),
        ("t", 1): (state(1, 1, (1,), epoch), 5),  # stale
        ("t", 5000): (state(1, 1, (1,), epoch), 0),  # no such state
    })
    assert updated == {("t", 0): 1, ("t", 1): None, ("t", 5000): None}
    assert coordination.partition_state("t", 0) == (state(1, 1, (1,), epoch), 1)
    assert coordination.partition_state("t", 1) == (state(1, 0, (1,), epoch), 0)
    read = coordination.partition_states([("t", p) for p in range(1200)] + [("t", 5000), ("missing", 0)])
    assert len(read) == 1200 and read[("t", 0)] == (state(1, 1, (1,), epoch), 1)
    assert read[("t", 1199)] == (state(1, 0, (1,), epoch), 0)


def test_set_assignment_adds_partitions(coordination: Coordination) -> None:
    tid = uuid.uuid4()
    coordination.create_topic(TopicAssignment("t", tid, {0: [1]}), {})
    coordination.try_become_controller(1)
    coordination.set_assignment(TopicAssignment("t", tid, {0: [1], 1: [2], 2: [1]}))
    assert coordination.topics()["t"].partitions == {0: [1], 1: [2], 2: [1]}
    with pytest.raises(CoordinationError):
        coordination.set_assignment(TopicAssignment("missing", tid, {0: [1]}))


def test_producer_id_blocks_are_disjoint_and_durable(coordination: Coordination) -> None:
    assert coordination.allocate_producer_ids(1, 1000) == (0, 999)
    assert coordination.allocate_producer_ids(2, 1000) == (1000, 1999)
    assert coordination.allocate_producer_ids(1, 10) == (2000, 2009)


def test_concurrent_producer_id_blocks_never_overlap(
    zk_connect: str, raw: KazooClient, started: Callable[[Coordination], Any]
) -> None:
    brokers = [started(ZooKeeperCoordination(zk_connect, SESSION_MS)) for _ in range(3)]
    blocks: list[tuple[int, int]] = []
    lock = threading.Lock()

    def take(c: Coordination, broker_id: int) -> None:
        for _ in range(10):
            block = c.allocate_producer_ids(broker_id, 1000)
            with lock:
                blocks.append(block)

    threads = [threading.Thread(target=take, args=(c, i)) for i, c in enumerate(brokers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(blocks) == [(i * 1000, i * 1000 + 999) for i in range(30)]
    raw.start()
    last = _json_at(raw, "/latest_producer_id_block")
    assert last["version"] == 1 and last["block_start"] == "29000" and last["block_end"] == "29999"
    assert last["broker"] in (0, 1, 2)


def test_topic_deletion(coordination: Coordination) -> None:
    tid = uuid.uuid4()
    coordination.create_topic(TopicAssignment("doomed", tid, {0: [1], 1: [1]}), {"a": "b"})
    coordination.create_topic(TopicAssignment("kept", uuid.uuid4(), {0: [1]}), {})
    epoch = coordination.try_become_controller(1)
    assert epoch is not None
    coordination.create_partition_state("doomed", 0, state(1, 0, (1,), epoch))
    coordination.create_partition_state("doomed", 1, state(1, 0, (1,), epoch))
    assert coordination.pending_topic_deletions() == []
    coordination.request_topic_deletion("doomed")
    coordination.request_topic_deletion("doomed")  # idempotent
    assert coordination.pending_topic_deletions() == ["doomed"]

    coordination.complete_topic_deletion("doomed")
    assert coordination.pending_topic_deletions() == []
    assert set(coordination.topics()) == {"kept"}
    assert coordination.partition_state("doomed", 0) is None
    assert coordination.topic_configs("doomed") == {}
    # The name is free again.
    coordination.create_topic(TopicAssignment("doomed", uuid.uuid4(), {0: [1]}), {})
    assert coordination.partition_state("doomed", 0) is None


def test_watches_fire_on_changes(coordination: Coordination) -> None:
    brokers, controller, topics, configs, deletions = Events(), Events(), Events(), Events(), Events()
    coordination.watch_brokers(brokers)
    coordination.watch_controller(controller)
    coordination.watch_topics(topics)
    coordination.watch_config_changes(configs)
    coordination.watch_topic_deletions(deletions)

    coordination.register_broker(broker(1))
    assert brokers.wait_for(1)
    coordination.try_become_controller(1)
    assert controller.wait_for(1)
    tid = uuid.uuid4()
    coordination.create_topic(TopicAssignment("t", tid, {0: [1]}), {})
    assert topics.wait_for(1)
    coordination.set_assignment(TopicAssignment("t", tid, {0: [1], 1: [1]}))
    assert topics.wait_for(2)
    coordination.set_topic_configs("t", {"k": "v"})
    assert configs.wait_for(1)
    coordination.request_topic_deletion("t")
    assert deletions.wait_for(1)
    coordination.complete_topic_deletion("t")
    assert topics.wait_for(3)
    assert deletions.wait_for(2)


# --- ZooKeeper: the bytes Kafka writes -------------------------------------------------------


def test_client_quota_configs(coordination: Coordination) -> None:
    assert coordination.client_quota_configs() == {}
    coordination.set_user_scram_credentials("alice", {"SCRAM-SHA-256": "salt=YQ==,stored_key=YQ==,server_key=YQ==,"
                                                                       "iterations=4096"})
    coordination.set_client_quota_configs("users/alice", {"producer_byte_rate": "1024"})
    coordination.set_client_quota_configs("users/alice/clients/app", {"consumer_byte_rate": "2048"})
    coordination.set_client_quota_configs("clients/<default>", {"producer_byte_rate": "10"})
    assert coordination.client_quota_configs() == {
        "users/alice": {"producer_byte_rate": "1024"},
        "users/alice/clients/app": {"consumer_byte_rate": "2048"},
        "clients/<default>": {"producer_byte_rate": "10"},
    }
    assert "alice" in coordination.scram_users()  # the user's credentials stay beside its quota
    coordination.set_client_quota_configs("users/alice", {"producer_byte_rate": None})
    coordination.set_client_quota_configs("clients/<default>", {"producer_byte_rate": None})
    assert coordination.client_quota_configs() == {"users/alice/clients/app": {"consumer_byte_rate": "2048"}}
    assert "alice" in coordination.scram_users()


def test_acl_znodes_are_compare_and_set(coordination: Coordination) -> None:
    roots = ("/kafka-acl", "/kafka-acl-extended/prefixed")
    path, prefix = "/kafka-acl/Topic/orders", "/kafka-acl-changes/acl_changes_"
    assert coordination.acl_znodes(roots) == [] and coordination.acl_znode(path) is None
    assert coordination.write_acl_znode(path, b'{"version":1,"acls":[]}', None, prefix, b"TOPIC:orders")
    assert not coordination.write_acl_znode(path, b"x", None, prefix, b"TOPIC:orders")  # exists already
    assert coordination.acl_znode(path) == (b'{"version":1,"acls":[]}', 0)
    assert not coordination.write_acl_znode(path, b"x", 5, prefix, b"TOPIC:orders")  # stale version
    assert coordination.write_acl_znode(path, b"two", 0, prefix, b"TOPIC:orders")
    assert coordination.write_acl_znode("/kafka-acl-extended/prefixed/Group/g", b"p", None,
                                        "/kafka-acl-extended-changes/acl_changes_", b"{}")
    assert sorted(coordination.acl_znodes(roots)) == [
        ("/kafka-acl", "Topic", "orders", b"two"), ("/kafka-acl-extended/prefixed", "Group", "g", b"p")]
    assert coordination.write_acl_znode(path, None, 1, prefix, b"TOPIC:orders")  # deleted
    assert coordination.acl_znode(path) is None
    if isinstance(coordination, ZooKeeperCoordination):  # the one broker keeps no notifications
        changes = coordination.acl_changes("/kafka-acl-changes")
        assert [(name, data) for name, data, _ in changes] == [
            (f"acl_changes_{i:010d}", b"TOPIC:orders") for i in range(3)]
        coordination.delete_acl_changes("/kafka-acl-changes", [changes[0][0], "acl_changes_9999999999"])
        assert len(coordination.acl_changes("/kafka-acl-changes")) == 2
        with pytest.raises(CoordinationError):  # a pattern named ".." is no znode
            coordination.write_acl_znode("/kafka-acl/Topic/..", b"x", None, prefix, b"TOPIC:..")


def _json_at(raw: KazooClient, path: str) -> Any:
    data, _ = raw.get(path)
    return json.loads(data)


def test_znodes_are_kafkas_json(zk_connect: str, raw: KazooClient, started: Callable[[Coordination], Any]) -> None:
    c: ZooKeeperCoordination = started(ZooKeeperCoordination(zk_connect, SESSION_MS))
    raw.start()
    before_ms = int(time.time() * 1000)
    c.get_or_create_cluster_id("Fp0H5DYXRgKyVfMWQYbfqg")
    c.register_broker(
        BrokerInfo(
            3, (Endpoint("PLAINTEXT", "127.0.0.1", 9092), Endpoint("REPLICATION", "::1", 9093, "SSL")), "rack-1"
        )
    )
    c.register_broker(BrokerInfo(4, (Endpoint("EXTERNAL", "10.0.0.4", 9092, "SSL"),)))
    epoch = c.try_become_controller(3)
    tid = uuid.UUID("4ae84f47-b6c8-4b4b-9d06-f8ab1d5a3c01")
    c.create_topic(TopicAssignment("orders", tid, {1: [4, 3], 0: [3, 4]}), {"min.insync.replicas": "2"})
    assert epoch is not None
    c.create_partition_state("orders", 0, state(3, 5, (3, 4), epoch))
    c.set_topic_configs("orders", {"retention.ms": "60000"})
    c.request_topic_deletion("orders")

    assert _json_at(raw, "/cluster/id") == {"version": "1", "id": "Fp0H5DYXRgKyVfMWQYbfqg"}

    reg = _json_at(raw, "/brokers/ids/3")
    assert reg["timestamp"].isdigit() and int(reg["timestamp"]) >= before_ms
    assert reg == {
        "version": 5,
        "host": "127.0.0.1",
        "port": 9092,
        "endpoints": ["PLAINTEXT://127.0.0.1:9092", "REPLICATION://[::1]:9093"],
        "listener_security_protocol_map": {"PLAINTEXT": "PLAINTEXT", "REPLICATION": "SSL"},
        "rack": "rack-1",
        "jmx_port": -1,
        "timestamp": reg["timestamp"],
        "features": {},
    }
    # No PLAINTEXT endpoint: null host, port -1; no rack: no "rack" key (as Kafka).
    reg4 = _json_at(raw, "/brokers/ids/4")
    assert (reg4["host"], reg4["port"], "rack" in reg4) == (None, -1, False)
    assert raw.exists("/brokers/ids/3").ephemeralOwner != 0

    ctrl = _json_at(raw, "/controller")
    assert ctrl == {"version": 1, "brokerid": 3, "timestamp": ctrl["timestamp"]}
    assert ctrl["timestamp"].isdigit()
    assert raw.exists("/controller").ephemeralOwner != 0
    assert raw.get("/controller_epoch")[0] == b"1"

    assert _json_at(raw, "/brokers/topics/orders") == {
        "version": 3,
        "topic_id": "SuhPR7bIS0udBvirHVo8AQ",  # Kafka's Uuid.toString of the same 128 bits
        "partitions": {"0": [3, 4], "1": [4, 3]},
        "adding_replicas": {},
        "removing_replicas": {},
    }
    assert encode_topic_id(tid) == "SuhPR7bIS0udBvirHVo8AQ"
    assert _json_at(raw, "/brokers/topics/orders/partitions/0/state") == {
        "version": 1,
        "leader": 3,
        "leader_epoch": 5,
        "controller_epoch": 1,
        "isr": [3, 4],
    }
    assert _json_at(raw, "/config/topics/orders") == {"version": 1, "config": {"retention.ms": "60000"}}
    changes = raw.get_children("/config/changes")
    assert len(changes) == 1
    assert changes[0].startswith("config_change_") and len(changes[0]) == len("config_change_") + 10
    assert _json_at(raw, f"/config/changes/{changes[0]}") == {"version": 2, "entity_path": "topics/orders"}
    assert raw.get_children("/admin/delete_topics") == ["orders"]


def test_reads_what_kafka_wrote(zk_connect: str, raw: KazooClient, started: Callable[[Coordination], Any]) -> None:
    """znodes in Kafka's own bytes (spacing and key order as Jackson writes them) decode."""
    c: ZooKeeperCoordination = started(ZooKeeperCoordination(zk_connect, SESSION_MS))
    raw.start()
    raw.create(
        "/brokers/ids/7",
        b'{"features":{},"listener_security_protocol_map":{"PLAINTEXT":"PLAINTEXT"},'
        b'"endpoints":["PLAINTEXT://kafka-7:9092"],"jmx_port":-1,"port":9092,"host":"kafka-7",'
        b'"version":5,"timestamp":"1700000000000"}',
        ephemeral=True,
    )
    raw.create(
        "/brokers/topics/events",
        b'{"partitions":{"0":[7]},"topic_id":"SuhPR7bIS0udBvirHVo8AQ","adding_replicas":{},'
        b'"removing_replicas":{},"version":3}',
    )
    raw.create(
        "/brokers/topics/events/partitions/0/state",
        b'{"controller_epoch":9,"leader":7,"version":1,"leader_epoch":2,"isr":[7]}',
        makepath=True,
    )
    raw.create("/controller", b'{"version":2,"brokerid":7,"timestamp":"1700000000000","kraftControllerEpoch":-1}')
    raw.create("/controller_epoch", b"9")
    assert c.live_brokers() == {7: BrokerInfo(7, (Endpoint("PLAINTEXT", "kafka-7", 9092),), None)}
    assert c.topics() == {
        "events": TopicAssignment("events", uuid.UUID("4ae84f47-b6c8-4b4b-9d06-f8ab1d5a3c01"), {0: [7]})
    }
    assert c.partition_state("events", 0) == (state(7, 2, (7,), 9), 0)
    assert (c.controller_id(), c.controller_epoch()) == (7, 9)
    assert c.try_become_controller(1) is None


def test_chroot_is_created(shared_zookeeper: ZooKeeperServer, started: Callable[[Coordination], Any]) -> None:
    chroot = f"/moldau-chroot-{uuid.uuid4().hex[:8]}/cluster-a"
    c: ZooKeeperCoordination = started(ZooKeeperCoordination(shared_zookeeper.connect + chroot, SESSION_MS))
    c.register_broker(broker(1))
    root = KazooClient(hosts=shared_zookeeper.connect)
    root.start()
    try:
        assert root.get_children(f"{chroot}/brokers/ids") == ["1"]
        assert not root.exists("/brokers/ids/1")
        for path in ("/brokers/topics", "/config/topics", "/config/changes", "/admin/delete_topics"):
            assert root.exists(chroot + path), path
    finally:
        root.stop()
        root.close()


def test_start_fails_fast_when_zookeeper_is_unreachable() -> None:
    c = ZooKeeperCoordination(f"127.0.0.1:{free_port()}", session_timeout_ms=3000, connection_timeout_ms=700)
    began = time.monotonic()
    with pytest.raises(CoordinationError, match="could not connect"):
        c.start()
    assert time.monotonic() - began < 3


# --- ZooKeeper: several brokers ------------------------------------------------------------


def test_duplicate_broker_id_is_refused(zk_connect: str, started: Callable[[Coordination], Any]) -> None:
    a = started(ZooKeeperCoordination(zk_connect, SESSION_MS))
    b = started(ZooKeeperCoordination(zk_connect, SESSION_MS))
    a.register_broker(broker(1, 9092))
    with pytest.raises(BrokerIdInUseError, match="broker id 1 is already registered"):
        b.register_broker(broker(1, 9093))
    assert a.live_brokers() == {1: broker(1, 9092)}
    a.close()  # the ephemeral goes with the session: the id is free again
    b.register_broker(broker(1, 9093))
    assert b.live_brokers() == {1: broker(1, 9093)}


def test_other_brokers_see_watches_fire(zk_connect: str, started: Callable[[Coordination], Any]) -> None:
    a: ZooKeeperCoordination = started(ZooKeeperCoordination(zk_connect, SESSION_MS))
    b: ZooKeeperCoordination = started(ZooKeeperCoordination(zk_connect, SESSION_MS))
    brokers, controller, topics, configs, deletions = Events(), Events(), Events(), Events(), Events()
    b.watch_brokers(brokers)
    b.watch_controller(controller)
    b.watch_topics(topics)
    b.watch_config_changes(configs)
    b.watch_topic_deletions(deletions)
    time.sleep(0.2)
    assert (brokers.count, controller.count, topics.count) == (0, 0, 0)  # registering is not a change

    a.register_broker(broker(1))
    assert brokers.wait_for(1)
    assert set(b.live_brokers()) == {1}
    epoch = a.try_become_controller(1)
    assert controller.wait_for(1)
    assert b.controller_id() == 1 and b.controller_epoch() == epoch

    tid = uuid.uuid4()
    a.create_topic(TopicAssignment("t", tid, {0: [1]}), {})
    assert topics.wait_for(1)
    a.set_assignment(TopicAssignment("t", tid, {0: [1], 1: [1]}))
    assert topics.wait_for(2)
    assert b.topics()["t"].partitions == {0: [1], 1: [1]}
    a.set_topic_configs("t", {"retention.ms": "5"})
    assert configs.wait_for(1)
    assert b.topic_configs("t") == {"retention.ms": "5"}
    a.request_topic_deletion("t")
    assert deletions.wait_for(1)
    assert b.pending_topic_deletions() == ["t"]
    a.complete_topic_deletion("t")
    assert topics.wait_for(3) and deletions.wait_for(2)
    # A topic created again under the same name is watched again.
    a.create_topic(TopicAssignment("t", uuid.uuid4(), {0: [1]}), {})
    assert topics.wait_for(4)
    a.set_assignment(TopicAssignment("t", tid, {0: [1], 1: [1], 2: [1]}))
    assert topics.wait_for(5)

    a.close()  # its registration and /controller vanish
    assert brokers.wait_for(2) and controller.wait_for(2)
    assert b.live_brokers() == {} and b.controller_id() is None


def test_a_stale_controller_is_fenced(
    zk_connect: str, raw: KazooClient, started: Callable[[Coordination], Any]
) -> None:
    a: ZooKeeperCoordination = started(ZooKeeperCoordination(zk_connect, SESSION_MS))
    b: ZooKeeperCoordination = started(ZooKeeperCoordination(zk_connect, SESSION_MS))
    raw.start()
    tid = uuid.uuid4()
    a.create_topic(TopicAssignment("t", tid, {0: [1, 2]}), {})
    assert a.try_become_controller(1) == 1
    assert b.try_become_controller(2) is None
    assert a.create_partition_state("t", 0, state(1, 0, (1, 2), 1)) == 0

    # /controller goes away while A's session lives on (an operator's `zkCli delete
    # /controller`, or A paused): B wins, and A's writes must all bounce off ZooKeeper.
    raw.delete("/controller")
    assert b.try_become_controller(2) == 2
    before = raw.get("/brokers/topics/t/partitions/0/state")[0]
    with pytest.raises(NotControllerError):
        a.update_partition_state("t", 0, state(1, 1, (1,), 1), 0)
    assert raw.get("/brokers/topics/t/partitions/0/state")[0] == before
    with pytest.raises(NotControllerError):
        a.set_assignment(TopicAssignment("t", tid, {0: [1]}))
    with pytest.raises(NotControllerError):
        a.complete_topic_deletion("t")
    # B, the controller now, writes with the version it read.
    assert b.update_partition_state("t", 0, state(2, 1, (2,), 2), 0) == 1


def test_a_closed_controller_is_fenced(zk_connect: str, started: Callable[[Coordination], Any]) -> None:
    a: ZooKeeperCoordination = started(ZooKeeperCoordination(zk_connect, SESSION_MS))
    b: ZooKeeperCoordination = started(ZooKeeperCoordination(zk_connect, SESSION_MS))
    a.create_topic(TopicAssignment("t", uuid.uuid4(), {0: [1, 2]}), {})
    assert a.try_become_controller(1) == 1
    a.create_partition_state("t", 0, state(1, 0, (1, 2), 1))
    a.close()
    assert b.try_become_controller(2) == 2
    with pytest.raises(NotControllerError):
        a.update_partition_state("t", 0, state(1, 1, (1,), 1), 0)
    assert b.partition_state("t", 0) == (state(1, 0, (1, 2), 1), 0)


def _expire_session(connect: str, coordination: ZooKeeperCoordination) -> None:
    """Expire a live session the way ZooKeeper's own tests do: another client attaches to
    it with its id and password, then closes it."""
    session_id, password = coordination._client.client_id
    thief = KazooClient(hosts=connect, client_id=(session_id, password), timeout=SESSION_MS / 1000)
    thief.start()
    thief.stop()
    thief.close()


def test_session_expiry_calls_back_and_a_new_session_works(
    zk_connect: str, started: Callable[[Coordination], Any]
) -> None:
    a: ZooKeeperCoordination = started(ZooKeeperCoordination(zk_connect, SESSION_MS))
    b: ZooKeeperCoordination = started(ZooKeeperCoordination(zk_connect, SESSION_MS))
    lost, a_brokers = Events(), Events()
    a.on_session_lost(lost)
    a.watch_brokers(a_brokers)
    a.register_broker(broker(1))
    assert a.try_become_controller(1) == 1
    a.create_topic(TopicAssignment("t", uuid.uuid4(), {0: [1]}), {})
    old_session = a.session_id

    _expire_session(zk_connect, a)
    assert lost.wait_for(1)
    eventually(lambda: b.live_brokers() == {} and b.controller_id() is None, what="ephemerals gone")
    with pytest.raises(NotControllerError):  # the fencing token went with the session
        a.create_partition_state("t", 0, state(1, 0, (1,), 1))

    # kazoo opens a new session; the broker registers again and its watches still work.
    eventually(lambda: a.session_id not in (None, old_session), what="a new session")
    a.register_broker(broker(1))
    assert a.try_become_controller(1) == 2
    count = a_brokers.count
    b.register_broker(broker(2))
    assert a_brokers.wait_for(count + 1)
    assert lost.count == 1


# --- ZooKeeper itself dies -------------------------------------------------------------------


def test_session_presumed_lost_when_zookeeper_is_gone(
    zookeeper: ZooKeeperServer, started: Callable[[Coordination], Any]
) -> None:
    session_ms = 1500
    a: ZooKeeperCoordination = started(ZooKeeperCoordination(zookeeper.connect, session_ms))
    lost = Events()
    a.on_session_lost(lost)
    a.register_broker(broker(1))
    a.create_topic(TopicAssignment("t", uuid.uuid4(), {0: [1]}), {})
    assert a.try_become_controller(1) == 1

    zookeeper.kill()
    killed = time.monotonic()
    assert lost.wait_for(1, timeout=10)
    assert session_ms / 1000 - 0.2 <= time.monotonic() - killed < session_ms / 1000 + 2
    with pytest.raises(NotControllerError):
        a.create_partition_state("t", 0, state(1, 0, (1,), 1))

    # ZooKeeper comes back (same data dir): the broker can register and lead again, whether
    # the server revived the old session or kazoo had to open a new one.
    zookeeper.start()
    eventually(lambda: _succeeds(lambda: a.register_broker(broker(1))), what="registered again")
    assert a.try_become_controller(1) == 2
    a.create_partition_state("t", 0, state(1, 0, (1,), 2))
    assert a.live_brokers() == {1: broker(1)}


def _succeeds(action: Callable[[], object]) -> bool:
    try:
        action()
        return True
    except CoordinationError:
        return False


def test_zookeeper_restart_keeps_data_and_watches(
    zookeeper: ZooKeeperServer, started: Callable[[Coordination], Any]
) -> None:
    a: ZooKeeperCoordination = started(ZooKeeperCoordination(zookeeper.connect, RESTART_SESSION_MS))
    b: ZooKeeperCoordination = started(ZooKeeperCoordination(zookeeper.connect, RESTART_SESSION_MS))
    topics = Events()
    b.watch_topics(topics)
    tid = uuid.uuid4()
    a.get_or_create_cluster_id("cluster-1")
    a.create_topic(TopicAssignment("t", tid, {0: [1]}), {"k": "v"})
    assert topics.wait_for(1)
    assert a.try_become_controller(1) == 1
    a.create_partition_state("t", 0, state(1, 0, (1,), 1))

    zookeeper.kill()
    zookeeper.start()  # back well within the session timeout: sessions survive
    eventually(lambda: _succeeds(a.topics) and _succeeds(b.topics), what="reconnected", timeout=60.0)
    a.create_topic(TopicAssignment("u", uuid.uuid4(), {0: [1]}), {})
    assert topics.wait_for(2)  # b's watch was re-armed on reconnect
    assert a.update_partition_state("t", 0, state(1, 1, (1,), 1), 0) == 1  # still the controller

    fresh: ZooKeeperCoordination = started(ZooKeeperCoordination(zookeeper.connect, RESTART_SESSION_MS))
    assert fresh.get_or_create_cluster_id("other") == "cluster-1"
    assert fresh.topics()["t"] == TopicAssignment("t", tid, {0: [1]})
    assert fresh.topic_configs("t") == {"k": "v"}
    assert fresh.partition_state("t", 0) == (state(1, 1, (1,), 1), 1)
    assert fresh.controller_epoch() == 1

    a.close()
    b.close()
    zookeeper.stop()  # SIGTERM this time
    zookeeper.start()
    again: ZooKeeperCoordination = started(ZooKeeperCoordination(zookeeper.connect, RESTART_SESSION_MS))
    assert set(again.topics()) == {"t", "u"}
    assert again.controller_id() is None
    assert again.try_become_controller(5) == 2

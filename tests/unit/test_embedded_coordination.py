"""The embedded coordination backend: what survives a restart, what vanishes with the
session, compare-and-set, fencing, watches. (The contract it shares with the ZooKeeper
backend runs against both in tests/cluster/test_zookeeper_coordination.py.)"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from moldau.controller.coordination import (
    BadVersionError,
    BrokerInfo,
    Coordination,
    CoordinationError,
    Endpoint,
    LeaderAndIsr,
    NotControllerError,
    TopicAssignment,
    TopicExistsError,
)
from moldau.controller.embedded_coordination import COORDINATION_FILE, JOURNAL_FILE, EmbeddedCoordination

ONE = BrokerInfo(1, (Endpoint("PLAINTEXT", "127.0.0.1", 9092),), "rack-a")


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "logs"


@pytest.fixture
def coordination(log_dir: Path) -> Iterator[EmbeddedCoordination]:
    c = EmbeddedCoordination(log_dir)
    c.start()
    yield c
    c.close()


def reopen(c: EmbeddedCoordination) -> EmbeddedCoordination:
    c.close()
    again = EmbeddedCoordination(c.log_dir)
    again.start()
    return again


def test_producer_id_blocks_survive_a_restart(coordination: EmbeddedCoordination) -> None:
    assert coordination.allocate_producer_ids(0, 1000) == (0, 999)
    again = reopen(coordination)
    try:
        assert again.allocate_producer_ids(0, 1000) == (1000, 1999)
    finally:
        again.close()


def test_it_is_a_coordination(coordination: EmbeddedCoordination) -> None:
    c: Coordination = coordination  # mypy checks the protocol here
    assert c.controller_epoch() == 0


def test_durable_state_survives_a_restart(coordination: EmbeddedCoordination) -> None:
    c = coordination
    tid = uuid.uuid4()
    c.get_or_create_cluster_id("cluster-1")
    c.register_broker(ONE)
    c.create_topic(TopicAssignment("orders", tid, {0: [1], 1: [1]}), {"cleanup.policy": "compact"})
    epoch = c.try_become_controller(1)
    assert epoch == 1
    c.create_partition_state("orders", 0, LeaderAndIsr(1, 0, (1,), epoch))
    c.update_partition_state("orders", 0, LeaderAndIsr(1, 1, (1,), epoch), 0)
    c.set_topic_configs("orders", {"retention.ms": "100"})
    c.request_topic_deletion("orders")

    again = reopen(c)
    try:
        assert again.get_or_create_cluster_id("other") == "cluster-1"
        assert again.topics() == {"orders": TopicAssignment("orders", tid, {0: [1], 1: [1]})}
        assert again.topic_configs("orders") == {"retention.ms": "100"}
        assert again.partition_state("orders", 0) == (LeaderAndIsr(1, 1, (1,), 1), 1)
        assert again.partition_state("orders", 1) is None
        assert again.pending_topic_deletions() == ["orders"]
        assert again.controller_epoch() == 1
        # Ephemeral things did not survive.
        assert again.live_brokers() == {}
        assert again.controller_id() is None
        # A new controller term starts above the persisted epoch.
        assert again.try_become_controller(1) == 2
    finally:
        again.close()


def test_the_files_are_a_snapshot_and_a_log_and_readable(coordination: EmbeddedCoordination, log_dir: Path) -> None:
    coordination.get_or_create_cluster_id("c")
    coordination.create_topic(TopicAssignment("t", uuid.uuid4(), {0: [1]}), {})
    assert sorted(p.name for p in log_dir.iterdir()) == [COORDINATION_FILE, JOURNAL_FILE]  # no tmp file
    doc = json.loads((log_dir / COORDINATION_FILE).read_text())
    assert doc["version"] == 1 and doc["cluster_id"] == "c"
    lines = [json.loads(line) for line in (log_dir / JOURNAL_FILE).read_text().splitlines()]
    assert [change[:2] for line in lines for change in line["changes"]] == [["topic", "t"], ["topic_configs", "t"]]
    assert "brokers" not in doc and "controller" not in doc
    # A restart folds the log into the snapshot.
    reopen(coordination).close()
    doc = json.loads((log_dir / COORDINATION_FILE).read_text())
    assert set(doc["topics"]) == {"t"} and (log_dir / JOURNAL_FILE).read_bytes() == b""


def test_a_partition_state_costs_one_short_log_line_whatever_the_state_size(
    coordination: EmbeddedCoordination, log_dir: Path
) -> None:
    """Anomaly #9: the whole document was rewritten for every partition state."""
    c = coordination
    c.create_topic(TopicAssignment("big", uuid.uuid4(), {p: [1] for p in range(3000)}), {})
    epoch = c.try_become_controller(1)
    assert epoch is not None
    assert c.create_partition_states({("big", p): LeaderAndIsr(1, 0, (1,), epoch) for p in range(2999)}) == {
        ("big", p): 0 for p in range(2999)}
    journal = log_dir / JOURNAL_FILE
    before = journal.stat().st_size
    c.create_partition_state("big", 2999, LeaderAndIsr(1, 0, (1,), epoch))
    assert journal.stat().st_size - before < 200
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    # The epoch (the topic went into the first snapshot), one batch, one state.
    assert [len(line["changes"]) for line in lines] == [1, 2999, 1]
    # One batch of compare-and-sets: the stale one is refused, the others written.
    updates = {("big", 0): (LeaderAndIsr(1, 1, (1,), epoch), 0), ("big", 1): (LeaderAndIsr(1, 1, (1,), epoch), 7)}
    assert c.update_partition_states(updates) == {("big", 0): 1, ("big", 1): None}
    again_created = c.create_partition_states({("big", 0): LeaderAndIsr(1, 0, (1,), epoch),
                                               ("gone", 0): LeaderAndIsr(1, 0, (1,), epoch)})
    assert again_created == {("big", 0): None, ("gone", 0): None}
    again = reopen(c)
    try:
        assert again.partition_state("big", 0) == (LeaderAndIsr(1, 1, (1,), epoch), 1)
        assert again.partition_state("big", 1) == (LeaderAndIsr(1, 0, (1,), epoch), 0)
        assert again.partition_state("big", 2999) == (LeaderAndIsr(1, 0, (1,), epoch), 0)
    finally:
        again.close()


def test_a_torn_last_log_line_is_dropped_and_a_grown_log_becomes_a_snapshot(log_dir: Path) -> None:
    c = EmbeddedCoordination(log_dir)
    c.start()
    c.create_topic(TopicAssignment("t", uuid.uuid4(), {0: [1]}), {})
    for i in range(60):  # each line carries 20 KB: the log outgrows 1 MiB and is folded
        c.set_topic_configs("t", {"k": str(i), "pad": "x" * 20_000})
    assert (log_dir / JOURNAL_FILE).stat().st_size < 1 << 20
    c.set_topic_configs("t", {"k": "last"})
    c.close()
    with open(log_dir / JOURNAL_FILE, "ab") as f:
        f.write(b'{"seq": 999, "changes": [["topic_con')  # a crash in the middle of an append
    again = EmbeddedCoordination(log_dir)
    again.start()
    try:
        assert again.topic_configs("t") == {"k": "last"}
        again.set_topic_configs("t", {"k": "after"})
    finally:
        again.close()
    third = EmbeddedCoordination(log_dir)
    third.start()
    try:
        assert third.topic_configs("t") == {"k": "after"}
    finally:
        third.close()


def test_a_corrupt_file_is_an_error_not_an_empty_cluster(log_dir: Path) -> None:
    log_dir.mkdir()
    (log_dir / COORDINATION_FILE).write_text("{not json")
    with pytest.raises(CoordinationError, match="cannot read"):
        EmbeddedCoordination(log_dir).start()


def test_close_drops_registrations_and_the_controller(coordination: EmbeddedCoordination) -> None:
    coordination.register_broker(ONE)
    assert coordination.try_become_controller(1) == 1
    coordination.close()
    with pytest.raises(CoordinationError):
        coordination.live_brokers()
    coordination.start()  # a new session on the same store
    assert coordination.live_brokers() == {}
    assert coordination.controller_id() is None
    assert coordination.controller_epoch() == 1


def test_compare_and_set(coordination: EmbeddedCoordination) -> None:
    c = coordination
    c.create_topic(TopicAssignment("t", uuid.uuid4(), {0: [1, 2]}), {})
    epoch = c.try_become_controller(1)
    assert epoch is not None
    assert c.create_partition_state("t", 0, LeaderAndIsr(1, 0, (1, 2), epoch)) == 0
    with pytest.raises(BadVersionError):
        c.create_partition_state("t", 0, LeaderAndIsr(1, 0, (1, 2), epoch))
    assert c.update_partition_state("t", 0, LeaderAndIsr(2, 1, (2,), epoch), 0) == 1
    assert c.update_partition_state("t", 0, LeaderAndIsr(2, 1, (1, 2), epoch), 1) == 2
    with pytest.raises(BadVersionError):
        c.update_partition_state("t", 0, LeaderAndIsr(1, 2, (1,), epoch), 1)
    with pytest.raises(BadVersionError):
        c.update_partition_state("t", 5, LeaderAndIsr(1, 2, (1,), epoch), 0)
    assert c.partition_state("t", 0) == (LeaderAndIsr(2, 1, (1, 2), epoch), 2)
    with pytest.raises(CoordinationError):
        c.create_partition_state("missing", 0, LeaderAndIsr(1, 0, (1,), epoch))


def test_fencing(coordination: EmbeddedCoordination) -> None:
    c = coordination
    tid = uuid.uuid4()
    c.create_topic(TopicAssignment("t", tid, {0: [1]}), {})
    with pytest.raises(NotControllerError):
        c.create_partition_state("t", 0, LeaderAndIsr(1, 0, (1,), 0))
    assert c.try_become_controller(1) == 1
    assert c.try_become_controller(2) is None  # broker 1 holds the seat
    c.create_partition_state("t", 0, LeaderAndIsr(1, 0, (1,), 1))

    lost: list[str] = []
    c.on_session_lost(lambda: lost.append("lost"))
    c.expire_session()
    assert lost == ["lost"]
    assert c.controller_id() is None
    with pytest.raises(NotControllerError):
        c.update_partition_state("t", 0, LeaderAndIsr(1, 1, (1,), 1), 0)
    with pytest.raises(NotControllerError):
        c.set_assignment(TopicAssignment("t", tid, {0: [1], 1: [1]}))
    with pytest.raises(NotControllerError):
        c.complete_topic_deletion("t")
    assert c.partition_state("t", 0) == (LeaderAndIsr(1, 0, (1,), 1), 0)

    assert c.try_become_controller(2) == 2
    assert c.update_partition_state("t", 0, LeaderAndIsr(1, 1, (1,), 2), 0) == 1


def test_topic_exists(coordination: EmbeddedCoordination) -> None:
    coordination.create_topic(TopicAssignment("t", uuid.uuid4(), {0: [1]}), {"a": "b"})
    with pytest.raises(TopicExistsError):
        coordination.create_topic(TopicAssignment("t", uuid.uuid4(), {0: [1]}), {})
    assert coordination.topic_configs("t") == {"a": "b"}


def test_returned_assignments_are_copies(coordination: EmbeddedCoordination) -> None:
    coordination.create_topic(TopicAssignment("t", uuid.uuid4(), {0: [1]}), {})
    coordination.topics()["t"].partitions[0].append(99)
    assert coordination.topics()["t"].partitions == {0: [1]}


def test_watches_fire_after_the_change_and_may_read(coordination: EmbeddedCoordination) -> None:
    c = coordination
    seen: list[object] = []
    c.watch_brokers(lambda: seen.append(("brokers", sorted(c.live_brokers()))))
    c.watch_controller(lambda: seen.append(("controller", c.controller_id())))
    c.watch_topics(lambda: seen.append(("topics", sorted(c.topics()))))
    c.watch_config_changes(lambda: seen.append(("configs", c.topic_configs("t"))))
    c.watch_topic_deletions(lambda: seen.append(("deletions", c.pending_topic_deletions())))

    c.register_broker(ONE)
    c.try_become_controller(1)
    c.create_topic(TopicAssignment("t", uuid.uuid4(), {0: [1]}), {})
    c.set_topic_configs("t", {"k": "v"})
    c.request_topic_deletion("t")
    c.request_topic_deletion("t")  # no change, no event
    c.complete_topic_deletion("t")
    c.expire_session()
    assert seen == [
        ("brokers", [1]),
        ("controller", 1),
        ("topics", ["t"]),
        ("configs", {"k": "v"}),
        ("deletions", ["t"]),
        ("topics", []),
        ("deletions", []),
        ("brokers", []),
        ("controller", None),
    ]


def test_a_failing_callback_does_not_break_the_write(coordination: EmbeddedCoordination) -> None:
    def boom() -> None:
        raise RuntimeError("callback bug")

    later: list[int] = []
    coordination.watch_topics(boom)
    coordination.watch_topics(lambda: later.append(1))
    coordination.create_topic(TopicAssignment("t", uuid.uuid4(), {0: [1]}), {})
    assert set(coordination.topics()) == {"t"}
    assert later == [1]


def test_acl_znodes_survive_a_restart(coordination: EmbeddedCoordination) -> None:
    path = "/kafka-acl/Topic/orders"
    assert coordination.write_acl_znode(path, b'{"version":1,"acls":[]}', None, "/kafka-acl-changes/acl_changes_",
                                        b"TOPIC:orders")
    again = reopen(coordination)
    try:
        assert again.acl_znode(path) == (b'{"version":1,"acls":[]}', 0)
        assert again.acl_znodes(("/kafka-acl",)) == [("/kafka-acl", "Topic", "orders", b'{"version":1,"acls":[]}')]
    finally:
        again.close()

"""Consumer groups with real clients as separate processes: assignments, a killed member,
committed offsets across a broker restart, static membership, cooperative rebalancing."""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import ConsumerGroupState, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.helpers import BrokerProcess

GROUP_OVERRIDES = {"group.initial.rebalance.delay.ms": "0", "group.min.session.timeout.ms": "500"}
MEMBER = str(Path(__file__).with_name("group_member.py"))


class Member:
    """One group member process; its event lines are collected as they come."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def records(self) -> list[str]:
        return [line.split(" ", 3)[3] for line in list(self.lines) if line.startswith("RECORD ")]

    def events(self, kind: str) -> list[set[str]]:
        return [set(filter(None, line.split(" ", 1)[1].split(",")))
                for line in list(self.lines) if line.startswith(kind + " ") or line == kind]

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)


@pytest.fixture
def members() -> Iterator[Callable[..., Member]]:
    started: list[Member] = []

    def start(broker: BrokerProcess, group: str, topic: str, client: str = "confluent", **opts: str) -> Member:
        if client == "kcat":
            args = ["kcat", "-b", broker.bootstrap, "-G", group, topic, "-q", "-o", "beginning"]
        else:
            args = [sys.executable, MEMBER, "--client", client, "--bootstrap", broker.bootstrap,
                    "--group", group, "--topic", topic]
            for k, v in opts.items():
                args += [f"--{k.replace('_', '-')}", v]
        m = Member(args)
        started.append(m)
        return m

    yield start
    for m in started:
        m.kill()


def create_topic(broker: BrokerProcess, partitions: int) -> str:
    name = f"g-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(10)
    return name


def produce(broker: BrokerProcess, topic: str, values: list[str]) -> None:
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for i, v in enumerate(values):
        p.produce(topic, v.encode(), key=str(i).encode())
    assert p.flush(10) == 0


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def describe(broker: BrokerProcess, group: str):  # type: ignore[no-untyped-def]
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    return admin.describe_consumer_groups([group])[group].result(10)


def stable_assignment(broker: BrokerProcess, group: str, n_members: int) -> dict[str, set[int]] | None:
    d = describe(broker, group)
    if d.state != ConsumerGroupState.STABLE or len(d.members) != n_members:
        return None
    out = {m.member_id: {tp.partition for tp in m.assignment.topic_partitions} for m in d.members}
    return out


@pytest.mark.parametrize("client", ["confluent", "kafka-python", "aiokafka", "kcat"])
def test_three_members_share_six_partitions(make_broker: Callable[..., BrokerProcess],
                                            members: Callable[..., Member], client: str) -> None:
    broker = make_broker(GROUP_OVERRIDES)
    topic = create_topic(broker, 6)
    group = f"grp-{client}"
    for _ in range(3):
        members(broker, group, topic, client)
    found: dict[str, dict[str, set[int]]] = {}

    def settled() -> bool:
        a = stable_assignment(broker, group, 3)
        if a and sum(len(p) for p in a.values()) == 6:
            found["a"] = a
            return True
        return False

    wait_for(settled, 40, f"3 {client} members to share 6 partitions")
    parts = list(found["a"].values())
    assert all(parts), "every member gets partitions"
    assert set().union(*parts) == set(range(6))
    assert sum(len(p) for p in parts) == 6, "assignments are disjoint"


def test_killed_member_loses_its_partitions_and_nothing_is_skipped(
        make_broker: Callable[..., BrokerProcess], members: Callable[..., Member]) -> None:
    broker = make_broker(GROUP_OVERRIDES)
    topic = create_topic(broker, 6)
    group = "grp-kill"
    ms = [members(broker, group, topic, session_timeout_ms="2000") for _ in range(3)]
    wait_for(lambda: stable_assignment(broker, group, 3), 30, "a stable group of 3")
    first = [f"a{i}" for i in range(300)]
    produce(broker, topic, first)
    wait_for(lambda: len({r for m in ms for r in m.records()}) == 300, 30, "the first 300 records")
    ms[0].kill(signal.SIGKILL)
    killed_at = time.monotonic()
    second = [f"b{i}" for i in range(300)]
    produce(broker, topic, second)
    wait_for(lambda: stable_assignment(broker, group, 2), 15, "the group to drop the killed member")
    assert time.monotonic() - killed_at < 2.0 + 5.0, "reassigned within the session timeout (+ slack)"
    wait_for(lambda: {r for m in ms[1:] for r in m.records()} >= set(second), 30,
             "survivors to consume every record produced after the kill")
    consumed = {r for m in ms for r in m.records()}
    assert consumed >= set(first) | set(second), "every record consumed at least once"


def test_committed_offsets_survive_broker_restart(make_broker: Callable[..., BrokerProcess],
                                                   members: Callable[..., Member]) -> None:
    broker = make_broker(GROUP_OVERRIDES)
    topic = create_topic(broker, 3)
    produce(broker, topic, [f"v{i}" for i in range(90)])
    m = members(broker, "grp-restart", topic, session_timeout_ms="2000")
    wait_for(lambda: len(m.records()) == 90, 30, "90 records consumed and committed")
    m.kill(signal.SIGTERM)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    from confluent_kafka import ConsumerGroupTopicPartitions

    def committed() -> dict[int, int]:
        req = [ConsumerGroupTopicPartitions("grp-restart", [TopicPartition(topic, p) for p in range(3)])]
        res = admin.list_consumer_group_offsets(req)["grp-restart"].result(10)
        return {tp.partition: tp.offset for tp in res.topic_partitions}

    before = committed()
    assert sum(before.values()) == 90
    broker.stop()
    broker.start()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    assert committed() == before
    m2 = members(broker, "grp-restart", topic, session_timeout_ms="2000")
    produce(broker, topic, ["after"])
    wait_for(lambda: m2.records() == ["after"], 30, "a new member to resume from the committed offsets")


def test_static_member_restart_causes_no_rebalance(make_broker: Callable[..., BrokerProcess],
                                                    members: Callable[..., Member]) -> None:
    broker = make_broker(GROUP_OVERRIDES)
    topic = create_topic(broker, 4)
    group = "grp-static"
    a = members(broker, group, topic, session_timeout_ms="10000", instance_id="a")
    b = members(broker, group, topic, session_timeout_ms="10000", instance_id="b")
    wait_for(lambda: stable_assignment(broker, group, 2), 30, "two static members")
    before = {frozenset(p) for p in stable_assignment(broker, group, 2).values()}  # type: ignore[union-attr]
    wait_for(lambda: a.events("ASSIGN") and b.events("ASSIGN"), 10, "both assigned")
    b_events = len(b.lines)
    a.kill(signal.SIGKILL)
    a2 = members(broker, group, topic, session_timeout_ms="10000", instance_id="a")
    wait_for(lambda: a2.events("ASSIGN"), 20, "the restarted static member to get its partitions")
    after = stable_assignment(broker, group, 2)
    assert after is not None and {frozenset(p) for p in after.values()} == before
    time.sleep(1.0)
    assert not [line for line in b.lines[b_events:] if line.startswith(("REVOKE", "ASSIGN"))], \
        "the other member saw no rebalance"


def test_cooperative_sticky_rebalances_incrementally(make_broker: Callable[..., BrokerProcess],
                                                      members: Callable[..., Member]) -> None:
    broker = make_broker(GROUP_OVERRIDES)
    topic = create_topic(broker, 6)
    group = "grp-coop"
    opts = {"session_timeout_ms": "6000", "strategy": "cooperative-sticky"}
    a = members(broker, group, topic, **opts)
    wait_for(lambda: stable_assignment(broker, group, 1), 30, "the first member")
    wait_for(lambda: a.events("ASSIGN") and len(set().union(*a.events("ASSIGN"))) == 6, 15, "a owning 6")
    b = members(broker, group, topic, **opts)

    def balanced() -> bool:
        s = stable_assignment(broker, group, 2)
        return bool(s) and sorted(len(p) for p in s.values()) == [3, 3]  # type: ignore[union-attr]

    wait_for(balanced, 30, "3 + 3 after the second member joins")
    revoked = a.events("REVOKE")
    assert revoked, "a gave partitions away"
    assert all(len(r) < 6 for r in revoked), "cooperative: a never revoked everything at once"
    assert len(set().union(*revoked)) == 3
    assert len(set().union(*b.events("ASSIGN"))) == 3

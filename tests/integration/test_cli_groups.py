"""`moldau groups list|describe|delete|reset-offsets` as subprocesses against a real broker,
with group members run as confluent-kafka Consumers in the test process."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.helpers import BrokerProcess

CLI = [sys.executable, "-m", "moldau.cli.main"]
# No initial rebalance delay: a new group's first member is assigned at once.
GROUP_OVERRIDES = {"group.initial.rebalance.delay.ms": "0"}
JOIN_TIMEOUT_S = 20.0


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """The conftest `broker`, with GROUP_OVERRIDES, shared by this module."""
    b = BrokerProcess(tmp_path_factory.mktemp("groups-broker"), GROUP_OVERRIDES)
    b.start()
    try:
        yield b
    finally:
        b.kill()
        print(f"\n===== broker log =====\n{b.log()[-5000:]}")


# -------------------------------------------------------------------------- helpers


def run_cli(bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [*CLI, *args, "--bootstrap-server", bootstrap]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def ok(bootstrap: str, *args: str) -> str:
    result = run_cli(bootstrap, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def fails(bootstrap: str, *args: str) -> str:
    """The one-line error of a command that must fail with exit code 1, no traceback."""
    result = run_cli(bootstrap, *args)
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("moldau: error: "), result.stderr
    return lines[0].removeprefix("moldau: error: ")


def table(text: str) -> list[list[str]]:
    """Whitespace-split rows of a printed table, header first."""
    return [line.split() for line in text.strip().splitlines()]


def rows_after_header(text: str, first_column: str = "GROUP") -> list[list[str]]:
    lines = text.strip().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first_column + " "))
    return [line.split() for line in lines[start + 1 :] if line.strip()]


def new_group() -> str:
    return f"cli-group-{uuid.uuid4().hex[:10]}"


def new_topic(admin: AdminClient, partitions: int) -> str:
    topic = f"cli-groups-{uuid.uuid4().hex[:10]}"
    admin.create_topics([NewTopic(topic, partitions)])[topic].result(timeout=30)
    return topic


def produce(bootstrap: str, topic: str, counts: dict[int, int], prefix: str = "r") -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for partition, count in counts.items():
        for i in range(count):
            producer.produce(topic, f"{prefix}{partition}-{i}".encode(), partition=partition)
    assert producer.flush(30) == 0


def member(bootstrap: str, group: str) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10_000,
        }
    )
    return consumer


def join(topic: str, members: list[Consumer], partitions: int) -> dict[int, Consumer]:
    """Subscribe every member and poll until the partitions are split among all of them."""
    for c in members:
        c.subscribe([topic])
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    while True:
        owners: dict[int, Consumer] = {}
        disjoint = True
        for c in members:
            c.poll(0.05)
            for tp in c.assignment():
                disjoint = disjoint and tp.partition not in owners
                owners[tp.partition] = c
        if disjoint and len(owners) == partitions and all(c.assignment() for c in members):
            return owners
        assert time.monotonic() < deadline, "members were not assigned in time"


def committed(admin: AdminClient, group: str) -> dict[int, int]:
    future = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group]
    return {tp.partition: tp.offset for tp in future.result(timeout=30).topic_partitions if tp.offset >= 0}


def commit_via_admin(admin: AdminClient, group: str, topic: str, offsets: dict[int, int]) -> None:
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p, o) for p, o in offsets.items()])
    admin.alter_consumer_group_offsets([request])[group].result(timeout=30)


@pytest.fixture
def admin(broker: BrokerProcess) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap})


@pytest.fixture
def consumers() -> Iterator[list[Consumer]]:
    """Consumers a test starts; closed (leaving their group) at the end whatever happens."""
    started: list[Consumer] = []
    yield started
    for c in started:
        try:
            c.close()
        except RuntimeError:  # closed by the test already
            pass


# ------------------------------------------------------------------- list/describe


def test_list_filters_by_state_and_describe_shows_offsets_lag_members(
    broker: BrokerProcess, admin: AdminClient, consumers: list[Consumer]
) -> None:
    bootstrap = broker.bootstrap
    topic = new_topic(admin, 3)
    produce(bootstrap, topic, {0: 5, 1: 7, 2: 9})
    active, idle = new_group(), new_group()
    commit_via_admin(admin, idle, topic, {0: 1})  # a group with offsets and no members: Empty

    consumers.extend([member(bootstrap, active), member(bootstrap, active)])
    owners = join(topic, consumers, 3)
    for partition, offset in ((0, 2), (1, 7)):  # nothing committed for partition 2
        owners[partition].commit(offsets=[TopicPartition(topic, partition, offset)], asynchronous=False)

    # list, and ListGroups' state filter
    names = ok(bootstrap, "groups", "list").split()
    assert active in names and idle in names
    assert active in ok(bootstrap, "groups", "list", "--state", "Stable").split()
    assert idle not in ok(bootstrap, "groups", "list", "--state", "Stable").split()
    empty = ok(bootstrap, "groups", "list", "--state", "empty")
    assert idle in empty.split() and active not in empty.split()
    states = table(ok(bootstrap, "groups", "list", "--state"))
    assert states[0] == ["GROUP", "STATE"]
    assert [active, "Stable"] in states and [idle, "Empty"] in states

    # describe: summary, then CURRENT-OFFSET / LOG-END-OFFSET / LAG and the owner per partition
    out = ok(bootstrap, "groups", "describe", active)
    assert out.splitlines()[0] == f"Group: {active}\tState: Stable\tProtocol: range\tMembers: 2"
    lines = out.strip().splitlines()
    assert lines[2].split() == [
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]
    rows = rows_after_header(out)
    assert [r[:6] for r in rows] == [
        [active, topic, "0", "2", "5", "3"],
        [active, topic, "1", "7", "7", "0"],
        [active, topic, "2", "-", "9", "-"],
    ]
    for row in rows:
        owner = owners[int(row[2])]
        assert row[6] == owner.memberid()
        assert row[7].endswith("127.0.0.1")
        assert row[8] == "rdkafka"

    # --members: each member with its assignment
    by_member = {r[1]: r for r in rows_after_header(ok(bootstrap, "groups", "describe", active, "--members"))}
    assert set(by_member) == {c.memberid() for c in consumers}
    for c in consumers:
        mine = sorted(tp.partition for tp in c.assignment())
        row = by_member[c.memberid()]
        assert row[5] == str(len(mine))
        assert row[6] == f"{topic}({','.join(map(str, mine))})"

    # --state: the group summary
    [state_row] = rows_after_header(ok(bootstrap, "groups", "describe", active, "--state"))
    assert state_row[0] == active
    assert state_row[-3:] == ["range", "Stable", "2"]

    # Several groups at once; the idle one has committed offsets and no members.
    both = ok(bootstrap, "groups", "describe", active, idle)
    assert f"Group: {idle}\tState: Empty\tProtocol: -\tMembers: 0" in both
    assert [idle, topic, "0", "1", "5", "4", "-", "-", "-"] in table(both)
    assert f"Consumer group '{idle}' has no active members." in ok(bootstrap, "groups", "describe", idle, "--members")
    assert active in ok(bootstrap, "groups", "describe", "--all-groups")

    # Members gone: the committed offsets stay, nobody owns them.
    for c in consumers:
        c.close()
    consumers.clear()
    out = ok(bootstrap, "groups", "describe", active)
    assert out.splitlines()[0].startswith(f"Group: {active}\tState: Empty\t")
    assert rows_after_header(out) == [
        [active, topic, "0", "2", "5", "3", "-", "-", "-"],
        [active, topic, "1", "7", "7", "0", "-", "-", "-"],
    ]


def test_describe_unknown_group(broker: BrokerProcess) -> None:
    missing = new_group()
    assert fails(broker.bootstrap, "groups", "describe", missing) == f"Consumer group '{missing}' does not exist."
    assert fails(broker.bootstrap, "groups", "describe", missing, "--members").endswith("does not exist.")


# --------------------------------------------------------------------------- delete


def test_delete_refuses_an_active_group_and_deletes_an_empty_one(
    broker: BrokerProcess, admin: AdminClient, consumers: list[Consumer]
) -> None:
    bootstrap = broker.bootstrap
    topic = new_topic(admin, 1)
    group = new_group()
    consumers.append(member(bootstrap, group))
    join(topic, consumers, 1)

    error = fails(bootstrap, "groups", "delete", group)
    assert f"'{group}'" in error and "(NON_EMPTY_GROUP)" in error
    assert group in ok(bootstrap, "groups", "list").split()

    consumers.pop().close()
    assert ok(bootstrap, "groups", "delete", group).strip() == f"Deleted consumer group {group}."
    assert group not in ok(bootstrap, "groups", "list").split()
    assert fails(bootstrap, "groups", "describe", group) == f"Consumer group '{group}' does not exist."
    assert fails(bootstrap, "groups", "delete", group) == f"Consumer group '{group}' does not exist."


# -------------------------------------------------------------------- reset-offsets


def test_reset_offsets(broker: BrokerProcess, admin: AdminClient, consumers: list[Consumer]) -> None:
    bootstrap = broker.bootstrap
    topic = new_topic(admin, 2)
    group = new_group()
    produce(bootstrap, topic, {0: 5, 1: 5}, prefix="old")
    time.sleep(0.5)
    cut = datetime.now(UTC)
    time.sleep(0.5)
    produce(bootstrap, topic, {0: 5, 1: 5}, prefix="new")

    def reset(*args: str) -> list[list[str]]:
        return rows_after_header(ok(bootstrap, "groups", "reset-offsets", "--group", group, *args))

    # While a member is active: refused, as Kafka's tool does, and nothing changes.
    consumers.append(member(bootstrap, group))
    owners = join(topic, consumers, 2)
    owners[0].commit(offsets=[TopicPartition(topic, 0, 3), TopicPartition(topic, 1, 3)], asynchronous=False)
    error = fails(bootstrap, "groups", "reset-offsets", "--group", group, "--all-topics", "--to-earliest", "--execute")
    assert error == (
        f"Assignments can only be reset if the group '{group}' is inactive, but the current state is Stable."
    )
    consumers.pop().close()
    assert committed(admin, group) == {0: 3, 1: 3}

    # A dry run (the default, or --dry-run) prints the plan and changes nothing.
    dry = run_cli(bootstrap, "groups", "reset-offsets", "--group", group, "--all-topics", "--to-earliest")
    assert dry.returncode == 0, dry.stderr
    assert table(dry.stdout) == [
        ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"],
        [group, topic, "0", "0"],
        [group, topic, "1", "0"],
    ]
    assert "--execute" in dry.stderr
    assert reset("--topic", topic, "--to-latest", "--dry-run") == [[group, topic, "0", "10"], [group, topic, "1", "10"]]
    assert committed(admin, group) == {0: 3, 1: 3}

    # --execute commits the plan.
    assert reset("--all-topics", "--to-earliest", "--execute") == [[group, topic, "0", "0"], [group, topic, "1", "0"]]
    assert committed(admin, group) == {0: 0, 1: 0}
    reset("--topic", topic, "--to-latest", "--execute")
    assert committed(admin, group) == {0: 10, 1: 10}
    assert reset("--topic", f"{topic}:0", "--to-offset", "4", "--execute") == [[group, topic, "0", "4"]]
    assert committed(admin, group) == {0: 4, 1: 10}
    reset("--topic", f"{topic}:1", "--to-offset", "999", "--execute")  # beyond the end: the end
    assert committed(admin, group) == {0: 4, 1: 10}
    reset("--all-topics", "--shift-by", "-3", "--execute")
    assert committed(admin, group) == {0: 1, 1: 7}
    reset("--all-topics", "--shift-by", "5", "--execute")  # partition 1 stops at the end
    assert committed(admin, group) == {0: 6, 1: 10}
    reset("--all-topics", "--shift-by", "-100", "--execute")
    assert committed(admin, group) == {0: 0, 1: 0}
    reset("--all-topics", "--by-duration", "PT1H", "--execute")  # every record is newer than an hour
    assert committed(admin, group) == {0: 0, 1: 0}
    assert reset("--topic", topic, "--to-datetime", cut.isoformat(), "--execute") == [
        [group, topic, "0", "5"],
        [group, topic, "1", "5"],
    ]
    assert committed(admin, group) == {0: 5, 1: 5}

    # A member of the group resumes exactly there.
    resumed = member(bootstrap, group)
    consumers.append(resumed)
    resumed.subscribe([topic])
    first: dict[int, tuple[int, bytes]] = {}
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    while len(first) < 2:
        assert time.monotonic() < deadline, f"resumed consumer got only {first}"
        msg = resumed.poll(0.2)
        if msg is not None and msg.error() is None:
            partition, offset = msg.partition(), msg.offset()
            assert partition is not None and offset is not None
            first.setdefault(partition, (offset, msg.value() or b""))
    assert first == {0: (5, b"new0-0"), 1: (5, b"new1-0")}


def test_reset_offsets_errors(broker: BrokerProcess, admin: AdminClient) -> None:
    bootstrap = broker.bootstrap
    topic = new_topic(admin, 2)
    group = new_group()
    commit_via_admin(admin, group, topic, {0: 0})
    base = ("groups", "reset-offsets", "--group", group, "--execute")

    missing = f"no-such-{uuid.uuid4().hex[:8]}"
    assert fails(bootstrap, *base, "--topic", missing, "--to-earliest") == (
        f"topic '{missing}' does not exist (UNKNOWN_TOPIC_OR_PARTITION)"
    )
    assert "has no partition 5" in fails(bootstrap, *base, "--topic", f"{topic}:5", "--to-earliest")
    # Kafka's tool refuses to shift a partition that has no committed offset.
    error = fails(bootstrap, *base, "--topic", topic, "--shift-by", "1")
    assert f"{topic}-1" in error and "no committed offset" in error
    assert committed(admin, group) == {0: 0}


def test_unreachable_bootstrap_server() -> None:
    started = time.monotonic()
    result = subprocess.run(
        [*CLI, "groups", "list", "--bootstrap-server", "127.0.0.1:1", "--timeout", "2"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("moldau: error: cannot reach bootstrap server 127.0.0.1:1")
    assert time.monotonic() - started < 10

"""`moldau topics|produce|consume` run as subprocesses against a real broker."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

CLI = [sys.executable, "-m", "moldau.cli.main"]


def run_cli(
    bootstrap: str | None, *args: str, stdin: bytes = b"", timeout: float = 90
) -> subprocess.CompletedProcess[bytes]:
    argv = [*CLI, *args]
    if bootstrap is not None:
        argv += ["--bootstrap-server", bootstrap]
    return subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout, check=False)


def ok(bootstrap: str, *args: str, stdin: bytes = b"") -> str:
    result = run_cli(bootstrap, *args, stdin=stdin)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def fails(bootstrap: str | None, *args: str, stdin: bytes = b"") -> str:
    """The one-line error message of a command that must fail without a traceback."""
    result = run_cli(bootstrap, *args, stdin=stdin)
    err = result.stderr.decode()
    assert result.returncode == 1, (result.returncode, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("moldau: error: "), err
    return lines[0]


def new_topic(bootstrap: str, partitions: int = 1, *extra: str) -> str:
    topic = f"cli-{uuid.uuid4().hex[:12]}"
    ok(bootstrap, "topics", "create", topic, "--partitions", str(partitions), *extra)
    return topic


def consume(bootstrap: str, topic: str, *args: str) -> list[str]:
    # --timeout-ms bounds every consume so a missing record fails the test, not hangs it.
    out = ok(bootstrap, "consume", topic, "--timeout-ms", "3000", *args)
    return out.splitlines()


def listed_topics(bootstrap: str) -> list[str]:
    return ok(bootstrap, "topics", "list").splitlines()


def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


# ------------------------------------------------------------------------- topics


def test_topic_lifecycle(broker: Any) -> None:
    bootstrap = broker.bootstrap
    topic = f"cli-{uuid.uuid4().hex[:12]}"
    assert ok(bootstrap, "topics", "create", topic, "--partitions", "3").strip() == (f"Created topic {topic}.")
    assert topic in listed_topics(bootstrap)

    error = fails(bootstrap, "topics", "create", topic, "--partitions", "3")
    assert error == f"moldau: error: topic '{topic}' already exists (TOPIC_ALREADY_EXISTS)"
    ok(bootstrap, "topics", "create", topic, "--partitions", "3", "--if-not-exists")

    lines = ok(bootstrap, "topics", "describe", topic).splitlines()
    assert lines[0].startswith(f"Topic: {topic}\tPartitionCount: 3\tReplicationFactor: 1\t")
    assert len(lines) == 4
    for partition, line in enumerate(lines[1:]):
        fields = dict(f.split(": ", 1) for f in line.strip().split("\t"))
        assert fields["Topic"] == topic
        assert fields["Partition"] == str(partition)
        assert fields["Leader"].isdigit()
        assert fields["Replicas"] == fields["Leader"]
        assert fields["Isr"] == fields["Leader"]
        assert "under-replicated" not in line

    # Describing everything includes this topic too.
    assert f"Topic: {topic}\tPartitionCount: 3" in ok(bootstrap, "topics", "describe")

    assert ok(bootstrap, "topics", "delete", topic).strip() == f"Deleted topic {topic}."
    wait_until(lambda: topic not in listed_topics(bootstrap))
    error = fails(bootstrap, "topics", "delete", topic)
    assert error == f"moldau: error: topic '{topic}' does not exist (UNKNOWN_TOPIC_OR_PARTITION)"
    ok(bootstrap, "topics", "delete", topic, "--if-exists")


def test_describe_unknown_topic(broker: Any) -> None:
    error = fails(broker.bootstrap, "topics", "describe", "no-such-topic-" + uuid.uuid4().hex)
    assert error.endswith("does not exist (UNKNOWN_TOPIC_OR_PARTITION)")


def test_create_validate_only_creates_nothing(broker: Any) -> None:
    topic = f"cli-{uuid.uuid4().hex[:12]}"
    out = ok(broker.bootstrap, "topics", "create", topic, "--partitions", "2", "--validate-only")
    assert "validate-only" in out
    assert topic not in listed_topics(broker.bootstrap)


def test_describe_shows_non_default_configs(broker: Any) -> None:
    bootstrap = broker.bootstrap
    topic = new_topic(bootstrap, 1, "--config", "retention.ms=123456")
    summary = ok(bootstrap, "topics", "describe", topic).splitlines()[0]
    assert summary.endswith("Configs: retention.ms=123456")


def test_alter_partitions(broker: Any) -> None:
    bootstrap = broker.bootstrap
    topic = new_topic(bootstrap, 2)
    ok(bootstrap, "topics", "alter", topic, "--partitions", "4")
    wait_until(lambda: "PartitionCount: 4" in ok(bootstrap, "topics", "describe", topic).splitlines()[0])
    error = fails(bootstrap, "topics", "alter", topic, "--partitions", "2")
    assert "(INVALID_PARTITIONS)" in error


def test_alter_configs(broker: Any) -> None:
    bootstrap = broker.bootstrap
    topic = new_topic(bootstrap, 1)

    def summary() -> str:
        return ok(bootstrap, "topics", "describe", topic).splitlines()[0]

    ok(bootstrap, "topics", "alter", topic, "--config", "retention.ms=1000")
    assert "retention.ms=1000" in summary()
    ok(bootstrap, "topics", "alter", topic, "--delete-config", "retention.ms")
    assert "retention.ms" not in summary()


def test_alter_unknown_topic(broker: Any) -> None:
    error = fails(broker.bootstrap, "topics", "alter", "no-such-" + uuid.uuid4().hex, "--partitions", "3")
    assert error.endswith("does not exist (UNKNOWN_TOPIC_OR_PARTITION)")


# ---------------------------------------------------------------- produce/consume


@pytest.mark.parametrize("compression", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_produce_and_consume_keyed_lines_with_headers(broker: Any, compression: str) -> None:
    bootstrap = broker.bootstrap
    topic = new_topic(bootstrap, 1)
    records = [(f"key-{i}", f"value {i}: with spaces\tand tab") for i in range(200)]
    stdin = "".join(f"{k}|{v}\n" for k, v in records).encode()
    before_ms = int(time.time() * 1000)
    ok(
        bootstrap,
        "produce",
        topic,
        "--key-separator",
        "|",
        "--header",
        "source=cli",
        "--header",
        "trace=a=b",
        "--compression",
        compression,
        stdin=stdin,
    )
    after_ms = int(time.time() * 1000)

    lines = consume(
        bootstrap,
        topic,
        "--from-beginning",
        "--max-messages",
        str(len(records)),
        "--print-timestamp",
        "--print-partition",
        "--print-offset",
        "--print-headers",
        "--print-key",
        "--key-separator",
        " ## ",
    )
    assert len(lines) == len(records)
    for offset, (line, (key, value)) in enumerate(zip(lines, records, strict=True)):
        timestamp, partition, offset_field, headers, printed_key, printed_value = line.split(" ## ")
        kind, ms = timestamp.split(":")
        assert kind == "CreateTime" and before_ms - 1000 <= int(ms) <= after_ms + 1000
        assert partition == "Partition:0"
        assert offset_field == f"Offset:{offset}"
        assert headers == "source:cli,trace:a=b"
        assert (printed_key, printed_value) == (key, value)

    # The default output is just the values.
    assert consume(bootstrap, topic, "--offset", "earliest", "--max-messages", "3") == [v for _, v in records[:3]]


def test_produce_missing_key_separator(broker: Any) -> None:
    bootstrap = broker.bootstrap
    topic = new_topic(bootstrap, 1)
    stdin = b"a:1\nno separator here\nc:3\n"
    error = fails(bootstrap, "produce", topic, "--key-separator", ":", stdin=stdin)
    assert "line 2" in error and "':'" in error

    ok(bootstrap, "produce", topic, "--key-separator", ":", "--ignore-missing-key", stdin=stdin)
    lines = consume(bootstrap, topic, "--from-beginning", "--print-key", "--max-messages", "4")
    # The line before the bad one was still sent; with --ignore-missing-key the key is null.
    assert lines == ["a\t1", "a\t1", "null\tno separator here", "c\t3"]


def test_produce_to_partition_and_acks(broker: Any) -> None:
    bootstrap = broker.bootstrap
    topic = new_topic(bootstrap, 3)
    for acks in ("0", "1", "all"):
        ok(bootstrap, "produce", topic, "--partition", "2", "--acks", acks, stdin=b"x\ny\n")
    lines = consume(bootstrap, topic, "--partition", "2", "--from-beginning", "--max-messages", "6")
    assert lines == ["x", "y"] * 3
    assert consume(bootstrap, topic, "--partition", "0", "--from-beginning") == []

    error = fails(bootstrap, "produce", topic, "--partition", "3", stdin=b"x\n")
    assert "no partition 3" in error


def test_consume_offset_and_max_messages(broker: Any) -> None:
    bootstrap = broker.bootstrap
    topic = new_topic(bootstrap, 1)
    ok(bootstrap, "produce", topic, stdin=b"".join(b"m%d\n" % i for i in range(6)))
    ok(bootstrap, "produce", topic, stdin=b"".join(b"m%d\n" % i for i in range(6, 10)))

    assert consume(bootstrap, topic, "--offset", "3", "--partition", "0") == [f"m{i}" for i in range(3, 10)]
    assert consume(bootstrap, topic, "--offset", "7", "--print-offset") == [f"Offset:{i}\tm{i}" for i in range(7, 10)]
    assert consume(bootstrap, topic, "--offset", "earliest", "--max-messages", "4") == [
        "m0",
        "m1",
        "m2",
        "m3",
    ]
    # By default, only records produced after the consumer started.
    assert consume(bootstrap, topic) == []
    assert consume(bootstrap, topic, "--offset", "latest") == []


def test_max_messages_exits_without_waiting(broker: Any) -> None:
    bootstrap = broker.bootstrap
    topic = new_topic(bootstrap, 1)
    ok(bootstrap, "produce", topic, stdin=b"a\nb\nc\n")
    started = time.monotonic()
    out = ok(bootstrap, "consume", topic, "--from-beginning", "--max-messages", "2")
    assert out.splitlines() == ["a", "b"]
    assert time.monotonic() - started < 20


def test_consume_from_timestamp(broker: Any) -> None:
    bootstrap = broker.bootstrap
    topic = new_topic(bootstrap, 2)
    ok(bootstrap, "produce", topic, stdin=b"old1\nold2\n")
    time.sleep(1.0)
    cut_ms = int(time.time() * 1000)
    time.sleep(0.2)
    ok(bootstrap, "produce", topic, stdin=b"new1\nnew2\n")

    assert sorted(consume(bootstrap, topic, "--from-timestamp", str(cut_ms))) == [
        "new1",
        "new2",
    ]
    iso = datetime.fromtimestamp(cut_ms / 1000, tz=UTC).isoformat()
    assert sorted(consume(bootstrap, topic, "--from-timestamp", iso)) == ["new1", "new2"]
    # After the last record: nothing now, but the consumer waits at the end.
    assert consume(bootstrap, topic, "--from-timestamp", str(int(time.time() * 1000) + 60_000)) == []
    assert sorted(consume(bootstrap, topic, "--from-timestamp", "0")) == [
        "new1",
        "new2",
        "old1",
        "old2",
    ]


def test_consumer_group_commits_and_resumes(broker: Any) -> None:
    bootstrap = broker.bootstrap
    topic = new_topic(bootstrap, 1)
    group = f"cli-group-{uuid.uuid4().hex[:8]}"
    ok(bootstrap, "produce", topic, stdin=b"".join(b"r%d\n" % i for i in range(10)))
    # --timeout bounds the group join; --timeout-ms counts silence only after it.
    joined = ("--group", group, "--from-beginning", "--timeout", "60")
    first = consume(bootstrap, topic, *joined, "--max-messages", "4")
    assert first == ["r0", "r1", "r2", "r3"]
    ok(bootstrap, "produce", topic, stdin=b"r10\n")
    rest = consume(bootstrap, topic, *joined)
    assert rest == [f"r{i}" for i in range(4, 11)]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_consume_interrupted_exits_cleanly(broker: Any, sig: signal.Signals) -> None:
    bootstrap = broker.bootstrap
    topic = new_topic(bootstrap, 1)
    ok(bootstrap, "produce", topic, stdin=b"a\nb\n")
    proc = subprocess.Popen(
        [*CLI, "consume", topic, "--from-beginning", "--bootstrap-server", bootstrap],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"a\n"  # running and consuming
    assert proc.stdout.readline() == b"b\n"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err


# ------------------------------------------------------------------------- errors


def test_unknown_topic_errors(broker: Any) -> None:
    bootstrap = broker.bootstrap
    missing = "no-such-topic-" + uuid.uuid4().hex
    for args in (
        ("topics", "delete", missing),
        ("consume", missing, "--timeout-ms", "1000"),
        ("produce", missing),
    ):
        error = fails(bootstrap, *args, stdin=b"x\n")
        assert error == f"moldau: error: topic '{missing}' does not exist (UNKNOWN_TOPIC_OR_PARTITION)"
    assert missing not in listed_topics(bootstrap)  # looking it up did not create it


@pytest.mark.parametrize(
    "args",
    [
        ("topics", "list"),
        ("topics", "create", "t"),
        ("produce", "t"),
        ("consume", "t"),
    ],
)
def test_unreachable_bootstrap_server(args: tuple[str, ...]) -> None:
    unreachable = "127.0.0.1:1"  # nothing listens on port 1
    started = time.monotonic()
    error = fails(unreachable, *args, "--timeout", "2", stdin=b"x\n")
    assert time.monotonic() - started < 10
    assert f"cannot reach bootstrap server {unreachable}" in error


def test_bad_flags_exit_2() -> None:
    result = run_cli(None, "consume", "t", "--offset", "soon")
    assert result.returncode == 2
    assert b"usage:" in result.stderr

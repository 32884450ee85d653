"""The chaos checker on hand-written histories: one that is clean, one per anomaly."""

from __future__ import annotations

import io
from typing import Any

import pytest

from moldau.chaos.checker import CheckerOptions, check
from moldau.chaos.history import HistoryError, HistoryWriter, parse


def op(time: float, process: str, type_: str, f: str, **fields: Any) -> dict[str, Any]:
    return {"time": time, "process": process, "type": type_, "f": f, **fields}


def send(
    t: float,
    value: str,
    partition: int | None = None,
    offset: int | None = None,
    outcome: str = "ok",
    process: str = "producer-0",
    took: float = 0.1,
) -> list[dict[str, Any]]:
    done = op(t + took, process, outcome, "send", value=value)
    if outcome == "ok":
        done.update(partition=partition, offset=offset)
    return [op(t, process, "invoke", "send", value=value), done]


def final(t: float, partition: int, values: list[str], first: int = 0) -> dict[str, Any]:
    return op(
        t,
        "final",
        "ok",
        "final-read",
        partition=partition,
        values=values,
        offsets=list(range(first, first + len(values))),
    )


def commit(
    t: float, offsets: dict[int, int], process: str = "consumer-0", group: str = "g", outcome: str = "ok"
) -> list[dict[str, Any]]:
    o = {str(p): v for p, v in offsets.items()}
    return [
        op(t, process, "invoke", "commit", group=group, offsets=o),
        op(t + 0.05, process, outcome, "commit", group=group, offsets=o),
    ]


def committed(t: float, offsets: dict[int, int], group: str = "g") -> list[dict[str, Any]]:
    return [
        op(t, "offsets-reader", "invoke", "committed", group=group),
        op(t + 0.05, "offsets-reader", "ok", "committed", group=group, offsets={str(p): v for p, v in offsets.items()}),
    ]


def clean_history() -> list[dict[str, Any]]:
    h: list[dict[str, Any]] = []
    h += send(0.0, "a", 0, 0)
    h += send(0.2, "b", 0, 1)
    h += send(0.4, "c", outcome="info")  # timed out: may or may not be there
    h += send(0.6, "d", 1, 0)
    h.append(op(0.7, "fault", "info", "fault", value="kill-1", action="start"))
    h += send(1.0, "e", outcome="info")  # indeterminate and never written: fine
    h.append(op(2.0, "fault", "info", "fault", value="kill-1", action="heal"))
    h += send(2.5, "f", 0, 2)
    h += send(2.6, "g", 1, 1)
    h.append(op(2.0, "consumer-0", "ok", "assign", partitions=[0, 1]))
    h.append(op(2.1, "consumer-0", "ok", "poll", records=[[0, 0, "a"], [0, 1, "b"], [1, 0, "d"]]))
    h += commit(2.2, {0: 2, 1: 1})
    h.append(op(2.9, "consumer-0", "ok", "poll", records=[[0, 2, "f"], [0, 3, "c"]]))
    h += commit(3.0, {0: 4})
    h += committed(3.5, {0: 4, 1: 1})
    # A rebalance: the consumer starts again from the committed offsets.
    h.append(op(3.6, "consumer-0", "ok", "assign", partitions=[0]))
    h.append(op(3.7, "consumer-0", "ok", "poll", records=[[0, 2, "f"]]))
    h.append(final(4.0, 0, ["a", "b", "f", "c"]))
    h.append(final(4.0, 1, ["d", "g"]))
    return h


def test_a_clean_history_has_no_anomaly() -> None:
    result = check(clean_history(), CheckerOptions(recovery_s=1.0))
    assert result.valid, [a.text() for a in result.anomalies]
    assert result.unchecked == []
    assert result.stats["send-ok"] == 5
    assert result.stats["send-info"] == 2


def test_an_acknowledged_write_missing_from_the_final_read_is_lost() -> None:
    h = send(0.0, "a", 0, 0) + send(0.2, "b", 0, 1) + [final(1.0, 0, ["a"])]
    result = check(h)
    assert [(a.kind, a.detail["value"]) for a in result.anomalies] == [("lost-write", "b")]


def test_a_write_acknowledged_without_an_offset_must_still_be_there() -> None:
    """librdkafka acknowledges some retried idempotent batches without their offset."""
    h = send(0.0, "a", 0, 0) + send(0.2, "b", 0, None) + send(0.4, "c", 0, None) + [final(1.0, 0, ["a", "b"])]
    result = check(h)
    assert [(a.kind, a.detail["value"]) for a in result.anomalies] == [("lost-write", "c")]


def test_indeterminate_writes_are_never_lost_and_a_partition_without_final_read_is_unchecked() -> None:
    h = send(0.0, "a", outcome="info") + send(0.1, "b", 3, 0)
    result = check(h)
    assert result.valid
    assert result.unchecked == ["lost-write: no final read of partition 3"]


def test_one_offset_with_two_values() -> None:
    h = send(0.0, "a", 0, 0)
    h.append(op(0.5, "consumer-0", "ok", "poll", records=[[0, 0, "x"]]))
    h.append(final(1.0, 0, ["a"]))
    result = check(h)
    assert result.kinds() == {"inconsistent-offset"}
    assert result.anomalies[0].detail["values"] == {"a": "ack", "x": "poll by consumer-0"}


def test_a_value_written_twice_is_a_duplicate() -> None:
    h = send(0.0, "a", 0, 0) + [final(1.0, 0, ["a", "a"])]
    result = check(h)
    assert result.kinds() == {"duplicate"}
    assert result.anomalies[0].detail == {"value": "a", "at": [(0, 0), (0, 1)]}


def test_a_consumer_going_back_without_rebalance_is_nonmonotonic() -> None:
    h = [
        op(0.0, "c0", "ok", "assign", partitions=[0]),
        op(0.1, "c0", "ok", "poll", records=[[0, 5, "a"], [0, 6, "b"]]),
        op(0.2, "c0", "ok", "poll", records=[[0, 6, "b"]]),
        # Another consumer's positions are its own.
        op(0.3, "c1", "ok", "poll", records=[[0, 1, "z"]]),
    ]
    result = check(h)
    assert [(a.kind, a.detail["process"], a.detail["offset"]) for a in result.anomalies] == [
        ("nonmonotonic-read", "c0", 6)
    ]


def test_committed_offsets_going_back_and_lost_commits() -> None:
    h = commit(0.0, {0: 10}) + committed(0.5, {0: 10}) + committed(1.0, {0: 7})
    result = check(h)
    assert [(a.kind, a.detail["offset"], a.detail["earlier"]) for a in result.anomalies] == [("lost-commit", 7, 10)]

    h = committed(0.0, {0: 10}) + committed(1.0, {0: 7})
    assert check(h).kinds() == {"commit-backwards"}

    h = commit(0.0, {0: 10}) + commit(1.0, {0: 4}, process="consumer-1")
    assert check(h).kinds() == {"commit-backwards"}


def test_concurrent_or_failed_commits_are_not_ordered() -> None:
    # The read started before the commit finished: it may see either value.
    h = commit(0.0, {0: 10}) + committed(0.01, {0: 7})
    # A commit that was refused (fail) or timed out (info) promises nothing.
    h += commit(2.0, {0: 50}, outcome="fail") + commit(3.0, {0: 60}, outcome="info") + committed(4.0, {0: 10})
    # No committed offset yet (-1) is not a step back.
    h += committed(5.0, {1: -1})
    assert check(h).valid


def test_writes_must_resume_after_the_last_heal() -> None:
    h = send(0.0, "a", 0, 0)
    h.append(op(1.0, "nemesis", "info", "fault", value="partition", action="start"))
    h.append(op(2.0, "nemesis", "info", "fault", value="partition", action="heal"))
    for i in range(10):
        h += send(2.0 + i, f"t{i}", outcome="info")
    result = check(h, CheckerOptions(recovery_s=5.0))
    assert result.kinds() == {"unavailable"}
    # Once one send is acknowledged in time, it is available.
    h += send(5.0, "ok", 0, 1)
    assert check(h, CheckerOptions(recovery_s=5.0)).valid
    # Each partition written before must be written again: here partition 1 is not.
    h1 = h + send(0.5, "b", 1, 0)
    result = check(h1, CheckerOptions(recovery_s=5.0))
    assert [(a.kind, a.detail["partition"]) for a in result.anomalies] == [("unavailable", 1)]
    # A run that ended before the deadline says nothing.
    short = [x for x in h if x["time"] < 4.0 and x.get("value") != "ok"]
    assert check(short, CheckerOptions(recovery_s=5.0)).valid


def test_no_acknowledgement_while_a_no_acks_fault_lasts() -> None:
    h = [op(1.0, "nemesis", "info", "fault", value="leader-cut-from-zk", action="start", expect="no-acks", grace=2.0)]
    h += send(1.5, "early", 0, 0)  # within the grace (the lease): allowed
    h += send(4.0, "late", 0, 1)
    h += send(5.0, "retried", 0, 3, took=2.0)  # invoked during the fault, acknowledged after its heal: fine
    h.append(op(6.0, "nemesis", "info", "fault", value="leader-cut-from-zk", action="heal"))
    h += send(6.5, "after", 0, 2)
    h.append(final(7.5, 0, ["early", "late", "after", "retried"]))
    result = check(h)
    assert [(a.kind, a.detail["value"]) for a in result.anomalies] == [("acked-while-unavailable", "late")]


def test_concurrent_sends_of_one_producer_pair_by_value() -> None:
    h = [
        op(0.0, "p", "invoke", "send", value="a"),
        op(0.1, "p", "invoke", "send", value="b"),
        op(0.2, "p", "ok", "send", value="b", partition=0, offset=0),
        op(0.3, "p", "info", "send", value="a"),
        final(1.0, 0, ["b"]),
    ]
    result = check(h)
    assert result.valid
    assert result.stats["send-ok"] == 1 and result.stats["send-info"] == 1


def test_history_lines_round_trip_and_bad_lines_are_named() -> None:
    out = io.StringIO()
    writer = HistoryWriter(out)
    for o in clean_history():
        writer.write(o)
    assert list(parse(out.getvalue().splitlines())) == clean_history()
    with pytest.raises(HistoryError, match="line 2"):
        list(parse(['{"time":0,"process":"p","type":"ok","f":"poll"}', "{nope"]))
    with pytest.raises(HistoryError, match="type"):
        list(parse(['{"time":0,"process":"p","type":"done","f":"poll"}']))

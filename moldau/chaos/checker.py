"""The checker: a history in, anomalies out. Pure; it never looks at a broker.

What it reports (`Anomaly.kind`), and what it takes as evidence:

* `lost-write`: a send acknowledged (`ok`, with its partition and offset) whose value is
  not in the final read of its partition. Indeterminate sends (`info`) may or may not be
  there; neither is an anomaly.
* `inconsistent-offset`: one partition offset seen with two values (an acknowledgement,
  a poll and the final read all say which value an offset holds).
* `duplicate`: one value at two offsets. The workload's producers are idempotent and
  every value is sent once, so a retry must never be written twice.
* `nonmonotonic-read`: a consumer returned, for one partition, an offset at or below one
  it returned before, with no rebalance (`assign`) in between.
* `commit-backwards`: a group's committed offset for a partition went down: an OffsetFetch
  (`committed`) or an acknowledged commit that started after another one ended sees or
  sets a smaller offset.
* `lost-commit`: an OffsetFetch started after a commit was acknowledged returns a smaller
  offset than that commit's.
* `unavailable`: after the last fault healed (no fault active), a partition that took
  writes before was not written within `recovery_s` seconds (none: no partition was),
  although sends were tried and the run went on that long.
* `acked-while-unavailable`: a send acknowledged while a fault marked
  ``expect: "no-acks"`` lasted (after its `grace`, before its heal; a send retried by
  the client and acknowledged after the heal is fine) (only sends to its
  `partitions`, when it lists them).
* `expectation-failed`: something the scenario promised did not happen in time (the
  nemesis records `expect` ops: e.g. the ISR shrinks when a follower is cut off).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from moldau.chaos.history import FAIL, INFO, INVOKE, OK, Op, offsets_of

KINDS = (
    "lost-write",
    "inconsistent-offset",
    "duplicate",
    "nonmonotonic-read",
    "commit-backwards",
    "lost-commit",
    "unavailable",
    "acked-while-unavailable",
    "expectation-failed",
)


@dataclass(frozen=True)
class Anomaly:
    kind: str
    detail: dict[str, Any]

    def text(self) -> str:
        return f"{self.kind}: " + ", ".join(f"{k}={v}" for k, v in sorted(self.detail.items()))


@dataclass
class Result:
    anomalies: list[Anomaly] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)
    # Which checks could not be made and why (e.g. no final read of a partition).
    unchecked: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.anomalies

    def kinds(self) -> set[str]:
        return {a.kind for a in self.anomalies}

    def summary(self) -> dict[str, Any]:
        counts: dict[str, int] = defaultdict(int)
        for a in self.anomalies:
            counts[a.kind] += 1
        return {"valid": self.valid, "anomalies": dict(counts), "stats": self.stats, "unchecked": self.unchecked}


@dataclass(frozen=True)
class CheckerOptions:
    # Writes must resume this long after the last fault healed.
    recovery_s: float = 15.0
    # A fault marked no-acks may still see acknowledgements this long after it starts
    # (the lease, replica.lag.time.max.ms), unless the fault says otherwise.
    no_acks_grace_s: float = 10.0
    # At most this many anomalies of one kind are listed (all are counted in stats).
    max_per_kind: int = 50


def _pairs(history: list[Op]) -> list[tuple[Op, Op | None]]:
    """(invoke, completion) per operation; an invoke never completed pairs with None.
    Operations recorded only as a completion (poll, assign, final-read) pair with
    themselves as their invoke. A process does one operation of a kind at a time, except
    sends: a producer has many in flight, told apart by their unique values."""
    open_ops: dict[tuple[str, str, str], Op] = {}
    pairs: list[tuple[Op, Op | None]] = []
    for op in history:
        key = (str(op["process"]), str(op["f"]), str(op.get("value", "")) if op["f"] == "send" else "")
        if op["type"] == INVOKE:
            if key in open_ops:
                pairs.append((open_ops.pop(key), None))
            open_ops[key] = op
        elif key in open_ops:
            pairs.append((open_ops.pop(key), op))
        else:
            pairs.append((op, op))
    pairs.extend((inv, None) for inv in open_ops.values())
    return pairs


def check(history: Iterable[Op], options: CheckerOptions | None = None) -> Result:
    opts = options or CheckerOptions()
    ops = sorted(history, key=lambda op: float(op["time"]))
    result = Result()
    found: dict[str, list[Anomaly]] = defaultdict(list)

    def report(kind: str, **detail: Any) -> None:
        found[kind].append(Anomaly(kind, detail))

    pairs = _pairs(ops)
    stats: dict[str, int] = defaultdict(int)
    for inv, done in pairs:
        stats[f"{inv['f']}-{done['type'] if done is not None else 'open'}"] += 1

    _check_writes(pairs, ops, report, result)
    _check_reads(ops, report)
    _check_commits(pairs, report)
    _check_availability(pairs, ops, opts, report)
    for op in ops:
        if op["f"] == "expect" and op["type"] == FAIL:
            report("expectation-failed", what=op.get("value"), time=op["time"])

    for kind in KINDS:
        listed = found.get(kind, [])
        if listed:
            stats[f"anomaly-{kind}"] = len(listed)
        result.anomalies.extend(listed[: opts.max_per_kind])
    result.stats = dict(sorted(stats.items()))
    return result


def _check_writes(pairs: list[tuple[Op, Op | None]], ops: list[Op], report: Any, result: Result) -> None:
    # Every observation of what an offset holds: (partition, offset) -> {value: source}.
    at: dict[tuple[int, int], dict[str, str]] = defaultdict(dict)
    acked: dict[str, tuple[int, int]] = {}
    for inv, done in pairs:
        if inv["f"] == "send" and done is not None and done["type"] == OK:
            if done.get("offset") is None:
                # librdkafka acknowledged it without an offset (it does for a retried
                # idempotent batch the broker had already written): it must still be
                # there; where is unknown (-1 here, never an observation of an offset).
                acked[str(done["value"])] = (int(done["partition"]), -1)
                continue
            where = (int(done["partition"]), int(done["offset"]))
            acked[str(done["value"])] = where
            at[where].setdefault(str(done["value"]), "ack")
    final: dict[int, list[tuple[int, str]]] = {}
    for op in ops:
        if op["f"] == "poll" and op["type"] == OK:
            for partition, offset, value in op.get("records", []):
                at[(int(partition), int(offset))].setdefault(str(value), f"poll by {op['process']}")
        elif op["f"] == "final-read" and op["type"] == OK:
            entries = [(int(o), str(v)) for o, v in zip(op["offsets"], op["values"], strict=True)]
            final[int(op["partition"])] = entries
            for offset, value in entries:
                at[(int(op["partition"]), offset)].setdefault(value, "final read")

    for (partition, offset), values in sorted(at.items()):
        if len(values) > 1:
            report("inconsistent-offset", partition=partition, offset=offset, values=values)

    places: dict[str, set[tuple[int, int]]] = defaultdict(set)
    for where, values in at.items():
        for value in values:
            places[value].add(where)
    for value, where_all in sorted(places.items()):
        if len(where_all) > 1:
            report("duplicate", value=value, at=sorted(where_all))

    final_values = {p: {v for _, v in entries} for p, entries in final.items()}
    unchecked: set[int] = set()
    for value, (partition, offset) in sorted(acked.items(), key=lambda kv: kv[1]):
        if partition not in final_values:
            unchecked.add(partition)
        elif value not in final_values[partition]:
            report("lost-write", value=value, partition=partition, offset=offset)
    for p in sorted(unchecked):
        result.unchecked.append(f"lost-write: no final read of partition {p}")


def _check_reads(ops: list[Op], report: Any) -> None:
    last: dict[tuple[str, int], int] = {}
    for op in ops:
        if op["type"] != OK:
            continue
        process = str(op["process"])
        if op["f"] == "assign":
            for key in [k for k in last if k[0] == process]:
                del last[key]
        elif op["f"] == "poll":
            for partition, offset, value in op.get("records", []):
                key = (process, int(partition))
                if key in last and int(offset) <= last[key]:
                    report(
                        "nonmonotonic-read",
                        process=process,
                        partition=int(partition),
                        offset=int(offset),
                        after=last[key],
                        value=value,
                        time=op["time"],
                    )
                last[key] = int(offset)


def _check_commits(pairs: list[tuple[Op, Op | None]], report: Any) -> None:
    # Per (group, partition): every completed commit ok / committed read as
    # (invoke time, completion time, offset, what).
    events: dict[tuple[str, int], list[tuple[float, float, int, str]]] = defaultdict(list)
    for inv, done in pairs:
        if inv["f"] not in ("commit", "committed") or done is None or done["type"] != OK:
            continue
        offsets = offsets_of(inv if inv["f"] == "commit" else done)
        for partition, offset in offsets.items():
            if offset < 0:
                continue  # no committed offset yet
            events[(str(inv["group"]), partition)].append(
                (float(inv["time"]), float(done["time"]), offset, str(inv["f"]))
            )
    for (group, partition), evs in sorted(events.items()):
        # A later operation (started after another completed) must not see or set less
        # than the largest offset among those that completed before it started.
        by_end = sorted(evs, key=lambda e: e[1])
        i = 0
        highest: tuple[float, float, int, str] | None = None
        for start, _end, offset, what in sorted(evs, key=lambda e: e[0]):
            while i < len(by_end) and by_end[i][1] < start:
                if highest is None or by_end[i][2] > highest[2]:
                    highest = by_end[i]
                i += 1
            if highest is not None and offset < highest[2]:
                kind = "lost-commit" if what == "committed" and highest[3] == "commit" else "commit-backwards"
                report(
                    kind,
                    group=group,
                    partition=partition,
                    offset=offset,
                    op=what,
                    at=start,
                    earlier=highest[2],
                    earlier_op=highest[3],
                )


def _check_availability(pairs: list[tuple[Op, Op | None]], ops: list[Op], opts: CheckerOptions, report: Any) -> None:
    if not ops:
        return
    end = float(ops[-1]["time"])
    sends = [(float(inv["time"]), done) for inv, done in pairs if inv["f"] == "send"]
    # (ack time, partition) of every acknowledged send
    acks = sorted(
        (float(done["time"]), int(done["partition"])) for _, done in sends if done is not None and done["type"] == OK
    )

    active: dict[str, Op] = {}
    # no-acks windows: (name, from, to, partitions or None for all)
    windows: list[tuple[str, float, float, frozenset[int] | None]] = []

    def scope(started: Op) -> frozenset[int] | None:
        listed = started.get("partitions")
        return None if listed is None else frozenset(int(p) for p in listed)

    for op in ops:
        if op["f"] != "fault":
            continue
        name = str(op["value"])
        if op.get("action") == "start" and name not in active:
            active[name] = op
        elif op.get("action") in ("heal", "healed"):
            # "all" is the runner's final heal of everything still active.
            ended = list(active) if name == "all" else [name]
            for each in ended:
                started = active.pop(each, None)
                if started is not None and started.get("expect") == "no-acks":
                    grace = float(started.get("grace", opts.no_acks_grace_s))
                    windows.append((each, float(started["time"]) + grace, float(op["time"]), scope(started)))
            if not active:
                heal = float(op["time"])
                deadline = heal + opts.recovery_s
                tried = any(heal <= t <= deadline for t, _ in sends)
                if end >= deadline and tried:
                    # Every partition written before the heal is written again soon after.
                    before = {p for a, p in acks if a < heal}
                    after = {p for a, p in acks if heal <= a <= deadline}
                    for partition in sorted(before - after) if after or before else [None]:
                        report("unavailable", fault=name, healed_at=heal, within_s=opts.recovery_s, partition=partition)
    for name, started in active.items():
        if started.get("expect") == "no-acks":
            grace = float(started.get("grace", opts.no_acks_grace_s))
            windows.append((name, float(started["time"]) + grace, end, scope(started)))

    for name, frm, to, partitions in windows:
        for invoked, done in sends:
            if done is None or done["type"] != OK or not frm <= float(done["time"]) < to:
                continue
            if partitions is None or int(done["partition"]) in partitions:
                report(
                    "acked-while-unavailable",
                    fault=name,
                    value=done["value"],
                    invoked=invoked,
                    acked=done["time"],
                )


__all__ = ["Anomaly", "CheckerOptions", "INFO", "KINDS", "Result", "check"]

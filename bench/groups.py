#!/usr/bin/env python3
"""Consumer-group benchmarks: Moldau against Tansu, same workload, same run.

Two measurements per broker, each broker in a fresh process and temp dir on 127.0.0.1,
all clients confluent-kafka (librdkafka) in this process:

1. **Join to Stable**: 10 consumers (10 threads in this process, one Consumer each)
   subscribe with one fresh group.id to a 10-partition topic. Timed from the first
   subscribe() until every member's on_assign has fired with a one-partition share
   that together cover the topic, and then until DescribeGroups reports the group
   Stable with 10 members. Repeated with a fresh group id each time.
2. **Offset commits**: one member of a group (subscribed, assignment received) commits
   offsets for 1 or 10 partitions per OffsetCommit, synchronously (commit(...,
   asynchronous=False) in a loop) and asynchronously (a window of outstanding commits),
   for a fixed time each.

Moldau runs with `--override group.initial.rebalance.delay.ms=0`; one extra round
runs it with the default 3000 ms. Tansu has no such setting.

Results: a markdown section in docs/benchmarks.md (between the groups markers), raw
JSON in bench/results/groups.json. Called by bench/run.py after the single-broker
workload; runnable alone: `.venv/bin/python bench/groups.py [--quick] [--no-doc]`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import re
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, ConsumerGroupState, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import run` from anywhere
import run as harness  # noqa: E402

REPO = harness.REPO
DOC_PATH = harness.DOC_PATH
JSON_PATH = REPO / "bench" / "results" / "groups.json"
START_MARKER = "<!-- groups:start -->"
END_MARKER = "<!-- groups:end -->"

TOPIC = "bench-groups"
PARTITIONS = 10
MEMBERS = 10
JOIN_REPEATS = 5
JOIN_TIMEOUT_S = 60.0
COMMIT_SECONDS = 5.0
ASYNC_WINDOW = 1000  # outstanding async commits at most
FAST_HEARTBEAT_MS = 100

# Member configuration shared by every variant. Auto-commit off: only the commit
# benchmark commits, explicitly. Default assignor (range,roundrobin), eager protocol.
MEMBER_CONFIG: dict[str, Any] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
    "log_level": 3,  # errors only; leave/rebalance chatter would swamp stderr
}

# Join variants: (key, description, extra consumer config)
JOIN_VARIANTS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("client-defaults", "client defaults (heartbeat.interval.ms 3000)", {}),
    (
        "fast-heartbeat",
        f"heartbeat.interval.ms={FAST_HEARTBEAT_MS}",
        {"heartbeat.interval.ms": FAST_HEARTBEAT_MS},
    ),
)


# --------------------------------------------------------------------------- brokers


def moldau_groups_spec(delay_ms: int | None) -> harness.BrokerSpec:
    """Moldau as in the single-broker run, plus group.initial.rebalance.delay.ms
    when delay_ms is given (None: the broker's default, 3000 ms)."""
    base = harness.moldau_spec()
    if delay_ms is None:
        return base

    def command(port: int, data_dir: Path) -> list[str]:
        return [*base.command(port, data_dir),
                "--override", f"group.initial.rebalance.delay.ms={delay_ms}"]

    return dataclasses.replace(base, command=command)


def create_topic(bootstrap: str, topic: str, partitions: int) -> str:
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 5})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)],
        operation_timeout=10, request_timeout=15,
    )
    try:
        futures[topic].result(timeout=20)
    except KafkaException as exc:
        err = exc.args[0]
        if not (isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS):
            raise harness.BenchError(f"CreateTopics({topic}, {partitions} partitions): {exc}") from exc
    # Wait until metadata shows every partition with a leader.
    deadline = time.monotonic() + 30
    last = "no metadata"
    while time.monotonic() < deadline:
        md = admin.list_topics(topic=topic, timeout=5)
        t = md.topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == partitions and all(
            p.leader >= 0 for p in t.partitions.values()
        ):
            return "CreateTopics"
        last = f"{t.error if t is not None else 'missing'}, {len(t.partitions) if t else 0} partitions"
        time.sleep(0.1)
    raise harness.BenchError(f"topic {topic} not ready: {last}")


# ------------------------------------------------------------------------------ join


@dataclass
class JoinRun:
    assigned_s: float | None = None  # first subscribe -> last on_assign of the final generation
    stable_s: float | None = None  # first subscribe -> DescribeGroups says Stable, 10 members
    assign_callbacks: int = 0  # on_assign calls over all members (one per generation joined)
    described_members: int | None = None  # members listed by DescribeGroups once Stable
    error: str | None = None


class JoinTrial:
    """One group of MEMBERS consumers, one thread each, started together."""

    def __init__(self, bootstrap: str, topic: str, extra: dict[str, Any]) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.group = f"bench-join-{uuid.uuid4().hex[:12]}"
        self.lock = threading.Lock()
        self.assignment: dict[int, frozenset[int]] = {}
        self.callbacks = 0
        self.first_subscribe: float | None = None
        self.complete_at: float | None = None
        self.complete = threading.Event()
        self.go = threading.Event()
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.consumers = [
            Consumer({
                "bootstrap.servers": bootstrap, "group.id": self.group, **MEMBER_CONFIG, **extra,
                "error_cb": lambda err: self.errors.append(str(err)),
            })
            for _ in range(MEMBERS)
        ]
        self.threads = [
            threading.Thread(target=self._member, args=(i,), name=f"member-{i}", daemon=True)
            for i in range(MEMBERS)
        ]

    def _check(self) -> None:
        # Holds only in the final generation: every member owns a share, shares are
        # disjoint and cover the topic (an older generation has fewer members).
        shares = list(self.assignment.values())
        if len(shares) == MEMBERS and all(shares):
            union = frozenset().union(*shares)
            if len(union) == PARTITIONS and sum(len(s) for s in shares) == PARTITIONS:
                if not self.complete.is_set():
                    self.complete_at = time.perf_counter()
                    self.complete.set()

    def _member(self, i: int) -> None:
        consumer = self.consumers[i]

        def on_assign(_c: Consumer, partitions: list[TopicPartition]) -> None:
            with self.lock:
                self.callbacks += 1
                self.assignment[i] = frozenset(p.partition for p in partitions if p.topic == self.topic)
                self._check()

        def on_revoke(_c: Consumer, _partitions: list[TopicPartition]) -> None:
            with self.lock:
                self.assignment.pop(i, None)

        self.go.wait()
        with self.lock:
            if self.first_subscribe is None:
                self.first_subscribe = time.perf_counter()
        consumer.subscribe([self.topic], on_assign=on_assign, on_revoke=on_revoke)
        while not self.stop.is_set():
            consumer.poll(0.02)

    def run(self, admin: AdminClient) -> JoinRun:
        result = JoinRun()
        try:
            for t in self.threads:
                t.start()
            self.go.set()
            if not self.complete.wait(JOIN_TIMEOUT_S):
                with self.lock:
                    have = {m: sorted(s) for m, s in self.assignment.items()}
                raise harness.BenchError(
                    f"members not all assigned after {JOIN_TIMEOUT_S:.0f} s: {have}; "
                    f"client errors: {self.errors[:3]}"
                )
            assert self.first_subscribe is not None and self.complete_at is not None
            result.assigned_s = self.complete_at - self.first_subscribe
            deadline = time.monotonic() + 30
            last = "no answer"
            while True:
                desc = admin.describe_consumer_groups([self.group], request_timeout=10)[self.group]
                try:
                    d = desc.result(timeout=15)
                    n = len(d.members)
                    # Stable is the criterion; the member count is recorded, not required
                    # (Tansu 0.6.0 describes a Stable group with an empty member list).
                    if d.state == ConsumerGroupState.STABLE:
                        result.stable_s = time.perf_counter() - self.first_subscribe
                        result.described_members = n
                        break
                    last = f"{d.state}, {n} members"
                except KafkaException as exc:
                    last = str(exc)
                if time.monotonic() > deadline:
                    raise harness.BenchError(f"members assigned but DescribeGroups says {last}")
            with self.lock:
                result.assign_callbacks = self.callbacks
        except (harness.BenchError, KafkaException) as exc:
            result.error = str(exc)
        finally:
            self.stop.set()
            self.go.set()
            for t in self.threads:
                t.join(timeout=10)
            closers = [threading.Thread(target=c.close, daemon=True) for c in self.consumers]
            for t in closers:
                t.start()
            for t in closers:
                t.join(timeout=30)
        return result


@dataclass
class JoinSeries:
    variant: str
    description: str
    delay_ms: int | None  # group.initial.rebalance.delay.ms passed to the broker; None: not set
    runs: list[JoinRun] = field(default_factory=list)

    def values(self, attr: str) -> list[float]:
        return [v for r in self.runs if (v := getattr(r, attr)) is not None]

    @property
    def errors(self) -> list[str]:
        return [r.error for r in self.runs if r.error]

    def to_json(self) -> dict[str, Any]:
        stable = self.values("stable_s")
        assigned = self.values("assigned_s")
        return {
            "variant": self.variant,
            "description": self.description,
            "initial_rebalance_delay_ms": self.delay_ms,
            "runs": [dataclasses.asdict(r) for r in self.runs],
            "stable_median_s": statistics.median(stable) if stable else None,
            "stable_max_s": max(stable) if stable else None,
            "assigned_median_s": statistics.median(assigned) if assigned else None,
        }


def join_series(
    broker: harness.RunningBroker, variant: str, description: str, extra: dict[str, Any],
    repeats: int, delay_ms: int | None,
) -> JoinSeries:
    series = JoinSeries(variant, description, delay_ms)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, "log_level": 5})
    for i in range(repeats):
        r = JoinTrial(broker.bootstrap, TOPIC, extra).run(admin)
        series.runs.append(r)
        status = (f"assigned {r.assigned_s:.3f} s, Stable {r.stable_s:.3f} s, "
                  f"{r.assign_callbacks} on_assign calls") if r.error is None else f"FAILED: {r.error}"
        log(f"  join {variant} #{i + 1}: {status}")
        if r.error is not None and i == 0 and "not all assigned" in r.error:
            break  # a broker that cannot form a group once will not in 4 more minutes
    return series


# ---------------------------------------------------------------------------- commits


@dataclass
class CommitRun:
    mode: str  # "sync" or "async"
    partitions: int  # partitions per OffsetCommit
    commits: int = 0
    seconds: float = 0.0
    broker_cpu_seconds: float = 0.0
    error: str | None = None

    @property
    def commits_per_s(self) -> float:
        return self.commits / self.seconds if self.seconds else 0.0

    @property
    def offsets_per_s(self) -> float:
        return self.commits_per_s * self.partitions

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "commits_per_s": round(self.commits_per_s, 1),
                "partition_offsets_per_s": round(self.offsets_per_s, 1)}


def joined_member(bootstrap: str, topic: str) -> tuple[Consumer, list[str]]:
    """One consumer, sole member of a fresh group, with all partitions assigned."""
    errors: list[str] = []
    assigned = threading.Event()
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"bench-commit-{uuid.uuid4().hex[:12]}",
        **MEMBER_CONFIG, "error_cb": lambda err: errors.append(str(err)),
    })
    consumer.subscribe([topic], on_assign=lambda _c, _p: assigned.set())
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    while not assigned.is_set():
        consumer.poll(0.05)
        if time.monotonic() > deadline:
            consumer.close()
            raise harness.BenchError(f"commit member got no assignment: {errors[:3]}")
    return consumer, errors


def commit_sync(broker: harness.RunningBroker, consumer: Consumer, k: int, seconds: float) -> CommitRun:
    result = CommitRun("sync", k)
    offset = 0
    cpu0 = broker.rss.cpu_seconds()
    start = time.perf_counter()
    end = start + seconds
    while True:
        offset += 1
        out = consumer.commit(offsets=[TopicPartition(TOPIC, p, offset) for p in range(k)],
                              asynchronous=False)
        bad = [tp for tp in out or [] if tp.error is not None]
        if bad:
            raise harness.BenchError(f"sync commit: {bad[0].error}")
        result.commits += 1
        if time.perf_counter() >= end:
            break
    result.seconds = time.perf_counter() - start
    result.broker_cpu_seconds = broker.rss.cpu_seconds() - cpu0
    verify_committed(consumer, k, offset)
    return result


def commit_async(broker: harness.RunningBroker, bootstrap: str, k: int, seconds: float) -> CommitRun:
    """Async commits with at most ASYNC_WINDOW outstanding; counts acknowledged commits
    and times until the last one issued is acknowledged."""
    result = CommitRun("async", k)
    done = [0]
    failures: list[str] = []

    def on_commit(err: KafkaError | None, parts: list[TopicPartition]) -> None:
        done[0] += 1
        if err is not None:
            failures.append(str(err))
        else:
            failures.extend(str(tp.error) for tp in parts if tp.error is not None)

    errors: list[str] = []
    assigned = threading.Event()
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"bench-commit-{uuid.uuid4().hex[:12]}",
        **MEMBER_CONFIG, "error_cb": lambda err: errors.append(str(err)), "on_commit": on_commit,
    })
    try:
        consumer.subscribe([TOPIC], on_assign=lambda _c, _p: assigned.set())
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        while not assigned.is_set():
            consumer.poll(0.05)
            if time.monotonic() > deadline:
                raise harness.BenchError(f"commit member got no assignment: {errors[:3]}")
        issued = 0
        offset = 0
        cpu0 = broker.rss.cpu_seconds()
        start = time.perf_counter()
        end = start + seconds
        while time.perf_counter() < end:
            if issued - done[0] >= ASYNC_WINDOW:
                consumer.poll(0.001)
                continue
            offset += 1
            consumer.commit(offsets=[TopicPartition(TOPIC, p, offset) for p in range(k)],
                            asynchronous=True)
            issued += 1
            if issued & 0x3F == 0:
                consumer.poll(0)
        drain_deadline = time.monotonic() + 60
        while done[0] < issued:
            consumer.poll(0.001)
            if time.monotonic() > drain_deadline:
                raise harness.BenchError(f"async commit: {issued - done[0]} never acknowledged")
        result.seconds = time.perf_counter() - start
        result.broker_cpu_seconds = broker.rss.cpu_seconds() - cpu0
        result.commits = issued
        if failures:
            raise harness.BenchError(f"async commit: {len(failures)} failed, first: {failures[0]}")
        verify_committed(consumer, k, offset)
    finally:
        consumer.close()
    return result


def verify_committed(consumer: Consumer, k: int, offset: int) -> None:
    got = consumer.committed([TopicPartition(TOPIC, p) for p in range(k)], timeout=10)
    wrong = [(tp.partition, tp.offset) for tp in got if tp.offset != offset]
    if wrong:
        raise harness.BenchError(f"OffsetFetch after commits: expected {offset}, got {wrong[:3]}")


def commit_runs(broker: harness.RunningBroker, seconds: float) -> list[CommitRun]:
    runs: list[CommitRun] = []
    consumer: Consumer | None = None
    try:
        consumer, _errors = joined_member(broker.bootstrap, TOPIC)
        for k in (1, PARTITIONS):
            try:
                r = commit_sync(broker, consumer, k, seconds)
            except (harness.BenchError, KafkaException) as exc:
                r = CommitRun("sync", k, error=str(exc))
            runs.append(r)
            log(f"  commit sync x{k}: " + (f"{r.commits_per_s:,.0f} commits/s"
                                           if r.error is None else f"FAILED: {r.error}"))
    except (harness.BenchError, KafkaException) as exc:
        runs += [CommitRun("sync", k, error=str(exc)) for k in (1, PARTITIONS)]
        log(f"  commit sync: FAILED: {exc}")
    finally:
        if consumer is not None:
            consumer.close()
    for k in (1, PARTITIONS):
        try:
            r = commit_async(broker, broker.bootstrap, k, seconds)
        except (harness.BenchError, KafkaException) as exc:
            r = CommitRun("async", k, error=str(exc))
        runs.append(r)
        log(f"  commit async x{k}: " + (f"{r.commits_per_s:,.0f} commits/s"
                                        if r.error is None else f"FAILED: {r.error}"))
    return runs


# ------------------------------------------------------------------------------- runs


@dataclass
class GroupsRun:
    broker: str
    broker_args: str
    joins: list[JoinSeries] = field(default_factory=list)
    commits: list[CommitRun] = field(default_factory=list)
    peak_rss_mb: float | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "broker": self.broker, "broker_args": self.broker_args,
            "joins": [s.to_json() for s in self.joins],
            "commits": [c.to_json() for c in self.commits],
            "peak_rss_mb": self.peak_rss_mb, "error": self.error, "notes": self.notes,
        }


def run_broker(
    spec: harness.BrokerSpec, broker_args: str, delay_ms: int | None,
    plan: Sequence[tuple[str, int]], commit_seconds: float | None,
) -> GroupsRun:
    """plan: (join variant key, repetitions); commit_seconds None: no commit benchmark."""
    variants = {key: (description, extra) for key, description, extra in JOIN_VARIANTS}
    result = GroupsRun(spec.name, broker_args)
    try:
        with harness.running_broker(spec) as broker:
            try:
                create_topic(broker.bootstrap, TOPIC, PARTITIONS)
                for key, repeats in plan:
                    description, extra = variants[key]
                    result.joins.append(
                        join_series(broker, key, description, extra, repeats, delay_ms))
                if commit_seconds is not None:
                    result.commits = commit_runs(broker, commit_seconds)
            finally:
                broker.rss.sample()
                result.peak_rss_mb = round(broker.rss.peak_bytes / 2**20, 1)
                if broker.process.poll() is not None:
                    result.notes.append(
                        f"broker exited with code {broker.process.returncode} during the run: "
                        f"{harness.log_tail(broker.log_path, 5)}")
    except (harness.BenchError, KafkaException, OSError) as exc:
        result.error = str(exc)
    return result


def log(msg: str) -> None:
    print(f"[bench-groups] {msg}", file=sys.stderr, flush=True)


def run_all(
    brokers: Sequence[str] = ("tansu", "moldau"), *, quick: bool = False, default_delay_run: bool = True,
) -> dict[str, Any]:
    n = 2 if quick else JOIN_REPEATS
    # Tansu takes ~24 s per join (see docs/benchmarks.md): full repetitions for the client
    # defaults only, two for the fast-heartbeat line, to keep `make bench` in minutes.
    tansu_fast = 1 if quick else 2
    seconds = 1.0 if quick else COMMIT_SECONDS
    plan: list[tuple[str, Callable[[], GroupsRun]]] = []
    if "tansu" in brokers:
        plan.append(("Tansu (memory storage)", lambda: run_broker(
            harness.tansu_spec(), "--storage-engine memory://tansu/", None,
            [("client-defaults", n), ("fast-heartbeat", tansu_fast)], seconds)))
    if "moldau" in brokers:
        plan.append(("Moldau, group.initial.rebalance.delay.ms=0", lambda: run_broker(
            moldau_groups_spec(0), "--override group.initial.rebalance.delay.ms=0", 0,
            [("client-defaults", n), ("fast-heartbeat", n)], seconds)))
        if default_delay_run:
            plan.append(("Moldau, default group.initial.rebalance.delay.ms (3000)", lambda: run_broker(
                moldau_groups_spec(None), "(no group override)", 3000,
                [("client-defaults", 1 if quick else 2)], None)))
    started = time.monotonic()
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    runs = []
    for label, fn in plan:
        log(f"{label} …")
        r = fn()
        if r.error:
            log(f"  FAILED: {r.error}")
        runs.append(r)
    return {
        "date": date,
        "wall_seconds": round(time.monotonic() - started, 1),
        "quick": quick,
        "machine": harness.machine_info(),
        "members": MEMBERS, "partitions": PARTITIONS,
        "commit_seconds": seconds, "async_window": ASYNC_WINDOW,
        "member_config": MEMBER_CONFIG,
        "runs": [r.to_json() for r in runs],
    }


# ----------------------------------------------------------------------------- report


def fmt_s(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def render_section(report: dict[str, Any]) -> str:
    m = report["machine"]
    parts = [
        f"Run {report['date']} ({report['wall_seconds']:.0f} s wall) on {m['nproc']} × "
        f"{m['cpu_model']}, Linux {m['kernel']}; Python {m['python']}, librdkafka "
        f"{m['librdkafka']}, {m['tansu']}. Join: {report['members']} members, "
        f"{report['partitions']} partitions, fresh group id per run. Commits: "
        f"{report['commit_seconds']:g} s per cell, async window {report['async_window']}.",
        "",
        "**Join: first subscribe → every member assigned → DescribeGroups Stable (seconds)**",
        "",
        "| Broker | Broker group settings | Client | Stable median | Stable max "
        "| All assigned median | on_assign calls (median) | Members in DescribeGroups | Runs ok |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for run in report["runs"]:
        if run["error"] and not run["joins"]:
            parts.append(f"| {run['broker']} | {run['broker_args']} | – | failed: "
                         f"{harness.one_line(run['error'])} | | | | | |")
        for s in run["joins"]:
            ok = [r for r in s["runs"] if r["error"] is None]
            calls = statistics.median(r["assign_callbacks"] for r in ok) if ok else 0
            described = "/".join(sorted({str(r["described_members"]) for r in ok}))
            delay = s["initial_rebalance_delay_ms"]
            settings = ("no initial-delay setting" if delay is None
                        else f"initial.rebalance.delay.ms={delay}")
            if ok:
                parts.append(
                    f"| {run['broker']} | {settings} | {s['description']} "
                    f"| {fmt_s(s['stable_median_s'])} | {fmt_s(s['stable_max_s'])} "
                    f"| {fmt_s(s['assigned_median_s'])} | {calls:.0f} | {described} | {len(ok)}/{len(s['runs'])} |")
            else:
                err = harness.one_line(s["runs"][0]["error"] or "?") if s["runs"] else "no runs"
                parts.append(f"| {run['broker']} | {settings} | {s['description']} "
                             f"| failed: {err} | | | | | 0/{len(s['runs'])} |")
    parts += [
        "",
        "**Offset commits by one group member**",
        "",
        "| Broker | Mode | Partitions per commit | Commits/s | Partition-offsets/s "
        "| Broker CPU s per 1000 commits |",
        "|---|---|--:|--:|--:|--:|",
    ]
    for run in report["runs"]:
        for c in run["commits"]:
            if c["error"]:
                parts.append(f"| {run['broker']} | {c['mode']} | {c['partitions']} "
                             f"| failed: {harness.one_line(c['error'])} | | |")
            else:
                per_k = 1000 * c["broker_cpu_seconds"] / c["commits"] if c["commits"] else 0.0
                parts.append(
                    f"| {run['broker']} | {c['mode']} | {c['partitions']} "
                    f"| {c['commits_per_s']:,.0f} | {c['partition_offsets_per_s']:,.0f} | {per_k:.2f} |")
    notes = [f"- {r['broker']} ({r['broker_args']}): {harness.one_line(n, 300)}"
             for r in report["runs"] for n in r["notes"]]
    notes += [f"- {r['broker']} ({r['broker_args']}): {harness.one_line(r['error'], 300)}"
              for r in report["runs"] if r["error"]]
    for r in report["runs"]:
        listed = {j["described_members"] for s in r["joins"] for j in s["runs"]
                  if j["error"] is None and j["described_members"] != report["members"]}
        if listed:
            notes.append(f"- {r['broker']}: DescribeGroups reported the group Stable but listed "
                         f"{'/'.join(map(str, sorted(listed)))} members, although all "
                         f"{report['members']} consumers held their assignments (on_assign).")
        for s in r["joins"]:
            for j in s["runs"]:
                if j["error"]:
                    notes.append(f"- {r['broker']} join, {s['description']}: "
                                 f"{harness.one_line(j['error'], 300)}")
    if notes:
        parts += ["", "Errors and notes:", "", *notes]
    return "\n".join(parts).rstrip() + "\n"


DOC_SECTION_INTRO = """\
## Consumer groups: Moldau vs. Tansu

`make bench` runs these after the single-broker workload; `.venv/bin/python bench/run.py
--only-groups` runs only them, `--skip-groups` leaves them out, and
`.venv/bin/python bench/groups.py [--quick] [--no-doc]` is the same code on its own.
Same machine and run for both brokers, each in a fresh process and temp dir:
**Moldau started with `--override group.initial.rebalance.delay.ms=0`** (Kafka's
default 3000 ms initial delay would dominate the join time; one extra line below uses
the default), and Tansu 0.6.0 with memory storage, which has no such setting. Clients
are confluent-kafka (librdkafka) consumers in the harness process, with the default
assignor (range,roundrobin, eager protocol) and auto-commit off.

1. **Join to Stable.** One 10-partition topic; 10 consumers, **10 threads in one
   process** with one `Consumer` each (librdkafka does its network I/O in its own
   threads and `poll()` releases the GIL, so the Python threads do not serialise the
   protocol; 10 processes would mostly add interpreter start-up on 2 cores). All
   consumers are created first, then all threads call `subscribe()` together. Timed
   from the first `subscribe()` until every member's last `on_assign` has fired with
   shares that are disjoint and cover all 10 partitions ("all assigned"), and then
   until `AdminClient.describe_consumer_groups` reports the group **Stable**. Fresh
   group id every run; median and max over the runs. Two client settings: librdkafka
   defaults (heartbeat.interval.ms 3000), and heartbeat.interval.ms=100. With the eager
   protocol and no initial delay, members that join a moment after the first
   generation formed force a rebalance that the older members only learn about from
   their next heartbeat, so with client defaults the time is mostly one heartbeat
   interval; the 100 ms line shows what the broker itself needs. "on_assign calls" > 10
   means more than one generation was needed.
2. **Offset commits.** One consumer, sole member of a fresh group, with all 10
   partitions assigned, commits offsets (increasing by one each time) for 1 partition
   and for 10 partitions per OffsetCommit, for 5 s each: **sync** is
   `commit(offsets=[...], asynchronous=False)` in a loop (one round trip at a time);
   **async** is `commit(..., asynchronous=True)` with at most 1000 outstanding, timed
   until the last one is acknowledged. Afterwards the harness checks with OffsetFetch
   (`committed()`) that the last offsets were stored. Partition-offsets/s = commits/s ×
   partitions per commit. At these rates the Python loop and librdkafka cost about as
   much CPU as the broker, so the broker CPU column is the better guide to broker cost.

Each line is one run of the harness on a shared 2-core machine (other test suites were
running at the same time); raw results in `bench/results/groups.json`.

"""


def update_doc(section: str, path: Path = DOC_PATH) -> None:
    block = f"{START_MARKER}\n{section}{END_MARKER}"
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(re.escape(START_MARKER) + r".*?" + re.escape(END_MARKER), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + DOC_SECTION_INTRO + block + "\n"
    path.write_text(text)


def run_and_report(brokers: Sequence[str], *, quick: bool, write_doc: bool) -> dict[str, Any]:
    report = run_all(brokers, quick=quick)
    JSON_PATH.parent.mkdir(parents=True, exist_ok=True)
    if not quick:
        JSON_PATH.write_text(json.dumps(report, indent=2) + "\n")
        log(f"raw results: {JSON_PATH.relative_to(REPO)}")
    section = render_section(report)
    print(section)
    if write_doc and not quick:
        update_doc(section)
        log(f"updated {DOC_PATH.relative_to(REPO)}")
    else:
        log("docs/benchmarks.md not updated (--quick/--no-doc)")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="2 joins per line, 1 s per commit cell; leaves docs/ and JSON untouched")
    parser.add_argument("--brokers", type=lambda s: [x.strip().lower() for x in s.split(",")],
                        default=["tansu", "moldau"], help="comma-separated subset of tansu,moldau")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    run_and_report(args.brokers, quick=args.quick, write_doc=not args.no_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())

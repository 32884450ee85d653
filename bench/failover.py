#!/usr/bin/env python3
"""Cluster failover benchmark: how long a partition cannot take writes when its leader goes.

A real Apache ZooKeeper (Debian's package, as in tests/cluster) and three `moldau server`
processes on 127.0.0.1. Per trial: a fresh topic with 1 partition, RF 3, and an explicit
replica assignment that puts the leader on the broker the trial will stop; a producer
thread (confluent-kafka, acks=1) sends one record every 5 ms and timestamps each
delivery callback. Then the leader is stopped:

- **kill -9** (SIGKILL): the time from the kill to the delivery, without error, of the
  first record produced after the kill. The controller only learns of the death when
  ZooKeeper expires the broker's session, so this is bounded below by roughly
  `zookeeper.session.timeout.ms` minus the time since the broker's last ping.
- **SIGTERM** (controlled shutdown): the same time, plus the time the broker process
  takes to exit.

Each kind runs with the leader on a broker that is not the controller and, separately,
with the leader on the controller (which must then be replaced first). The stopped broker
is restarted and rejoins before the next trial; the trial's topic is deleted.

Where the time goes is read from the logs: ZooKeeper's "Expiring session" line, the
controller's "brokers joined [...], left [...]" line, and the new leader's
"broker N leads TOPIC-0" line, against the wall-clock time of the kill.

Results: a markdown section in docs/benchmarks.md (between the failover markers), raw
JSON in bench/results/failover.json. Called by bench/run.py after the other workloads;
runnable alone: `.venv/bin/python bench/failover.py [--quick] [--trials N] [--no-doc]`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import run` from anywhere
import run as harness  # noqa: E402

REPO = harness.REPO
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # for tests.cluster / moldau.cluster

try:  # the real-ZooKeeper test server; it may also live in moldau.cluster
    from tests.cluster.zookeeper_server import ZooKeeperServer
except ImportError:  # pragma: no cover - depends on the checkout
    from moldau.cluster.zookeeper_process import ZooKeeperServer  # type: ignore[no-redef]

DOC_PATH = harness.DOC_PATH
JSON_PATH = REPO / "bench" / "results" / "failover.json"
START_MARKER = "<!-- failover:start -->"
END_MARKER = "<!-- failover:end -->"

BROKERS = 3
DEFAULT_TRIALS = 10
QUICK_TRIALS = 2
PRODUCE_INTERVAL_S = 0.005
WARMUP_ACKS = 50
READY_TIMEOUT_S = 30.0
REJOIN_TIMEOUT_S = 60.0
# Per trial, how long to wait for the first acknowledged record after the leader stops.
RECOVERY_TIMEOUT_EXTRA_S = 30.0
# After the recovery (and the broker's exit), keep producing this long before the trial
# ends, so the longest produce-to-ack time covers every record produced around the stop.
STALL_WINDOW_S = 1.0

PRODUCER_CONFIG: dict[str, Any] = {
    "acks": 1,
    "linger.ms": 0,
    "enable.idempotence": False,
    "message.timeout.ms": 600_000,  # never give up on a record during a trial
    "retry.backoff.ms": 10,
    "retry.backoff.max.ms": 100,
    "topic.metadata.refresh.interval.ms": 100,
    # Trials delete their topic; a producer asking for its metadata must not re-create it.
    "allow.auto.create.topics": False,
    "log_level": 2,  # connection-refused chatter about the dead broker is expected; errors go to error_cb
}


@dataclass(frozen=True)
class Case:
    key: str
    signal: signal.Signals
    session_ms: int
    controller: bool  # the stopped leader is also the controller
    target_s: float

    @property
    def label(self) -> str:
        how = "kill -9" if self.signal == signal.SIGKILL else "SIGTERM (controlled shutdown)"
        who = "leader = controller" if self.controller else "leader ≠ controller"
        return f"{how}, {who}, session {self.session_ms} ms"


def default_cases(sessions: Sequence[int]) -> list[Case]:
    cases: list[Case] = []
    for session_ms in sessions:
        target_kill = session_ms / 1000 + 1.0
        cases.append(Case(f"kill-leader-{session_ms}", signal.SIGKILL, session_ms, False, target_kill))
        cases.append(Case(f"kill-controller-{session_ms}", signal.SIGKILL, session_ms, True, target_kill))
        if session_ms == sessions[0]:  # controlled shutdown does not wait for a session to expire
            cases.append(Case(f"term-leader-{session_ms}", signal.SIGTERM, session_ms, False, 1.0))
            cases.append(Case(f"term-controller-{session_ms}", signal.SIGTERM, session_ms, True, 1.0))
    return cases


# --------------------------------------------------------------------------- processes


class Broker:
    """One `moldau server` process in its own process group, restartable on the same port."""

    def __init__(self, broker_id: int, root: Path, zk_connect: str, session_ms: int) -> None:
        self.broker_id = broker_id
        self.port = harness.free_port()
        self.dir = root / f"broker{broker_id}"
        self.log_path = self.dir / "broker.log"
        self.overrides = {
            "broker.id": str(broker_id),
            "zookeeper.connect": zk_connect,
            "zookeeper.session.timeout.ms": str(session_ms),
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "log.dirs": str(self.dir / "logs"),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        args = [sys.executable, "-m", "moldau.cli.main", "server"]
        for k, v in self.overrides.items():
            args += ["--override", f"{k}={v}"]
        return args

    def start(self, timeout: float = READY_TIMEOUT_S) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        marker = f"--- start #{self.starts}"
        with open(self.log_path, "ab") as log:
            log.write(f"{marker}: {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(), cwd=REPO, env=harness.moldau_spec().env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise harness.BenchError(
                    f"broker {self.broker_id} exited with {self.proc.returncode} while starting:\n"
                    f"{harness.log_tail(self.log_path)}")
            if "ready on" in self.log().split(marker)[-1] and harness.accepts_tcp(self.port):
                return
            time.sleep(0.05)
        raise harness.BenchError(f"broker {self.broker_id} not ready after {timeout:.0f} s:\n"
                                 f"{harness.log_tail(self.log_path)}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group (also after the main process has exited)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""


class Cluster:
    def __init__(self, root: Path, session_ms: int) -> None:
        self.root = root
        self.session_ms = session_ms
        self.zk = ZooKeeperServer(root / "zk")
        self.brokers: list[Broker] = []
        self._clients: list[AdminClient] = []

    def start(self) -> None:
        self.zk.start()
        self.brokers = [Broker(i, self.root, self.zk.connect, self.session_ms) for i in range(BROKERS)]
        for b in self.brokers:
            b.start()
        self.wait_for_brokers(BROKERS)

    def stop(self) -> None:
        for b in self.brokers:
            b.kill()
        self.zk.kill()

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers if b.alive())

    def admin(self) -> AdminClient:
        client = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 3,
                              "allow.auto.create.topics": False})
        self._clients.append(client)  # a client must outlive the futures it returns
        del self._clients[:-20]
        return client

    def controller_id(self) -> int:
        return int(self.admin().describe_cluster(request_timeout=10).result(15).controller.id)

    def wait_for_brokers(self, n: int, timeout: float = REJOIN_TIMEOUT_S) -> None:
        wait_for(lambda: len(self.admin().list_topics(timeout=5).brokers) == n and self.controller_id() >= 0,
                 timeout, f"{n} brokers and a controller in the metadata")

    def leader(self, topic: str) -> int:
        t = self.admin().list_topics(topic, timeout=5).topics.get(topic)
        if t is None or t.error is not None or 0 not in t.partitions:
            return -1
        return int(t.partitions[0].leader)


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception as exc:  # a client call that fails while the cluster settles
            last = exc
        time.sleep(0.1)
    raise harness.BenchError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last})")


# ---------------------------------------------------------------------------- producer


class TimedProducer(threading.Thread):
    """Produces one record every PRODUCE_INTERVAL_S to partition 0 and records, for each,
    when it was produced and when its delivery callback ran (all in this thread)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(name="failover-producer", daemon=True)
        self.topic = topic
        self.errors: list[str] = []
        self.producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER_CONFIG,
                                  "error_cb": lambda err: self.errors.append(str(err))})
        self.produced_at: list[float] = []
        self.acked_at: dict[int, tuple[float, int]] = {}  # seq -> (callback time, offset)
        self.acked = 0
        self.failed: list[str] = []
        self.cutoff = float("inf")  # records produced at or after this (monotonic) count
        self.first_ok_after_cutoff: float | None = None
        self.recovered = threading.Event()
        self.warm = threading.Event()
        self._stop_event = threading.Event()

    def _on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        now = time.monotonic()
        if err is not None:
            self.failed.append(str(err))
            return
        self.acked += 1
        if self.acked >= WARMUP_ACKS:
            self.warm.set()
        seq = int(msg.value())
        self.acked_at[seq] = (now, msg.offset())
        if self.produced_at[seq] >= self.cutoff and self.first_ok_after_cutoff is None:
            self.first_ok_after_cutoff = now
            self.recovered.set()

    def run(self) -> None:
        next_at = time.monotonic()
        while not self._stop_event.is_set():
            now = time.monotonic()
            if now >= next_at:
                seq = len(self.produced_at)
                self.produced_at.append(time.monotonic())
                try:
                    self.producer.produce(self.topic, str(seq).encode(), partition=0, on_delivery=self._on_delivery)
                except BufferError:
                    self.produced_at.pop()
                next_at = max(next_at + PRODUCE_INTERVAL_S, now)
            self.producer.poll(max(0.0, next_at - time.monotonic()))

    def close(self) -> None:
        self._stop_event.set()
        self.join(5)
        with contextlib.suppress(Exception):
            self.producer.purge()
            self.producer.flush(1)
        # Drop the client now (it refers back to us through error_cb): a live producer keeps
        # refreshing the topic's metadata.
        self.producer = None  # type: ignore[assignment]

    def after(self, cutoff: float) -> tuple[float | None, int, int | None, int | None]:
        """Over the records produced at or after cutoff: the longest produce-to-ack time of
        those acknowledged, how many were never acknowledged, the offset of the first one
        acknowledged and the last offset acknowledged for a record produced before cutoff."""
        latencies, unacked = [], 0
        first: tuple[float, int] | None = None
        last_before: int | None = None
        for seq, produced in enumerate(self.produced_at):
            ack = self.acked_at.get(seq)
            if produced < cutoff:
                if ack is not None:
                    last_before = ack[1] if last_before is None else max(last_before, ack[1])
                continue
            if ack is None:
                unacked += 1
                continue
            latencies.append(ack[0] - produced)
            if first is None or ack[0] < first[0]:
                first = ack
        return (max(latencies) if latencies else None, unacked, first[1] if first else None, last_before)


# ------------------------------------------------------------------------------ trials


@dataclass
class Trial:
    case: str
    index: int
    victim: int
    controller_before: int
    victim_was_controller: bool
    recovery_s: float | None = None  # stop -> first acknowledged record produced after the stop
    stall_s: float | None = None  # longest produce -> ack time of a record produced after the stop
    unacked_after_stop: int = 0  # records produced after the stop, not acknowledged when the trial ended
    first_offset_after_stop: int | None = None  # offset of the first record acknowledged after the stop
    last_offset_before_stop: int | None = None  # highest offset acknowledged for a record produced before
    exit_s: float | None = None  # SIGTERM -> process exited
    exit_code: int | None = None
    new_leader: int | None = None
    # From the logs, seconds after the stop (None when the line was not found):
    zk_expired_s: float | None = None  # ZooKeeper: "Expiring session" of the victim's session
    controller_saw_s: float | None = None  # controller: "brokers ... left [victim]" (or new_controller_s)
    new_controller_s: float | None = None  # a survivor: "broker N is the controller"
    new_leader_s: float | None = None  # the new leader: "broker N leads TOPIC-0"
    controlled_shutdown_done_s: float | None = None  # victim: "controlled shutdown complete"
    records_failed: int = 0
    client_errors: int = 0
    error: str | None = None
    notes: list[str] = field(default_factory=list)


LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \S+ \S+: (.*)$", re.MULTILINE)
ZK_LINE = re.compile(r"^(\d\d:\d\d:\d\d\.\d{3}) .*Expiring session (0x[0-9a-f]+)", re.MULTILINE)


def broker_events(text: str) -> list[tuple[float, str]]:
    """(wall-clock seconds, message) of each log line (Python logging's asctime is local time)."""
    out = []
    for m in LOG_LINE.finditer(text):
        ts = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        out.append((ts, m.group(2)))
    return out


def first_after(events: list[tuple[float, str]], pattern: str, since: float) -> float | None:
    rx = re.compile(pattern)
    times = [ts for ts, msg in events if ts >= since - 0.002 and rx.search(msg)]
    return min(times) - since if times else None


def analyse_logs(cluster: Cluster, trial: Trial, topic: str, wall_stop: float,
                 offsets: dict[int, int], zk_offset: int) -> None:
    v = trial.victim
    for b in cluster.brokers:
        events = broker_events(b.log_since(offsets[b.broker_id]))
        if b.broker_id == v:
            t = first_after(events, r"controlled shutdown complete", wall_stop)
            trial.controlled_shutdown_done_s = t
            continue
        saw = first_after(events, rf"controller \d+: brokers joined \[.*\], left \[(?:\d+, )*{v}(?:, \d+)*\]",
                          wall_stop)
        if saw is not None:
            trial.controller_saw_s = saw if trial.controller_saw_s is None else min(saw, trial.controller_saw_s)
        became = first_after(events, rf"broker {b.broker_id} is the controller", wall_stop)
        if became is not None:
            trial.new_controller_s = became
        led = first_after(events, rf"broker {b.broker_id} leads {re.escape(topic)}-0 ", wall_stop)
        if led is not None and (trial.new_leader_s is None or led < trial.new_leader_s):
            trial.new_leader_s = led
    if trial.victim_was_controller:
        # a new controller loads the live brokers from ZooKeeper instead of seeing one leave
        trial.controller_saw_s = trial.new_controller_s
    # ZooKeeper logs HH:MM:SS.mmm only; take the date of the stop and expire the first session
    # it expires afterwards (the only sessions that can expire in a trial are the victim's).
    try:
        with open(cluster.zk.log_path, "rb") as f:
            f.seek(zk_offset)
            zk_text = f.read().decode(errors="replace")
    except OSError:
        zk_text = ""
    day = dt.datetime.fromtimestamp(wall_stop).date()
    for m in ZK_LINE.finditer(zk_text):
        ts = dt.datetime.combine(day, dt.datetime.strptime(m.group(1), "%H:%M:%S.%f").time()).timestamp()
        if ts < wall_stop - 43_200:
            ts += 86_400
        if ts >= wall_stop - 0.002:
            trial.zk_expired_s = ts - wall_stop
            break


def run_trial(cluster: Cluster, case: Case, index: int) -> Trial:
    controller = cluster.controller_id()
    if case.controller:
        victim = controller
    else:
        others = [b.broker_id for b in cluster.brokers if b.broker_id != controller]
        victim = others[index % len(others)]
    rest = [b.broker_id for b in cluster.brokers if b.broker_id != victim]
    trial = Trial(case.key, index, victim, controller, victim == controller)
    topic = f"failover-{case.key}-{index}-{uuid.uuid4().hex[:6]}"
    admin = cluster.admin()
    admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[[victim, *rest]])],
                        operation_timeout=10, request_timeout=15)[topic].result(20)
    wait_for(lambda: cluster.leader(topic) == victim, 20, f"broker {victim} to lead {topic}-0")
    broker = cluster.brokers[victim]
    assert broker.proc is not None
    producer = TimedProducer(cluster.bootstrap, topic)
    try:
        producer.start()
        if not producer.warm.wait(20):
            raise harness.BenchError(f"producer warm-up: {producer.acked} acks in 20 s, "
                                     f"errors {producer.failed[:3] or producer.errors[:3]}")
        time.sleep(0.2)
        failed_before, errors_before = len(producer.failed), len(producer.errors)
        offsets = {b.broker_id: b.log_size() for b in cluster.brokers}
        zk_offset = cluster.zk.log_path.stat().st_size
        wall_stop = time.time()
        os.kill(broker.proc.pid, case.signal)
        stopped = time.monotonic()
        producer.cutoff = stopped
        exited: list[float] = []
        waiter = threading.Thread(target=lambda: (broker.proc.wait(), exited.append(time.monotonic())),  # type: ignore[union-attr]
                                  daemon=True)
        waiter.start()
        timeout = case.session_ms / 1000 + RECOVERY_TIMEOUT_EXTRA_S
        if producer.recovered.wait(timeout):
            assert producer.first_ok_after_cutoff is not None
            trial.recovery_s = producer.first_ok_after_cutoff - stopped
        else:
            trial.error = f"no record produced after the stop was acknowledged within {timeout:.0f} s"
        waiter.join(REJOIN_TIMEOUT_S)
        if exited:
            trial.exit_s = exited[0] - stopped
            trial.exit_code = broker.proc.returncode
        else:
            trial.notes.append(f"broker {victim} had not exited {REJOIN_TIMEOUT_S:.0f} s after {case.signal.name}")
            broker.kill()
        time.sleep(STALL_WINDOW_S)  # let records produced around the recovery be acknowledged
        (trial.stall_s, trial.unacked_after_stop, trial.first_offset_after_stop,
         trial.last_offset_before_stop) = producer.after(stopped)
        trial.records_failed = len(producer.failed) - failed_before
        trial.client_errors = len(producer.errors) - errors_before
        if trial.records_failed:
            trial.notes.append(f"{trial.records_failed} deliveries failed, first: {producer.failed[failed_before]}")
    finally:
        producer.close()
    with contextlib.suppress(Exception):
        trial.new_leader = cluster.leader(topic)
    analyse_logs(cluster, trial, topic, wall_stop, offsets, zk_offset)
    # Rejoin before the next trial. After a kill -9 the old session has expired by now
    # (that is what moved the leader); a restart that finds it still registered retries.
    deadline = time.monotonic() + REJOIN_TIMEOUT_S
    while True:
        try:
            broker.start()
            break
        except harness.BenchError as exc:
            if "already registered" not in str(exc) or time.monotonic() > deadline:
                raise
            broker.kill()
            time.sleep(0.5)
    cluster.wait_for_brokers(BROKERS)
    with contextlib.suppress(Exception):
        cluster.admin().delete_topics([topic], operation_timeout=10, request_timeout=15)[topic].result(20)
    return trial


def run_cases(cases: Sequence[Case], trials: int, keep: Path | None) -> list[Trial]:
    results: list[Trial] = []
    for session_ms in dict.fromkeys(c.session_ms for c in cases):
        root = Path(tempfile.mkdtemp(prefix=f"moldau-failover-{session_ms}-"))
        cluster = Cluster(root, session_ms)
        try:
            print(f"[failover] cluster: ZooKeeper + {BROKERS} brokers, zookeeper.session.timeout.ms="
                  f"{session_ms} ({root})", file=sys.stderr, flush=True)
            cluster.start()
            for case in (c for c in cases if c.session_ms == session_ms):
                print(f"[failover] {case.label}: {trials} trials", file=sys.stderr, flush=True)
                for i in range(trials):
                    try:
                        trial = run_trial(cluster, case, i)
                    except (harness.BenchError, KafkaException, OSError) as exc:
                        trial = Trial(case.key, i, -1, -1, False, error=str(exc))
                        print(f"[failover]   trial {i}: FAILED: {harness.one_line(str(exc), 300)}",
                              file=sys.stderr, flush=True)
                        results.append(trial)
                        # the cluster may be in any state now: restart whatever is down
                        for b in cluster.brokers:
                            if not b.alive():
                                with contextlib.suppress(harness.BenchError):
                                    time.sleep(case.session_ms / 1000)
                                    b.start()
                        continue
                    results.append(trial)
                    print(f"[failover]   trial {i}: victim {trial.victim}"
                          f"{' (controller)' if trial.victim_was_controller else ''} -> "
                          f"first ack after {fmt_s(trial.recovery_s)}, exit {fmt_s(trial.exit_s)}; logs: "
                          f"zk expired {fmt_s(trial.zk_expired_s)}, controller saw {fmt_s(trial.controller_saw_s)}, "
                          f"new leader {trial.new_leader} at {fmt_s(trial.new_leader_s)}"
                          + (f"; {trial.error}" if trial.error else ""), file=sys.stderr, flush=True)
        finally:
            cluster.stop()
            if keep is not None:
                dest = keep / root.name
                shutil.copytree(root, dest, ignore=shutil.ignore_patterns("logs", "data"), dirs_exist_ok=True)
                print(f"[failover] logs kept in {dest}", file=sys.stderr)
            shutil.rmtree(root, ignore_errors=True)
    return results


# ----------------------------------------------------------------------------- reports


def fmt_s(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f} s"


def stats(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    xs = [v for v in values if v is not None]
    if not xs:
        return None, None
    return statistics.median(xs), max(xs)


def summarize(cases: Sequence[Case], trials: Sequence[Trial]) -> list[dict[str, Any]]:
    out = []
    for case in cases:
        ts = [t for t in trials if t.case == case.key]
        ok = [t for t in ts if t.recovery_s is not None]
        med, mx = stats([t.recovery_s for t in ok])
        row: dict[str, Any] = {
            "case": case.key, "label": case.label, "signal": case.signal.name, "session_ms": case.session_ms,
            "leader_is_controller": case.controller, "target_s": case.target_s,
            "trials": len(ts), "succeeded": len(ok), "recovery_median_s": med, "recovery_max_s": mx,
            "met": bool(ok) and len(ok) == len(ts) and mx is not None and mx < case.target_s,
        }
        row["stall_met"] = row["met"] and all(t.stall_s is not None and t.stall_s < case.target_s for t in ok)
        for key in ("stall_s", "exit_s", "zk_expired_s", "controller_saw_s", "new_leader_s",
                    "controlled_shutdown_done_s"):
            row[f"{key}_median"], row[f"{key}_max"] = stats([getattr(t, key) for t in ok])
        out.append(row)
    return out


def render_section(report: dict[str, Any]) -> str:
    m = report["machine"]
    rows = report["summary"]
    lines = [
        f"Run {report['date']} ({report['wall_seconds']:.0f} s wall) on {m['nproc']} × {m['cpu_model']}, "
        f"Linux {m['kernel']}; Python {m['python']}, librdkafka {m['librdkafka']}, {report['zookeeper']}; "
        f"Moldau {report['moldau_revision']}. {report['trials']} trials per row; seconds from the signal.",
        "",
        f"Command: `{report['command']}`",
        "",
        "| Leader stopped by | Leader is controller | Session timeout | First ack: median | max | Target "
        "| Longest stall: median | max | Broker exit: median | max |",
        "|---|---|--:|--:|--:|---|--:|--:|--:|--:|",
    ]
    for r in rows:
        how = "kill -9" if r["signal"] == "SIGKILL" else "SIGTERM"
        failed = r["trials"] - r["succeeded"]
        verdict = "met" if r["met"] else "**missed**"
        if r["signal"] == "SIGTERM":
            verdict += f" (stall: {'met' if r['stall_met'] else '**missed**'})"
        if failed:
            verdict += f", {failed} of {r['trials']} trials failed"
        exit_cols = "– | –"
        if r["signal"] == "SIGTERM" and r["exit_s_median"] is not None:
            exit_cols = f"{r['exit_s_median']:.2f} | {r['exit_s_max']:.2f}"
        lines.append(
            f"| {how} | {'yes' if r['leader_is_controller'] else 'no'} | {r['session_ms']} ms "
            f"| **{fmt_num(r['recovery_median_s'])}** | {fmt_num(r['recovery_max_s'])} "
            f"| < {r['target_s']:g} s: {verdict} | {fmt_num(r['stall_s_median'])} | {fmt_num(r['stall_s_max'])} "
            f"| {exit_cols} |")
    lines += [
        "",
        "Where the time goes (medians over the same trials, seconds after the signal, from the logs):",
        "",
        "| Case | ZooKeeper expires the session | Controller acts | New leader takes over | First ack |",
        "|---|--:|--:|--:|--:|",
    ]
    for r in rows:
        how = "kill -9" if r["signal"] == "SIGKILL" else "SIGTERM"
        who = "leader = controller" if r["leader_is_controller"] else "leader ≠ controller"
        kill = r["signal"] == "SIGKILL"
        zk = fmt_num(r["zk_expired_s_median"]) if kill else "–"
        ctl = fmt_num(r["controller_saw_s_median"]) if kill else "–"
        lines.append(f"| {how}, {who}, {r['session_ms']} ms | {zk} | {ctl} "
                     f"| {fmt_num(r['new_leader_s_median'])} | {fmt_num(r['recovery_median_s'])} |")
    lines += ["", *analysis_lines(rows)]
    notes = report.get("notes") or []
    if notes:
        lines += ["", "Notes:", "", *[f"- {harness.one_line(n, 400)}" for n in notes]]
    return "\n".join(lines).rstrip() + "\n"


def analysis_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    """One sentence per case saying where the median time went and whether the target holds."""
    out = []
    for r in rows:
        first, lead = r["recovery_median_s"], r["new_leader_s_median"]
        if first is None:
            out.append(f"- {r['label']}: no trial succeeded.")
            continue
        verdict = (f"target < {r['target_s']:g} s {'met' if r['met'] else 'MISSED'} "
                   f"(max {r['recovery_max_s']:.2f} s)")
        if r["signal"] == "SIGKILL":
            zk, ctl = r["zk_expired_s_median"], r["controller_saw_s_median"]
            if zk is None or ctl is None or lead is None:
                out.append(f"- {r['label']}: first ack {first:.2f} s; {verdict}; log lines missing.")
                continue
            acts = "a survivor is elected controller" if r["leader_is_controller"] else "the controller sees it"
            out.append(
                f"- {r['label']}: {zk:.2f} s of the {first:.2f} s ({100 * zk / first:.0f} %) is waiting for "
                f"ZooKeeper to expire the dead broker's session; {acts} {ctl - zk:.2f} s later, the new leader "
                f"takes over {lead - ctl:.2f} s after that, and the producer's first ack follows "
                f"{first - lead:.2f} s later (metadata refresh and resend); {verdict}.")
        else:
            exit_s = r["exit_s_median"]
            out.append(
                f"- {r['label']}: the new leader takes over {fmt_num(lead)} s after the signal, the first ack "
                f"follows at {first:.2f} s and the broker exits after {fmt_num(exit_s)} s; {verdict}.")
    return out


def fmt_num(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


DOC_INTRO = """\
## Cluster failover

`.venv/bin/python bench/failover.py` (also the last part of `make bench`; `bench/run.py
--only-failover` runs only it, `--skip-failover` leaves it out) starts a real Apache ZooKeeper
(Debian's package) and three `moldau server` processes on 127.0.0.1.
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


def zookeeper_version() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "zookeeper"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        if out:
            return f"ZooKeeper {out} (Debian)"
    return "ZooKeeper (version unknown)"


def moldau_revision() -> str:
    """The commit the brokers ran, and whether moldau/ had uncommitted changes."""
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "(not a git checkout)"
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "moldau"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "(revision unknown)"
    rev = f"at commit {head.stdout.strip()}"
    return rev + (" with uncommitted changes in moldau/" if dirty else "")


def command_line() -> str:
    script = Path(sys.argv[0]).resolve()
    with contextlib.suppress(ValueError):
        script = script.relative_to(REPO)
    return " ".join([".venv/bin/python", str(script), *sys.argv[1:]])


def trial_notes(trials: Sequence[Trial]) -> list[str]:
    notes = []
    for t in trials:
        for n in t.notes:
            notes.append(f"{t.case} trial {t.index}: {n}")
        if t.error:
            notes.append(f"{t.case} trial {t.index}: {t.error}")
        if t.exit_code not in (None, 0, -signal.SIGKILL):
            notes.append(f"{t.case} trial {t.index}: broker {t.victim} exited with code {t.exit_code}")
    return notes


# -------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=None,
                        help=f"trials per case (default {DEFAULT_TRIALS}; {QUICK_TRIALS} with --quick)")
    parser.add_argument("--sessions", type=lambda s: [int(x) for x in s.split(",")], default=[6000, 2000],
                        help="comma-separated zookeeper.session.timeout.ms values; SIGTERM runs with the "
                             "first only (default: 6000,2000)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_TRIALS} trials per case, first session timeout only; leaves docs/ untouched")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument("--keep-logs", type=Path, metavar="DIR",
                        help="copy ZooKeeper's and the brokers' logs into DIR")
    args = parser.parse_args(argv)
    if args.trials is None:
        args.trials = QUICK_TRIALS if args.quick else DEFAULT_TRIALS
    if args.quick:
        args.sessions = args.sessions[:1]
    if args.trials <= 0:
        parser.error("--trials must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cases = default_cases(args.sessions)
    started = time.monotonic()
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    if args.keep_logs is not None:
        args.keep_logs.mkdir(parents=True, exist_ok=True)
    try:
        trials = run_cases(cases, args.trials, args.keep_logs)
    except (harness.BenchError, RuntimeError, KafkaException, OSError) as exc:
        print(f"[failover] FAILED: {exc}", file=sys.stderr)
        return 1
    report: dict[str, Any] = {
        "date": date,
        "wall_seconds": round(time.monotonic() - started, 1),
        "quick": args.quick,
        "trials": args.trials,
        "machine": harness.machine_info(),
        "zookeeper": zookeeper_version(),
        "command": command_line(),
        "moldau_revision": moldau_revision(),
        "producer_config": PRODUCER_CONFIG,
        "produce_interval_s": PRODUCE_INTERVAL_S,
        "summary": summarize(cases, trials),
        "notes": trial_notes(trials),
        "runs": [asdict(t) for t in trials],
    }
    JSON_PATH.parent.mkdir(parents=True, exist_ok=True)
    JSON_PATH.write_text(json.dumps(report, indent=2) + "\n")
    section = render_section(report)
    print(section)
    print(f"[failover] raw results: {JSON_PATH.relative_to(REPO)} ({report['wall_seconds']:.0f} s)", file=sys.stderr)
    if args.quick or args.no_doc:
        print("[failover] docs/benchmarks.md not updated (--quick/--no-doc)", file=sys.stderr)
    else:
        update_doc(section)
        print(f"[failover] updated {DOC_PATH.relative_to(REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A local cluster in one directory: one ZooKeeper and N `moldau server` processes.

Layout of DIR:

    cluster.json            what is running: pids, ports, zookeeper.connect, bootstrap
    zookeeper/zoo.cfg       zookeeper/data/ (snapshots, transaction logs), zookeeper/zookeeper.log
    broker-<id>/broker.log  broker-<id>/data/ (the broker's log.dirs)
    console.log             the web console's log (`up --console`)

Every process runs detached (a session of its own) so it outlives the command that
started it and a Ctrl-C in the terminal. `cluster.json` records each pid with the
process's start time (from /proc) so a pid the kernel has since given to another
process is never taken for ours, let alone signalled.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from confluent_kafka.admin import AdminClient

import moldau
from moldau.cluster.zookeeper_process import (
    JavaNotFoundError,
    ZooKeeperInstall,
    ZooKeeperNotFoundError,
    ZooKeeperServer,
    ZooKeeperStartError,
    find_java,
    find_zookeeper,
    is_serving,
)
from moldau.console.command import READY_LINE, console_command

if TYPE_CHECKING:
    from confluent_kafka.admin._metadata import ClusterMetadata

STATE_FILE = "cluster.json"
STATE_VERSION = 1
HOST = "127.0.0.1"
ZOOKEEPER_DIR = "zookeeper"
# Set per broker by `cluster up` itself; an --override of these would break the cluster.
RESERVED_PROPERTIES = frozenset(
    {"broker.id", "node.id", "listeners", "advertised.listeners", "log.dirs", "log.dir", "zookeeper.connect",
     "metrics.port", "metrics.listener"}
)
# A development cluster: failover within seconds rather than Kafka's 18 s session, and
# no initial rebalance delay (as Kafka's own config/server.properties). --override wins.
DEFAULT_PROPERTIES: dict[str, str] = {
    "zookeeper.session.timeout.ms": "6000",
    "group.initial.rebalance.delay.ms": "0",
}
ZOOKEEPER_TICK_MS = 500  # sessions from 1 s (2 ticks) to 60 s
LOG_TAIL_LINES = 40
# How long `up` gives a process that fails to start to exit on SIGTERM before SIGKILL.
CLEANUP_GRACE_S = 5.0

Report = Callable[[str], None]


class ClusterError(Exception):
    """An expected failure. `log_path`: the log that explains it, when there is one."""

    def __init__(self, message: str, log_path: Path | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.log_path = log_path


def broker_dir_name(broker_id: int) -> str:
    return f"broker-{broker_id}"


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# -------------------------------------------------------------------------- processes


def _proc_stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat's fields from the state on (field 3), or None without /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself contain ") ".
    return text[text.rindex(")") + 2 :].split()


def process_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22), None if unknown."""
    fields = _proc_stat(pid)
    return int(fields[19]) if fields is not None and len(fields) > 19 else None


def pid_alive(pid: int, start_time: int | None = None) -> bool:
    """Whether `pid` runs and is the process we started (same start time, when known).

    A zombie counts as dead: it has exited, only its parent has not collected it yet.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else; /proc decides below
    fields = _proc_stat(pid)
    if fields is None:
        return True  # no /proc (not Linux): the pid exists, that is all we can know
    if fields[0] in ("Z", "X"):
        return False
    return start_time is None or (len(fields) > 19 and int(fields[19]) == start_time)


def signal_process(pid: int, start_time: int | None, sig: signal.Signals) -> bool:
    """Send `sig` if the process is still ours; whether it was sent."""
    if not pid_alive(pid, start_time):
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def wait_exited(procs: Iterable[tuple[int, int | None]], timeout: float) -> list[tuple[int, int | None]]:
    """Wait until every (pid, start_time) has exited or `timeout` passed; the survivors."""
    remaining = list(procs)
    deadline = time.monotonic() + timeout
    while True:
        remaining = [p for p in remaining if pid_alive(*p)]
        if not remaining or time.monotonic() >= deadline:
            return remaining
        time.sleep(0.05)


def stop_process(pid: int, start_time: int | None, timeout: float) -> str:
    """SIGTERM, wait up to `timeout`, then SIGKILL: "stopped", "killed" or "not running"."""
    if not signal_process(pid, start_time, signal.SIGTERM):
        return "not running"
    if not wait_exited([(pid, start_time)], timeout):
        return "stopped"
    signal_process(pid, start_time, signal.SIGKILL)
    wait_exited([(pid, start_time)], 5.0)
    return "killed"


def port_free(port: int, host: str = HOST) -> bool:
    """Whether a server could listen on host:port now (SO_REUSEADDR, as servers bind)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


# ------------------------------------------------------------------------------ state


@dataclass
class ZooKeeperEntry:
    pid: int
    start_time: int | None
    port: int
    dir: str
    log: str

    @property
    def connect(self) -> str:
        return f"{HOST}:{self.port}"

    def alive(self) -> bool:
        return pid_alive(self.pid, self.start_time)


@dataclass
class BrokerEntry:
    id: int
    port: int
    pid: int
    start_time: int | None
    dir: str
    log: str
    log_dirs: str
    metrics_port: int | None = None  # /metrics (`up --metrics-port`)

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def metrics_url(self) -> str | None:
        return f"http://{HOST}:{self.metrics_port}/metrics" if self.metrics_port is not None else None

    def alive(self) -> bool:
        return pid_alive(self.pid, self.start_time)


@dataclass
class ConsoleEntry:
    """The web console `up --console` started."""

    pid: int
    start_time: int | None
    port: int
    log: str

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def alive(self) -> bool:
        return pid_alive(self.pid, self.start_time)


@dataclass
class ClusterState:
    """What cluster.json holds."""

    dir: str
    zookeeper: ZooKeeperEntry | None = None
    brokers: list[BrokerEntry] = field(default_factory=list)
    properties: dict[str, str] = field(default_factory=dict)
    console: ConsoleEntry | None = None
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def zookeeper_connect(self) -> str:
        return self.zookeeper.connect if self.zookeeper else ""

    @property
    def bootstrap(self) -> str:
        return ",".join(b.address for b in self.brokers)

    def any_alive(self) -> bool:
        return (
            (self.zookeeper is not None and self.zookeeper.alive())
            or any(b.alive() for b in self.brokers)
            or (self.console is not None and self.console.alive())
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "dir": self.dir,
            "created": self.created,
            "zookeeper.connect": self.zookeeper_connect,
            "bootstrap.servers": self.bootstrap,
            "zookeeper": asdict(self.zookeeper) if self.zookeeper else None,
            "brokers": [asdict(b) for b in self.brokers],
            "properties": self.properties,
            "console": asdict(self.console) if self.console else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ClusterState:
        zk = data.get("zookeeper")
        console = data.get("console")
        return cls(
            dir=str(data["dir"]),
            zookeeper=ZooKeeperEntry(**zk) if zk else None,
            brokers=[BrokerEntry(**b) for b in data.get("brokers", [])],
            properties={str(k): str(v) for k, v in data.get("properties", {}).items()},
            console=ConsoleEntry(**console) if console else None,
            created=str(data.get("created", "")),
        )


def state_path(directory: Path) -> Path:
    return directory / STATE_FILE


def read_state(directory: Path) -> ClusterState | None:
    """cluster.json, or None when there is none."""
    path = state_path(directory)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ClusterError(f"cannot read {path}: {e.strerror}") from None
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise ValueError(f"not a version {STATE_VERSION} cluster file")
        return ClusterState.from_json(data)
    except (ValueError, KeyError, TypeError) as e:
        raise ClusterError(f"{path} is damaged ({e}); stop its processes by hand and remove it") from None


def write_state(directory: Path, state: ClusterState) -> None:
    """Replace cluster.json atomically (a reader never sees half a file)."""
    path = state_path(directory)
    tmp = path.with_name(f".{STATE_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state.to_json(), indent=2) + "\n")
    os.replace(tmp, path)


def require_state(directory: Path) -> ClusterState:
    state = read_state(directory)
    if state is None:
        raise ClusterError(f"no cluster in {directory} (no {STATE_FILE}); start one with `moldau cluster up`")
    return state


# ----------------------------------------------------------------------------- client


def _quiet_logger() -> logging.Logger:
    logger = logging.getLogger("moldau.cluster.librdkafka")
    logger.propagate = False
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    return logger


def admin_client(bootstrap: str, timeout: float) -> AdminClient:
    """An AdminClient that keeps librdkafka's connection chatter (brokers starting, dead) quiet."""
    timeout_ms = int(timeout * 1000)
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "client.id": "moldau-cluster",
        "socket.timeout.ms": max(timeout_ms, 1000),
        "socket.connection.setup.timeout.ms": max(min(timeout_ms, 5000), 1000),
        "reconnect.backoff.max.ms": 500,
        "logger": _quiet_logger(),
        "error_cb": lambda _err: None,
    }
    return AdminClient(conf)


@dataclass(frozen=True)
class PartitionIssue:
    topic: str
    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]

    def text(self) -> str:
        return (
            f"{self.topic}-{self.partition} leader {self.leader} "
            f"replicas {list(self.replicas)} isr {list(self.isr)}"
        )


@dataclass
class MetadataView:
    """The cluster as its metadata describes it; `error` when no broker answered."""

    broker_ids: set[int] = field(default_factory=set)
    controller: int | None = None
    topics: int = 0
    partitions: int = 0
    offline: list[PartitionIssue] = field(default_factory=list)
    under_replicated: list[PartitionIssue] = field(default_factory=list)
    error: str | None = None


def metadata_view(metadata: ClusterMetadata, controller: int | None) -> MetadataView:
    """Brokers, and partitions without a leader (-1) or with fewer in-sync replicas than replicas."""
    view = MetadataView(broker_ids={int(b) for b in metadata.brokers}, controller=controller)
    for name in sorted(metadata.topics):
        topic = metadata.topics[name]
        if topic.error is not None:
            continue
        view.topics += 1
        for pid in sorted(topic.partitions):
            p = topic.partitions[pid]
            view.partitions += 1
            issue = PartitionIssue(name, pid, p.leader, tuple(p.replicas), tuple(sorted(p.isrs)))
            if p.leader < 0:
                view.offline.append(issue)
            if len(set(p.isrs)) < len(set(p.replicas)):
                view.under_replicated.append(issue)
    return view


def probe(bootstrap: str, timeout: float, client: AdminClient | None = None) -> MetadataView:
    """Metadata (list_topics) and the controller (describe_cluster), each bounded by `timeout`."""
    if not bootstrap:
        return MetadataView(error="no broker is running")
    admin = client or admin_client(bootstrap, timeout)
    try:
        metadata = admin.list_topics(timeout=timeout)
    except Exception as e:
        return MetadataView(error=f"no broker answered within {timeout:g}s ({e})")
    controller: int | None = None
    try:
        description = admin.describe_cluster(request_timeout=timeout).result(timeout=timeout + 2)
        if description.controller is not None and description.controller.id >= 0:
            controller = int(description.controller.id)
    except Exception:
        controller = None
    return metadata_view(metadata, controller)


# --------------------------------------------------------------------------------- up


@dataclass(frozen=True)
class UpRequest:
    directory: Path
    brokers: int
    base_port: int
    zookeeper_port: int
    overrides: dict[str, str]
    timeout: float
    console_port: int | None = None  # also start the web console on this port
    metrics_base_port: int | None = None  # broker i serves /metrics on this port + i
    racks: tuple[str, ...] | None = None  # broker i's broker.rack


def broker_ports(base_port: int, brokers: int) -> list[int]:
    return [base_port + i for i in range(brokers)]


def broker_properties(
    broker_id: int, port: int, zookeeper_connect: str, log_dirs: Path, overrides: Mapping[str, str],
    metrics_port: int | None = None, rack: str | None = None,
) -> dict[str, str]:
    """The broker's properties: local-cluster defaults, then --override, then its own identity."""
    return {
        **DEFAULT_PROPERTIES,
        **overrides,
        "broker.id": str(broker_id),
        "zookeeper.connect": zookeeper_connect,
        "listeners": f"PLAINTEXT://{HOST}:{port}",
        "log.dirs": str(log_dirs),
        **({"metrics.port": str(metrics_port)} if metrics_port is not None else {}),
        **({"broker.rack": rack} if rack is not None else {}),
    }


def broker_command(properties: Mapping[str, str]) -> list[str]:
    args = [sys.executable, "-m", "moldau.cli.main", "server"]
    for key, value in properties.items():
        args += ["--override", f"{key}={value}"]
    return args


def _broker_env() -> dict[str, str]:
    """This environment, with the directory holding the `moldau` package on PYTHONPATH
    so `python -m moldau.cli.main` works from a checkout too."""
    env = dict(os.environ)
    root = str(Path(moldau.__file__).resolve().parent.parent)
    current = env.get("PYTHONPATH")
    env["PYTHONPATH"] = root if not current else root + os.pathsep + current
    env["PYTHONUNBUFFERED"] = "1"
    return env


def check_ports(request: UpRequest) -> None:
    wanted = [(request.zookeeper_port, "ZooKeeper", "--zookeeper-port")]
    wanted += [(port, f"broker {i}", "--base-port") for i, port in enumerate(broker_ports(request.base_port,
                                                                                          request.brokers))]
    if request.console_port is not None:
        wanted.append((request.console_port, "the console", "--console-port"))
    if request.metrics_base_port is not None:
        wanted += [(port, f"broker {i}'s metrics", "--metrics-port")
                   for i, port in enumerate(broker_ports(request.metrics_base_port, request.brokers))]
    for port, who, flag in wanted:
        if not port_free(port):
            raise ClusterError(f"port {port} (for {who}) is already in use on {HOST}; choose another {flag}")


def _claim(directory: Path, report: Report) -> None:
    """Refuse a directory whose cluster still runs; forget one whose processes are gone."""
    state = read_state(directory)
    if state is None:
        return
    if state.any_alive():
        raise ClusterError(
            f"a cluster is already running in {directory} (bootstrap {state.bootstrap}); "
            f"stop it with `moldau cluster down --dir {directory}` first"
        )
    report(f"replacing {state_path(directory)}: none of its processes is running")
    state_path(directory).unlink(missing_ok=True)


def _locate(report: Report) -> tuple[ZooKeeperInstall, str]:
    try:
        install = find_zookeeper()
        java = find_java()
    except (ZooKeeperNotFoundError, JavaNotFoundError) as e:
        raise ClusterError(str(e)) from None
    report(f"using ZooKeeper from {install.location}, java {java}")
    return install, java


class _Startup:
    """The processes `up` has started so far, recorded in cluster.json as they start."""

    def __init__(self, request: UpRequest, report: Report) -> None:
        self.request = request
        self.report = report
        self.directory = request.directory
        self.state = ClusterState(dir=str(request.directory))
        self.procs: list[subprocess.Popen[bytes]] = []

    def save(self) -> None:
        write_state(self.directory, self.state)

    def start_zookeeper(self, install: ZooKeeperInstall) -> None:
        zk_dir = self.directory / ZOOKEEPER_DIR
        server = ZooKeeperServer(
            zk_dir,
            port=self.request.zookeeper_port,
            tick_time_ms=ZOOKEEPER_TICK_MS,
            min_session_timeout_ms=2 * ZOOKEEPER_TICK_MS,
            max_session_timeout_ms=60000,
            detached=True,
            install=install,
        )
        zk_dir.mkdir(parents=True, exist_ok=True)
        proc = server.spawn()
        self.procs.append(proc)
        self.state.zookeeper = ZooKeeperEntry(
            pid=proc.pid,
            start_time=process_start_time(proc.pid),
            port=server.port,
            dir=str(zk_dir),
            log=str(server.log_path),
        )
        self.save()
        self.report(f"starting ZooKeeper on {server.connect} (pid {proc.pid}, log {server.log_path})")
        try:
            server.wait_serving(timeout=min(self.request.timeout, 60.0))
        except ZooKeeperStartError as e:
            raise ClusterError(e.reason, server.log_path) from None

    def start_broker(self, broker_id: int, port: int, metrics_port: int | None = None) -> None:
        broker_dir = self.directory / broker_dir_name(broker_id)
        data_dir = broker_dir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        log_path = broker_dir / "broker.log"
        properties = broker_properties(
            broker_id, port, self.state.zookeeper_connect, data_dir, self.request.overrides, metrics_port,
            self.request.racks[broker_id] if self.request.racks is not None else None,
        )
        args = broker_command(properties)
        with open(log_path, "ab") as log:
            log.write(f"--- {datetime.now(UTC).isoformat(timespec='seconds')}: {' '.join(args)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=broker_dir,
                env=_broker_env(),
                start_new_session=True,
            )
        self.procs.append(proc)
        self.state.brokers.append(
            BrokerEntry(
                id=broker_id,
                port=port,
                pid=proc.pid,
                start_time=process_start_time(proc.pid),
                dir=str(broker_dir),
                log=str(log_path),
                log_dirs=str(data_dir),
                metrics_port=metrics_port,
            )
        )
        self.save()
        self.report(f"starting broker {broker_id} on {HOST}:{port} (pid {proc.pid}, log {log_path})")

    def _check_running(self) -> None:
        zk = self.state.zookeeper
        assert zk is not None
        if self.procs[0].poll() is not None:
            raise ClusterError(f"ZooKeeper exited with code {self.procs[0].returncode}", Path(zk.log))
        for broker, proc in zip(self.state.brokers, self.procs[1:], strict=True):
            if proc.poll() is not None:
                raise ClusterError(
                    f"broker {broker.id} exited with code {proc.returncode} while starting", Path(broker.log)
                )

    def wait_ready(self, deadline: float) -> MetadataView:
        """Until every broker is in the metadata and a controller is elected."""
        expected = {b.id for b in self.state.brokers}
        self.report(f"waiting for {len(expected)} broker(s) to join the cluster")
        admin = admin_client(self.state.bootstrap, 2.0)
        view = MetadataView(error="no answer yet")
        while time.monotonic() < deadline:
            self._check_running()
            view = probe(self.state.bootstrap, 1.0, admin)
            if view.error is None and expected <= view.broker_ids and view.controller is not None:
                return view
            time.sleep(0.2)
        self._check_running()
        missing = sorted(expected - view.broker_ids)
        if view.error is not None or not missing:
            why = view.error or "no controller was elected"
            first = self.state.brokers[0]
            raise ClusterError(f"the cluster is not ready after {self.request.timeout:g}s: {why}", Path(first.log))
        by_id = {b.id: b for b in self.state.brokers}
        raise ClusterError(
            f"broker(s) {', '.join(map(str, missing))} did not join within {self.request.timeout:g}s",
            Path(by_id[missing[0]].log),
        )

    def start_console(self, port: int, deadline: float) -> None:
        log_path = self.directory / "console.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                console_command(self.state.bootstrap, port),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.directory,
                env=_broker_env(),
                start_new_session=True,
            )
        self.procs.append(proc)
        self.state.console = ConsoleEntry(proc.pid, process_start_time(proc.pid), port, str(log_path))
        self.save()
        self.report(f"starting the console on {HOST}:{port} (pid {proc.pid}, log {log_path})")
        while READY_LINE not in log_path.read_text(errors="replace"):
            if proc.poll() is not None:
                raise ClusterError(f"the console exited with code {proc.returncode}", log_path)
            if time.monotonic() > deadline:
                raise ClusterError(f"the console did not start within {self.request.timeout:g}s", log_path)
            time.sleep(0.1)

    def abort(self) -> None:
        """Stop whatever started (brokers first), forget cluster.json; data stays for inspection."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + CLEANUP_GRACE_S
        for proc in reversed(self.procs):
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        state_path(self.directory).unlink(missing_ok=True)


def up(request: UpRequest, report: Report) -> ClusterState:
    """Start ZooKeeper and the brokers; return once all are in the cluster metadata.

    On any failure everything started is stopped again and ClusterError raised.
    """
    directory = request.directory
    _claim(directory, report)
    install, _java = _locate(report)
    check_ports(request)
    directory.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + request.timeout
    startup = _Startup(request, report)
    try:
        startup.start_zookeeper(install)
        for broker_id, port in enumerate(broker_ports(request.base_port, request.brokers)):
            metrics_port = request.metrics_base_port + broker_id if request.metrics_base_port is not None else None
            startup.start_broker(broker_id, port, metrics_port)
        view = startup.wait_ready(deadline)
        if request.console_port is not None:
            startup.start_console(request.console_port, deadline)
    except BaseException:
        startup.abort()
        raise
    startup.state.properties = {**DEFAULT_PROPERTIES, **request.overrides}
    startup.save()
    report(f"cluster up: {request.brokers} broker(s), controller {view.controller}, "
           f"zookeeper.connect {startup.state.zookeeper_connect}")
    for broker in startup.state.brokers:
        if broker.metrics_url is not None:
            report(f"broker {broker.id} metrics: {broker.metrics_url}")
    if startup.state.console is not None:
        report(f"console: {startup.state.console.url}")
    return startup.state


# ----------------------------------------------------------------------------- status


@dataclass(frozen=True)
class BrokerStatus:
    id: int
    port: int
    pid: int
    alive: bool
    in_metadata: bool
    metrics_url: str | None = None


@dataclass
class ClusterStatus:
    directory: str
    zookeeper_connect: str
    zookeeper_pid: int | None
    zookeeper_alive: bool
    zookeeper_serving: bool
    brokers: list[BrokerStatus]
    view: MetadataView
    console: ConsoleEntry | None = None

    def problems(self) -> list[str]:
        """What keeps the cluster from being all up; empty when it is."""
        found: list[str] = []
        if not self.zookeeper_alive:
            found.append("ZooKeeper is down")
        elif not self.zookeeper_serving:
            found.append("ZooKeeper does not answer")
        for b in self.brokers:
            if not b.alive:
                found.append(f"broker {b.id} is down")
            elif not b.in_metadata and self.view.error is None:
                found.append(f"broker {b.id} is not in the cluster metadata")
        if self.view.error is not None:
            found.append(f"no metadata: {self.view.error}")
        else:
            if self.view.controller is None:
                found.append("no controller")
            if self.view.offline:
                found.append(f"{len(self.view.offline)} partition(s) without a leader")
        return found

    @property
    def healthy(self) -> bool:
        """ZooKeeper serves, every broker runs and is in the metadata, there is a controller,
        and every partition has a leader."""
        return not self.problems()


def status(state: ClusterState, timeout: float) -> ClusterStatus:
    zk = state.zookeeper
    zk_alive = zk is not None and zk.alive()
    zk_serving = zk_alive and zk is not None and is_serving(zk.port, timeout=min(timeout, 2.0))
    running = [b for b in state.brokers if b.alive()]
    view = probe(",".join(b.address for b in running), timeout)
    return ClusterStatus(
        directory=state.dir,
        zookeeper_connect=state.zookeeper_connect,
        zookeeper_pid=zk.pid if zk else None,
        zookeeper_alive=zk_alive,
        zookeeper_serving=zk_serving,
        brokers=[
            BrokerStatus(b.id, b.port, b.pid, b in running, b.id in view.broker_ids, b.metrics_url)
            for b in state.brokers
        ],
        view=view,
        console=state.console,
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]


def format_status(st: ClusterStatus, max_partitions: int = 20) -> list[str]:
    lines = [f"cluster {st.directory}"]
    if st.zookeeper_serving:
        zk_state = "up"
    elif st.zookeeper_alive:
        zk_state = "down (process runs, not answering)"
    else:
        zk_state = "down"
    pid = st.zookeeper_pid if st.zookeeper_pid is not None else "-"
    lines.append(f"zookeeper {st.zookeeper_connect or '-'}: {zk_state} (pid {pid})")
    rows = []
    for b in st.brokers:
        state = "up" if b.alive and b.in_metadata else "down" if not b.alive else "not in metadata"
        rows.append(
            (str(b.id), f"{HOST}:{b.port}", str(b.pid), "alive" if b.alive else "dead",
             "yes" if b.in_metadata else "no", state)
        )
    lines += _table(("BROKER", "ADDRESS", "PID", "PROCESS", "IN-METADATA", "STATE"), rows)
    view = st.view
    if view.error is not None:
        lines.append(f"metadata: unavailable: {view.error}")
    else:
        lines.append(f"controller: {view.controller if view.controller is not None else 'none'}")
        unknown = sorted(view.broker_ids - {b.id for b in st.brokers})
        if unknown:
            lines.append(f"brokers in metadata not started here: {', '.join(map(str, unknown))}")
        lines.append(f"topics: {view.topics}, partitions: {view.partitions}")
        for title, issues in (("partitions without a leader", view.offline),
                              ("under-replicated partitions", view.under_replicated)):
            lines.append(f"{title}: {len(issues) if issues else 'none'}")
            lines += [f"  {i.text()}" for i in issues[:max_partitions]]
            if len(issues) > max_partitions:
                lines.append(f"  ... and {len(issues) - max_partitions} more")
    if st.console is not None:
        lines.append(f"console: {st.console.url} ({'up' if st.console.alive() else 'down'}, pid {st.console.pid})")
    metrics = [f"{b.id} {b.metrics_url}" for b in st.brokers if b.metrics_url is not None]
    if metrics:
        lines.append(f"metrics: {', '.join(metrics)}")
    problems = st.problems()
    lines.append(f"status: {'DEGRADED: ' + '; '.join(problems) if problems else 'all up'}")
    return lines


# ------------------------------------------------------------------------------- down


def _shutdown_order(state: ClusterState, timeout: float) -> list[BrokerEntry]:
    """Running brokers, the controller last (so leadership moves once, not to a dying controller)."""
    running = [b for b in state.brokers if b.alive()]
    controller = probe(",".join(b.address for b in running), min(timeout, 3.0)).controller if running else None
    return sorted(running, key=lambda b: (b.id == controller, b.id))


def down(directory: Path, timeout: float, delete_data: bool, report: Report) -> ClusterState:
    """SIGTERM each broker (controlled shutdown) in turn, then ZooKeeper; SIGKILL what
    outlives `timeout`. Removes cluster.json, and with `delete_data` the data too."""
    state = require_state(directory)
    killed: list[str] = []
    if state.console is not None and state.console.alive():
        report(f"stopping the console (pid {state.console.pid})")
        if stop_process(state.console.pid, state.console.start_time, timeout) == "killed":
            killed.append("the console")
    for broker in _shutdown_order(state, timeout):
        report(f"stopping broker {broker.id} (pid {broker.pid})")
        outcome = stop_process(broker.pid, broker.start_time, timeout)
        if outcome == "killed":
            killed.append(f"broker {broker.id}")
            report(f"broker {broker.id} did not stop within {timeout:g}s: killed (SIGKILL)")
    zk = state.zookeeper
    if zk is not None and zk.alive():
        report(f"stopping ZooKeeper (pid {zk.pid})")
        if stop_process(zk.pid, zk.start_time, timeout) == "killed":
            killed.append("ZooKeeper")
            report(f"ZooKeeper did not stop within {timeout:g}s: killed (SIGKILL)")
    if state.any_alive():
        raise ClusterError(f"some processes of the cluster in {directory} are still running; {STATE_FILE} kept")
    state_path(directory).unlink(missing_ok=True)
    if delete_data:
        # Only what `up` creates, and only inside the directory asked for.
        for path in [directory / ZOOKEEPER_DIR, *(directory / broker_dir_name(b.id) for b in state.brokers)]:
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(path)
        report(f"deleted the data in {directory}")
    report("cluster down" + (f" ({', '.join(killed)} had to be killed)" if killed else ""))
    return state

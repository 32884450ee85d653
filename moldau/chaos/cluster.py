"""A Moldau cluster on netns hosts: ZooKeeper on host `zk`, brokers on `b1`..`bN`.

Every host has its own network stack, so every process listens on the same well-known
port of its own address (2181, 9092): nothing else on the machine can hold it. Each
process gets its own directory under the run's work dir, and its log there. Processes
are children of this process (`ip netns exec` execs the command, so the child's pid is
the server's own and signals reach it directly); `kill_all` runs in a `finally`.

Wrappers for faults that need the process started a certain way:

* clock (libfaketime, `LD_PRELOAD`): `FAKETIME_TIMESTAMP_FILE` is re-read on every call
  (`FAKETIME_NO_CACHE`), so writing "+30s" to it jumps the wall clock of a running
  broker; the monotonic clock is left alone, as an NTP step leaves it.
* disk (libfiu's `fiu-run -x`): `fiu-ctrl` later enables failure points (e.g.
  `posix/io/sync/fsync`, `posix/io/rw/write`) in the running broker.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic

from moldau.chaos.netns import Network
from moldau.cluster.zookeeper_process import find_java, find_zookeeper, java_command, zoo_cfg

ZK_PORT = 2181
BROKER_PORT = 9092
FAKETIME_LIB = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")

# Short timeouts: faults are seconds long, and failover must happen within them.
BROKER_PROPERTIES: dict[str, str] = {
    "zookeeper.session.timeout.ms": "4000",
    "replica.lag.time.max.ms": "3000",
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "offsets.topic.replication.factor": "3",
    "offsets.topic.num.partitions": "3",
    "group.initial.rebalance.delay.ms": "0",
    "unclean.leader.election.enable": "false",
    "auto.create.topics.enable": "false",
}


class ClusterStartError(RuntimeError):
    pass


DISK_FILLER = "chaos-disk-filler"


def mount_small_disk(path: Path, size_mb: int, tag: str) -> None:
    """A tmpfs of `size_mb` at `path`, its source named `mdc<tag>disk` so that
    `sweep_mounts` finds it after a crashed run."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", f"mdc{tag}disk", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )


def sweep_mounts(own_tag: str) -> list[str]:
    """Unmount the small disks of runs whose creator no longer runs."""
    removed = []
    for line in Path("/proc/mounts").read_text().splitlines():
        source, target = line.split()[:2]
        if not (source.startswith("mdc") and source.endswith("disk")):
            continue
        tag = source[3:-4]
        if tag == own_tag:
            continue
        try:
            os.kill(int(tag, 36), 0)
            continue
        except (ProcessLookupError, ValueError):
            pass
        subprocess.run(["umount", "-l", target], capture_output=True, timeout=30)
        removed.append(target)
    return removed


@dataclass
class Proc:
    name: str
    host: str
    args: list[str]
    env: dict[str, str]
    dir: Path
    ready: Any  # Callable[[], bool]
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0
    paused: bool = False

    @property
    def log_path(self) -> Path:
        return self.dir / f"{self.name}.log"

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        self.spawn()
        self.wait_ready(timeout)

    def spawn(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"--- start #{self.starts} {time.strftime('%H:%M:%S')}: {' '.join(self.args)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                self.args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.dir,
                env=self.env,
            )
        self.paused = False

    def wait_ready(self, timeout: float = 30.0) -> None:
        assert self.popen is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise ClusterStartError(f"{self.name} exited with {self.popen.returncode}:\n{self.log_tail()}")
            if self.ready():
                return
            time.sleep(0.1)
        self.signal(signal.SIGKILL)
        raise ClusterStartError(f"{self.name} did not start within {timeout}s:\n{self.log_tail()}")

    def signal(self, sig: signal.Signals) -> None:
        if self.alive():
            assert self.popen is not None
            self.popen.send_signal(sig)
            if sig == signal.SIGSTOP:
                self.paused = True
            elif sig == signal.SIGCONT:
                self.paused = False

    def kill(self) -> None:
        if self.alive():
            assert self.popen is not None
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)
        self.paused = False

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (a clean, controlled shutdown), SIGKILL after `timeout`."""
        if not self.alive():
            return
        assert self.popen is not None
        if self.paused:
            self.signal(signal.SIGCONT)
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""


def _connectable(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.3):
            return True
    except OSError:
        return False


@dataclass
class ChaosCluster:
    net: Network
    workdir: Path
    brokers: int = 3
    properties: dict[str, str] = field(default_factory=dict)
    procs: dict[str, Proc] = field(default_factory=dict)
    _admin: AdminClient | None = None
    # host:port the brokers reach ZooKeeper through instead (a latency proxy)
    zookeeper_via: str | None = None
    mounts: list[Path] = field(default_factory=list)

    @staticmethod
    def host_names(brokers: int) -> list[str]:
        return ["zk", *(f"b{i}" for i in range(1, brokers + 1))]

    @property
    def broker_ids(self) -> list[int]:
        return list(range(1, self.brokers + 1))

    @property
    def zookeeper_connect(self) -> str:
        return self.zookeeper_via or f"{self.net.address('zk')}:{ZK_PORT}"

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{self.net.address(f'b{i}')}:{BROKER_PORT}" for i in self.broker_ids)

    def broker(self, broker_id: int) -> Proc:
        return self.procs[f"b{broker_id}"]

    def clock_file(self, broker_id: int) -> Path:
        return self.workdir / f"b{broker_id}" / "faketime"

    # ---------------------------------------------------------------- processes

    def _zookeeper(self) -> Proc:
        d = self.workdir / "zk"
        (d / "data").mkdir(parents=True, exist_ok=True)
        cfg = zoo_cfg(d / "data", ZK_PORT, 200, 400, 60000, force_sync=False).replace(
            "clientPortAddress=127.0.0.1", f"clientPortAddress={self.net.address('zk')}"
        )
        (d / "zoo.cfg").write_text(cfg)
        args = [*self.net.exec_prefix("zk"), *java_command(find_java(), find_zookeeper(), d / "zoo.cfg")]
        return Proc("zk", "zk", args, dict(os.environ), d, lambda: _connectable(self.net.address("zk"), ZK_PORT))

    def _broker(self, broker_id: int, wrap_clock: bool, wrap_disk: bool) -> Proc:
        host = f"b{broker_id}"
        d = self.workdir / host
        d.mkdir(parents=True, exist_ok=True)
        address = self.net.address(host)
        props = {
            **BROKER_PROPERTIES,
            **self.properties,
            "broker.id": str(broker_id),
            "listeners": f"PLAINTEXT://{address}:{BROKER_PORT}",
            "advertised.listeners": f"PLAINTEXT://{address}:{BROKER_PORT}",
            "log.dirs": str(d / "data"),
            "zookeeper.connect": self.zookeeper_connect,
        }
        args = [*self.net.exec_prefix(host)]
        env = dict(os.environ)
        if wrap_disk:
            args += ["fiu-run", "-x"]
        args += [sys.executable, "-m", "moldau.cli.main", "server"]
        for k, v in props.items():
            args += ["--override", f"{k}={v}"]
        if wrap_clock:
            clock = self.clock_file(broker_id)
            clock.write_text("+0\n")
            env.update(
                LD_PRELOAD=str(FAKETIME_LIB),
                FAKETIME_TIMESTAMP_FILE=str(clock),
                FAKETIME_NO_CACHE="1",
                FAKETIME_DONT_FAKE_MONOTONIC="1",
            )
        repo = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
        proc = Proc(host, host, args, env, d, lambda: False)

        def ready() -> bool:
            text = proc.log_tail(200000).split(f"--- start #{proc.starts} ")[-1]
            return "ready on" in text and _connectable(address, BROKER_PORT)

        proc.ready = ready
        return proc

    def start(
        self,
        clock_brokers: tuple[int, ...] = (),
        disk_brokers: tuple[int, ...] = (),
        small_disk_mb: int = 0,
    ) -> None:
        """`small_disk_mb`: every broker's log dir is a tmpfs of that size (to fill it)."""
        if small_disk_mb:
            for i in self.broker_ids:
                mount_small_disk(self.workdir / f"b{i}" / "data", small_disk_mb, self.net.tag)
                self.mounts.append(self.workdir / f"b{i}" / "data")
        if disk_brokers and shutil.which("fiu-run") is None:
            raise ClusterStartError("fiu-run is not installed (apt-get install fiu-utils, or `make chaos-deps`)")
        if clock_brokers and not FAKETIME_LIB.exists():
            raise ClusterStartError(f"{FAKETIME_LIB} is missing (apt-get install faketime, or `make chaos-deps`)")
        self.procs["zk"] = self._zookeeper()
        self.procs["zk"].start()
        for i in self.broker_ids:
            self.procs[f"b{i}"] = self._broker(i, i in clock_brokers, i in disk_brokers)
        for i in self.broker_ids:
            self.procs[f"b{i}"].spawn()
        for i in self.broker_ids:
            self.procs[f"b{i}"].wait_ready()
        self.wait_brokers(set(self.broker_ids), 30.0)

    def kill_all(self) -> None:
        for proc in self.procs.values():
            try:
                proc.kill()
            except Exception:  # noqa: BLE001 - keep killing the others
                pass
        for mount in self.mounts:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)
        self.mounts.clear()

    def fill_disk(self, broker_id: int) -> None:
        """Fill the broker's (small) log dir until the disk is full."""
        path = self.workdir / f"b{broker_id}" / "data" / DISK_FILLER
        with open(path, "wb") as f:
            chunk = bytes(1 << 20)
            try:
                while True:
                    f.write(chunk)
                    f.flush()
            except OSError:
                pass

    def free_disk(self, broker_id: int) -> None:
        (self.workdir / f"b{broker_id}" / "data" / DISK_FILLER).unlink(missing_ok=True)

    # --------------------------------------------------------------- admin views

    def admin(self) -> AdminClient:
        """One client for the run: a future of a client that was garbage-collected fails
        with _DESTROY, so every call goes through this one."""
        if self._admin is None:
            self._admin = self._new_admin()
        return self._admin

    def _new_admin(self) -> AdminClient:
        return AdminClient(
            {
                "bootstrap.servers": self.bootstrap,
                "socket.timeout.ms": 3000,
                "socket.connection.setup.timeout.ms": 2000,
                "reconnect.backoff.max.ms": 500,
                "error_cb": lambda _e: None,
                "logger": _quiet_logger(),
            }
        )

    def wait_brokers(self, ids: set[int], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        seen: set[int] = set()
        admin = self.admin()
        while time.monotonic() < deadline:
            try:
                seen = {int(b) for b in admin.list_topics(timeout=2).brokers}
                if ids <= seen:
                    return
            except Exception:  # noqa: BLE001
                pass
            time.sleep(0.2)
        raise ClusterStartError(f"brokers {sorted(ids)} not all registered within {timeout}s (seen {sorted(seen)})")

    def create_topic(self, topic: str, partitions: int, replication: int, configs: dict[str, str]) -> None:
        admin = self.admin()
        futures = admin.create_topics(
            [NewTopic(topic, partitions, replication, config=configs)], request_timeout=15, operation_timeout=15
        )
        futures[topic].result(timeout=20)
        self.wait_leaders(topic, partitions, 20.0, full_isr=True)

    def isr_in_zookeeper(self, topic: str, partition: int) -> list[int] | None:
        """The partition's ISR as the controller wrote it to ZooKeeper, which every broker
        is then told; None if ZooKeeper does not answer. A broker cut off from the others
        answers Metadata from its stale view, and a client may ask it: scenarios that cut
        brokers apart read the ISR here."""
        from moldau.controller.zookeeper import ZooKeeperCoordination

        zk = ZooKeeperCoordination(self.zookeeper_connect, 4000, connection_timeout_ms=2000)
        try:
            zk.start()
            state = zk.partition_state(topic, partition)
        except Exception:  # noqa: BLE001
            return None
        finally:
            zk.close()
        return None if state is None else list(state[0].isr)

    def partition_states(self, topic: str) -> dict[int, tuple[int, list[int]]]:
        """partition -> (leader, isr), as a broker's metadata says; {} if no answer."""
        try:
            md = self.admin().list_topics(topic, timeout=3)
        except Exception:  # noqa: BLE001
            return {}
        t = md.topics.get(topic)
        if t is None or t.error is not None:
            return {}
        return {p: (pm.leader, list(pm.isrs)) for p, pm in t.partitions.items()}

    def wait_leaders(self, topic: str, partitions: int, timeout: float, full_isr: bool = False) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = self.partition_states(topic)
            if len(states) == partitions and all(
                leader >= 0 and (not full_isr or len(isr) == self.brokers) for leader, isr in states.values()
            ):
                return True
            time.sleep(0.3)
        if full_isr:
            raise ClusterStartError(f"{topic}: not every partition led with a full ISR within {timeout}s")
        return False

    def controller(self) -> int | None:
        try:
            c = self.admin().describe_cluster(request_timeout=3).result(timeout=5).controller
        except Exception:  # noqa: BLE001
            return None
        return int(c.id) if c is not None and c.id >= 0 else None

    def leader(self, topic: str, partition: int) -> int | None:
        state = self.partition_states(topic).get(partition)
        return state[0] if state and state[0] >= 0 else None

    # ------------------------------------------------------------- disk and clock

    def fiu_ctrl(self, broker_id: int, command: str) -> None:
        proc = self.broker(broker_id)
        assert proc.popen is not None
        subprocess.run(["fiu-ctrl", "-c", command, str(proc.popen.pid)], check=True, timeout=10)

    def set_clock(self, broker_id: int, offset: str) -> None:
        """libfaketime's offset for the broker's wall clock, e.g. "+30s", "-1m", "+0"."""
        self.clock_file(broker_id).write_text(offset + "\n")


def _quiet_logger() -> Any:
    import logging

    logger = logging.getLogger("moldau.chaos.librdkafka")
    logger.propagate = False
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    return logger

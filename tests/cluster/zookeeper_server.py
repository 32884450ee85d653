"""A real Apache ZooKeeper (Debian's `zookeeper` package) as a foreground Java child process.

Each server gets a free port on 127.0.0.1 and its own data dir holding `zoo.cfg`, the
snapshots and transaction logs, and `zookeeper.log` (the JVM's stdout and stderr). It can
be stopped (SIGTERM), killed (SIGKILL) and started again on the same port and data dir, so
tests can restart ZooKeeper under a running cluster.

The classpath: Debian's `zookeeper.jar` lists its dependencies in its manifest
(`Class-Path`); the JVM follows that list, and we add the jars ourselves too (only those
that exist) so a missing optional jar is visible in one place. The package ships no SLF4J
binding the server can use without log4j configuration, so we add `slf4j-simple.jar`,
which writes to stderr, which we send to `zookeeper.log`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import zipfile
from pathlib import Path

JAVA_DIR = Path("/usr/share/java")
ZOOKEEPER_JAR = JAVA_DIR / "zookeeper.jar"
MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
INSTALL_HINT = "Apache ZooKeeper is not installed: sudo apt-get install zookeeper (or run `make test`)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _manifest_class_path(jar: Path) -> list[Path]:
    """The jars a jar's META-INF/MANIFEST.MF lists in `Class-Path` (continuation lines joined)."""
    with zipfile.ZipFile(jar) as z:
        text = z.read("META-INF/MANIFEST.MF").decode()
    joined = text.replace("\r\n", "\n").replace("\n ", "")
    for line in joined.splitlines():
        if line.startswith("Class-Path:"):
            return [Path(p) for p in line.split(":", 1)[1].split()]
    return []


def zookeeper_classpath() -> str:
    if not ZOOKEEPER_JAR.exists():
        raise RuntimeError(INSTALL_HINT)
    jars = [ZOOKEEPER_JAR, JAVA_DIR / "zookeeper-jute.jar", *_manifest_class_path(ZOOKEEPER_JAR)]
    jars.append(JAVA_DIR / "slf4j-simple.jar")
    seen: list[str] = []
    for jar in jars:
        if jar.exists() and str(jar) not in seen:
            seen.append(str(jar))
    return ":".join(seen)


class ZooKeeperServer:
    """One standalone ZooKeeper server. `connect` is the `zookeeper.connect` string."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        tick_time_ms: int = 200,
        min_session_timeout_ms: int = 400,
        max_session_timeout_ms: int = 60000,
        force_sync: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.tick_time_ms = tick_time_ms
        self.min_session_timeout_ms = min_session_timeout_ms
        self.max_session_timeout_ms = max_session_timeout_ms
        # forceSync=no: ZooKeeper still write()s every transaction before answering, so
        # SIGKILL loses nothing (the page cache survives); only a machine crash would.
        self.force_sync = force_sync
        self.log_path = data_dir / "zookeeper.log"
        self.config_path = data_dir / "zoo.cfg"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def connect(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _write_config(self) -> None:
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            "\n".join(
                [
                    f"tickTime={self.tick_time_ms}",
                    f"dataDir={self.data_dir / 'data'}",
                    f"clientPort={self.port}",
                    "clientPortAddress=127.0.0.1",
                    f"minSessionTimeout={self.min_session_timeout_ms}",
                    f"maxSessionTimeout={self.max_session_timeout_ms}",
                    "maxClientCnxns=0",
                    "4lw.commands.whitelist=*",
                    "admin.enableServer=false",
                    f"forceSync={'yes' if self.force_sync else 'no'}",
                    "",
                ]
            )
        )

    def command(self, word: str, timeout: float = 1.0) -> str:
        """A four-letter-word command (`srvr`, `ruok`, `cons`, ...): its answer."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(word.encode())
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")

    def start(self, timeout: float = 30.0) -> ZooKeeperServer:
        if self.proc is not None and self.proc.poll() is None:
            return self
        java = shutil.which("java")
        if java is None:
            raise RuntimeError("java is not on PATH (Debian's zookeeper package depends on a JRE)")
        self._write_config()
        args = [
            java,
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",  # the C1 JIT only: starts faster, fast enough for tests
            "-Dzookeeper.admin.enableServer=false",
            "-Dzookeeper.jmx.log4j.disable=true",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
            "-cp",
            zookeeper_classpath(),
            MAIN_CLASS,
            str(self.config_path),
        ]
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"--- start #{self.starts} on port {self.port}: {' '.join(args)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.data_dir
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ZooKeeper exited with {self.proc.returncode}:\n{self.log()[-5000:]}")
            try:
                if "Mode: standalone" in self.command("srvr", timeout=0.5):
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"ZooKeeper did not answer within {timeout}s:\n{self.log()[-5000:]}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `timeout`."""
        if not self.running:
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: ZooKeeper gets no chance to close sessions or flush anything."""
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __repr__(self) -> str:
        state = f"pid {self.proc.pid}" if self.running and self.proc else "stopped"
        return f"ZooKeeperServer({self.connect}, {state}, {os.fspath(self.data_dir)})"

"""A real Apache ZooKeeper server as a Java process: finding the install, zoo.cfg, starting it.

Used by `moldau cluster up` (a detached server that outlives the command) and by the test
suite (a foreground child the tests stop, kill and restart).

Where ZooKeeper comes from, first match wins:

* `$ZOOKEEPER_HOME/lib` when ZOOKEEPER_HOME is set (Apache's binary tarball: every jar in
  `lib/`, and `conf/` on the classpath for its logback/log4j configuration);
* `/usr/share/java/zookeeper.jar` (Debian's `zookeeper` package). That jar lists its
  dependencies in its manifest (`Class-Path`); the JVM follows the list, and we add the
  jars ourselves too (those that exist) so a missing optional jar is visible in one place.
  The package ships no SLF4J binding the server can use without log4j configuration, so we
  add `slf4j-simple.jar`, which writes to stderr;
* `/opt/zookeeper/lib` (Apache's tarball unpacked under /opt).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

JAVA_DIR = Path("/usr/share/java")
ZOOKEEPER_JAR = JAVA_DIR / "zookeeper.jar"
OPT_ZOOKEEPER = Path("/opt/zookeeper")
MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
INSTALL_HINT = (
    "Apache ZooKeeper is not installed: install it with `sudo apt-get install zookeeper` (Debian/Ubuntu), "
    "or download Apache ZooKeeper (the -bin tarball) from https://zookeeper.apache.org/releases.html, "
    "unpack it and set ZOOKEEPER_HOME to its directory"
)
JAVA_HINT = (
    "Java is not installed (ZooKeeper runs on the JVM): install it with "
    "`sudo apt-get install default-jre-headless`, or set JAVA_HOME or put `java` on PATH"
)


class ZooKeeperNotFoundError(RuntimeError):
    """No usable ZooKeeper install; the message says how to install one."""


class JavaNotFoundError(RuntimeError):
    """No `java` executable; the message says how to install one."""


class ZooKeeperStartError(RuntimeError):
    """The server exited or never answered. `log` is its whole log so far."""

    def __init__(self, reason: str, log: str) -> None:
        super().__init__(f"{reason}:\n{log[-5000:]}")
        self.reason = reason
        self.log = log


_random = random.Random()
_handed_out: set[int] = set()


def free_port() -> int:
    """A port to listen on, chosen below Linux's ephemeral range (32768-60999): a port the
    kernel hands out for ``bind(0)`` may be taken again by some outgoing connection before
    the process it is meant for binds it (seen in CI as "address already in use"). Never
    the same port twice in one process."""
    for _ in range(1000):
        port = _random.randrange(20000, 32768)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket() as s:  # the low range is crowded: let the kernel choose
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------- install


@dataclass(frozen=True)
class ZooKeeperInstall:
    """Where ZooKeeper was found (for messages) and the classpath to run its server."""

    location: str
    classpath: tuple[str, ...]


def _manifest_class_path(jar: Path) -> list[Path]:
    """The jars a jar's META-INF/MANIFEST.MF lists in `Class-Path` (continuation lines joined)."""
    with zipfile.ZipFile(jar) as z:
        text = z.read("META-INF/MANIFEST.MF").decode()
    joined = text.replace("\r\n", "\n").replace("\n ", "")
    for line in joined.splitlines():
        if line.startswith("Class-Path:"):
            return [Path(p) for p in line.split(":", 1)[1].split()]
    return []


def _existing(paths: list[Path]) -> tuple[str, ...]:
    seen: list[str] = []
    for path in paths:
        if path.exists() and str(path) not in seen:
            seen.append(str(path))
    return tuple(seen)


def debian_classpath(java_dir: Path = JAVA_DIR) -> tuple[str, ...]:
    """Debian's zookeeper.jar, its manifest's dependencies, and slf4j-simple."""
    jar = java_dir / "zookeeper.jar"
    if not jar.exists():
        raise ZooKeeperNotFoundError(INSTALL_HINT)
    try:
        listed = _manifest_class_path(jar)
    except (OSError, KeyError, zipfile.BadZipFile) as e:
        raise ZooKeeperNotFoundError(f"{jar} is unreadable ({e}); reinstall it: {INSTALL_HINT}") from None
    return _existing([jar, java_dir / "zookeeper-jute.jar", *listed, java_dir / "slf4j-simple.jar"])


def _is_server_jar(path: Path) -> bool:
    """`zookeeper-3.8.4.jar` or `zookeeper.jar`, not `zookeeper-jute-...` or other modules."""
    name = path.name
    if name == "zookeeper.jar":
        return True
    return name.startswith("zookeeper-") and name[len("zookeeper-") : len("zookeeper-") + 1].isdigit()


def tarball_classpath(home: Path) -> tuple[str, ...]:
    """Apache's binary tarball: `conf/` (logging configuration) and every jar in `lib/`."""
    lib = home / "lib"
    jars = sorted(lib.glob("*.jar")) if lib.is_dir() else []
    if not any(_is_server_jar(j) for j in jars):
        raise ZooKeeperNotFoundError(f"no ZooKeeper server jar (lib/zookeeper-<version>.jar) in {home}")
    conf = home / "conf"
    return tuple([str(conf)] if conf.is_dir() else []) + tuple(str(j) for j in jars)


def find_zookeeper(
    env: Mapping[str, str] | None = None,
    java_dir: Path = JAVA_DIR,
    opt_dir: Path = OPT_ZOOKEEPER,
) -> ZooKeeperInstall:
    """The machine's ZooKeeper install: $ZOOKEEPER_HOME, then Debian's, then /opt/zookeeper."""
    environ = os.environ if env is None else env
    home = environ.get("ZOOKEEPER_HOME")
    if home:
        try:
            return ZooKeeperInstall(f"ZOOKEEPER_HOME={home}", tarball_classpath(Path(home)))
        except ZooKeeperNotFoundError as e:
            raise ZooKeeperNotFoundError(
                f"ZOOKEEPER_HOME is set but unusable: {e}; point it at an unpacked Apache ZooKeeper "
                "binary tarball (apache-zookeeper-<version>-bin), or unset it to use `apt-get install zookeeper`"
            ) from None
    if (java_dir / "zookeeper.jar").exists():
        return ZooKeeperInstall(str(java_dir / "zookeeper.jar"), debian_classpath(java_dir))
    if (opt_dir / "lib").is_dir():
        return ZooKeeperInstall(str(opt_dir), tarball_classpath(opt_dir))
    raise ZooKeeperNotFoundError(INSTALL_HINT)


def find_java(env: Mapping[str, str] | None = None) -> str:
    """$JAVA_HOME/bin/java, else `java` on PATH."""
    environ = os.environ if env is None else env
    java_home = environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("java", path=environ.get("PATH"))
    if found is None:
        raise JavaNotFoundError(JAVA_HINT)
    return found


# ----------------------------------------------------------------------------- server


def zoo_cfg(
    data_dir: Path,
    port: int,
    tick_time_ms: int,
    min_session_timeout_ms: int,
    max_session_timeout_ms: int,
    force_sync: bool,
) -> str:
    """A standalone server's zoo.cfg, listening on 127.0.0.1 only."""
    return "\n".join(
        [
            f"tickTime={tick_time_ms}",
            f"dataDir={data_dir}",
            f"clientPort={port}",
            "clientPortAddress=127.0.0.1",
            f"minSessionTimeout={min_session_timeout_ms}",
            f"maxSessionTimeout={max_session_timeout_ms}",
            "maxClientCnxns=0",
            "4lw.commands.whitelist=*",
            "admin.enableServer=false",
            f"forceSync={'yes' if force_sync else 'no'}",
            "",
        ]
    )


def java_command(java: str, install: ZooKeeperInstall, config_path: Path) -> list[str]:
    return [
        java,
        "-Xmx256m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",  # the C1 JIT only: starts faster, fast enough here
        "-Dzookeeper.admin.enableServer=false",
        "-Dzookeeper.jmx.log4j.disable=true",
        "-Dorg.slf4j.simpleLogger.showDateTime=true",
        "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
        "-cp",
        ":".join(install.classpath),
        MAIN_CLASS,
        str(config_path),
    ]


def four_letter_word(port: int, word: str, timeout: float = 1.0, host: str = "127.0.0.1") -> str:
    """A four-letter-word command (`srvr`, `ruok`, `cons`, ...): its answer."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(word.encode())
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def is_serving(port: int, timeout: float = 0.5) -> bool:
    """Whether a standalone ZooKeeper answers `srvr` on 127.0.0.1:port."""
    try:
        return "Mode: standalone" in four_letter_word(port, "srvr", timeout=timeout)
    except OSError:
        return False


class ZooKeeperServer:
    """One standalone ZooKeeper server. `connect` is the `zookeeper.connect` string.

    `detached=True` starts it in a session of its own so it outlives this process (and a
    Ctrl-C in the terminal): `moldau cluster up` does that.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        tick_time_ms: int = 200,
        min_session_timeout_ms: int = 400,
        max_session_timeout_ms: int = 60000,
        force_sync: bool = False,
        detached: bool = False,
        install: ZooKeeperInstall | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.tick_time_ms = tick_time_ms
        self.min_session_timeout_ms = min_session_timeout_ms
        self.max_session_timeout_ms = max_session_timeout_ms
        # forceSync=no: ZooKeeper still write()s every transaction before answering, so
        # SIGKILL loses nothing (the page cache survives); only a machine crash would.
        self.force_sync = force_sync
        self.detached = detached
        self.install = install
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
            zoo_cfg(
                self.data_dir / "data",
                self.port,
                self.tick_time_ms,
                self.min_session_timeout_ms,
                self.max_session_timeout_ms,
                self.force_sync,
            )
        )

    def command(self, word: str, timeout: float = 1.0) -> str:
        """A four-letter-word command (`srvr`, `ruok`, `cons`, ...): its answer."""
        return four_letter_word(self.port, word, timeout=timeout)

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start the JVM without waiting for it to serve; `start` waits."""
        install = self.install or find_zookeeper()
        java = find_java()
        self._write_config()
        args = java_command(java, install, self.config_path)
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"--- start #{self.starts} on port {self.port}: {' '.join(args)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.data_dir,
                start_new_session=self.detached,
            )
        return self.proc

    def wait_serving(self, timeout: float = 30.0) -> ZooKeeperServer:
        """Wait until it answers `srvr`; SIGKILL it and raise ZooKeeperStartError if it does not."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ZooKeeperStartError(f"ZooKeeper exited with {self.proc.returncode}", self.log())
            if is_serving(self.port):
                return self
            time.sleep(0.05)
        self.kill()
        raise ZooKeeperStartError(f"ZooKeeper did not answer within {timeout}s", self.log())

    def start(self, timeout: float = 30.0) -> ZooKeeperServer:
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.spawn()
        return self.wait_serving(timeout)

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

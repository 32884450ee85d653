"""Test helpers: Moldau broker processes on free ports with their own data dirs."""
from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# One allocator for every port a test process hands out (brokers and ZooKeeper alike).
from moldau.cluster.zookeeper_process import free_port

__all__ = ["BrokerProcess", "free_port", "env_with_repo_on_path", "readme_test_files", "aiokafka_round_trip"]


class BrokerProcess:
    """A `moldau server` child process. Its log is printed when the test fails."""

    def __init__(self, data_dir: Path, overrides: dict[str, str] | None = None,
                 port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.overrides = {
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "log.dirs": str(data_dir / "logs"),
            **(overrides or {}),
        }
        self.log_path = data_dir / "broker.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> BrokerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "moldau.cli.main", "server"]
        for k, v in self.overrides.items():
            args += ["--override", f"{k}={v}"]
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(f"--- start #{self.starts}: {' '.join(args)}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    if "ready on" in self.log().split(f"--- start #{self.starts}")[-1]:
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"broker did not start within {timeout}s:\n{self.log()}")

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM: a clean shutdown. Returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def env_with_repo_on_path() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return env


def readme_test_files() -> dict[str, str]:
    """The README's Python blocks that start with a `# test_*.py` line, by file name: the
    example tests a user would copy, which the test suite runs as they stand."""
    readme = Path(__file__).resolve().parents[1] / "README.md"
    return dict(re.findall(r"```python\n# (test_\w+\.py)\n(.*?)```", readme.read_text(), re.S))


async def aiokafka_round_trip(kw: dict[str, Any], topic: str, count: int = 5) -> list[bytes]:
    """aiokafka produces v0..v<count-1> to `topic`, then a group consumer reads them back
    (FindCoordinator and the group on the listener `kw` connects to)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    producer = AIOKafkaProducer(**kw)
    await producer.start()
    try:
        for i in range(count):
            await producer.send_and_wait(topic, f"v{i}".encode())
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, **kw, group_id=f"g-{topic}", auto_offset_reset="earliest")
    await consumer.start()
    got: list[bytes] = []
    try:
        async with asyncio.timeout(30):
            async for msg in consumer:
                got.append(msg.value)
                if len(got) == count:
                    break
    finally:
        await consumer.stop()
    return got

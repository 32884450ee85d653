"""`moldau cluster up|status|down` end to end: a real ZooKeeper and three broker processes.

Each test runs the command as a user would (a subprocess), and whatever happens kills
every pid cluster.json ever listed. Every process's log is printed when a test fails.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from playwright.sync_api import expect

from moldau.cluster.local import pid_alive, port_free
from moldau.cluster.zookeeper_process import JavaNotFoundError, ZooKeeperNotFoundError, find_java, find_zookeeper
from tests.browser import chromium, screenshot_dir
from tests.helpers import env_with_repo_on_path, free_port

try:
    find_zookeeper()
    find_java()
except (ZooKeeperNotFoundError, JavaNotFoundError) as e:
    pytest.skip(f"needs Apache ZooKeeper and Java: {e}", allow_module_level=True)


def free_ports(count: int) -> tuple[int, int]:
    """A ZooKeeper port and the first of `count` consecutive free broker ports."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 60000 - count)
        zk = rng.randrange(20000, 60000)
        if base <= zk < base + count:
            continue
        if all(port_free(p) for p in [zk, *range(base, base + count)]):
            return zk, base
    raise RuntimeError("no free port range found")


def moldau(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "moldau.cli.main", "cluster", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env_with_repo_on_path(),
    )


class Pids:
    """Every process a cluster.json listed, to kill whatever the test leaves behind."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.seen: dict[int, int | None] = {}
        self.logs: list[Path] = []

    def record(self) -> dict[str, Any] | None:
        try:
            state: dict[str, Any] = json.loads((self.directory / "cluster.json").read_text())
        except FileNotFoundError:
            return None
        entries = [state["zookeeper"], *state["brokers"]] if state["zookeeper"] else list(state["brokers"])
        if state.get("console"):
            entries.append(state["console"])
        for entry in entries:
            self.seen[entry["pid"]] = entry["start_time"]
            if Path(entry["log"]) not in self.logs:
                self.logs.append(Path(entry["log"]))
        return state

    def alive(self) -> list[int]:
        return [pid for pid, start in self.seen.items() if pid_alive(pid, start)]

    def kill_all(self) -> None:
        self.record()
        for pid in self.alive():
            os.kill(pid, signal.SIGKILL)

    def dump_logs(self) -> None:
        for path in sorted(set(self.logs) | set(self.directory.glob("*/*.log"))):
            print(f"\n===== {path} =====\n{path.read_text(errors='replace')[-15000:]}")


@pytest.fixture
def cluster_dir(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Path, Pids]]:
    directory = tmp_path / "cluster"
    pids = Pids(directory)
    try:
        yield directory, pids
    finally:
        pids.kill_all()
        failed = any(
            getattr(request.node, f"rep_{when}", None) is not None and getattr(request.node, f"rep_{when}").failed
            for when in ("setup", "call")
        )
        if failed:
            pids.dump_logs()


def produce_and_consume(bootstrap: str) -> None:
    topic = f"cli-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 3, 3)])[topic].result(20)
    acked: list[int] = []
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 1, "message.timeout.ms": 20000})
    for i in range(30):
        producer.produce(topic, f"m{i}".encode(), partition=i % 3,
                         on_delivery=lambda err, _msg: acked.append(1) if err is None else None)
    assert producer.flush(30) == 0
    assert len(acked) == 30
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{topic}", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
    got: set[str] = set()
    deadline = time.monotonic() + 20
    while len(got) < 30 and time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is not None and not msg.error():
            got.add((msg.value() or b"").decode())
    consumer.close()
    assert got == {f"m{i}" for i in range(30)}


def test_up_status_kill_down(cluster_dir: tuple[Path, Pids], tmp_path: Path) -> None:
    directory, pids = cluster_dir
    shots = screenshot_dir(tmp_path / "screenshots")
    zk_port, base = free_ports(3)
    console_port = free_port()
    metrics_base = base
    while {*range(metrics_base, metrics_base + 3)} & {*range(base, base + 3), zk_port, console_port}:
        metrics_base = free_ports(3)[1]
    started = time.monotonic()
    up = moldau("up", "--brokers", "3", "--dir", str(directory), "--base-port", str(base),
                "--zookeeper-port", str(zk_port), "--override", "zookeeper.session.timeout.ms=2000",
                "--console", "--console-port", str(console_port), "--metrics-port", str(metrics_base))
    state = pids.record()
    assert up.returncode == 0, up.stderr
    expected = ",".join(f"127.0.0.1:{base + i}" for i in range(3))
    assert up.stdout.strip() == expected  # only the bootstrap string on stdout
    assert "waiting for 3 broker(s)" in up.stderr
    assert time.monotonic() - started < 30
    assert state is not None
    assert state["bootstrap.servers"] == expected
    assert state["zookeeper.connect"] == f"127.0.0.1:{zk_port}"
    assert [b["id"] for b in state["brokers"]] == [0, 1, 2]
    assert (directory / "zookeeper" / "zookeeper.log").exists()
    assert all((directory / f"broker-{i}" / "broker.log").exists() for i in range(3))

    produce_and_consume(up.stdout.strip())

    # Each broker serves its own /metrics (--metrics-port: broker i on PORT+i); one is the controller.
    controllers = 0
    for i in range(3):
        url = f"http://127.0.0.1:{metrics_base + i}/metrics"
        assert f"broker {i} metrics: {url}" in up.stderr
        with urllib.request.urlopen(url, timeout=10) as page:
            text = page.read().decode()
        controllers += int(text.split("\nkafka_controller_kafkacontroller_activecontrollercount ")[1].split()[0])
    assert controllers == 1

    # The console runs beside the brokers and sees all three.
    assert state["console"]["port"] == console_port
    with urllib.request.urlopen(f"http://127.0.0.1:{console_port}/brokers", timeout=30) as page:
        html = page.read().decode()
    assert html.count('class="live"') == 3 and "controller" in html

    status = moldau("status", "--dir", str(directory))
    assert status.returncode == 0, status.stdout + status.stderr
    lines = status.stdout.splitlines()
    assert any(line.startswith("zookeeper ") and ": up" in line for line in lines)
    broker_rows = [line.split() for line in lines if line[:1].isdigit()]
    assert [(r[0], r[3], r[4], r[5]) for r in broker_rows] == [(str(i), "alive", "yes", "up") for i in range(3)]
    controller_line = next(line for line in lines if line.startswith("controller: "))
    controller = int(controller_line.split(": ")[1])
    assert controller in (0, 1, 2)
    assert "partitions without a leader: none" in lines
    assert f"console: http://127.0.0.1:{console_port}/ (up, pid {state['console']['pid']})" in lines
    assert ("metrics: " + ", ".join(f"{i} http://127.0.0.1:{metrics_base + i}/metrics" for i in range(3))) in lines
    assert lines[-1] == "status: all up"

    again = moldau("up", "--brokers", "3", "--dir", str(directory), "--base-port", str(base),
                   "--zookeeper-port", str(zk_port))
    assert again.returncode == 1
    assert "already running" in again.stderr

    victim = next(b for b in state["brokers"] if b["id"] != controller)
    os.kill(victim["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pid_alive(victim["pid"], victim["start_time"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    degraded = moldau("status", "--dir", str(directory))
    assert degraded.returncode == 1, degraded.stdout
    row = next(line.split() for line in degraded.stdout.splitlines() if line.startswith(f"{victim['id']} "))
    assert row[3] == "dead" and row[5] == "down"
    assert f"broker {victim['id']} is down" in degraded.stdout.splitlines()[-1]

    # The console shows the dead broker and highlights the partitions it left under-replicated.
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.goto(f"http://127.0.0.1:{console_port}/replication")
        rows = page.locator("#under-replicated tr.under-replicated")
        expect(rows.first).to_be_visible(timeout=30_000)  # once the controller shrank the ISRs
        assert str(victim["id"]) in rows.first.locator("td").nth(5).inner_text()  # out of sync
        expect(page.locator("#health-summary")).to_contain_text("under-replicated")
        page.screenshot(path=str(shots / "cluster-replication.png"), full_page=True)
        page.goto(f"http://127.0.0.1:{console_port}/brokers")
        expect(page.locator(f"#brokers tr[data-broker='{victim['id']}']")).to_contain_text("dead")
        page.screenshot(path=str(shots / "cluster-brokers.png"), full_page=True)

    down = moldau("down", "--dir", str(directory))
    assert down.returncode == 0, down.stderr
    assert "cluster down" in down.stderr
    assert "killed" not in down.stderr  # every broker and ZooKeeper exited on SIGTERM
    assert pids.alive() == []
    assert not (directory / "cluster.json").exists()
    assert (directory / "broker-0" / "data").is_dir()  # data kept without --delete-data
    gone = moldau("status", "--dir", str(directory))
    assert gone.returncode == 1
    assert gone.stderr.startswith("moldau: error: no cluster in")


def test_failed_start_stops_everything_and_shows_the_log(cluster_dir: tuple[Path, Pids]) -> None:
    directory, pids = cluster_dir
    zk_port, base = free_ports(2)
    up = moldau("up", "--brokers", "2", "--dir", str(directory), "--base-port", str(base),
                "--zookeeper-port", str(zk_port), "--override", "zookeeper.session.timeout.ms=soon")
    assert up.returncode == 1
    assert up.stdout == ""
    assert "'soon' is not an integer" in up.stderr  # the tail of the broker's log
    assert up.stderr.splitlines()[-1].startswith("moldau: error: broker ")
    assert not (directory / "cluster.json").exists()
    # The ZooKeeper that was started is gone again: its port is free.
    deadline = time.monotonic() + 5
    while not port_free(zk_port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert port_free(zk_port)


def test_busy_port_is_refused_before_starting_anything(cluster_dir: tuple[Path, Pids]) -> None:
    directory, _ = cluster_dir
    zk_port, base = free_ports(3)
    with socket.socket() as s:
        s.bind(("127.0.0.1", base + 1))
        s.listen()
        up = moldau("up", "--brokers", "3", "--dir", str(directory), "--base-port", str(base),
                    "--zookeeper-port", str(zk_port))
    assert up.returncode == 1
    assert up.stderr.splitlines()[-1] == (
        f"moldau: error: port {base + 1} (for broker 1) is already in use on 127.0.0.1; choose another --base-port"
    )
    assert not (directory / "zookeeper").exists()

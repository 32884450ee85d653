"""`moldau cluster`: flags, finding ZooKeeper and Java, cluster.json, status from metadata; no processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import moldau.cluster.local as local
from moldau.cli.main import parse_args, run
from moldau.cluster.local import (
    BrokerEntry,
    BrokerStatus,
    ClusterError,
    ClusterState,
    ClusterStatus,
    MetadataView,
    ZooKeeperEntry,
    broker_properties,
    format_status,
    metadata_view,
    pid_alive,
    process_start_time,
    read_state,
    write_state,
)
from moldau.cluster.zookeeper_process import (
    JavaNotFoundError,
    ZooKeeperInstall,
    ZooKeeperNotFoundError,
    find_java,
    find_zookeeper,
)


def exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as e:
        parse_args(argv)
    assert isinstance(e.value.code, int)
    return e.value.code


# --------------------------------------------------------------------------- flags


def test_up_defaults() -> None:
    args = parse_args(["cluster", "up", "--brokers", "3"])
    assert args.cluster_command == "up"
    assert args.brokers == 3
    assert args.dir == Path("cluster")
    assert args.base_port == 9092
    assert args.zookeeper_port == 2181
    assert args.override == []
    assert args.timeout == 60.0


def test_up_flags() -> None:
    args = parse_args(
        ["cluster", "up", "--brokers", "2", "--dir", "/tmp/c", "--base-port", "19092", "--zookeeper-port", "12181",
         "--override", "num.partitions=3", "--override", "log.retention.ms=", "--timeout", "5"]
    )
    assert (args.brokers, args.dir, args.base_port, args.zookeeper_port) == (2, Path("/tmp/c"), 19092, 12181)
    assert args.override == [("num.partitions", "3"), ("log.retention.ms", "")]
    assert args.timeout == 5.0


def test_status_and_down_flags() -> None:
    status = parse_args(["cluster", "status"])
    assert (status.cluster_command, status.dir, status.timeout) == ("status", Path("cluster"), 5.0)
    down = parse_args(["cluster", "down", "--dir", "x", "--delete-data"])
    assert (down.cluster_command, down.dir, down.delete_data, down.timeout) == ("down", Path("x"), True, 30.0)
    assert parse_args(["cluster", "down"]).delete_data is False


@pytest.mark.parametrize(
    "argv",
    [
        ["cluster"],
        ["cluster", "sideways"],
        ["cluster", "up"],  # --brokers is required
        ["cluster", "up", "--brokers", "0"],
        ["cluster", "up", "--brokers", "-1"],
        ["cluster", "up", "--brokers", "three"],
        ["cluster", "up", "--brokers", "65"],
        ["cluster", "up", "--brokers", "1", "--base-port", "0"],
        ["cluster", "up", "--brokers", "1", "--base-port", "65536"],
        ["cluster", "up", "--brokers", "3", "--base-port", "65534"],  # 65534..65536
        ["cluster", "up", "--brokers", "1", "--zookeeper-port", "http"],
        ["cluster", "up", "--brokers", "3", "--base-port", "9092", "--zookeeper-port", "9094"],
        ["cluster", "up", "--brokers", "1", "--override", "novalue"],
        ["cluster", "up", "--brokers", "1", "--override", "=v"],
        ["cluster", "up", "--brokers", "1", "--override", "broker.id=7"],
        ["cluster", "up", "--brokers", "1", "--override", "listeners=PLAINTEXT://:1"],
        ["cluster", "up", "--brokers", "1", "--override", "log.dirs=/x"],
        ["cluster", "up", "--brokers", "1", "--override", "zookeeper.connect=elsewhere:2181"],
        ["cluster", "up", "--brokers", "1", "--timeout", "0"],
        ["cluster", "up", "--brokers", "3", "--metrics-port", "65534"],  # 65534..65536
        ["cluster", "up", "--brokers", "3", "--base-port", "9092", "--metrics-port", "9094"],  # broker 2's
        ["cluster", "up", "--brokers", "1", "--zookeeper-port", "2181", "--metrics-port", "2181"],
        ["cluster", "up", "--brokers", "1", "--override", "metrics.port=9404"],  # one port for every broker
        ["cluster", "up", "--brokers", "3", "--racks", "a,b"],  # one rack per broker
        ["cluster", "up", "--brokers", "2", "--racks", "a,,b"],
        ["cluster", "up", "--brokers", "2", "--racks", "a,b", "--override", "broker.rack=c"],
        ["cluster", "status", "--timeout", "-1"],
        ["cluster", "status", "--brokers", "3"],
        ["cluster", "down", "--force"],
    ],
)
def test_bad_flags_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(argv) == 2
    assert "usage:" in capsys.readouterr().err


def test_reserved_override_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    exit_code(["cluster", "up", "--brokers", "1", "--override", "broker.id=7"])
    assert "--override cannot set broker.id" in capsys.readouterr().err


def test_racks_one_per_broker(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_args(["cluster", "up", "--brokers", "3", "--racks", "a, b,c"]).racks == ("a", "b", "c")
    assert parse_args(["cluster", "up", "--brokers", "3"]).racks is None
    exit_code(["cluster", "up", "--brokers", "3", "--racks", "a,b"])
    assert "--racks names 2 rack(s) for 3 broker(s)" in capsys.readouterr().err
    props = broker_properties(1, 9093, "127.0.0.1:2181", Path("/d"), {}, rack="b")
    assert props["broker.rack"] == "b"
    assert "broker.rack" not in broker_properties(1, 9093, "127.0.0.1:2181", Path("/d"), {})


def test_last_port_may_be_65535() -> None:
    assert parse_args(["cluster", "up", "--brokers", "2", "--base-port", "65534"]).base_port == 65534


# ------------------------------------------------------------------ finding ZooKeeper


def fake_debian(java_dir: Path, listed: list[str]) -> None:
    java_dir.mkdir(parents=True, exist_ok=True)
    manifest = "Manifest-Version: 1.0\r\nClass-Path: " + " ".join(str(java_dir / n) for n in listed) + "\r\n"
    # Manifest lines wrap at 72 bytes with a leading space on continuations.
    wrapped = manifest[:60] + "\r\n " + manifest[60:]
    with zipfile.ZipFile(java_dir / "zookeeper.jar", "w") as z:
        z.writestr("META-INF/MANIFEST.MF", wrapped)
    for name in ["zookeeper-jute.jar", "slf4j-simple.jar", *listed[:-1]]:  # the last listed jar is missing
        (java_dir / name).write_bytes(b"")


def test_nothing_installed_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(ZooKeeperNotFoundError) as e:
        find_zookeeper({}, java_dir=tmp_path / "java", opt_dir=tmp_path / "opt")
    message = str(e.value)
    assert "apt-get install zookeeper" in message
    assert "ZOOKEEPER_HOME" in message
    assert "zookeeper.apache.org" in message


def test_debian_install(tmp_path: Path) -> None:
    java_dir = tmp_path / "java"
    fake_debian(java_dir, ["netty-common.jar", "slf4j-api.jar", "optional-missing.jar"])
    install = find_zookeeper({}, java_dir=java_dir, opt_dir=tmp_path / "opt")
    assert install.location == str(java_dir / "zookeeper.jar")
    assert [Path(p).name for p in install.classpath] == [
        "zookeeper.jar", "zookeeper-jute.jar", "netty-common.jar", "slf4j-api.jar", "slf4j-simple.jar"
    ]


def fake_tarball(home: Path) -> None:
    (home / "lib").mkdir(parents=True)
    (home / "conf").mkdir()
    for name in ["zookeeper-3.8.4.jar", "zookeeper-jute-3.8.4.jar", "logback-classic-1.2.13.jar"]:
        (home / "lib" / name).write_bytes(b"")


def test_zookeeper_home_wins(tmp_path: Path) -> None:
    home = tmp_path / "apache-zookeeper-3.8.4-bin"
    fake_tarball(home)
    fake_debian(tmp_path / "java", ["x.jar"])
    install = find_zookeeper({"ZOOKEEPER_HOME": str(home)}, java_dir=tmp_path / "java", opt_dir=tmp_path / "opt")
    assert install.location == f"ZOOKEEPER_HOME={home}"
    assert install.classpath[0] == str(home / "conf")
    assert str(home / "lib" / "zookeeper-3.8.4.jar") in install.classpath


def test_unusable_zookeeper_home_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "home" / "lib").mkdir(parents=True)
    (tmp_path / "home" / "lib" / "zookeeper-jute-3.8.4.jar").write_bytes(b"")  # no server jar
    with pytest.raises(ZooKeeperNotFoundError, match="ZOOKEEPER_HOME is set but unusable"):
        find_zookeeper({"ZOOKEEPER_HOME": str(tmp_path / "home")}, java_dir=tmp_path / "java", opt_dir=tmp_path)


def test_opt_zookeeper(tmp_path: Path) -> None:
    fake_tarball(tmp_path / "opt")
    install = find_zookeeper({}, java_dir=tmp_path / "java", opt_dir=tmp_path / "opt")
    assert install.location == str(tmp_path / "opt")


def test_java(tmp_path: Path) -> None:
    with pytest.raises(JavaNotFoundError, match="Java is not installed"):
        find_java({"PATH": str(tmp_path)})
    java = tmp_path / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text("#!/bin/sh\n")
    java.chmod(0o755)
    assert find_java({"PATH": "", "JAVA_HOME": str(tmp_path / "jdk")}) == str(java)
    assert find_java({"PATH": str(java.parent)}) == str(java)


# --------------------------------------------------------------------- cluster.json


def sample_state(directory: Path, pid: int = 999999, start_time: int | None = 1) -> ClusterState:
    return ClusterState(
        dir=str(directory),
        zookeeper=ZooKeeperEntry(pid, start_time, 2181, str(directory / "zookeeper"), "zk.log"),
        brokers=[
            BrokerEntry(i, 9092 + i, pid, start_time, str(directory / f"broker-{i}"), "b.log", "data")
            for i in range(3)
        ],
    )


def test_state_round_trip(tmp_path: Path) -> None:
    state = sample_state(tmp_path)
    write_state(tmp_path, state)
    data = json.loads((tmp_path / "cluster.json").read_text())
    assert data["bootstrap.servers"] == "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094"
    assert data["zookeeper.connect"] == "127.0.0.1:2181"
    assert read_state(tmp_path) == state
    assert [p.name for p in tmp_path.iterdir()] == ["cluster.json"]  # no temporary file left


def test_missing_and_damaged_state(tmp_path: Path) -> None:
    assert read_state(tmp_path) is None
    (tmp_path / "cluster.json").write_text("{not json")
    with pytest.raises(ClusterError, match="damaged"):
        read_state(tmp_path)


def test_broker_properties_put_identity_last() -> None:
    props = broker_properties(1, 9093, "127.0.0.1:2181", Path("/d"), {"zookeeper.session.timeout.ms": "2000"})
    assert props["broker.id"] == "1"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9093"
    assert props["log.dirs"] == "/d"
    assert props["zookeeper.session.timeout.ms"] == "2000"  # --override beats the local defaults
    assert props["group.initial.rebalance.delay.ms"] == "0"


# ---------------------------------------------------------------------- processes


def test_pid_alive() -> None:
    me = os.getpid()
    assert pid_alive(me)
    assert pid_alive(me, process_start_time(me))
    if process_start_time(me) is not None:
        assert not pid_alive(me, -1)  # same pid, another process: not ours
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not pid_alive(proc.pid)
    assert not pid_alive(0)


def test_zombie_is_dead() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
        if not Path(f"/proc/{proc.pid}/stat").exists():
            pytest.skip("no /proc")
        assert not pid_alive(proc.pid)
    finally:
        proc.wait()


# ------------------------------------------------------------------------- status


def partition(leader: int, replicas: list[int], isrs: list[int]) -> Any:
    return SimpleNamespace(leader=leader, replicas=replicas, isrs=isrs)


def fake_metadata() -> Any:
    topics = {
        "ok": SimpleNamespace(error=None, partitions={0: partition(0, [0, 1, 2], [0, 1, 2])}),
        "hurt": SimpleNamespace(
            error=None,
            partitions={1: partition(1, [1, 2], [1]), 0: partition(-1, [2], [])},
        ),
        "broken": SimpleNamespace(error=object(), partitions={}),
    }
    return SimpleNamespace(brokers={0: object(), 1: object()}, topics=topics)


def test_metadata_view() -> None:
    view = metadata_view(fake_metadata(), controller=1)
    assert view.broker_ids == {0, 1}
    assert view.controller == 1
    assert (view.topics, view.partitions) == (2, 3)
    assert [(i.topic, i.partition) for i in view.offline] == [("hurt", 0)]
    assert [(i.topic, i.partition) for i in view.under_replicated] == [("hurt", 0), ("hurt", 1)]
    assert view.under_replicated[1].text() == "hurt-1 leader 1 replicas [1, 2] isr [1]"


def status_of(view: MetadataView, alive: tuple[bool, ...] = (True, True, True), zk: bool = True) -> ClusterStatus:
    return ClusterStatus(
        directory="/c",
        zookeeper_connect="127.0.0.1:2181",
        zookeeper_pid=10,
        zookeeper_alive=zk,
        zookeeper_serving=zk,
        brokers=[BrokerStatus(i, 9092 + i, 20 + i, a, i in view.broker_ids) for i, a in enumerate(alive)],
        view=view,
    )


def test_all_up() -> None:
    st = status_of(MetadataView(broker_ids={0, 1, 2}, controller=2))
    assert st.healthy
    lines = format_status(st)
    assert "zookeeper 127.0.0.1:2181: up (pid 10)" in lines
    assert "controller: 2" in lines
    assert "partitions without a leader: none" in lines
    assert lines[-1] == "status: all up"


def test_broker_down_and_leaderless_partitions() -> None:
    view = metadata_view(fake_metadata(), controller=0)
    st = status_of(view, alive=(True, True, False))
    assert not st.healthy
    lines = format_status(st)
    assert "partitions without a leader: 1" in lines
    assert "  hurt-0 leader -1 replicas [2] isr []" in lines
    assert "under-replicated partitions: 2" in lines
    row = next(line.split() for line in lines if line.startswith("2 "))
    assert row == ["2", "127.0.0.1:9094", "22", "dead", "no", "down"]
    assert lines[-1] == "status: DEGRADED: broker 2 is down; 1 partition(s) without a leader"


def test_no_metadata_and_zookeeper_down() -> None:
    st = status_of(MetadataView(error="no broker is running"), alive=(False, False, False), zk=False)
    lines = format_status(st)
    assert "zookeeper 127.0.0.1:2181: down (pid 10)" in lines
    assert "metadata: unavailable: no broker is running" in lines
    assert lines[-1].startswith("status: DEGRADED: ZooKeeper is down; broker 0 is down")


# ------------------------------------------------------- commands, without processes


def test_status_without_a_cluster(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["cluster", "status", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"moldau: error: no cluster in {tmp_path} (no cluster.json)")
    assert err.count("\n") == 1


def test_down_without_a_cluster(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["cluster", "down", "--dir", str(tmp_path)]) == 1
    assert "no cluster in" in capsys.readouterr().err


def test_up_without_zookeeper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hint = "Apache ZooKeeper is not installed: install it with `sudo apt-get install zookeeper`"

    def missing() -> ZooKeeperInstall:
        raise ZooKeeperNotFoundError(hint)

    monkeypatch.setattr(local, "find_zookeeper", missing)
    assert run(["cluster", "up", "--brokers", "1", "--dir", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == f"moldau: error: {hint}"
    assert not (tmp_path / "c").exists()


def test_up_refuses_a_running_cluster(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_state(tmp_path, sample_state(tmp_path, pid=os.getpid(), start_time=process_start_time(os.getpid())))
    assert run(["cluster", "up", "--brokers", "1", "--dir", str(tmp_path)]) == 1
    assert "a cluster is already running in" in capsys.readouterr().err
    assert (tmp_path / "cluster.json").exists()


def test_up_replaces_a_dead_cluster_then_checks_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(local, "find_zookeeper", lambda: ZooKeeperInstall("fake", ()))
    monkeypatch.setattr(local, "find_java", lambda: "/usr/bin/java")
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    write_state(tmp_path, sample_state(tmp_path, pid=proc.pid, start_time=None))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = run(["cluster", "up", "--brokers", "1", "--dir", str(tmp_path), "--zookeeper-port", str(port),
                    "--base-port", str(port + 1 if port < 65535 else port - 1)])
    assert code == 1
    err = capsys.readouterr().err
    assert "none of its processes is running" in err
    assert f"moldau: error: port {port} (for ZooKeeper) is already in use" in err
    assert not (tmp_path / "cluster.json").exists()

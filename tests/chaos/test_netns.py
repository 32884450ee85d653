"""Smoke test of the netns harness: hosts reach each other and the clients; a partition
cuts exactly the links it names; a heal restores them; leftovers of a dead run are swept."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from moldau.chaos import netns

SERVER = (
    "import socket,sys\n"
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('0.0.0.0', 7000)); s.listen(16); print('up', flush=True)\n"
    "while True:\n"
    "    c,_=s.accept(); c.sendall(b'hi'); c.close()\n"
)
CLIENT = (
    "import socket,sys\n"
    "try:\n"
    "    c=socket.create_connection((sys.argv[1], 7000), timeout=0.7); print(c.recv(2).decode())\n"
    "except OSError as e:\n"
    "    print('no', e)\n"
)


@pytest.fixture(scope="module")
def network() -> Iterator[netns.Network]:
    reason = netns.check_support()
    if reason is not None:
        pytest.skip(reason)
    net = netns.Network(["a", "b", "c"])
    servers: list[subprocess.Popen[bytes]] = []
    try:
        net.create()
        for host in net.hosts:
            p = subprocess.Popen(
                [*net.exec_prefix(host), sys.executable, "-c", SERVER], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
            )
            servers.append(p)
            assert p.stdout is not None and p.stdout.readline() == b"up\n"
        yield net
    finally:
        for p in servers:
            p.kill()
            p.wait(5)
        net.destroy()


def reaches(net: netns.Network, src: str, dst: str) -> bool:
    prefix = [] if src == "clients" else net.exec_prefix(src)
    out = subprocess.run(
        [*prefix, sys.executable, "-c", CLIENT, net.address(dst)], capture_output=True, text=True, timeout=10
    ).stdout
    return out.strip() == "hi"


def test_hosts_and_clients_reach_each_other(network: netns.Network) -> None:
    assert len({h.address for h in network.hosts.values()}) == 3
    assert reaches(network, "a", "b") and reaches(network, "c", "a") and reaches(network, "clients", "b")


def test_a_partition_cuts_only_the_named_links_and_heals(network: netns.Network) -> None:
    try:
        network.partition([["a"], ["b"]])  # c is a bridge: it still talks to both
        assert not reaches(network, "a", "b") and not reaches(network, "b", "a")
        assert reaches(network, "a", "c") and reaches(network, "c", "b") and reaches(network, "clients", "a")
        network.drop_between("c", "clients")  # c cut from the clients, not from the hosts
        assert not reaches(network, "clients", "c") and reaches(network, "a", "c")
    finally:
        network.heal()
    assert reaches(network, "a", "b") and reaches(network, "clients", "c")
    assert network.rules("a") == [] and network.rules("c") == []


def test_total_packet_loss_and_heal(network: netns.Network) -> None:
    try:
        network.loss("b", 1.0)
        assert not reaches(network, "a", "b")
    finally:
        network.heal(["b"])
    assert reaches(network, "a", "b")


def test_leftovers_of_a_dead_run_are_swept_and_live_ones_kept(network: netns.Network) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    tag = netns.base36(dead.pid)
    netns.run(["ip", "netns", "add", f"{netns.PREFIX}-{tag}-x"])
    netns.run(["ip", "link", "add", f"{netns.PREFIX}{tag}br", "type", "bridge"])
    # A server the crashed run left running in its namespace.
    orphan = subprocess.Popen(["ip", "netns", "exec", f"{netns.PREFIX}-{tag}-x", "sleep", "60"])
    try:
        deadline = time.monotonic() + 5
        while not netns.run(["ip", "netns", "pids", f"{netns.PREFIX}-{tag}-x"]).stdout.strip():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        removed = netns.sweep()
        assert orphan.wait(5) == -9
    finally:
        orphan.kill()
    assert f"{netns.PREFIX}-{tag}-x" in removed and f"{netns.PREFIX}{tag}br" in removed
    # This run's own namespaces (a live pid) survive a sweep by anyone.
    assert all(h.namespace not in removed for h in network.hosts.values())
    assert reaches(network, "a", "b")

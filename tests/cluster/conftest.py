"""Fixtures with a real ZooKeeper: one server per module shared through a chroot per test,
or a server of the test's own when it stops, kills or restarts ZooKeeper."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.cluster.zookeeper_server import ZOOKEEPER_JAR, ZooKeeperServer


def _require_zookeeper() -> None:
    if not ZOOKEEPER_JAR.exists():
        pytest.skip("Apache ZooKeeper is not installed (apt-get install zookeeper, or `make test`)")


def _failed(request: pytest.FixtureRequest) -> bool:
    # tests/conftest.py's makereport hook records each phase's report on the item.
    return any(
        getattr(request.node, f"rep_{when}", None) is not None and getattr(request.node, f"rep_{when}").failed
        for when in ("setup", "call")
    )


@pytest.fixture
def zookeeper(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[ZooKeeperServer]:
    """A ZooKeeper of this test's own (free to stop, kill and restart); killed afterwards,
    its log printed when the test failed."""
    _require_zookeeper()
    server = ZooKeeperServer(tmp_path_factory.mktemp("zookeeper"))
    try:
        server.start()
        yield server
    finally:
        server.kill()
        if _failed(request):
            print(f"\n===== zookeeper log {server.log_path} =====\n{server.log()[-20000:]}")


@pytest.fixture(scope="module")
def shared_zookeeper(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[ZooKeeperServer]:
    """One ZooKeeper for a whole module; tests isolate themselves with `zk_connect`'s chroot.
    Do not stop or kill it: use `zookeeper` for that."""
    _require_zookeeper()
    server = ZooKeeperServer(tmp_path_factory.mktemp("zookeeper-shared"))
    failed_before = request.session.testsfailed
    try:
        server.start()
        yield server
    finally:
        server.kill()
        if request.session.testsfailed > failed_before:
            print(f"\n===== shared zookeeper log {server.log_path} =====\n{server.log()[-20000:]}")


@pytest.fixture
def zk_connect(shared_zookeeper: ZooKeeperServer) -> str:
    """A `zookeeper.connect` string with a chroot of this test's own on the shared server."""
    if not shared_zookeeper.running:
        shared_zookeeper.start()  # a test broke the contract above; give the next one a server
    return f"{shared_zookeeper.connect}/moldau-test-{uuid.uuid4().hex[:12]}"

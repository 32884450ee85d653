"""Shared fixtures: real Moldau broker processes with their own ports and dirs."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import BrokerProcess


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, "rep_" + report.when, report)


def _attach_logs(request: pytest.FixtureRequest, brokers: list[BrokerProcess]) -> None:
    failed = any(
        getattr(request.node, f"rep_{when}", None) is not None
        and getattr(request.node, f"rep_{when}").failed
        for when in ("setup", "call")
    )
    if failed:
        for b in brokers:
            print(f"\n===== broker log {b.log_path} =====\n{b.log()[-20000:]}")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One broker shared by a test module (fast small segments, quick checks)."""
    b = BrokerProcess(tmp_path_factory.mktemp("broker"))
    b.start()
    try:
        yield b
    finally:
        b.kill()
        print(f"\n===== broker log =====\n{b.log()[-5000:]}")


@pytest.fixture
def make_broker(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., BrokerProcess]]:
    """Start brokers that a test owns (restarts, kills, special configs)."""
    started: list[BrokerProcess] = []

    def make(overrides: dict[str, str] | None = None, name: str = "b") -> BrokerProcess:
        b = BrokerProcess(tmp_path / f"{name}{len(started)}", overrides)
        started.append(b)
        return b.start()

    try:
        yield make
    finally:
        for b in started:
            b.kill()
        _attach_logs(request, started)

"""The pytest plugin: a Moldau broker per test session, a fresh topic per test.

Registered through the ``pytest11`` entry point, so installing Moldau is enough:

* ``moldau_broker`` (session scope): an `EmbeddedBroker`; ``.bootstrap_servers`` for
  clients. Under pytest-xdist each worker has its own broker.
* ``moldau_topic``: the name of a topic created for the test (one partition by default;
  ``@pytest.mark.moldau_topic(partitions=3, config={...})`` to change that), deleted
  after it.
* ``--moldau-port PORT``: the session broker listens on PORT (worker N of pytest-xdist
  on PORT+N) instead of a free port, for a tool you point at it while debugging.
* ``--moldau-keep-data``: keep the broker's data under pytest's base temporary directory
  (and the topics the tests created), and say where at the end.

The plugin module imports nothing of Moldau's broker until a fixture needs it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from moldau.testing.embedded_broker import EmbeddedBroker, unique_topic_name

_kept_data_dirs = pytest.StashKey[list[Path]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("moldau", "Moldau, an embedded Kafka broker")
    group.addoption(
        "--moldau-port",
        type=int,
        default=0,
        metavar="PORT",
        help="port of the moldau_broker fixture's broker (pytest-xdist worker N: PORT+N); default: a free port",
    )
    group.addoption(
        "--moldau-keep-data",
        action="store_true",
        default=False,
        help="keep the moldau_broker fixture's data (and the tests' topics) under pytest's base temp dir",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "moldau_topic(partitions=1, replication_factor=1, config=None, name=None): "
        "the topic that the moldau_topic fixture creates for this test",
    )
    config.stash[_kept_data_dirs] = []


def _worker_index() -> int:
    """pytest-xdist's worker number (gw3 -> 3), 0 without xdist."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0


@pytest.fixture(scope="session")
def moldau_broker(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """A Moldau broker for the whole test session (one per pytest-xdist worker)."""
    port = request.config.getoption("moldau_port")
    keep = request.config.getoption("moldau_keep_data")
    data_dir = tmp_path_factory.mktemp("moldau") if keep else None
    with EmbeddedBroker(port=port + _worker_index() if port else 0, data_dir=data_dir) as broker:
        yield broker
    if data_dir is not None:
        request.config.stash[_kept_data_dirs].append(data_dir)


@pytest.fixture
def moldau_topic(moldau_broker: EmbeddedBroker, request: pytest.FixtureRequest) -> Iterator[str]:
    """The name of a new topic for this test, deleted after it."""
    marker = request.node.get_closest_marker("moldau_topic")
    options = dict(marker.kwargs) if marker is not None else {}
    name = options.pop("name", None) or unique_topic_name(request.node.name)
    topic = moldau_broker.create_topic(name, **options)
    yield topic
    if not request.config.getoption("moldau_keep_data") and moldau_broker.running:
        moldau_broker.delete_topic(topic)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    for path in config.stash.get(_kept_data_dirs, []):
        terminalreporter.write_line(f"moldau: the broker's data is kept in {path}")

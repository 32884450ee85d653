"""A real Apache ZooKeeper (Debian's `zookeeper` package) as a foreground Java child process.

Each server gets a free port on 127.0.0.1 and its own data dir holding `zoo.cfg`, the
snapshots and transaction logs, and `zookeeper.log` (the JVM's stdout and stderr). It can
be stopped (SIGTERM), killed (SIGKILL) and started again on the same port and data dir, so
tests can restart ZooKeeper under a running cluster.

The implementation lives in `moldau.cluster.zookeeper_process`, which `moldau cluster up`
shares; this module keeps the names the tests import.
"""

from __future__ import annotations

from moldau.cluster.zookeeper_process import (
    JAVA_DIR,
    MAIN_CLASS,
    ZOOKEEPER_JAR,
    ZooKeeperNotFoundError,
    ZooKeeperServer,
    debian_classpath,
    free_port,
)

INSTALL_HINT = "Apache ZooKeeper is not installed: sudo apt-get install zookeeper (or run `make test`)"

__all__ = [
    "INSTALL_HINT",
    "JAVA_DIR",
    "MAIN_CLASS",
    "ZOOKEEPER_JAR",
    "ZooKeeperServer",
    "free_port",
    "zookeeper_classpath",
]


def zookeeper_classpath() -> str:
    """Debian's ZooKeeper classpath, `:`-joined."""
    try:
        return ":".join(debian_classpath(JAVA_DIR))
    except ZooKeeperNotFoundError:
        raise RuntimeError(INSTALL_HINT) from None

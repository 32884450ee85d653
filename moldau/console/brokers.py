"""The brokers screen: which brokers are live, which one is the controller, their racks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class BrokerNode:
    """A live broker as DescribeCluster reports it."""

    id: int
    host: str
    port: int
    rack: str | None = None


@dataclass(frozen=True)
class PartitionState:
    """One partition as Metadata reports it; leader -1 means none (offline)."""

    topic: str
    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    error: str | None = None

    @property
    def offline(self) -> bool:
        return self.leader < 0

    @property
    def under_replicated(self) -> bool:
        return len(self.isr) < len(self.replicas)


@dataclass(frozen=True)
class BrokerRow:
    id: int
    host: str
    port: int
    rack: str | None
    controller: bool
    live: bool
    leaders: int
    replicas: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}" if self.live else "unknown"


def broker_rows(
    nodes: Sequence[BrokerNode], controller_id: int | None, partitions: Iterable[PartitionState]
) -> list[BrokerRow]:
    """Live brokers, plus dead ones: brokers that replicas are assigned to but that are not live."""
    leaders: dict[int, int] = {}
    replicas: dict[int, int] = {}
    for p in partitions:
        if p.leader >= 0:
            leaders[p.leader] = leaders.get(p.leader, 0) + 1
        for r in p.replicas:
            replicas[r] = replicas.get(r, 0) + 1
    live = {n.id: n for n in nodes}
    rows = [
        BrokerRow(
            n.id, n.host, n.port, n.rack, n.id == controller_id, True, leaders.get(n.id, 0), replicas.get(n.id, 0)
        )
        for n in nodes
    ]
    rows += [
        BrokerRow(b, "", -1, None, False, False, leaders.get(b, 0), replicas[b]) for b in replicas if b not in live
    ]
    return sorted(rows, key=lambda r: r.id)

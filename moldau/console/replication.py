"""The replication health screen: under-replicated and offline partitions."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from moldau.console.brokers import PartitionState


@dataclass(frozen=True)
class HealthRow:
    topic: str
    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    out_of_sync: tuple[int, ...]  # replicas not in the ISR
    dead: tuple[int, ...]  # replicas on brokers that are not live
    offline: bool


@dataclass(frozen=True)
class Health:
    partitions: int
    under_replicated: list[HealthRow]
    offline: list[HealthRow]

    @property
    def healthy(self) -> bool:
        return not self.under_replicated and not self.offline


def replication_health(partitions: Iterable[PartitionState], live_brokers: Collection[int]) -> Health:
    """Kafka's definitions: under-replicated when the ISR is smaller than the replica set,
    offline when there is no leader (UnderReplicatedPartitions, OfflinePartitionsCount)."""
    total = 0
    under: list[HealthRow] = []
    offline: list[HealthRow] = []
    for p in sorted(partitions, key=lambda p: (p.topic, p.partition)):
        total += 1
        if not (p.offline or p.under_replicated):
            continue
        row = HealthRow(
            p.topic,
            p.partition,
            p.leader,
            p.replicas,
            p.isr,
            tuple(r for r in p.replicas if r not in p.isr),
            tuple(r for r in p.replicas if r not in live_brokers),
            p.offline,
        )
        (offline if p.offline else under).append(row)
        if p.offline and p.under_replicated:
            under.append(row)
    return Health(total, under, offline)

"""Replication quotas (Kafka's ReplicationQuotaManager), pure: one byte rate per broker
and direction, shared by every throttled replica.

Kafka's semantics (KIP-73): `leader.replication.throttled.rate` bounds the bytes a leader
sends, and `follower.replication.throttled.rate` the bytes a follower fetches, for the
replicas the topics list in `leader.replication.throttled.replicas` /
`follower.replication.throttled.replicas` (moldau.log.config.replica_throttled). Only
those replicas' bytes are recorded, and only replicas that are not in sync are held back
while the rate is over the quota: the leader answers their fetch without records, the
follower leaves them out of its fetch. Replicas in sync, and unthrottled ones, are never
held back. The rate is Kafka's windowed Rate (`replication.quota.window.num` samples of
`replication.quota.window.size.seconds`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from moldau.quotas.rate import Rate

UNLIMITED = 9223372036854775807  # Long.MAX_VALUE, the rates' default: no throttling


@dataclass
class ReplicationQuotaManager:
    """`limit()` is the quota in bytes per second, read at each check so that a dynamic
    config change applies at once."""

    limit: Callable[[], float]
    samples: int = 11  # replication.quota.window.num
    window_ms: int = 1000  # replication.quota.window.size.seconds * 1000
    _rate: Rate = field(init=False)

    def __post_init__(self) -> None:
        self._rate = Rate(self.samples, self.window_ms)

    def is_quota_exceeded(self, now_ms: int) -> bool:
        limit = self.limit()
        return limit < UNLIMITED and self._rate.rate(now_ms) > limit

    def record(self, size_bytes: int, now_ms: int) -> None:
        self._rate.record(size_bytes, now_ms)

    def rate(self, now_ms: int) -> float:
        """Bytes per second recorded over the window."""
        return self._rate.rate(now_ms)

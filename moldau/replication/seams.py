"""What replication needs from the outside, as small protocols (Kafka's LeaderEndPoint,
AlterPartitionManager, MetadataCache). `moldau/server/` implements them over the Kafka
protocol; tests implement them in memory (tests/unit/replication_fakes.py). Nothing in
`moldau/replication/` knows how bytes reach another broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from moldau.protocol.errors import ErrorCode

TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class LeaderAndIsrState:
    """What the controller says about one partition (a LeaderAndIsr partition state)."""

    leader: int
    leader_epoch: int
    isr: tuple[int, ...]
    replicas: tuple[int, ...]
    partition_epoch: int  # the state znode's version: AlterPartition's compare-and-set


# --- a follower's view of its leader ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class FetchPosition:
    """Where a follower's log ends: what it asks its leader for."""

    fetch_offset: int
    log_start_offset: int
    current_leader_epoch: int
    max_bytes: int = 1 << 20


@dataclass(frozen=True, slots=True)
class FetchedPartition:
    """A leader's answer for one partition of a follower's fetch."""

    error: ErrorCode
    high_watermark: int = -1
    log_start_offset: int = -1
    records: bytes = b""


@dataclass(frozen=True, slots=True)
class EpochEndOffset:
    """OffsetForLeaderEpoch's answer: where `leader_epoch` (the largest the leader has
    that is <= the one asked) ends in the leader's log."""

    error: ErrorCode
    leader_epoch: int = -1
    end_offset: int = -1


class LeaderEndPoint(Protocol):
    """One leader broker, as its followers' fetcher sees it."""

    async def fetch(self, partitions: dict[TopicPartition, FetchPosition]) -> dict[TopicPartition, FetchedPartition]:
        """Fetch (replica_id = this broker) from these positions; raises OSError,
        ConnectionError or TimeoutError when the leader cannot be reached."""
        ...

    async def end_offsets_for_epochs(
            self, partitions: dict[TopicPartition, tuple[int, int]]) -> dict[TopicPartition, EpochEndOffset]:
        """OffsetForLeaderEpoch for (current leader epoch, epoch asked) per partition."""
        ...

    def close(self) -> None: ...


class LeaderEndPoints(Protocol):
    """Finds and connects to leader brokers."""

    def address(self, broker_id: int) -> tuple[str, int] | None:
        """Where `broker_id` listens for other brokers, None while unknown."""
        ...

    def connect(self, broker_id: int, address: tuple[str, int]) -> LeaderEndPoint: ...


# --- a leader's channel to the controller -----------------------------------------------


@dataclass(frozen=True, slots=True)
class AlterPartitionResult:
    """The controller's answer to an ISR change: the ISR and epochs now in force."""

    error: ErrorCode
    isr: tuple[int, ...] = ()
    leader_epoch: int = -1
    partition_epoch: int = -1


class ControllerChannel(Protocol):
    async def alter_partition(self, tp: TopicPartition, leader_epoch: int, new_isr: tuple[int, ...],
                              partition_epoch: int) -> AlterPartitionResult | None:
        """Propose an ISR; None when no controller answered (retried later)."""
        ...


# --- what the broker knows beyond its own replicas --------------------------------------


class PartitionMetadata(Protocol):
    def leader_of(self, tp: TopicPartition) -> int | None:
        """The partition's leader in the cluster metadata (-1: none), None if the
        partition is unknown."""
        ...


class LeadershipLease(Protocol):
    """Whether this broker may act as a leader now: its coordination session is provably
    alive (a recent round trip to ZooKeeper in the session it registered with)."""

    def valid(self) -> bool: ...


# --- replication quotas (Kafka's ReplicaQuota) ------------------------------------------


class ReplicaQuota(Protocol):
    """One direction's replication byte rate on this broker (the leader's sending, the
    follower's fetching); `moldau.quotas.replication` implements it."""

    def is_quota_exceeded(self, now_ms: int) -> bool: ...

    def record(self, size_bytes: int, now_ms: int) -> None:
        """Bytes of throttled replicas sent (leader) or fetched (follower)."""
        ...


class NoReplicaQuota:
    """Never throttles (no replication quota configured; unit tests)."""

    def is_quota_exceeded(self, now_ms: int) -> bool:
        return False

    def record(self, size_bytes: int, now_ms: int) -> None:
        pass


# --- what the replica manager reports (Kafka's BrokerTopicStats, ReplicaManager meters) ---


class TopicStats(Protocol):
    """One topic's traffic counters; each `Partition` keeps its topic's, so an event on
    the data path is one call and a few adds, with no lookup."""

    def appended(self, size_bytes: int, records: int) -> None:
        """A producer's batches were appended by this broker as leader."""
        ...

    def produce_failed(self) -> None:
        """A produce failed on the broker's side (not for the client's own mistakes)."""
        ...

    def fetched(self, size_bytes: int) -> None:
        """A consumer's fetch was answered with `size_bytes` of this topic's records."""
        ...


class ReplicaStats(Protocol):
    """The replica manager's events, for the broker's metrics (`moldau.metrics`
    implements it; replication does not import it)."""

    def topic(self, name: str) -> TopicStats: ...

    def replicated_in(self, size_bytes: int) -> None:
        """A follower appended `size_bytes` copied from its leader."""
        ...

    def replicated_out(self, size_bytes: int) -> None:
        """A follower's fetch was answered with `size_bytes` of records."""
        ...

    def isr_shrunk(self) -> None:
        """The controller accepted an ISR this leader shrank."""
        ...

    def isr_expanded(self) -> None:
        """The controller accepted an ISR this leader expanded."""
        ...


class NoTopicStats:
    def appended(self, size_bytes: int, records: int) -> None:
        pass

    def produce_failed(self) -> None:
        pass

    def fetched(self, size_bytes: int) -> None:
        pass


class NoReplicaStats:
    """Counts nothing (unit tests, tools that open a replica manager)."""

    _topic = NoTopicStats()

    def topic(self, name: str) -> TopicStats:
        return self._topic

    def replicated_in(self, size_bytes: int) -> None:
        pass

    def replicated_out(self, size_bytes: int) -> None:
        pass

    def isr_shrunk(self) -> None:
        pass

    def isr_expanded(self) -> None:
        pass

"""In-memory stand-ins for what `moldau/replication/` reaches through its seams
(`replication/seams.py`): a manual clock and scheduler, a controller that keeps
partition state the way the ZooKeeper controller does (leader epochs, ISR by
compare-and-set on a partition epoch), and leaders reached by direct calls into the
leader broker's ReplicaManager. Logs are real logs on disk (tmp_path).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from moldau.log.config import LogConfig
from moldau.log.manager import LogManager
from moldau.protocol.errors import ErrorCode
from moldau.replication.partition import PartitionError
from moldau.replication.replica_manager import (
    FetchParams,
    FetchPartitionRequest,
    FetchResults,
    ReplicaManager,
    ReplicaManagerConfig,
)
from moldau.replication.seams import (
    AlterPartitionResult,
    EpochEndOffset,
    FetchedPartition,
    FetchPosition,
    LeaderAndIsrState,
    ReplicaStats,
    TopicPartition,
)


class ManualClock:
    def __init__(self, now_ms: int = 1_000_000) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


class _Timer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualScheduler:
    """`purgatory.Scheduler` on a manual clock: `advance` runs what became due."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self._queue: list[tuple[int, int, _Timer, Callable[[], None]]] = []
        self._seq = 0

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer()
        self._seq += 1
        heapq.heappush(self._queue, (self.clock.now_ms + int(delay_s * 1000), self._seq, timer, callback))
        return timer

    def advance(self, ms: int) -> None:
        self.clock.now_ms += ms
        while self._queue and self._queue[0][0] <= self.clock.now_ms:
            _, _, timer, callback = heapq.heappop(self._queue)
            if not timer.cancelled:
                callback()


class Lease:
    def __init__(self) -> None:
        self.ok = True

    def valid(self) -> bool:
        return self.ok


@dataclass
class ControllerState:
    leader: int
    leader_epoch: int
    isr: tuple[int, ...]
    replicas: tuple[int, ...]
    partition_epoch: int = 0

    def leader_and_isr(self) -> LeaderAndIsrState:
        return LeaderAndIsrState(self.leader, self.leader_epoch, self.isr, self.replicas, self.partition_epoch)


@dataclass
class FakeController:
    """Partition state as ZooKeeper would hold it; AlterPartition by compare-and-set."""

    states: dict[TopicPartition, ControllerState] = field(default_factory=dict)
    reachable: bool = True
    history: list[tuple[TopicPartition, int, int]] = field(default_factory=list)  # (tp, leader, epoch)

    async def alter_partition(self, tp: TopicPartition, leader_epoch: int, new_isr: tuple[int, ...],
                              partition_epoch: int) -> AlterPartitionResult | None:
        if not self.reachable:
            return None
        state = self.states[tp]
        if leader_epoch != state.leader_epoch:
            return AlterPartitionResult(ErrorCode.fenced_leader_epoch)
        if partition_epoch != state.partition_epoch:
            return AlterPartitionResult(ErrorCode.invalid_update_version)
        state.isr = tuple(sorted(new_isr))
        state.partition_epoch += 1
        return AlterPartitionResult(ErrorCode.none, state.isr, state.leader_epoch, state.partition_epoch)

    def leader_of(self, tp: TopicPartition) -> int | None:
        state = self.states.get(tp)
        return state.leader if state is not None else None


class Cluster:
    """Brokers wired together in memory; a broker absent from `brokers` is down."""

    def __init__(self, root: Path, config: LogConfig, clock: ManualClock, scheduler: ManualScheduler,
                 controller: FakeController, lag_time_max_ms: int = 10_000) -> None:
        self.root = root
        self.config = config
        self.clock = clock
        self.scheduler = scheduler
        self.controller = controller
        self.lag_time_max_ms = lag_time_max_ms
        self.brokers: dict[int, ReplicaManager] = {}
        self.leases: dict[int, Lease] = {}
        self.unknown_addresses: set[int] = set()  # brokers whose address the metadata lacks yet
        self.stats: dict[int, ReplicaStats] = {}  # what each broker's replica manager reports to

    def start(self, broker_id: int) -> ReplicaManager:
        logs = LogManager([self.root / f"broker-{broker_id}"], self.config)
        logs.load(self.clock())
        lease = self.leases.setdefault(broker_id, Lease())
        rm = ReplicaManager(ReplicaManagerConfig(broker_id, self.lag_time_max_ms), logs, self.clock,
                            self.scheduler, lease, self.controller, Leaders(self, broker_id), self.controller,
                            run_fetchers=False, stats=self.stats.get(broker_id))
        self.brokers[broker_id] = rm
        return rm

    def crash(self, broker_id: int) -> None:
        """kill -9: nothing is flushed or checkpointed; page-cache writes survive."""
        rm = self.brokers.pop(broker_id)
        for plog in rm.logs.all_logs().values():
            plog.close(snapshot=False)
        rm.logs._unlock_all()

    def send_leader_and_isr(self, tp: TopicPartition) -> None:
        state = self.controller.states[tp]
        for b in state.replicas:
            rm = self.brokers.get(b)
            if rm is not None:
                rm.become_leader_or_follower([(tp, state.leader_and_isr(), self.config)], self.clock())


class Leaders:
    """`LeaderEndPoints`: a leader is reachable while its broker is up."""

    def __init__(self, cluster: Cluster, local_id: int) -> None:
        self.cluster = cluster
        self.local_id = local_id

    def address(self, broker_id: int) -> tuple[str, int] | None:
        if broker_id in self.cluster.unknown_addresses:
            return None
        return (f"broker-{broker_id}", 9092)

    def connect(self, broker_id: int, address: tuple[str, int]) -> LeaderEndPoint:
        return LeaderEndPoint(self.cluster, self.local_id, broker_id)


class LeaderEndPoint:
    def __init__(self, cluster: Cluster, local_id: int, leader_id: int) -> None:
        self.cluster = cluster
        self.local_id = local_id
        self.leader_id = leader_id

    def _leader(self) -> ReplicaManager:
        rm = self.cluster.brokers.get(self.leader_id)
        if rm is None:
            raise ConnectionError(f"broker {self.leader_id} is down")
        return rm

    async def fetch(self, partitions: dict[TopicPartition, FetchPosition]) -> dict[TopicPartition, FetchedPartition]:
        params = FetchParams(self.local_id, 0, 1, 8 << 20, tuple(
            (tp, FetchPartitionRequest(p.fetch_offset, p.max_bytes, p.current_leader_epoch))
            for tp, p in partitions.items()))
        out: list[FetchResults] = []
        self._leader().fetch_records(params, out.append)
        assert out, "a fetch with max_wait 0 answers at once"
        return {tp: FetchedPartition(r.error, r.high_watermark, r.log_start_offset, r.records) for tp, r in out[0]}

    async def end_offsets_for_epochs(
            self, partitions: dict[TopicPartition, tuple[int, int]]) -> dict[TopicPartition, EpochEndOffset]:
        rm = self._leader()
        out: dict[TopicPartition, EpochEndOffset] = {}
        for tp, (current, epoch) in partitions.items():
            try:
                partition = rm.leader_partition(tp)
                partition.check_leader_epoch(current)
            except PartitionError as exc:
                out[tp] = EpochEndOffset(exc.code)
                continue
            found_epoch, end = partition.log.end_offset_for_epoch(epoch)
            out[tp] = EpochEndOffset(ErrorCode.none, found_epoch, end)
        return out

    def close(self) -> None:
        pass

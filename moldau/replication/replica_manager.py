"""The broker's replicas (Kafka's ReplicaManager): the `Partition`s it hosts, the two
entry points of the data path, and what keeps followers in step.

* `append_records`: a produce, validated and appended by each partition's leader;
  acks=1 is answered at once, acks=all through a `DelayedProduce` completed when the
  high watermark passes the batch (or at the request timeout).
* `fetch_records`: a consumer's or follower's fetch, read from each leader's log (a
  consumer up to the high watermark, a follower up to the log end, after its fetch
  offset has been recorded); with less than ``min_bytes`` it becomes a `DelayedFetch`
  completed by an append, a moved high watermark or ``max_wait_ms``. Consumers that
  send their rack (Fetch v11+) may read from a follower, up to its high watermark, and
  a leader with ``replica.selector.class`` sends them to a follower in their rack
  (KIP-392, `replica_selector.py`).
* `become_leader_or_follower` / `stop_replica`: roles from the controller. A follower's
  partitions are fetched by one `ReplicaFetcher` per leader broker.
* ISR changes are proposed to the controller through `ControllerChannel`
  (AlterPartition), one in flight per partition.

Results are delivered through callbacks (Kafka's responseCallback), called once,
possibly before the call returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from moldau.log.config import LogConfig
from moldau.log.errors import OffsetOutOfRangeError
from moldau.log.manager import LogManager
from moldau.log.validator import RecordError, RecordValidationError
from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import iter_batches
from moldau.replication.fetcher import ReplicaFetcher
from moldau.replication.leader_state import LeaderState
from moldau.replication.partition import Partition, PartitionError, RateLimitedWarning
from moldau.replication.purgatory import DelayedOperation, Purgatory, Scheduler
from moldau.replication.replica_selector import preferred_read_replica
from moldau.replication.seams import (
    ControllerChannel,
    LeaderAndIsrState,
    LeaderEndPoints,
    LeadershipLease,
    NoReplicaQuota,
    NoReplicaStats,
    PartitionMetadata,
    ReplicaQuota,
    ReplicaStats,
    TopicPartition,
)

log = logging.getLogger(__name__)


# --- typed requests and results --------------------------------------------------------

READ_UNCOMMITTED = 0
READ_COMMITTED = 1  # Fetch's isolation_level: stop at the last stable offset


@dataclass(frozen=True, slots=True)
class ProducePartitionResult:
    error: ErrorCode
    base_offset: int = -1
    log_append_time: int = -1
    log_start_offset: int = -1
    message: str | None = None
    record_errors: tuple[RecordError, ...] = ()
    last_offset: int = -1


@dataclass(frozen=True, slots=True)
class FetchPartitionRequest:
    fetch_offset: int
    max_bytes: int
    current_leader_epoch: int = -1
    log_start_offset: int = -1  # a follower's log start (Fetch v5+); -1 from consumers


@dataclass(frozen=True, slots=True)
class FetchParams:
    replica_id: int  # a follower's broker id; -1 for consumers
    max_wait_ms: int
    min_bytes: int
    max_bytes: int
    partitions: tuple[tuple[TopicPartition, FetchPartitionRequest], ...]
    isolation_level: int = READ_UNCOMMITTED
    # Fetch v11+ from a consumer: its rack ("" when it has none). Such a consumer may read
    # from a follower (Kafka's clientMetadata); None (older versions): the leader only.
    client_rack: str | None = None

    @property
    def is_follower(self) -> bool:
        return self.replica_id >= 0

    @property
    def fetch_only_leader(self) -> bool:
        return self.is_follower or self.client_rack is None

    @property
    def read_committed(self) -> bool:
        return not self.is_follower and self.isolation_level == READ_COMMITTED


@dataclass(frozen=True, slots=True)
class FetchPartitionResult:
    error: ErrorCode
    high_watermark: int = -1
    last_stable_offset: int = -1
    log_start_offset: int = -1
    records: bytes = b""
    # read_committed: (producer id, first offset) of the aborted transactions overlapping
    # the records returned; None for read_uncommitted or when no records are returned.
    aborted_transactions: tuple[tuple[int, int], ...] | None = None
    # KIP-392: the follower the consumer should fetch this partition from (no records
    # then); -1 when this broker serves it.
    preferred_read_replica: int = -1


ProduceResults = dict[TopicPartition, ProducePartitionResult]

# Produce errors that are the client's (Kafka does not count them as failed produce
# requests: ReplicaManager.appendToLocalLog's known exceptions).
CLIENT_PRODUCE_ERRORS = frozenset({ErrorCode.unknown_topic_or_partition, ErrorCode.not_leader_or_follower,
                                   ErrorCode.message_too_large, ErrorCode.record_list_too_large,
                                   ErrorCode.corrupt_message})
FetchResults = list[tuple[TopicPartition, FetchPartitionResult]]


@dataclass(frozen=True, slots=True)
class ReplicaManagerConfig:
    broker_id: int
    replica_lag_time_max_ms: int = 30_000
    replica_selector: str | None = None  # replica.selector.class; None: consumers read from leaders
    replica_fetch_max_bytes: int = 1 << 20  # replica.fetch.max.bytes: a follower's bytes per partition and fetch


# --- delayed operations --------------------------------------------------------------------


class DelayedProduce(DelayedOperation):
    """acks=all: done when every partition's high watermark passed its batch, or a
    partition can no longer get there (not leader, ISR below min.insync.replicas)."""

    def __init__(self, delay_ms: int, replicas: ReplicaManager, results: ProduceResults,
                 required: dict[TopicPartition, int], callback: Callable[[ProduceResults], None]) -> None:
        super().__init__(delay_ms)
        self._replicas = replicas
        self._results = results
        self._required = required  # partitions still waiting -> the offset the HW must reach
        self._callback = callback

    def try_complete(self) -> bool:
        for tp, required_offset in list(self._required.items()):
            partition = self._replicas.partitions.get(tp)
            code = ErrorCode.not_leader_or_follower if partition is None else \
                partition.check_enough_replicas_reached(required_offset)
            if code is None:
                continue
            del self._required[tp]
            if code != ErrorCode.none:
                self._results[tp] = replace(self._results[tp], error=code, base_offset=-1)
        return self.force_complete() if not self._required else False

    def on_expiration(self) -> None:
        for tp in self._required:
            self._results[tp] = replace(self._results[tp], error=ErrorCode.request_timed_out, base_offset=-1)

    def on_complete(self) -> None:
        self._callback(self._results)


class DelayedFetch(DelayedOperation):
    """A fetch that waits for ``min_bytes`` (or an error) up to ``max_wait_ms``."""

    def __init__(self, replicas: ReplicaManager, params: FetchParams,
                 callback: Callable[[FetchResults], None]) -> None:
        super().__init__(params.max_wait_ms)
        self._replicas = replicas
        self._params = params
        self._callback = callback
        self._results: FetchResults = []

    def try_complete(self) -> bool:
        results, total, answer_now = self._replicas.read_from_local_log(self._params)
        if answer_now or total >= max(self._params.min_bytes, 1):
            self._results = results
            return self.force_complete()
        return False

    def on_expiration(self) -> None:
        self._results = self._replicas.read_from_local_log(self._params)[0]

    def on_complete(self) -> None:
        self._replicas.fetch_answered(self._params, self._results)
        self._callback(self._results)


def _next_offset_after(data: bytes) -> int:
    """The offset after the last whole batch of a read."""
    last = None
    for header, _ in iter_batches(data):
        last = header
    return last.next_offset if last is not None else 0


# --- the manager ------------------------------------------------------------------------------


class ReplicaManager:
    def __init__(self, config: ReplicaManagerConfig, logs: LogManager, clock: Callable[[], int],
                 scheduler: Scheduler, lease: LeadershipLease, controller: ControllerChannel,
                 leaders: LeaderEndPoints, metadata: PartitionMetadata,
                 on_leadership_change: Callable[[TopicPartition, bool], None] | None = None,
                 run_fetchers: bool = True, stats: ReplicaStats | None = None,
                 live_racks: Callable[[], Mapping[int, str | None]] | None = None,
                 leader_quota: ReplicaQuota | None = None, follower_quota: ReplicaQuota | None = None) -> None:
        self.config = config
        self.broker_id = config.broker_id
        self.logs = logs
        self.clock = clock
        self.lease = lease
        self.controller = controller
        self.leaders = leaders
        self.metadata = metadata
        self.on_leadership_change = on_leadership_change
        self.run_fetchers = run_fetchers  # False: a simulation drives `ReplicaFetcher.do_work` itself
        self.stats: ReplicaStats = stats if stats is not None else NoReplicaStats()
        # The live brokers and their broker.rack, for the replica selector.
        self.live_racks = live_racks if live_racks is not None else dict
        # Replication quotas: what this broker sends as leader, fetches as follower.
        self.leader_quota: ReplicaQuota = leader_quota if leader_quota is not None else NoReplicaQuota()
        self.follower_quota: ReplicaQuota = follower_quota if follower_quota is not None else NoReplicaQuota()
        self.partitions: dict[TopicPartition, Partition] = {}
        # The partitions led here with other replicas: the only ones the periodic ISR
        # check visits (a partition with no follower has no ISR to shrink).
        self._led_with_followers: dict[TopicPartition, Partition] = {}
        self.fetchers: dict[int, ReplicaFetcher] = {}
        self.produce_purgatory = Purgatory("Produce", scheduler)
        self.fetch_purgatory = Purgatory("Fetch", scheduler)
        self._lease_warning = RateLimitedWarning(log)
        self._tasks: set[asyncio.Task[None]] = set()
        self._shut_down = False

    # --- lookups ----------------------------------------------------------------------

    def partition_error(self, tp: TopicPartition) -> ErrorCode:
        """Why this broker cannot serve `tp` as leader, by what the metadata says."""
        leader = self.metadata.leader_of(tp)
        if leader is None:
            return ErrorCode.unknown_topic_or_partition
        if leader < 0:
            return ErrorCode.leader_not_available
        return ErrorCode.not_leader_or_follower

    def leader_partition(self, tp: TopicPartition) -> Partition:
        """The partition if this broker leads it now (within its lease), else
        PartitionError with the code a client should see."""
        partition = self.partitions.get(tp)
        if partition is None or not partition.is_leader:
            raise PartitionError(self.partition_error(tp))
        try:
            partition.leader_log_or_error()
        except PartitionError:
            raise PartitionError(self.partition_error(tp)) from None
        return partition

    def leader_partition_or_none(self, tp: TopicPartition) -> Partition | None:
        try:
            return self.leader_partition(tp)
        except PartitionError:
            return None

    def leading(self) -> list[TopicPartition]:
        return [tp for tp, p in self.partitions.items() if p.is_leader]

    # --- roles --------------------------------------------------------------------------

    def become_leader_or_follower(self, states: Iterable[tuple[TopicPartition, LeaderAndIsrState, LogConfig]],
                                  now_ms: int) -> list[tuple[TopicPartition, ErrorCode]]:
        """Apply a LeaderAndIsr request's partition states; an error per partition
        (STALE_CONTROLLER_EPOCH for a leader epoch older than one already applied)."""
        out: list[tuple[TopicPartition, ErrorCode]] = []
        if self._shut_down:  # a LeaderAndIsr that raced the broker's shutdown: too late to follow
            return [(tp, ErrorCode.not_leader_or_follower) for tp, _, _ in states]
        for tp, state, log_config in states:
            partition = self.partitions.get(tp)
            if partition is not None and state.leader_epoch < partition.leader_epoch:
                log.info("broker %d: ignoring LeaderAndIsr for %s-%d at leader epoch %d < %d", self.broker_id,
                         tp[0], tp[1], state.leader_epoch, partition.leader_epoch)
                out.append((tp, ErrorCode.stale_controller_epoch))
                continue
            plog = self.logs.create(tp[0], tp[1], log_config, now_ms)
            if partition is None or partition.log is not plog:
                partition = Partition(tp[0], tp[1], self.broker_id, plog, self.lease,
                                      self.config.replica_lag_time_max_ms, self._lease_warning,
                                      self.stats.topic(tp[0]))
                self.partitions[tp] = partition
            if state.leader == self.broker_id:
                self._stop_fetching(tp)
                was_leader = partition.is_leader
                partition.make_leader(state, now_ms)
                if any(b != self.broker_id for b in state.replicas):
                    self._led_with_followers[tp] = partition
                else:
                    self._led_with_followers.pop(tp, None)
                if not was_leader:
                    log.info("broker %d leads %s-%d (epoch %d)", self.broker_id, tp[0], tp[1], state.leader_epoch)
                    self._leadership_changed(tp, True)
                self._complete_delayed(tp)
            else:
                was_leader = partition.is_leader
                self._led_with_followers.pop(tp, None)
                changed = partition.make_follower(state)
                if was_leader:
                    log.info("broker %d no longer leads %s-%d", self.broker_id, *tp)
                    self._leadership_changed(tp, False)
                self._complete_delayed(tp)
                self._follow(partition, changed)
            out.append((tp, ErrorCode.none))
        return out

    def stop_replica(self, tp: TopicPartition, delete: bool) -> None:
        """Neither lead nor follow `tp` (StopReplica); delete its log if asked."""
        self._stop_fetching(tp)
        partition = self.partitions.pop(tp, None)
        self._led_with_followers.pop(tp, None)
        if partition is not None:
            if partition.is_leader:
                log.info("broker %d no longer leads %s-%d", self.broker_id, *tp)
                partition.make_offline()
                self._leadership_changed(tp, False)
            else:
                partition.make_offline()
        if delete:
            self.logs.delete(tp[0], tp[1])
        self._complete_delayed(tp)

    def resign_leadership(self) -> None:
        """The coordination session is gone: another broker may lead our partitions now.
        (Followers go on fetching; the controller's next LeaderAndIsr says more.)"""
        for tp in self.leading():
            self.stop_replica(tp, delete=False)

    def _leadership_changed(self, tp: TopicPartition, leader: bool) -> None:
        if self.on_leadership_change is not None:
            try:
                self.on_leadership_change(tp, leader)
            except Exception:
                log.exception("leadership change callback failed for %s-%d", *tp)

    def _follow(self, partition: Partition, restart: bool) -> None:
        tp, leader = partition.tp, partition.leader_id
        current = next((lid for lid, f in self.fetchers.items() if tp in f.partitions), None)
        if leader < 0 or leader == self.broker_id:
            self._stop_fetching(tp)
            return
        if current is not None and current != leader:
            self._stop_fetching(tp)
        address = self.leaders.address(leader)
        if address is None:
            log.info("broker %d: leader %d of %s-%d has no known address yet", self.broker_id, leader, *tp)
            return
        fetcher = self.fetchers.get(leader)
        if fetcher is None or fetcher.address != address:
            if fetcher is not None:
                self._spawn(fetcher.stop())
            fetcher = ReplicaFetcher(self.broker_id, leader, address, self.leaders.connect(leader, address),
                                     self.partitions.get, self.stats.replicated_in,
                                     self._follower_high_watermark_moved, self.follower_quota, self.clock,
                                     self.config.replica_fetch_max_bytes)
            self.fetchers[leader] = fetcher
            if self.run_fetchers:
                fetcher.start()
        if restart or tp not in fetcher.partitions:
            fetcher.add(tp, partition.leader_epoch)

    def _follower_high_watermark_moved(self, tp: TopicPartition) -> None:
        """Consumers reading from this follower (KIP-392) may have more now."""
        self.fetch_purgatory.check_and_complete(tp)

    def follow_unreached_leaders(self) -> None:
        """Start fetching for followed partitions whose leader had no known address when
        the role arrived (LeaderAndIsr before the UpdateMetadata that names the leader)."""
        if self._shut_down:
            return
        fetching = {tp for f in self.fetchers.values() for tp in f.partitions}
        for tp, partition in self.partitions.items():
            if not partition.is_leader and partition.leader_id >= 0 and tp not in fetching:
                self._follow(partition, True)

    def _stop_fetching(self, tp: TopicPartition) -> None:
        for fetcher in self.fetchers.values():
            fetcher.remove(tp)

    async def shutdown(self) -> None:
        """Stop fetching and answer every waiting request; roles sent afterwards are
        refused (the broker is going)."""
        self._shut_down = True
        fetchers, self.fetchers = list(self.fetchers.values()), {}
        for fetcher in fetchers:
            await fetcher.stop()
        self.produce_purgatory.expire_all()
        self.fetch_purgatory.expire_all()
        for task in list(self._tasks):
            task.cancel()

    # --- produce ------------------------------------------------------------------------

    def append_records(self, acks: int, timeout_ms: int, entries: Iterable[tuple[TopicPartition, bytes | None]],
                       callback: Callable[[ProduceResults], None], *, from_coordinator: bool = False) -> None:
        """Append each partition's batches as its leader; `callback` gets a result per
        partition once acks are satisfied (at once for acks 0 and 1). Only the
        transaction coordinator's writes (``from_coordinator``: WriteTxnMarkers) may
        hold control batches."""
        now = self.clock()
        results: ProduceResults = {}
        for tp, records in entries:
            if acks not in (0, 1, -1):
                results[tp] = ProducePartitionResult(ErrorCode.invalid_required_acks)
                continue
            results[tp] = self._append_to_leader(tp, records, acks, now, from_coordinator)
        if acks != -1:
            callback(results)
            return
        required = {tp: r.last_offset + 1 for tp, r in results.items() if r.error == ErrorCode.none}
        if not required:
            callback(results)
            return
        self.produce_purgatory.try_complete_else_watch(
            DelayedProduce(timeout_ms, self, results, required, callback), required)

    def _append_to_leader(self, tp: TopicPartition, records: bytes | None, acks: int,
                          now_ms: int, from_coordinator: bool = False) -> ProducePartitionResult:
        try:
            partition = self.leader_partition(tp)
        except PartitionError as exc:
            return ProducePartitionResult(exc.code, message=exc.message)
        try:
            hw = partition.high_watermark
            info = partition.append_records_to_leader(records, acks, now_ms, from_coordinator=from_coordinator)
        except PartitionError as exc:
            if exc.code not in CLIENT_PRODUCE_ERRORS:
                partition.stats.produce_failed()
            return ProducePartitionResult(exc.code, message=exc.message)
        except RecordValidationError as exc:
            if exc.code not in CLIENT_PRODUCE_ERRORS:
                partition.stats.produce_failed()
            return ProducePartitionResult(exc.code, message=exc.message, record_errors=exc.record_errors)
        if not info.duplicate:
            # Kafka's numAppendedMessages: a v2 batch takes one offset per record.
            partition.stats.appended(len(records) if records else 0, info.last_offset - info.first_offset + 1)
            self.fetch_purgatory.check_and_complete(tp)  # followers waiting for data
            if partition.high_watermark != hw:
                self.produce_purgatory.check_and_complete(tp)
        return ProducePartitionResult(ErrorCode.none, info.first_offset, info.log_append_time, info.log_start_offset,
                                      last_offset=info.last_offset)

    def append_internal(self, tp: TopicPartition, records: bytes, timeout_ms: int,
                        callback: Callable[[ProducePartitionResult], None]) -> None:
        """A coordinator's write (group metadata, offsets): acks=all, as Kafka's."""
        self.append_records(-1, timeout_ms, [(tp, records)], lambda results: callback(results[tp]))

    # --- fetch --------------------------------------------------------------------------

    def fetch_records(self, params: FetchParams, callback: Callable[[FetchResults], None]) -> None:
        """Serve a fetch now if it has enough (or an error), else when it has or at
        ``max_wait_ms``. A follower's fetch offsets are recorded first."""
        if params.is_follower:
            self._update_follower_fetch_state(params)
        results, total, answer_now = self.read_from_local_log(params)
        if answer_now or total >= max(params.min_bytes, 1) or params.max_wait_ms <= 0 or not params.partitions:
            self.fetch_answered(params, results)
            callback(results)
            return
        self.fetch_purgatory.try_complete_else_watch(DelayedFetch(self, params, callback),
                                                     [tp for tp, _ in params.partitions])

    def fetch_answered(self, params: FetchParams, results: FetchResults) -> None:
        """Count what a fetch is answered with, once (Kafka: a consumer's bytes per topic,
        a follower's as replication bytes out)."""
        partitions = self.partitions
        if params.is_follower:
            self.stats.replicated_out(sum(len(r.records) for _, r in results))
            # Kafka's leader quota counts the bytes of every throttled replica it sends.
            throttled = 0
            for tp, r in results:
                partition = partitions.get(tp)
                if r.records and partition is not None and partition.leader_throttled:
                    throttled += len(r.records)
            if throttled:
                self.leader_quota.record(throttled, self.clock())
            return
        for tp, r in results:
            partition = partitions.get(tp)
            if partition is not None and r.error == ErrorCode.none:
                partition.stats.fetched(len(r.records))

    def _update_follower_fetch_state(self, params: FetchParams) -> None:
        now = self.clock()
        for tp, request in params.partitions:
            partition = self.leader_partition_or_none(tp)
            if partition is None:
                continue
            if partition.update_follower_fetch_state(params.replica_id, request.fetch_offset, now,
                                                     request.log_start_offset):
                self._complete_delayed(tp)
            if partition.wants_to_expand(params.replica_id, now):
                self._propose_isr(partition, now)

    def readable_partition(self, tp: TopicPartition, params: FetchParams) -> Partition:
        """The partition a fetch may read here: the leader's, or (a consumer that sent
        its rack, KIP-392) a follower's; else PartitionError with the client's code."""
        if params.fetch_only_leader:
            return self.leader_partition(tp)
        partition = self.partitions.get(tp)
        if partition is not None and partition.is_leader:
            return self.leader_partition(tp)  # within its lease
        if partition is None or partition.leader_id < 0:
            raise PartitionError(self.partition_error(tp))
        return partition

    def read_from_local_log(self, params: FetchParams) -> tuple[FetchResults, int, bool]:
        """One pass over the requested partitions: (results, bytes read, answer now: an
        error, or a consumer sent to another replica).

        The request's ``max_bytes`` bounds the answer across partitions; only the first
        partition with data may exceed it, by one whole batch (KIP-74), so a consumer
        always progresses."""
        remaining = params.max_bytes if params.max_bytes > 0 else 0x7FFFFFFF
        total = 0
        answer_now = False
        out: FetchResults = []
        # Only a consumer that names its rack can be sent elsewhere (a rackless one: the leader).
        selector = self.config.replica_selector if params.client_rack and not params.is_follower else None
        for tp, request in params.partitions:
            try:
                partition = self.readable_partition(tp, params)
                partition.check_leader_epoch(request.current_leader_epoch)
            except PartitionError as exc:
                out.append((tp, FetchPartitionResult(exc.code)))
                answer_now = True
                continue
            plog = partition.log
            hw = partition.high_watermark
            lso = plog.last_stable_offset
            if selector is not None and partition.leader_state is not None:
                preferred = preferred_read_replica(partition.leader_state, plog.log_end_offset, request.fetch_offset,
                                                   params.client_rack, self.live_racks(), self.clock())
                if preferred is not None:
                    out.append((tp, FetchPartitionResult(ErrorCode.none, hw, lso, plog.log_start_offset,
                                                         preferred_read_replica=preferred)))
                    answer_now = True
                    continue
            data = b""
            code = ErrorCode.none
            limit = min(request.max_bytes, remaining)
            if params.is_follower and self._leader_throttles(partition, params.replica_id):
                limit = 0  # answered without records; the follower asks again
            elif limit > 0 or total == 0:
                # Followers copy the whole log; consumers see only what is replicated
                # (below the high watermark: a follower's own, which trails its leader's),
                # read_committed ones only what is decided.
                max_offset = None if params.is_follower else lso if params.read_committed else hw
                try:
                    data = plog.read(request.fetch_offset, max(limit, 1), max_offset=max_offset, min_one=total == 0)
                except OffsetOutOfRangeError:
                    # From a follower past its log end, a consumer goes back to the leader
                    # (Kafka's clients do so on OFFSET_OUT_OF_RANGE from a follower).
                    code = ErrorCode.offset_out_of_range
                    answer_now = True
            aborted = None
            if data and params.read_committed:
                upper = _next_offset_after(data)
                aborted = tuple((t.producer_id, t.first_offset)
                                for t in plog.collect_aborted_transactions(request.fetch_offset, upper))
            total += len(data)
            remaining -= len(data)
            out.append((tp, FetchPartitionResult(code, hw, lso, plog.log_start_offset, data, aborted)))
        return out, total, answer_now

    def _leader_throttles(self, partition: Partition, follower_id: int) -> bool:
        """Kafka's shouldLeaderThrottle: a throttled replica, a follower not in the ISR,
        and this broker's leader replication rate over its quota."""
        state = partition.leader_state
        return (state is not None and follower_id not in state.isr and partition.leader_throttled
                and self.leader_quota.is_quota_exceeded(self.clock()))

    # --- the ISR ------------------------------------------------------------------------

    def check_isr(self, now_ms: int) -> None:
        """Periodic: shrink the ISR of followers that fell behind. Visits only the
        partitions led here that have followers."""
        for partition in list(self._led_with_followers.values()):
            state = partition.leader_state
            if state is not None and state.out_of_sync(now_ms):
                self._propose_isr(partition, now_ms)

    def _propose_isr(self, partition: Partition, now_ms: int) -> None:
        state = partition.leader_state
        new_isr = partition.propose_isr(now_ms)
        if state is None or new_isr is None:
            return
        self._spawn(self._alter_partition(partition, state, new_isr))

    async def _alter_partition(self, partition: Partition, state: LeaderState, new_isr: tuple[int, ...]) -> None:
        tp = partition.tp
        before = set(state.isr)
        isr: tuple[int, ...] | None = None
        leader_epoch = partition_epoch = -1
        try:
            result = await self.controller.alter_partition(tp, state.leader_epoch, new_isr, state.partition_epoch)
            if result is not None and result.error == ErrorCode.none:
                isr, leader_epoch, partition_epoch = result.isr, result.leader_epoch, result.partition_epoch
            elif result is not None:
                log.info("AlterPartition for %s-%d refused: %s", *tp, result.error.name)
        except (OSError, ConnectionError, TimeoutError) as exc:
            log.info("AlterPartition for %s-%d failed: %s", *tp, exc)
        finally:
            partition.isr_change_done(state, isr, leader_epoch, partition_epoch)
            if isr is not None and partition.leader_state is state and state.isr == set(isr):
                # Kafka's IsrShrinksPerSec / IsrExpandsPerSec: changes this leader made
                # (the controller dropping a dead broker's replica is not one).
                if before - state.isr:
                    self.stats.isr_shrunk()
                if state.isr - before:
                    self.stats.isr_expanded()
            self._complete_delayed(tp)

    def _complete_delayed(self, tp: TopicPartition) -> None:
        """Something about `tp` changed (high watermark, ISR, role): let waiting
        produces and fetches re-check."""
        self.produce_purgatory.check_and_complete(tp)
        self.fetch_purgatory.check_and_complete(tp)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

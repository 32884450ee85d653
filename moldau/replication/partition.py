"""One partition this broker hosts (Kafka's Partition): its log, its role, leader epoch,
ISR and high watermark, and the decisions a leader makes about them.

* As leader it validates and appends producer batches (`append_records_to_leader`),
  refusing acks=all when the ISR is smaller than ``min.insync.replicas`` (Kafka's
  NOT_ENOUGH_REPLICAS, checked before the append), tracks its followers' fetch offsets
  (`LeaderState`, pure), moves the high watermark, and says when an acks=all produce is
  acknowledged (`check_enough_replicas_reached`).
* It serves as leader only within the broker's leadership lease (`LeadershipLease`):
  a leader that cannot prove its ZooKeeper session is alive stops acknowledging.
* As follower it only holds the log; the fetcher appends to it.

No I/O beyond its own log; time is passed in.
"""

from __future__ import annotations

import logging
import time

from moldau.log.config import replica_throttled
from moldau.log.errors import LogError, RecordTooLargeError
from moldau.log.log import AppendInfo, Log
from moldau.log.producer_state import ProducerStateError
from moldau.log.validator import RecordValidationError, validate_producer_batches
from moldau.protocol.errors import ErrorCode
from moldau.replication.leader_state import LeaderState
from moldau.replication.seams import LeaderAndIsrState, LeadershipLease, NoTopicStats, TopicStats

log = logging.getLogger(__name__)


class PartitionError(Exception):
    """This partition cannot serve the request: a Kafka error code and why."""

    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        super().__init__(message or code.name)
        self.code = code
        self.message = message


class RateLimitedWarning:
    """A warning logged at most once per interval, with how many were suppressed."""

    def __init__(self, logger: logging.Logger, interval_s: float = 5.0) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._last = -float("inf")
        self._suppressed = 0

    def warn(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last < self._interval_s:
            self._suppressed += 1
            return
        if self._suppressed:
            message += f" ({self._suppressed} similar warning(s) suppressed)"
        self._suppressed = 0
        self._last = now
        self._logger.warning(message, *args)


class Partition:
    def __init__(self, topic: str, partition: int, local_id: int, log_: Log, lease: LeadershipLease,
                 lag_time_max_ms: int, lease_warning: RateLimitedWarning | None = None,
                 stats: TopicStats | None = None) -> None:
        self.topic = topic
        self.partition = partition
        self.local_id = local_id
        self.log = log_
        self.lease = lease
        self.lag_time_max_ms = lag_time_max_ms
        self.leader_id = -1
        self.leader_epoch = -1
        self.partition_epoch = 0
        self.replicas: tuple[int, ...] = ()
        self.isr: tuple[int, ...] = ()  # as the controller last said; the leader's own view is leader_state.isr
        self.leader_state: LeaderState | None = None
        self._lease_warning = lease_warning or RateLimitedWarning(log)
        self.stats: TopicStats = stats if stats is not None else NoTopicStats()  # the topic's counters

    @property
    def tp(self) -> tuple[str, int]:
        return (self.topic, self.partition)

    def __repr__(self) -> str:
        role = "leader" if self.is_leader else f"follower of {self.leader_id}"
        return f"Partition({self.topic}-{self.partition}, {role}, epoch {self.leader_epoch})"

    # --- roles ------------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self.leader_state is not None

    def make_leader(self, state: LeaderAndIsrState, now_ms: int) -> bool:
        """Become (or stay) leader at ``state.leader_epoch``; True if this is a new
        leadership or epoch."""
        current = self.leader_state
        self.replicas, self.isr = state.replicas, state.isr
        if current is not None and current.leader_epoch == state.leader_epoch:
            current.isr = set(state.isr)
            current.partition_epoch = state.partition_epoch
            current.replicas = list(state.replicas)
            self.partition_epoch = state.partition_epoch
            return False
        plog = self.log
        # Kafka's makeLeader: the new epoch starts at our log end now, so OffsetForLeaderEpoch
        # answers followers correctly even before the first append of this epoch.
        if state.leader_epoch >= 0:
            latest = plog.leader_epoch_cache.latest_epoch()
            if latest is None or state.leader_epoch > latest:
                # Not fsynced here (one fsync per partition made a LeaderAndIsr for
                # 10,000 partitions take minutes): the log syncs it at its next flush,
                # before its recovery point passes the entry (Log.flush).
                plog.leader_epoch_cache.assign(state.leader_epoch, plog.log_end_offset, durable=False)
        leader = LeaderState.become_leader(
            self.topic, self.partition, self.local_id, state.leader_epoch, state.partition_epoch,
            list(state.replicas), list(state.isr), plog.high_watermark, plog.log_end_offset, self.lag_time_max_ms,
            now_ms)
        if current is not None:  # same leader, newer epoch: keep what followers told us
            for b, f in current.followers.items():
                if b in leader.followers:
                    leader.followers[b] = f
        self.leader_state = leader
        self.leader_id, self.leader_epoch = self.local_id, state.leader_epoch
        self.partition_epoch = state.partition_epoch
        plog.update_high_watermark(leader.high_watermark)
        self.maybe_advance_high_watermark()
        return True

    def make_follower(self, state: LeaderAndIsrState) -> bool:
        """Follow ``state.leader``; True if the leader or epoch changed (the fetcher must
        truncate by epoch again)."""
        changed = self.leader_state is not None or (state.leader, state.leader_epoch) != (
            self.leader_id, self.leader_epoch)
        self.leader_state = None
        self.leader_id, self.leader_epoch = state.leader, state.leader_epoch
        self.partition_epoch = state.partition_epoch
        self.replicas, self.isr = state.replicas, state.isr
        return changed

    def make_offline(self) -> None:
        """StopReplica, or the session is gone: neither lead nor follow."""
        self.leader_state = None
        self.leader_id = -1

    def leader_log_or_error(self) -> Log:
        """The log, if this broker leads the partition and may act on it now."""
        if self.leader_state is None:
            raise PartitionError(ErrorCode.not_leader_or_follower)
        if not self.lease.valid():
            self._lease_warning.warn("broker %d: no recent ZooKeeper round trip; not serving %s-%d as leader",
                                     self.local_id, self.topic, self.partition)
            raise PartitionError(ErrorCode.not_leader_or_follower)
        return self.log

    def check_leader_epoch(self, current_leader_epoch: int) -> None:
        """KIP-320: a client or follower that knows another leader epoch than ours."""
        if current_leader_epoch < 0:
            return
        if current_leader_epoch < self.leader_epoch:
            raise PartitionError(ErrorCode.fenced_leader_epoch)
        if current_leader_epoch > self.leader_epoch:
            raise PartitionError(ErrorCode.unknown_leader_epoch)

    # --- the leader's side ------------------------------------------------------------

    @property
    def high_watermark(self) -> int:
        return self.log.high_watermark

    @property
    def in_sync_replicas(self) -> int:
        return len(self.leader_state.isr) if self.leader_state is not None else 0

    def append_records_to_leader(self, records: bytes | None, acks: int, now_ms: int, *,
                                 from_coordinator: bool = False) -> AppendInfo:
        """Validate and append a producer's batches; PartitionError or
        RecordValidationError if refused."""
        plog = self.leader_log_or_error()
        if acks == -1:  # min.insync.replicas is checked before the append (Kafka's NOT_ENOUGH_REPLICAS)
            min_isr = plog.config.min_insync_replicas
            isr = self.in_sync_replicas
            if isr < min_isr:
                raise PartitionError(
                    ErrorCode.not_enough_replicas,
                    f"The size of the current ISR {isr} is insufficient to satisfy the min.isr requirement of "
                    f"{min_isr} for partition {self.topic}-{self.partition}")
        buf = bytearray(records or b"")
        headers = validate_producer_batches(buf, plog.config, self.topic, self.partition, now_ms,
                                            from_coordinator=from_coordinator)
        try:
            info = plog.append(buf, headers, leader_epoch=self.leader_epoch, now_ms=now_ms,
                               check_sequences=not from_coordinator)
        except RecordTooLargeError as exc:
            raise RecordValidationError(ErrorCode.message_too_large, str(exc)) from None
        except ProducerStateError as exc:  # OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH
            raise RecordValidationError(ErrorCode(exc.error_code), str(exc)) from None
        except LogError as exc:
            raise RecordValidationError(ErrorCode.invalid_record, str(exc)) from None
        if not info.duplicate:
            self.maybe_advance_high_watermark()
        return info

    def check_enough_replicas_reached(self, required_offset: int) -> ErrorCode | None:
        """acks=all: None while the high watermark is below ``required_offset``, then
        NONE, or NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR shrank below
        ``min.insync.replicas`` meanwhile; NOT_LEADER_OR_FOLLOWER once no longer leader."""
        state = self.leader_state
        if state is None:
            return ErrorCode.not_leader_or_follower
        if state.high_watermark >= required_offset:
            if len(state.isr) < self.log.config.min_insync_replicas:
                return ErrorCode.not_enough_replicas_after_append
            return ErrorCode.none
        return None

    def update_follower_fetch_state(self, follower_id: int, fetch_offset: int, now_ms: int,
                                    log_start_offset: int = -1) -> bool:
        """A follower fetched from ``fetch_offset`` (so it has everything below); True if
        the high watermark moved."""
        state = self.leader_state
        if state is None:
            return False
        state.on_follower_fetch(follower_id, fetch_offset, self.log.log_end_offset, now_ms, log_start_offset)
        return self.maybe_advance_high_watermark()

    def maybe_advance_high_watermark(self) -> bool:
        state = self.leader_state
        if state is not None and state.maybe_advance_high_watermark(self.log.log_end_offset):
            self.log.update_high_watermark(state.high_watermark)
            return True
        return False

    def wants_to_expand(self, follower_id: int, now_ms: int) -> bool:
        state = self.leader_state
        return state is not None and follower_id not in state.isr and follower_id in state.ready_to_join(now_ms)

    def propose_isr(self, now_ms: int) -> tuple[int, ...] | None:
        """The ISR to ask the controller for (marked in flight), or None."""
        state = self.leader_state
        if state is None:
            return None
        new = state.proposed_isr(now_ms)
        if new is None:
            return None
        state.pending_isr = new
        return tuple(sorted(new))

    def isr_change_done(self, leader_state: LeaderState, isr: tuple[int, ...] | None, leader_epoch: int,
                        partition_epoch: int) -> None:
        """The controller answered (or not) the proposal made by `leader_state`."""
        if self.leader_state is not leader_state:
            return
        if isr is not None and leader_epoch == leader_state.leader_epoch:
            old = leader_state.isr
            leader_state.isr = set(isr)
            leader_state.partition_epoch = partition_epoch
            self.isr, self.partition_epoch = isr, partition_epoch
            log.info("broker %d: ISR of %s-%d %s -> %s", self.local_id, self.topic, self.partition, sorted(old),
                     sorted(leader_state.isr))
        leader_state.pending_isr = None
        self.maybe_advance_high_watermark()

    # --- replication quotas -----------------------------------------------------------

    @property
    def leader_throttled(self) -> bool:
        """This broker's replica is in the topic's leader.replication.throttled.replicas:
        as leader, it throttles what it sends followers that are not in sync."""
        return replica_throttled(self.log.config.leader_replication_throttled_replicas, self.partition, self.local_id)

    @property
    def follower_throttled(self) -> bool:
        """This broker's replica is in follower.replication.throttled.replicas: as
        follower, it throttles its fetching while not in sync."""
        return replica_throttled(self.log.config.follower_replication_throttled_replicas, self.partition,
                                 self.local_id)

    # --- the follower's side ----------------------------------------------------------

    def follower_high_watermark(self, leader_high_watermark: int) -> bool:
        """A follower's high watermark follows its leader's, never past its own log end;
        True if it moved (consumers reading from this follower may have more)."""
        before = self.log.high_watermark
        self.log.update_high_watermark(min(leader_high_watermark, self.log.log_end_offset))
        return self.log.high_watermark != before

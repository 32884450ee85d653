"""Log: one partition's durable log, a list of segments in Kafka's on-disk layout."""

from __future__ import annotations

import logging
import os
import re
import shutil
import uuid
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

from moldau.log.checkpoint import LEADER_EPOCH_CHECKPOINT, fsync_directory
from moldau.log.config import LONG_MAX, LogConfig
from moldau.log.errors import CheckpointError, LogError, OffsetOutOfRangeError, RecordTooLargeError
from moldau.log.leader_epoch import LeaderEpochCache
from moldau.log.offset_index import OffsetIndex
from moldau.log.producer_state import (
    NO_PRODUCER_ID,
    CompletedTxn,
    ProducerBatch,
    ProducerEntry,
    ProducerStateManager,
)
from moldau.log.segment import (
    CLEANED_SUFFIX,
    INDEX_SUFFIX,
    INT32_MAX,
    LOG_SUFFIX,
    SWAP_SUFFIX,
    TIME_INDEX_SUFFIX,
    LogSegment,
)
from moldau.log.time_index import NO_TIMESTAMP, TimeIndex
from moldau.log.transaction_index import AbortedTxn
from moldau.protocol.records import (
    CONTROL_TYPE_ABORT,
    CONTROL_TYPE_COMMIT,
    BatchHeader,
    CorruptRecordError,
    InvalidRecordError,
    assign_offset,
    control_batch_type,
    iter_batches,
    iter_records,
    read_header,
    set_log_append_time,
)

_SEGMENT_FILE = re.compile(r"^(\d{20})(\.log|\.index|\.timeindex|\.txnindex)$")
_SWAP_FILE = re.compile(r"^(\d{20})(\.log|\.index|\.timeindex|\.txnindex)\.swap$")
_PARTITION_DIR = re.compile(r"^(.+)-([0-9]+)$")
# Files a crash may leave behind: ours (.tmp), Kafka's (.deleted), and a segment the
# cleaner was writing (.cleaned), never part of the log yet.
_LEFTOVER_SUFFIXES = (".deleted", ".tmp", CLEANED_SUFFIX)
DELETE_DIR_SUFFIX = "-delete"

logger = logging.getLogger(__name__)


def parse_partition_dir(name: str) -> tuple[str, int] | None:
    """(topic, partition) from a directory named "<topic>-<partition>"; the topic may
    contain '-'. None for any other name."""
    match = _PARTITION_DIR.match(name)
    if match is None or name.endswith(DELETE_DIR_SUFFIX):
        return None
    return match.group(1), int(match.group(2))


@dataclass(frozen=True)
class AppendInfo:
    first_offset: int
    last_offset: int
    log_append_time: int  # -1 unless message.timestamp.type=LogAppendTime
    log_start_offset: int
    duplicate: bool = False  # an idempotent producer's retry, already in the log: not written again


class Log:
    """A partition's log: segments ordered by base offset, the last one active.

    Offsets increase from ``log_start_offset`` to ``log_end_offset`` (the next offset
    to assign); they are dense until the cleaner compacts the log, which leaves gaps
    where it removed whole batches. A read at an offset in a gap returns the next batch.
    ``recovery_point`` is the offset below which everything has been fsynced: after a
    crash only segments from the one holding it are re-read.
    ``high_watermark`` is kept in [log_start_offset, log_end_offset]; the replication
    layer moves it (``update_high_watermark``), the LogManager checkpoints it.
    ``leader_epoch_cache`` maps leader epochs to the offsets where they start, from the
    partition leader epoch of every batch appended (KIP-101).
    Single-threaded and synchronous; time is always passed in.
    """

    def __init__(
        self,
        directory: Path,
        topic: str,
        partition: int,
        config: LogConfig,
        segments: list[LogSegment],
        *,
        log_start_offset: int,
        recovery_point: int,
        now_ms: int,
        leader_epoch_cache: LeaderEpochCache | None = None,
        high_watermark: int = 0,
    ) -> None:
        self.directory = directory
        self.topic = topic
        self.partition = partition
        self.config = config
        self._segments = segments
        self._base_offsets = [s.base_offset for s in segments]
        self.log_start_offset = log_start_offset
        self.recovery_point = recovery_point
        self.leader_epoch_cache = (
            leader_epoch_cache
            if leader_epoch_cache is not None
            else LeaderEpochCache(directory / LEADER_EPOCH_CHECKPOINT)
        )
        self.high_watermark = min(max(high_watermark, log_start_offset), self.log_end_offset)
        self._now_ms = now_ms
        self._last_flush_ms = now_ms
        self._closed = False
        # The log cleaner's progress (Kafka's cleaner-offset-checkpoint): every record
        # below it has been compacted; None until this log is cleaned the first time.
        self.first_dirty_offset: int | None = None
        # Counts truncations, which change segments in place: a cleaning that started
        # before one is not swapped in (see replace_segments).
        self.truncations = 0
        self.producer_state = ProducerStateManager(directory)
        # A segment file may have been created since the last flush: the directory
        # itself needs an fsync too, or the new file may not survive a power loss.
        self._directory_dirty = True
        self._parent_dirty = False  # a new partition dir whose entry in the log dir is not fsynced yet
        # Told (by `_note_unflushed`) that this log has something to flush while flush.ms
        # is finite: the LogManager's periodic flush visits only such logs, so an idle
        # partition costs no CPU (set by the LogManager).
        self.on_unflushed: Callable[[Log], None] | None = None

    # --- opening --------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        directory: Path,
        config: LogConfig,
        *,
        now_ms: int,
        recovery_point: int = 0,
        log_start_offset: int = 0,
        recover: bool = True,
        high_watermark: int = 0,
    ) -> Log:
        """Open (or create) the log in ``directory``, named "<topic>-<partition>".

        With ``recover`` the segments from the one holding ``recovery_point`` on are
        re-read and cut at the first bad batch. The leader epoch cache comes from the
        ``leader-epoch-checkpoint``, truncated to the recovered log; it is rebuilt from
        the batches when the file is missing, does not parse, or disagrees with them.
        ``high_watermark`` (from the replication-offset-checkpoint) is clamped into
        [log start offset, log end offset]."""
        parsed = parse_partition_dir(directory.name)
        if parsed is None:
            raise LogError(f"{directory}: a log dir is named <topic>-<partition>")
        topic, partition = parsed
        created = not directory.is_dir()
        if created:
            # Its entry in the parent becomes durable at the log's first flush (with its
            # data), not here: creating 10,000 partitions would cost 10,000 fsyncs.
            directory.mkdir(parents=True)
        _complete_swaps(directory, config)
        base_offsets = _scan_directory(directory)
        segments = [LogSegment(directory, base) for base in base_offsets]
        try:
            recovered = _load_segments(segments, config, recover=recover, now_ms=now_ms,
                                       recovery_point=recovery_point)
            if not segments:
                segments.append(LogSegment.create(directory, log_start_offset))
                if created:  # it replaced no leftover file: nothing to sync (a flush of an idle log is free)
                    segments[0].dirty = False
            log_end_offset = segments[-1].next_offset
            log_start_offset = max(log_start_offset, segments[0].base_offset)
            reset_to_log_start = log_start_offset > log_end_offset
            if reset_to_log_start:
                # Data the checkpoint says existed is gone; never hand out its offsets
                # again, start empty at the log start offset.
                for segment in segments:
                    segment.delete()
                segments[:] = [LogSegment.create(directory, log_start_offset)]
                recovered = segments[:]
            for segment in recovered:
                segment.flush()
            cache = _load_leader_epoch_cache(directory, segments, recovered, log_start_offset)
        except BaseException:
            for segment in segments:
                segment.close()
            raise
        log_end_offset = segments[-1].next_offset
        log = cls(
            directory,
            topic,
            partition,
            config,
            segments,
            log_start_offset=log_start_offset,
            recovery_point=log_end_offset if recover else min(recovery_point, log_end_offset),
            now_ms=now_ms,
            leader_epoch_cache=cache,
            high_watermark=high_watermark,
        )
        log._parent_dirty = created
        # Only deletions here need the directory synced: a segment file created for an
        # empty log is recreated if a crash loses it (swaps completed above were synced).
        log._directory_dirty = reset_to_log_start
        # The aborted transactions of the segments recovery re-read are found again from
        # their batches: the producer state is replayed from the first of them.
        for segment in recovered:
            segment.txn_index.reset()
        try:
            log._load_producer_state(rebuild_from=min((s.base_offset for s in recovered), default=None))
        except BaseException:
            log.close(snapshot=False)
            raise
        return log

    # --- state ----------------------------------------------------------------------

    @property
    def log_end_offset(self) -> int:
        return self._segments[-1].next_offset

    @property
    def size_in_bytes(self) -> int:
        return sum(s.size for s in self._segments)

    @property
    def active_segment(self) -> LogSegment:
        return self._segments[-1]

    def segment_base_offsets(self) -> list[int]:
        return list(self._base_offsets)

    @property
    def closed(self) -> bool:
        return self._closed

    def segments_in_range(self, from_offset: int, to_offset: int) -> list[LogSegment]:
        """The segments that may hold offsets in [``from_offset``, ``to_offset``), oldest
        first (Kafka's logSegments(from, to)); none when the range is empty."""
        if to_offset <= from_offset:
            return []
        first = self._segment_index(from_offset)
        return [s for s in self._segments[first:] if s.base_offset < to_offset]

    def update_config(self, config: LogConfig) -> None:
        self.config = config
        if self.unflushed:  # flush.ms may have become finite
            self._note_unflushed()

    # --- high watermark and leader epochs -------------------------------------------

    def update_high_watermark(self, offset: int) -> int:
        """Set the high watermark, clamped into [log start offset, log end offset];
        returns the value set."""
        self.high_watermark = min(max(offset, self.log_start_offset), self.log_end_offset)
        self.producer_state.on_high_watermark_updated(self.high_watermark)
        return self.high_watermark

    @property
    def last_stable_offset(self) -> int:
        """What read_committed consumers may read up to (Kafka's LSO): the high watermark,
        or the first offset of the oldest transaction that is open, or whose marker is
        not below the high watermark yet, if that is lower."""
        first_unstable = self.producer_state.first_unstable_offset()
        if first_unstable is None:
            return self.high_watermark
        return max(min(first_unstable, self.high_watermark), self.log_start_offset)

    def collect_aborted_transactions(self, fetch_offset: int, upper_bound_offset: int) -> list[AbortedTxn]:
        """The aborted transactions overlapping [``fetch_offset``, ``upper_bound_offset``)
        (what a read_committed fetch of that range returns with it). Segments are scanned
        from the one holding ``fetch_offset`` until an entry's last stable offset reaches
        the bound: no transaction open before the bound ends after that (Kafka's
        collectAbortedTransactions)."""
        out: list[AbortedTxn] = []
        for segment in self._segments[self._segment_index(fetch_offset):]:
            for txn in segment.txn_index.entries:
                if txn.last_offset >= fetch_offset and txn.first_offset < upper_bound_offset:
                    out.append(txn)
                if txn.last_stable_offset >= upper_bound_offset:
                    return out
        return out

    @property
    def latest_epoch(self) -> int | None:
        """The latest leader epoch in the epoch cache, None if it is empty."""
        return self.leader_epoch_cache.latest_epoch()

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """OffsetForLeaderEpoch: (the largest epoch <= ``epoch``, where it ends), the log
        end offset for the latest epoch; (-1, -1) when undefined. See
        LeaderEpochCache.end_offset_for."""
        return self.leader_epoch_cache.end_offset_for(epoch, self.log_end_offset)

    def _segment_index(self, offset: int) -> int:
        """Index of the segment whose range holds ``offset`` (the first if below all)."""
        return max(bisect_right(self._base_offsets, offset) - 1, 0)

    # --- appends --------------------------------------------------------------------

    def append(
        self,
        batches: bytearray,
        headers: list[BatchHeader],
        *,
        leader_epoch: int,
        now_ms: int,
        check_sequences: bool = True,
    ) -> AppendInfo:
        """Assign offsets to validated producer batches (in place) and write them.
        ``check_sequences`` is False for a coordinator's writes (see
        ProducerStateManager.check)."""
        self._now_ms = now_ms
        self._check_sizes(batches, headers, check_max_message=True)
        log_append_time = self.config.message_timestamp_type == "LogAppendTime"
        first_offset = self.log_end_offset
        pending: dict[int, ProducerEntry] | None = None
        markers: list[tuple[int, int, int]] = []  # (index in headers, control type, coordinator epoch)
        if any(h.producer_id != NO_PRODUCER_ID for h in headers):
            pending = {}
            duplicate = self._check_producers(batches, headers, first_offset, now_ms if log_append_time else None,
                                              pending, markers, check_sequences)
            if duplicate is not None:
                return duplicate
        records = sum(h.last_offset_delta + 1 for h in headers)
        self._maybe_roll(
            [(h.size, now_ms if log_append_time else h.max_timestamp) for h in headers],
            len(batches),
            first_offset,
            first_offset + records - 1,
            now_ms,
        )
        if leader_epoch >= 0:
            # Before the write, as Kafka does: the checkpoint may get ahead of the log
            # (loading truncates it to the log end), never behind it.
            self.leader_epoch_cache.assign(leader_epoch, first_offset)
        offset = first_offset
        position = 0
        assigned: list[BatchHeader] = []
        for header in headers:
            assign_offset(batches, position, offset, leader_epoch)
            if log_append_time:
                set_log_append_time(batches, position, now_ms)
            assigned.append(read_header(batches, position))
            offset += header.last_offset_delta + 1
            position += header.size
        self._write(batches, assigned, now_ms)
        if pending:
            self.producer_state.commit(pending)
        for index, control_type, coordinator_epoch in markers:
            self._complete_txn(assigned[index], control_type, coordinator_epoch, replay=False)
        return AppendInfo(
            first_offset=first_offset,
            last_offset=offset - 1,
            log_append_time=now_ms if log_append_time else NO_TIMESTAMP,
            log_start_offset=self.log_start_offset,
        )

    def append_as_follower(self, batches: bytes | bytearray, headers: list[BatchHeader], *,
                           now_ms: int | None = None) -> AppendInfo:
        """Write batches as the leader stored them, byte for byte: offsets, partition
        leader epochs and timestamps are the leader's (nothing is stamped). Offsets only
        increase: the first batch starts at or after the log end offset and each after
        the one before. Gaps are allowed, as Kafka allows them: the leader's cleaner
        drops whole batches of a compacted log, so a fetch at an offset it removed
        returns the next batch it kept. The epoch cache takes each batch's partition
        leader epoch. ``now_ms`` (for rolling by segment.ms) defaults to the last time
        this log was told."""
        if now_ms is not None:
            self._now_ms = now_ms
        self._check_sizes(batches, headers, check_max_message=False)
        expected = self.log_end_offset
        for header in headers:
            if header.base_offset < expected:
                raise LogError(
                    f"{self.topic}-{self.partition}: follower batch at offset {header.base_offset} "
                    f"is below {expected}, the end of the log or of the batch before"
                )
            if header.last_offset_delta < 0:
                raise LogError(f"follower batch at offset {header.base_offset} has a negative last offset delta")
            expected = header.next_offset
        now_ms = self._now_ms
        self._maybe_roll(
            [(h.size, h.max_timestamp) for h in headers],
            len(batches),
            headers[0].base_offset,
            headers[-1].last_offset,
            now_ms,
        )
        cache = self.leader_epoch_cache
        for header in headers:
            if header.partition_leader_epoch >= 0:
                cache.assign(header.partition_leader_epoch, header.base_offset)
        self._write(batches, headers, now_ms)
        self._update_producers(iter_batches(batches), replay=False)
        return AppendInfo(
            headers[0].base_offset, headers[-1].last_offset, NO_TIMESTAMP, self.log_start_offset
        )

    # --- idempotent producers -------------------------------------------------------

    def _check_producers(
        self, batches: bytearray, headers: Sequence[BatchHeader], first_offset: int, append_time: int | None,
        pending: dict[int, ProducerEntry], markers: list[tuple[int, int, int]], check_sequences: bool = True,
    ) -> AppendInfo | None:
        """Check idempotent producers' batches before they are written (offsets as they
        will be assigned); fills ``pending`` with the producers' entries after the append
        and ``markers`` with the transaction markers (control batches) to apply after it.
        Returns the earlier write of a retried batch (a request holding it and nothing
        else); raises ProducerStateError for a batch to refuse."""
        offset = first_offset
        position = 0
        for index, header in enumerate(headers):
            position += header.size
            if header.is_control:
                control_type = _marker_type(memoryview(batches)[position - header.size : position])
                if control_type is not None:
                    coordinator_epoch = _coordinator_epoch(batches, position - header.size)
                    self.producer_state.check_marker(header.producer_id, header.producer_epoch, coordinator_epoch)
                    markers.append((index, control_type, coordinator_epoch))
            elif header.producer_id != NO_PRODUCER_ID:
                batch = ProducerBatch(header.producer_id, header.producer_epoch, header.base_sequence,
                                      header.last_offset_delta, header.is_transactional)
                duplicate = self.producer_state.check(batch, pending, check_sequence=check_sequences)
                if duplicate is not None:
                    if len(headers) != 1:
                        raise LogError(f"{self.topic}-{self.partition}: a retried idempotent batch "
                                       "must come alone in its produce request")
                    return AppendInfo(duplicate.first_offset, duplicate.last_offset, NO_TIMESTAMP,
                                      self.log_start_offset, duplicate=True)
                ts = append_time if append_time is not None else header.max_timestamp
                self.producer_state.applied(batch, offset, offset + header.last_offset_delta, ts, into=pending)
            offset += header.last_offset_delta + 1
        return None

    def _update_producers(self, batches: Iterable[tuple[BatchHeader, memoryview]], *, replay: bool,
                          state: ProducerStateManager | None = None) -> None:
        """Batches written as stored (follower appends, replay): producer state without
        checks; markers end transactions (an abort is indexed unless ``replay`` finds it
        indexed already). ``state``: another manager than the log's (a rebuild)."""
        state = self.producer_state if state is None else state
        for h, data in batches:
            if h.producer_id == NO_PRODUCER_ID:
                continue
            if h.is_control:
                control_type = _marker_type(data)
                if control_type is not None:
                    self._complete_txn(h, control_type, _coordinator_epoch(data, 0), replay=replay, state=state)
                continue
            state.update(ProducerBatch(h.producer_id, h.producer_epoch, h.base_sequence, h.last_offset_delta,
                                       h.is_transactional),
                         h.base_offset, h.last_offset, h.max_timestamp)

    def _complete_txn(self, header: BatchHeader, control_type: int, coordinator_epoch: int, *,
                      replay: bool, state: ProducerStateManager | None = None) -> CompletedTxn:
        """A marker batch is in the log: end its producer's transaction; an abort gets an
        entry in the ``.txnindex`` of the marker's segment."""
        state = self.producer_state if state is None else state
        completed = state.complete_txn(header.producer_id, header.producer_epoch, coordinator_epoch,
                                       header.base_offset, header.max_timestamp,
                                       control_type == CONTROL_TYPE_ABORT)
        if completed.is_aborted:
            index = self._segments[self._segment_index(header.base_offset)].txn_index
            indexed = index.last_offset
            if not (replay and indexed is not None and indexed >= completed.last_offset):
                index.append(AbortedTxn(completed.producer_id, completed.first_offset, completed.last_offset,
                                        state.last_stable_offset_after(completed)))
        return completed

    def _load_producer_state(self, rebuild_from: int | None = None) -> None:
        """Producer state as of the log end: the newest snapshot at or below it, then the
        batches after the snapshot replayed (all of them when there is none).

        With ``rebuild_from`` (the first segment recovery re-read) the transaction indexes
        from there are rebuilt first, by a replay of their own from the newest snapshot at
        or below that offset into a scratch state (Kafka's recoverSegment). The log's own
        state never comes from that replay: in a compacted log, batches before the newest
        snapshot may be gone (the cleaner keeps only each producer's last batch, and a
        truncation since may have removed the batch that was last), so replaying them
        would forget producers the snapshot still knows."""
        state = self.producer_state
        end = self.log_end_offset
        state.delete_snapshots(above=end)
        replayed_txns: list[CompletedTxn] = []
        if rebuild_from is not None and rebuild_from < end:
            scratch = ProducerStateManager(self.directory, state.expiration_ms)
            loaded = scratch.load_latest_snapshot(min(end, rebuild_from))
            self._replay(max(loaded if loaded is not None else 0, self.log_start_offset), end, scratch)
            replayed_txns = scratch.unreplicated_txns
        loaded = state.load_latest_snapshot(end)
        self._replay(max(loaded if loaded is not None else 0, self.log_start_offset), end, state)
        if replayed_txns:
            # A snapshot keeps open transactions, not completed ones whose marker may not be
            # replicated yet: the longer replay found those, and they hold the LSO back
            # until the high watermark passes their markers.
            known = {(t.producer_id, t.last_offset) for t in state.unreplicated_txns}
            state.unreplicated_txns = sorted(
                state.unreplicated_txns + [t for t in replayed_txns if (t.producer_id, t.last_offset) not in known],
                key=lambda t: t.last_offset)
        state.on_high_watermark_updated(self.high_watermark)

    def _replay(self, offset: int, end: int, state: ProducerStateManager) -> None:
        while offset < end:
            data = self.read(offset, 8 << 20)
            batches = [(h, b) for h, b in iter_batches(data) if h.base_offset >= offset]
            if not batches:
                break
            self._update_producers(batches, replay=True, state=state)
            offset = batches[-1][0].next_offset

    def remove_expired_producers(self, now_ms: int, expiration_ms: int) -> int:
        """Forget producers silent for ``producer.id.expiration.ms``."""
        self.producer_state.expiration_ms = expiration_ms
        return self.producer_state.remove_expired(now_ms)

    def _check_sizes(
        self, batches: bytes | bytearray, headers: Sequence[BatchHeader], *, check_max_message: bool
    ) -> None:
        if not headers:
            raise LogError("nothing to append")
        if sum(h.size for h in headers) != len(batches):
            raise LogError("batch headers do not describe the bytes to append")
        for header in headers:
            if check_max_message and header.size > self.config.max_message_bytes:
                raise RecordTooLargeError(
                    f"batch of {header.size} bytes is larger than max.message.bytes "
                    f"{self.config.max_message_bytes}"
                )
            if header.size > self.config.segment_bytes:
                raise RecordTooLargeError(
                    f"batch of {header.size} bytes is larger than segment.bytes "
                    f"{self.config.segment_bytes}"
                )

    def _maybe_roll(
        self,
        batches: list[tuple[int, int]],
        total_size: int,
        first_offset: int,
        last_offset: int,
        now_ms: int,
    ) -> None:
        """Roll before appending batches (size, max timestamp) holding offsets
        [``first_offset``, ``last_offset``] if they do not belong in the active segment.
        The new segment starts at ``first_offset``: a follower's first batch may start
        past the log end offset (a gap the leader's cleaner left)."""
        segment = self.active_segment
        if segment.is_empty:
            if last_offset - segment.base_offset > INT32_MAX:
                # An empty segment cannot hold offsets that far past its base: start it
                # over at the first batch (Kafka's roll does the same).
                segment.delete()
                self._segments[-1] = LogSegment.create(self.directory, first_offset)
                self._base_offsets[-1] = first_offset
                self._directory_dirty = True
                self._note_unflushed()
            return
        config = self.config
        n_offset, n_time = segment.index_entries_needed(batches, config.index_interval_bytes)
        if (
            segment.size + total_size > config.segment_bytes
            or (segment.created_ms is not None and now_ms - segment.created_ms >= config.segment_ms)
            or segment.offset_index.entries + n_offset
            > OffsetIndex.max_entries(config.segment_index_bytes)
            or segment.time_index.entries + n_time
            > TimeIndex.max_entries(config.segment_index_bytes)
            or last_offset - segment.base_offset > INT32_MAX
        ):
            self.roll(now_ms, first_offset)

    def _write(self, data: bytes | bytearray, headers: Sequence[BatchHeader], now_ms: int) -> None:
        segment = self.active_segment
        if segment.created_ms is None:
            segment.created_ms = now_ms
        end_before = self.log_end_offset
        segment.append(
            data,
            headers,
            index_interval_bytes=self.config.index_interval_bytes,
            max_index_bytes=self.config.segment_index_bytes,
        )
        self._note_unflushed()
        if self.log_end_offset - self.recovery_point >= self.config.flush_messages:
            try:
                self.flush()
            except OSError:
                # The disk refused to make these batches durable: take them out again
                # before anyone reads them, so they are neither served nor acknowledged,
                # and a producer's retry is written once. (They stayed before, unknown to
                # the producer state: every retry was written again. Found by the chaos
                # suite's fsync-errors scenario.)
                self.truncate_to(end_before)
                raise

    def roll(self, now_ms: int, base_offset: int | None = None) -> None:
        """Start a new active segment at the log end offset, or at ``base_offset`` if that
        is higher (no-op if the active one is empty). The old one is fsynced by the next
        flush."""
        self._now_ms = now_ms
        segment = self.active_segment
        if segment.is_empty:
            return
        segment.seal()
        new = LogSegment.create(self.directory, max(self.log_end_offset, base_offset or 0))
        self._segments.append(new)
        self._base_offsets.append(new.base_offset)
        self._directory_dirty = True
        self._note_unflushed()
        # Kafka snapshots producer state at every roll: after a crash only the active
        # segment is replayed to rebuild it.
        self.producer_state.take_snapshot(new.base_offset)

    # --- reads ----------------------------------------------------------------------

    def _check_fetch_offset(self, offset: int) -> None:
        if not self.log_start_offset <= offset <= self.log_end_offset:
            raise OffsetOutOfRangeError(
                f"offset {offset} is outside [{self.log_start_offset}, "
                f"{self.log_end_offset}] of {self.topic}-{self.partition}"
            )

    def read(self, fetch_offset: int, max_bytes: int, *, max_offset: int | None = None,
             min_one: bool = True) -> bytes:
        """Whole batches from the one holding ``fetch_offset``: at least one (KIP-74)
        unless ``min_one`` is False, then as many as fit in ``max_bytes``, none reaching
        ``max_offset``."""
        self._check_fetch_offset(fetch_offset)
        limit = self.log_end_offset if max_offset is None else min(max_offset, self.log_end_offset)
        if fetch_offset >= limit:
            return b""
        parts: list[bytes] = []
        remaining = max_bytes
        offset = fetch_offset
        for segment in self._segments[self._segment_index(fetch_offset) :]:
            found = segment.find_batch(offset)
            if found is None:
                continue
            data, next_offset, stopped = segment.read_batches(
                found[0], remaining, limit, min_one=min_one and not parts
            )
            if data:
                parts.append(data)
                remaining -= len(data)
                offset = next_offset
            if stopped or offset >= limit:
                break
        return b"".join(parts) if len(parts) != 1 else parts[0]

    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record, in offset order, whose timestamp is
        >= ``timestamp_ms`` (ListOffsets by time), or None."""
        for segment in self._segments[self._segment_index(self.log_start_offset) :]:
            if segment.is_empty or segment.max_timestamp < timestamp_ms:
                continue
            found = segment.find_offset_by_timestamp(timestamp_ms, self.log_start_offset)
            if found is not None:
                return found
        return None

    def max_timestamp_offset(self) -> tuple[int, int] | None:
        """(offset, timestamp) of the earliest record with the largest timestamp
        (ListOffsets -3, KIP-734), or None when the log is empty."""
        if self.log_start_offset >= self.log_end_offset:
            return None
        best: tuple[int, int, LogSegment] | None = None
        for segment in self._segments[self._segment_index(self.log_start_offset) :]:
            if segment.is_empty:
                continue
            if segment.base_offset < self.log_start_offset:
                ts, offset = segment.max_timestamp_from(self.log_start_offset)
            else:
                ts, offset = segment.max_timestamp, segment.offset_of_max_timestamp
            if best is None or ts > best[0]:
                best = (ts, offset, segment)
        if best is None:
            return None
        ts, offset, segment = best
        found = segment.first_record_with_timestamp(ts, offset, self.log_start_offset)
        return found if found is not None else (offset, ts)

    # --- compaction -----------------------------------------------------------------

    def replace_segments(self, cleaned: LogSegment, old: Sequence[LogSegment], truncations: int) -> bool:
        """Swap in a segment the cleaner wrote (``<base>.log.cleaned`` and its indexes,
        fsynced) for the adjacent segments ``old`` it was cleaned from (Kafka's
        replaceSegments). Returns False, changing nothing, when the log changed under the
        cleaner in a way that voids its work: closed or deleted, truncated since
        ``truncations`` was read, or ``old`` no longer a run of segments before the active
        one (retention or DeleteRecords removed some); the caller deletes ``cleaned``.

        The steps, each safe to crash after (``_complete_swaps`` and ``_scan_directory``
        finish or undo them when the log is opened again):
        1. rename the cleaned files to ``.swap``, the ``.log`` last, and fsync the
           directory: from here on the swap is decided;
        2. replace the old segments in the segment list and delete their files;
        3. rename the ``.swap`` files to their final names and fsync the directory."""
        if self._closed or truncations != self.truncations or not old:
            return False
        first = next((i for i, s in enumerate(self._segments) if s is old[0]), None)
        if (
            first is None
            or first + len(old) >= len(self._segments)
            or any(a is not b for a, b in zip(self._segments[first : first + len(old)], old, strict=True))
            or cleaned.base_offset != old[0].base_offset
        ):
            return False
        cleaned.change_suffix(SWAP_SUFFIX)
        fsync_directory(self.directory)
        self._segments[first : first + len(old)] = [cleaned]
        self._base_offsets[first : first + len(old)] = [cleaned.base_offset]
        for segment in old:
            segment.delete()
        cleaned.change_suffix("")
        fsync_directory(self.directory)
        return True

    # --- retention, deletion, truncation --------------------------------------------

    def delete_old_segments(self, now_ms: int) -> int:
        """Apply retention; returns the number of segments deleted."""
        self._now_ms = now_ms
        deleted = self._delete_segments(
            lambda _, nxt: nxt is not None and nxt.base_offset <= self.log_start_offset, now_ms
        )
        config = self.config
        if not config.delete:  # compact only: the cleaner removes what is obsolete
            return deleted
        if config.retention_ms >= 0:
            retention_ms = config.retention_ms
            deleted += self._delete_segments(
                lambda seg, nxt: self._below_high_watermark(seg, nxt)
                and now_ms - seg.largest_timestamp() > retention_ms,
                now_ms,
            )
        if config.retention_bytes >= 0:
            excess = self.size_in_bytes - config.retention_bytes

            def over_size(segment: LogSegment, nxt: LogSegment | None) -> bool:
                nonlocal excess
                if self._below_high_watermark(segment, nxt) and excess - segment.size >= 0:
                    excess -= segment.size
                    return True
                return False

            deleted += self._delete_segments(over_size, now_ms)
        return deleted

    def _below_high_watermark(self, segment: LogSegment, nxt: LogSegment | None) -> bool:
        """Whether every record of ``segment`` is below the high watermark: retention
        never deletes what followers may not have yet, or what consumers cannot read
        (Kafka's deletableSegments)."""
        upper = nxt.base_offset if nxt is not None else self.log_end_offset
        return upper <= self.high_watermark

    def _delete_segments(
        self, predicate: Callable[[LogSegment, LogSegment | None], bool], now_ms: int
    ) -> int:
        """Delete the oldest segments while ``predicate(segment, next segment)`` holds."""
        deletable: list[LogSegment] = []
        for i, segment in enumerate(self._segments):
            nxt = self._segments[i + 1] if i + 1 < len(self._segments) else None
            if nxt is None and segment.is_empty:
                break
            if not predicate(segment, nxt):
                break
            deletable.append(segment)
        if not deletable:
            return 0
        if len(deletable) == len(self._segments):
            self.roll(now_ms)  # the active segment goes too: keep an empty one at the LEO
        self._remove_oldest(len(deletable))
        return len(deletable)

    def _remove_oldest(self, count: int) -> None:
        doomed = self._segments[:count]
        del self._segments[:count]
        del self._base_offsets[:count]
        self.log_start_offset = max(self.log_start_offset, self._base_offsets[0])
        self.recovery_point = max(self.recovery_point, self.log_start_offset)
        self._log_start_moved()
        for segment in doomed:
            segment.delete()
        self.producer_state.delete_snapshots(below=self._base_offsets[0])

    def _log_start_moved(self) -> None:
        self.high_watermark = max(self.high_watermark, self.log_start_offset)
        self.leader_epoch_cache.truncate_from_start(self.log_start_offset)

    def delete_records_before(self, offset: int) -> int:
        """DeleteRecords: move the log start offset up to ``offset`` and delete the
        segments entirely below it. Returns the new log start offset."""
        self._check_fetch_offset(offset)
        self.log_start_offset = max(self.log_start_offset, offset)
        self._log_start_moved()
        self._delete_segments(
            lambda _, nxt: nxt is not None and nxt.base_offset <= self.log_start_offset,
            self._now_ms,
        )
        return self.log_start_offset

    def truncate_to(self, offset: int) -> None:
        """Remove every record at and above ``offset``; a batch holding ``offset`` goes
        whole, so the log end offset becomes that batch's base offset. The epoch cache
        loses the entries starting at or after the new end, the high watermark is
        lowered to it if above."""
        if offset < 0:
            raise LogError(f"cannot truncate to negative offset {offset}")
        self.truncations += 1
        if self.first_dirty_offset is not None:
            self.first_dirty_offset = min(self.first_dirty_offset, offset)
        if offset >= self.log_end_offset:
            # An epoch entry may start at the log end with nothing written in it (an
            # assignment whose append failed): drop it, as Kafka does.
            self.leader_epoch_cache.truncate_from_end(self.log_end_offset)
            return
        i = self._segment_index(offset)
        found = self._segments[i].find_batch(offset)
        boundary = min(offset, found[1].base_offset) if found is not None else offset
        if boundary <= self._base_offsets[0] or boundary < self.log_start_offset:
            self._truncate_fully_and_start_at(boundary)
            return
        while self._base_offsets[-1] >= boundary:
            self._base_offsets.pop()
            self._segments.pop().delete()
        self.active_segment.truncate_to(boundary)
        self.recovery_point = min(self.recovery_point, boundary)
        self.high_watermark = min(self.high_watermark, boundary)
        self.leader_epoch_cache.truncate_from_end(boundary)
        self._note_unflushed()
        self._load_producer_state()

    def _truncate_fully_and_start_at(self, offset: int) -> None:
        for segment in self._segments:
            segment.delete()
        new = LogSegment.create(self.directory, offset)
        self._directory_dirty = True
        self._note_unflushed()
        self._segments = [new]
        self._base_offsets = [offset]
        self.log_start_offset = offset
        self.recovery_point = offset
        self.high_watermark = offset
        # Every entry starts at or after the old log start, so at or after ``offset``
        # unless the log start was below it: in both cases the log holds none of them.
        self.leader_epoch_cache.truncate_from_end(offset)
        self.producer_state.delete_snapshots(above=-1)
        self.producer_state.clear()

    # --- durability -----------------------------------------------------------------

    @property
    def unflushed(self) -> bool:
        """Whether a flush has anything to make durable: batches above the recovery
        point, a segment written or a directory entry changed since the last flush."""
        # Segments below the recovery point were flushed already and not written since.
        return self.recovery_point != self.log_end_offset or self._directory_dirty or any(
            s.dirty for s in self._segments[self._segment_index(self.recovery_point) :])

    def _note_unflushed(self) -> None:
        """Something to flush was written: tell the LogManager, if flush.ms asks for
        flushes by time (its default, never, does not)."""
        if self.on_unflushed is not None and self.config.flush_ms < LONG_MAX:
            self.on_unflushed(self)

    def flush(self) -> None:
        """fsync every segment written since the last flush; recovery point = LEO."""
        if not self.unflushed:
            # Nothing appended since the last flush: nothing to make durable. (What may
            # still be unsynced: a new empty segment's or partition's directory entry, and
            # a new leader's epoch entry with no batch after it; a crash losing them loses
            # nothing, the log is recreated empty and the epoch is assigned again.) An
            # idle partition costs no fsync, at a clean shutdown of 10,000 of them too.
            self._last_flush_ms = self._now_ms
            return
        for segment in self._segments[self._segment_index(self.recovery_point) :]:
            segment.flush()
        # Epoch entries written without fsync (a new leader's) must be durable before
        # the recovery point passes them: recovery checks only batches above it.
        self.leader_epoch_cache.sync()
        if self._directory_dirty:
            fsync_directory(self.directory)
            self._directory_dirty = False
        if self._parent_dirty:
            fsync_directory(self.directory.parent)
            self._parent_dirty = False
        self.recovery_point = self.log_end_offset
        self._last_flush_ms = self._now_ms

    def flush_if_due(self, now_ms: int) -> None:
        """flush.ms: flush if that long has passed since the last flush (Kafka's
        lastFlushTime)."""
        self._now_ms = now_ms
        if now_ms - self._last_flush_ms >= self.config.flush_ms:
            self.flush()
            self._last_flush_ms = now_ms

    def close(self, *, snapshot: bool = True) -> None:
        """Close the segments; with ``snapshot`` first write the producer state at the
        log end, so the next open replays nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            if snapshot and self._snapshot_needed() and self.directory.is_dir():
                self.producer_state.take_snapshot(self.log_end_offset)
        finally:
            for segment in self._segments:
                segment.close()

    def _snapshot_needed(self) -> bool:
        """Whether the next open would replay batches without a snapshot at the log end
        (Kafka takes one at close only past the last one)."""
        latest = self.producer_state.latest_snapshot_offset
        if latest == self.log_end_offset:
            return False
        return not (latest is None and self.log_end_offset == self.log_start_offset
                    and not self.producer_state.producers)

    def delete(self) -> None:
        """Close and remove the directory. It is renamed to "...-delete" first, so a
        crash halfway leaves a directory that loading skips and removes."""
        self.close(snapshot=False)
        doomed = self.directory.with_name(
            f"{self.directory.name}.{uuid.uuid4().hex}{DELETE_DIR_SUFFIX}"
        )
        try:
            os.rename(self.directory, doomed)
        except FileNotFoundError:
            return
        shutil.rmtree(doomed, ignore_errors=True)

    def __repr__(self) -> str:
        return (
            f"Log({self.topic}-{self.partition}, start={self.log_start_offset}, "
            f"end={self.log_end_offset}, segments={len(self._segments)})"
        )


def _marker_type(batch: bytes | bytearray | memoryview) -> int | None:
    """COMMIT or ABORT for a transaction marker batch; None for another control batch
    (or one that does not parse: it ends no transaction)."""
    try:
        control_type = control_batch_type(bytes(batch))
    except (InvalidRecordError, CorruptRecordError):
        return None
    return control_type if control_type in (CONTROL_TYPE_ABORT, CONTROL_TYPE_COMMIT) else None


def _coordinator_epoch(batch: bytes | bytearray | memoryview, position: int) -> int:
    """The coordinator epoch in a marker's value (version int16, epoch int32), -1 when
    the value is not there."""
    header = read_header(batch, position)
    for record in iter_records(bytes(memoryview(batch)[position : position + header.size])):
        if record.value is not None and len(record.value) >= 6:
            return int.from_bytes(record.value[2:6], "big", signed=True)
    return -1


def _complete_swaps(directory: Path, config: LogConfig) -> None:
    """Finish the swaps of cleaned segments a crash interrupted (Kafka's rules for
    ``.swap`` files): a ``<base>.log.swap`` is a cleaned segment whose swap was decided.
    It is re-read (its indexes rebuilt), every other segment file with a base offset in
    [base, the swap's next offset) is one it replaces and is deleted, and it takes its
    final name. ``.swap`` index files without their ``.log.swap`` belong to a swap that
    was not decided (or whose log already has its final name) and are deleted; the
    index files of the final segment are then rebuilt from it."""
    swaps: list[int] = []
    # Names first, and Paths only for swap files: this runs for every partition at start.
    for path in (directory / name for name in os.listdir(directory) if name.endswith(SWAP_SUFFIX)):
        match = _SWAP_FILE.match(path.name)
        if match is None:
            continue
        if match.group(2) == LOG_SUFFIX:
            swaps.append(int(match.group(1)))
        elif not (directory / (match.group(1) + LOG_SUFFIX + SWAP_SUFFIX)).exists():
            path.unlink()
            # The .log may already have its final name: its indexes are rebuilt.
            for suffix in (INDEX_SUFFIX, TIME_INDEX_SUFFIX):
                (directory / (match.group(1) + suffix)).unlink(missing_ok=True)
    for base in sorted(swaps):
        segment = LogSegment(directory, base, suffix=SWAP_SUFFIX)
        try:
            segment.recover(config.index_interval_bytes, config.segment_index_bytes)
            end = max(segment.next_offset, base + 1)
            for path in directory.iterdir():
                match = _SEGMENT_FILE.match(path.name)
                if match is not None and base <= int(match.group(1)) < end:
                    logger.info("%s: deleting %s, replaced by a cleaned segment", directory, path.name)
                    path.unlink()
            segment.seal()
            segment.flush()
            segment.change_suffix("")
        finally:
            segment.close()
        logger.info("%s: completed the swap of the cleaned segment %d", directory, base)
    if swaps:
        fsync_directory(directory)


def _scan_directory(directory: Path) -> list[int]:
    """Base offsets of the segments in ``directory``, after removing what a crash may
    leave behind: temporary files and index files without a ``.log``."""
    logs: set[int] = set()
    indexes: list[tuple[int, Path]] = []
    for path in directory.iterdir():
        if path.name.endswith(_LEFTOVER_SUFFIXES) and path.is_file():
            path.unlink()
            continue
        match = _SEGMENT_FILE.match(path.name)
        if match is None:
            continue  # not ours (leader-epoch-checkpoint, partition.metadata, ...)
        base = int(match.group(1))
        if match.group(2) == LOG_SUFFIX:
            logs.add(base)
        else:
            indexes.append((base, path))
    for base, path in indexes:
        if base not in logs:
            path.unlink()
    return sorted(logs)


def _load_segments(
    segments: list[LogSegment],
    config: LogConfig,
    *,
    recover: bool,
    now_ms: int,
    recovery_point: int,
) -> list[LogSegment]:
    """Make the segments consistent (see Log.open); returns those that were re-read, and
    deletes (from ``segments`` and disk) every segment after a bad batch."""
    interval, index_bytes = config.index_interval_bytes, config.segment_index_bytes
    recover_from = len(segments)
    if recover and segments:
        bases = [s.base_offset for s in segments]
        recover_from = max(bisect_right(bases, recovery_point) - 1, 0)
    recovered: list[LogSegment] = []
    i = 0
    while i < len(segments):
        segment = segments[i]
        is_last = i == len(segments) - 1
        bound = None if is_last else segments[i + 1].base_offset
        cut = 0
        full = i >= recover_from or not segment.check_indexes(bound)
        if not full and is_last:
            tail = segment.load_tail()
            if tail is None:
                full = True
            else:
                cut = tail
        if full:
            cut = segment.recover(interval, index_bytes)
            recovered.append(segment)
        if not is_last and (cut or (full and segment.next_offset > segments[i + 1].base_offset)):
            # Nothing after a bad batch is kept (Kafka deletes the later segments too):
            # the log must stay a prefix of what was written.
            for later in segments[i + 1 :]:
                later.delete()
            del segments[i + 1 :]
        if i == len(segments) - 1 and not segment.is_empty:
            segment.created_ms = now_ms
        i += 1
    return recovered


def _load_leader_epoch_cache(
    directory: Path, segments: list[LogSegment], recovered: list[LogSegment], log_start_offset: int
) -> LeaderEpochCache:
    """The epoch cache of a just loaded log (see Log.open).

    The checkpoint is written before each append, so after a crash it may be ahead of
    the log (truncated here to the log end); it may be behind only by an entry a new
    leader wrote without fsync (`LeaderEpochCache.assign(durable=False)`), synced
    before the recovery point passes it, so such an entry's batches are among those
    recovery re-reads. It is checked against
    the batches of the segments recovery re-read and against the last batch, and
    rebuilt from all batches from the log start when it disagrees, is missing (a log
    written before Moldau kept one) or does not parse."""
    path = directory / LEADER_EPOCH_CHECKPOINT
    log_end_offset = segments[-1].next_offset
    try:
        loaded: LeaderEpochCache | None = LeaderEpochCache.load(path) if path.exists() else None
    except CheckpointError as exc:
        logger.warning("%s: rebuilding the leader epoch cache from the log: %s", path, exc)
        loaded = None
    if loaded is not None:
        # Not written: every load truncates the same way (a new leader's entry at the
        # log end goes here: 10,000 rewrites at the start of a broker with 10,000 partitions).
        loaded.truncate_from_end(log_end_offset, durable=False)
        loaded.truncate_from_start(log_start_offset, durable=False)
        last = _last_batch(segments, log_end_offset)
        to_check = chain(
            (h for segment in recovered for _, h in segment.headers_from(0)),
            [last] if last is not None else [],
        )
        if all(_epoch_agrees(loaded, h, log_start_offset) for h in to_check):
            return loaded
        logger.warning("%s: disagrees with the log's batches: rebuilding it", path)
    bases = [s.base_offset for s in segments]
    first = max(bisect_right(bases, log_start_offset) - 1, 0)
    cache = LeaderEpochCache(
        path,
        (
            (header.partition_leader_epoch, max(header.base_offset, log_start_offset))
            for segment in segments[first:]
            for _, header in segment.headers_from(0)
            if header.partition_leader_epoch >= 0 and header.last_offset >= log_start_offset
        ),
    )
    if len(cache) or log_end_offset > log_start_offset or path.exists():
        cache.flush()
    return cache


def _last_batch(segments: list[LogSegment], log_end_offset: int) -> BatchHeader | None:
    for segment in reversed(segments):
        if segment.base_offset < log_end_offset:
            found = segment.find_batch(log_end_offset - 1)
            return found[1] if found is not None else None
    return None


def _epoch_agrees(cache: LeaderEpochCache, header: BatchHeader, log_start_offset: int) -> bool:
    if header.partition_leader_epoch < 0 or header.last_offset < log_start_offset:
        return True
    return cache.epoch_for_offset(max(header.base_offset, log_start_offset)) == header.partition_leader_epoch

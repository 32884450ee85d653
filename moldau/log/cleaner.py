"""The log cleaner's work on one log (Kafka's ``Cleaner``): compaction.

A compacted log keeps, for every key, at least the last record written with it. The
cleaner reads the *dirty* section of a log, [first dirty offset, first uncleanable
offset), into an ``OffsetMap`` (key -> offset of the key's last record there), then
rewrites every segment from the log start up to where the map ends: a record is kept
when no later record with its key is in the map, when it lies past the mapped range,
and - for a tombstone (null value) - while its segment is newer than the *delete
horizon* (the last cleaned segment's mtime minus ``delete.retention.ms``), so a
tombstone survives at least one cleaning and ``delete.retention.ms`` after it. Records
without a key are dropped (a compacted topic refuses them at produce). A batch keeps
its base offset and last offset, so offsets keep increasing with gaps where whole
batches went; the last batch of an idempotent producer the partition still tracks is
kept, empty if need be, for its sequence number.

Adjacent small segments are cleaned into one (bounded by ``segment.bytes``, the index
size and the 32-bit relative offsets), written as ``<base>.log.cleaned``, fsynced and
swapped in by ``Log.replace_segments``. A ``CleaningRound`` splits that work between
threads: it is prepared and swapped on the event loop (which owns the Log), while
``build_offset_map`` and ``clean_group`` read the old segments through file
descriptors of their own and write the new one in a worker thread. A round started
before a truncation, or before retention removed its segments, is not swapped in.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from moldau.log.checkpoint import fsync_directory
from moldau.log.errors import LogError
from moldau.log.log import Log
from moldau.log.segment import CLEANED_SUFFIX, INT32_MAX, LogSegment, read_batches_from_file
from moldau.log.throttler import Throttler
from moldau.protocol.records import BatchHeader, RawRecord, filter_batch, iter_raw_records, read_header

# Kafka's SkimpyOffsetMap stores a 16-byte MD5 of the key and an 8-byte offset per entry;
# log.cleaner.dedupe.buffer.size is converted to entries the same way, so the setting
# bounds the same number of keys per cleaning here as in Kafka.
OFFSET_MAP_ENTRY_BYTES = 24
_WRITE_CHUNK = 1 << 20


class CleaningAbortedError(LogError):
    """The round was aborted (broker shutting down) while a worker thread ran it."""


def offset_map_capacity(dedupe_buffer_size: int, load_factor: float = 0.9) -> int:
    """How many keys one cleaning may map (Kafka: buffer slots times the load factor)."""
    return max(1, int(dedupe_buffer_size // OFFSET_MAP_ENTRY_BYTES * load_factor))


class OffsetMap:
    """Key -> the offset of the last record with that key in [start, ``end_offset``).

    ``end_offset`` is where mapping stopped: the first uncleanable offset, or, when the
    map filled up first, the base offset of the first batch it could not take (Kafka
    cleans only the prefix of the dirty section that fits). Records at or past it are
    never removed by this map."""

    def __init__(self, capacity: int, start: int) -> None:
        self.capacity = capacity
        self.start = start
        self.end_offset = start
        self._offsets: dict[bytes, int] = {}

    def __len__(self) -> int:
        return len(self._offsets)

    def get(self, key: bytes) -> int | None:
        return self._offsets.get(key)

    def add_batch(self, batch: memoryview | bytes, header: BatchHeader, end: int, aborted: bool = False) -> bool:
        """Map the keyed records of one batch that are at or past ``start``; False (and
        nothing mapped) when the batch reaches ``end`` or its new keys do not fit. The
        records of an ``aborted`` transaction are not mapped: they must not make an
        earlier committed record of their key go."""
        if header.last_offset >= end:
            return False
        if header.is_control or aborted:
            self.end_offset = header.next_offset
            return True
        latest: dict[bytes, int] = {}
        for record in iter_raw_records(batch):
            if record.key is not None and record.offset >= self.start:
                latest[record.key] = record.offset
        new_keys = sum(1 for key in latest if key not in self._offsets)
        if len(self._offsets) + new_keys > self.capacity:
            return False
        self._offsets.update(latest)
        self.end_offset = header.next_offset
        return True


def should_retain(record: RawRecord, offset_map: OffsetMap, retain_deletes: bool) -> bool:
    """Kafka's rule for one record of a batch being cleaned."""
    if record.offset >= offset_map.end_offset:
        return True  # not covered by this cleaning
    if record.key is None:
        return False  # a compacted log has no use for it
    latest = offset_map.get(record.key)
    if latest is not None and record.offset < latest:
        return False  # a later record has the same key
    return record.has_value or retain_deletes


def clean_batch(
    batch: memoryview | bytes,
    header: BatchHeader,
    offset_map: OffsetMap,
    retain_deletes: bool,
    producer_last_offsets: Mapping[int, int],
) -> memoryview | bytes | bytearray | None:
    """The batch as the cleaned segment holds it: the same bytes when every record
    stays, None when none does, otherwise rewritten (``filter_batch``). Control batches
    are kept (Kafka removes a marker once no record of its transaction is left and the
    delete horizon passed; Moldau keeps them all: readers need an ABORT marker to stop
    skipping its producer's records). The last batch of a producer
    the partition still tracks (``producer_last_offsets``: producer id -> last offset
    of its last batch) is kept even if empty, so that its sequence number survives a
    rebuild of the producer state from the log (Kafka's RETAIN_EMPTY)."""
    if header.is_control or header.base_offset >= offset_map.end_offset:
        return batch
    keep_empty = producer_last_offsets.get(header.producer_id) == header.last_offset
    return filter_batch(batch, lambda record: should_retain(record, offset_map, retain_deletes),
                        keep_empty=keep_empty)


@dataclass(frozen=True)
class SegmentSnapshot:
    """What a worker thread may know of a segment: taken on the event loop, it never
    touches ``segment`` (kept only to recognise it at the swap)."""

    segment: LogSegment
    base_offset: int
    path: Path
    size: int
    last_modified_ms: int
    index_bytes: int
    time_index_bytes: int

    @classmethod
    def of(cls, segment: LogSegment) -> SegmentSnapshot:
        return cls(segment, segment.base_offset, segment.log_path, segment.size, segment.last_modified_ms(),
                   segment.offset_index.size_in_bytes, segment.time_index.size_in_bytes)


def group_segments_by_size(
    segments: Sequence[SegmentSnapshot], max_size: int, max_index_size: int, first_uncleanable_offset: int
) -> list[list[SegmentSnapshot]]:
    """Adjacent segments to clean into one (Kafka's groupSegmentsBySize): a group grows
    while its log bytes stay within ``segment.bytes``, its index bytes within
    ``segment.index.bytes``, and its offsets within 32 bits of its first base offset
    (a segment's last offset is bounded by the next one's base, or by the first
    uncleanable offset for the last)."""
    groups: list[list[SegmentSnapshot]] = []
    i = 0
    while i < len(segments):
        group = [segments[i]]
        log_size, index_size, time_size = segments[i].size, segments[i].index_bytes, segments[i].time_index_bytes
        i += 1
        while i < len(segments):
            candidate = segments[i]
            upper = segments[i + 1].base_offset if i + 1 < len(segments) else first_uncleanable_offset
            if (
                log_size + candidate.size > max_size
                or index_size + candidate.index_bytes > max_index_size
                or time_size + candidate.time_index_bytes > max_index_size
                or upper - 1 - group[0].base_offset > INT32_MAX
            ):
                break
            group.append(candidate)
            log_size += candidate.size
            index_size += candidate.index_bytes
            time_size += candidate.time_index_bytes
            i += 1
        groups.append(group)
    return groups


def delete_horizon_ms(clean_segments: Sequence[SegmentSnapshot], delete_retention_ms: int) -> int:
    """Tombstones in segments last modified at or before this are dropped: the mtime of
    the last segment already cleaned minus ``delete.retention.ms`` (0, keeping every
    tombstone, before the first cleaning)."""
    if not clean_segments:
        return 0
    return clean_segments[-1].last_modified_ms - delete_retention_ms


class CleaningRound:
    """One cleaning of one log: built on the event loop from the log's state, then
    ``build_offset_map`` and ``clean_group`` (worker thread) and ``swap`` (event loop)."""

    def __init__(self, log: Log, first_dirty_offset: int, first_uncleanable_offset: int, map_capacity: int,
                 throttler: Throttler | None = None) -> None:
        self.log = log
        # log.cleaner.io.max.bytes.per.second: shared by the rounds of one broker.
        self._throttle = throttler.observe if throttler is not None else (lambda _n: None)
        self.directory = log.directory
        self.config = log.config
        self.first_dirty_offset = first_dirty_offset
        self.first_uncleanable_offset = first_uncleanable_offset
        self.map_capacity = map_capacity
        self.truncations = log.truncations
        # Never the active segment: the cleanable range ends at its base offset at most.
        self.segments = [
            SegmentSnapshot.of(s)
            for s in log.segments_in_range(0, first_uncleanable_offset)
            if s is not log.active_segment
        ]
        dirty_from = log.segments_in_range(first_dirty_offset, first_uncleanable_offset)
        self.dirty = [snap for snap in self.segments if any(snap.segment is s for s in dirty_from)]
        self.map_start_position = (
            self.dirty[0].segment.offset_index.lookup(first_dirty_offset)[1] if self.dirty else 0
        )
        clean = [snap for snap in self.segments if snap.base_offset < first_dirty_offset]
        self.delete_horizon_ms = delete_horizon_ms(clean, self.config.delete_retention_ms)
        self.producer_last_offsets = {
            producer_id: entry.last_offset for producer_id, entry in log.producer_state.producers.items()
        }
        # The aborted transactions of the dirty section (producer id -> [first, marker)):
        # their records are kept out of the offset map.
        self.aborted: dict[int, list[tuple[int, int]]] = {}
        for txn in log.collect_aborted_transactions(first_dirty_offset, first_uncleanable_offset):
            self.aborted.setdefault(txn.producer_id, []).append((txn.first_offset, txn.last_offset))
        self._aborted = threading.Event()
        self._swapped: set[int] = set()  # id() of the segments this round replaced

    def log_changed(self) -> bool:
        """Whether the log was closed, truncated, or lost one of the segments this round
        reads since it began (what would make its reads fail or its work void)."""
        log = self.log
        if log.closed or log.truncations != self.truncations:
            return True
        current = {id(s) for s in log.segments_in_range(0, self.first_uncleanable_offset)}
        return any(id(snap.segment) not in current and id(snap.segment) not in self._swapped
                   for snap in self.segments)

    def abort(self) -> None:
        """Make the worker thread stop at its next batch (the broker is stopping)."""
        self._aborted.set()

    def _check_aborted(self) -> None:
        if self._aborted.is_set():
            raise CleaningAbortedError(f"cleaning of {self.directory.name} aborted")

    # --- worker thread ------------------------------------------------------------------

    def build_offset_map(self) -> OffsetMap:
        """Map the dirty section, as much of it as fits."""
        offset_map = OffsetMap(self.map_capacity, self.first_dirty_offset)
        end = self.first_uncleanable_offset
        if end <= self.first_dirty_offset:
            offset_map.end_offset = end
            return offset_map
        for i, snap in enumerate(self.dirty):
            position = self.map_start_position if i == 0 else 0
            for header, batch in read_batches_from_file(snap.path, position, snap.size):
                self._check_aborted()
                self._throttle(header.size)
                if header.last_offset < self.first_dirty_offset:
                    continue
                if not offset_map.add_batch(batch, header, end, self._is_aborted(header)):
                    if header.last_offset < end and offset_map.end_offset == self.first_dirty_offset:
                        raise LogError(
                            f"{self.directory.name}: log.cleaner.dedupe.buffer.size holds {self.map_capacity} "
                            f"keys, fewer than the batch at offset {header.base_offset} has"
                        )
                    if header.last_offset >= end:
                        offset_map.end_offset = min(header.base_offset, end)
                    return offset_map
        offset_map.end_offset = end
        return offset_map

    def _is_aborted(self, header: BatchHeader) -> bool:
        if not header.is_transactional or header.is_control:
            return False
        return any(first <= header.base_offset < last for first, last in self.aborted.get(header.producer_id, ()))

    def groups(self, offset_map: OffsetMap) -> list[list[SegmentSnapshot]]:
        """The segments to rewrite: every one from the log start that may hold offsets
        below the end of the map, grouped."""
        cleanable = [snap for snap in self.segments if snap.base_offset < offset_map.end_offset]
        return group_segments_by_size(cleanable, self.config.segment_bytes, self.config.segment_index_bytes,
                                      self.first_uncleanable_offset)

    def clean_group(self, group: Sequence[SegmentSnapshot], offset_map: OffsetMap) -> LogSegment:
        """Write the records of ``group`` that the map keeps into a new segment named
        ``<base>.log.cleaned``, fsynced, with the mtime of the newest old segment."""
        cleaned = LogSegment.create(self.directory, group[0].base_offset, suffix=CLEANED_SUFFIX)
        try:
            pending = bytearray()
            headers: list[BatchHeader] = []
            for snap in group:
                retain_deletes = snap.last_modified_ms > self.delete_horizon_ms
                for header, batch in read_batches_from_file(snap.path, 0, snap.size):
                    self._check_aborted()
                    kept = clean_batch(batch, header, offset_map, retain_deletes, self.producer_last_offsets)
                    self._throttle(header.size + (len(kept) if kept is not None else 0))  # read + written
                    if kept is None:
                        continue
                    pending += kept
                    headers.append(header if kept is batch else read_header(kept))
                    if len(pending) >= _WRITE_CHUNK:
                        self._append(cleaned, pending, headers)
                        pending, headers = bytearray(), []
            if headers:
                self._append(cleaned, pending, headers)
            # Markers are never cleaned away, nor are the aborted records the index
            # entries cover: the entries go with them into the cleaned segment.
            cleaned.txn_index.replace(t for snap in group for t in snap.segment.txn_index.entries)
            self._check_aborted()
            cleaned.seal()
            cleaned.flush()
            cleaned.set_last_modified_ms(max(snap.last_modified_ms for snap in group))
            fsync_directory(self.directory)
        except BaseException:
            cleaned.delete()
            raise
        return cleaned

    def _append(self, cleaned: LogSegment, data: bytearray, headers: list[BatchHeader]) -> None:
        cleaned.append(data, headers, index_interval_bytes=self.config.index_interval_bytes,
                       max_index_bytes=self.config.segment_index_bytes)

    # --- event loop ---------------------------------------------------------------------

    def swap(self, cleaned: LogSegment, group: Sequence[SegmentSnapshot]) -> bool:
        """Swap ``cleaned`` in for ``group``; when the log changed meanwhile, delete it and
        return False."""
        if self.log.replace_segments(cleaned, [snap.segment for snap in group], self.truncations):
            self._swapped.update(id(snap.segment) for snap in group)
            return True
        cleaned.delete()
        return False


def clean_log(log: Log, first_dirty_offset: int, first_uncleanable_offset: int, map_capacity: int) -> int:
    """A whole cleaning round in the calling thread (tests, tools); returns the offset
    the map ended at, the log's new first dirty offset, or -1 if it was not swapped in."""
    cleaning = CleaningRound(log, first_dirty_offset, first_uncleanable_offset, map_capacity)
    offset_map = cleaning.build_offset_map()
    for group in cleaning.groups(offset_map):
        if not cleaning.swap(cleaning.clean_group(group, offset_map), group):
            return -1
    log.first_dirty_offset = offset_map.end_offset
    return offset_map.end_offset

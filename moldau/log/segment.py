"""LogSegment: one ``.log`` file of record batches with its offset and time indexes."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from moldau.log.errors import CorruptIndexError, LogError
from moldau.log.offset_index import OffsetIndex
from moldau.log.time_index import NO_TIMESTAMP, TimeIndex
from moldau.log.transaction_index import TXN_INDEX_SUFFIX, TransactionIndex
from moldau.protocol.records import (
    HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC,
    BatchHeader,
    crc_of,
    iter_records,
    read_header,
)

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
# Kafka's suffixes for a segment the cleaner is writing (.cleaned: not yet part of the log,
# deleted when found at startup) and one being swapped in (.swap: it replaces the segments
# in its offset range; startup completes the swap). They follow the file's own suffix:
# 00000000000000000000.log.cleaned.
CLEANED_SUFFIX = ".cleaned"
SWAP_SUFFIX = ".swap"
MIN_BATCH_LENGTH = HEADER_SIZE - LOG_OVERHEAD
_HEADER_SCAN_CHUNK = 8192  # a read's header scan covers an index interval in one pread
INT32_MAX = 2**31 - 1
_RECOVERY_CHUNK = 1 << 20
_SCAN_CHUNK = 1 << 13


def segment_file_name(base_offset: int, suffix: str) -> str:
    """Kafka names a segment's files by its base offset, 20 digits zero padded."""
    return f"{base_offset:020d}{suffix}"


class _Reader:
    """Reads a file forward through a buffer, so a scan of many small batches costs a
    few large preads instead of one per batch."""

    def __init__(self, fd: int, end: int, chunk: int) -> None:
        self._fd = fd
        self._end = end
        self._chunk = chunk
        self._start = 0
        self._buf = memoryview(b"")

    def read(self, position: int, size: int) -> memoryview:
        """``size`` bytes at ``position``, fewer only at the end of the file."""
        offset = position - self._start
        if offset < 0 or offset + size > len(self._buf):
            want = min(max(size, self._chunk), self._end - position)
            self._buf = memoryview(os.pread(self._fd, want, position)) if want > 0 else memoryview(b"")
            self._start = position
            offset = 0
        return self._buf[offset : offset + size]


def read_batches_from_file(path: Path, position: int, end: int) -> Iterator[tuple[BatchHeader, memoryview]]:
    """Each batch of a ``.log`` file from ``position`` to ``end`` with its bytes, read
    through a file descriptor of its own (the log cleaner's worker thread reads this
    way, never through a segment the event loop uses). A batch that is torn, has the
    wrong magic or fails its CRC raises LogError: the cleaner never copies one."""
    fd = os.open(path, os.O_RDONLY)
    try:
        reader = _Reader(fd, end, _RECOVERY_CHUNK)
        while position < end:
            if end - position < HEADER_SIZE:
                raise LogError(f"{path}: partial batch header at position {position}")
            header = read_header(reader.read(position, HEADER_SIZE))
            size = header.size
            if header.batch_length < MIN_BATCH_LENGTH or size > end - position or header.magic != MAGIC:
                raise LogError(f"{path}: bad batch at position {position}")
            batch = reader.read(position, size)
            if crc_of(batch, 0, size) != header.crc:
                raise LogError(f"{path}: batch at position {position} fails its CRC")
            yield header, batch
            position += size
    finally:
        os.close(fd)


class LogSegment:
    """One segment of a partition's log: ``<base offset>.log`` holds record batches byte
    for byte as appended, ``.index`` and ``.timeindex`` index them sparsely.

    The segment keeps its ``.log`` file open for appends (one ``os.write`` per produce
    request) and reads (``os.pread``). ``next_offset`` is exact only once the segment
    has been scanned (``recover`` or ``load_tail``) or appended to; the Log needs it only
    for its last segment, where it is the log end offset.
    """

    def __init__(self, directory: Path, base_offset: int, *, fresh: bool = False, suffix: str = "") -> None:
        self.directory = directory
        self.base_offset = base_offset
        self.suffix = suffix
        self.log_path = directory / (segment_file_name(base_offset, LOG_SUFFIX) + suffix)
        index_path = directory / (segment_file_name(base_offset, INDEX_SUFFIX) + suffix)
        time_index_path = directory / (segment_file_name(base_offset, TIME_INDEX_SUFFIX) + suffix)
        txn_index_path = directory / (segment_file_name(base_offset, TXN_INDEX_SUFFIX) + suffix)
        if fresh:
            for path in (self.log_path, index_path, time_index_path, txn_index_path):
                path.unlink(missing_ok=True)
        self.indexes_missing = not (index_path.exists() and time_index_path.exists())
        self._fd = os.open(self.log_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self.size = os.fstat(self._fd).st_size
        self.offset_index = OffsetIndex(index_path, base_offset)
        self.time_index = TimeIndex(time_index_path, base_offset)
        # The aborted transactions whose marker is in this segment; the Log fills it.
        self.txn_index = TransactionIndex(txn_index_path)
        self.next_offset = base_offset
        self.max_timestamp, self.offset_of_max_timestamp = self.time_index.last_entry()
        # Time of the first append, for segment.ms; None until something is appended.
        self.created_ms: int | None = None
        self._bytes_since_last_index_entry = self._bytes_after_last_index_entry()
        self.dirty = fresh

    @classmethod
    def create(cls, directory: Path, base_offset: int, suffix: str = "") -> LogSegment:
        """A new empty segment; leftover files with the same names are replaced."""
        return cls(directory, base_offset, fresh=True, suffix=suffix)

    # --- state ----------------------------------------------------------------------

    @property
    def is_empty(self) -> bool:
        return self.size == 0

    def largest_timestamp(self) -> int:
        """The largest record timestamp, or the file's mtime when no record has one
        (Kafka's rule for time-based retention)."""
        if self.max_timestamp > NO_TIMESTAMP:
            return self.max_timestamp
        return self.last_modified_ms()

    def last_modified_ms(self) -> int:
        """The ``.log`` file's mtime: when it was last appended to, or, for a segment
        the cleaner wrote, when the newest segment it was cleaned from was (the
        cleaner's tombstone horizon counts from it, as in Kafka)."""
        return os.stat(self.log_path).st_mtime_ns // 1_000_000

    def set_last_modified_ms(self, ms: int) -> None:
        os.utime(self.log_path, ns=(ms * 1_000_000, ms * 1_000_000))

    def first_batch_timestamp(self) -> int:
        """The max timestamp of the first batch (Kafka's rule for max.compaction.lag.ms),
        -1 when the segment is empty."""
        if self.size < HEADER_SIZE:
            return NO_TIMESTAMP
        return read_header(os.pread(self._fd, HEADER_SIZE, 0)).max_timestamp

    def _bytes_after_last_index_entry(self) -> int:
        if self.offset_index.entries == 0:
            return self.size
        return self.size - self.offset_index.last_entry()[1]

    # --- appends --------------------------------------------------------------------

    def index_entries_needed(
        self, batches: Sequence[tuple[int, int]], index_interval_bytes: int
    ) -> tuple[int, int]:
        """How many (offset index, time index) entries appending batches of these
        (size, max timestamp) would add: used to roll before an index overflows."""
        since = self._bytes_since_last_index_entry
        max_ts = self.max_timestamp
        last_indexed_ts = self.time_index.last_entry()[0]
        n_offset = n_time = 0
        for size, timestamp in batches:
            max_ts = max(max_ts, timestamp)
            if since > index_interval_bytes:
                n_offset += 1
                if max_ts > last_indexed_ts:
                    n_time += 1
                    last_indexed_ts = max_ts
                since = 0
            since += size
        return n_offset, n_time

    def append(
        self,
        data: bytes | bytearray | memoryview,
        headers: Sequence[BatchHeader],
        *,
        index_interval_bytes: int,
        max_index_bytes: int,
    ) -> None:
        """Write whole batches (offsets assigned, ``headers`` describing them in order)
        with one write, then index them."""
        position = self.size
        view = memoryview(data)
        try:
            written = 0
            while written < len(view):
                n = os.write(self._fd, view[written:])
                if n <= 0:
                    raise LogError(f"short write to {self.log_path}")
                written += n
        except BaseException as exc:
            # Leave no torn batch behind: the log is what it was before this append.
            os.ftruncate(self._fd, position)
            if isinstance(exc, OSError):
                raise LogError(f"write to {self.log_path} failed: {exc}") from exc
            raise
        self.size = position + len(view)
        self.dirty = True
        max_offset_entries = OffsetIndex.max_entries(max_index_bytes)
        max_time_entries = TimeIndex.max_entries(max_index_bytes)
        for header in headers:
            self._index_batch(
                header, position, index_interval_bytes, max_offset_entries, max_time_entries
            )
            position += header.size
        self.next_offset = headers[-1].next_offset

    def _index_batch(
        self,
        header: BatchHeader,
        position: int,
        index_interval_bytes: int,
        max_offset_entries: int,
        max_time_entries: int,
    ) -> None:
        """Kafka's LogSegment.append bookkeeping for one batch at ``position``."""
        if header.max_timestamp > self.max_timestamp:
            self.max_timestamp = header.max_timestamp
            self.offset_of_max_timestamp = header.last_offset
        if self._bytes_since_last_index_entry > index_interval_bytes:
            # A full index just gets sparser: lookups stay correct, scans get longer.
            if self.offset_index.entries < max_offset_entries:
                self.offset_index.append(header.last_offset, position)
            if self.time_index.entries < max_time_entries:
                self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
            self._bytes_since_last_index_entry = 0
        self._bytes_since_last_index_entry += header.size

    def seal(self) -> None:
        """Record the largest timestamp in the time index, so that it is known when the
        segment is opened again (Kafka's onBecomeInactiveSegment)."""
        if self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp):
            self.dirty = True

    # --- loading and recovery -------------------------------------------------------

    def check_indexes(self, next_offset_bound: int | None) -> bool:
        """Whether the index files can be trusted without re-reading the log."""
        if self.indexes_missing:
            return False
        try:
            self.offset_index.sanity_check(self.size, next_offset_bound)
            self.time_index.sanity_check(next_offset_bound)
        except CorruptIndexError:
            return False
        # Every non-empty segment written here has a time index entry (seal() forces
        # one); without it the segment's largest timestamp would be unknown.
        return self.is_empty or self.time_index.entries > 0

    def _valid_batches(
        self, position: int, next_offset: int, chunk: int
    ) -> Iterator[tuple[int, BatchHeader]]:
        """Each batch from ``position`` that is whole, has magic 2 and a matching CRC,
        starts at or after ``next_offset`` (then after the batch before) and ends within
        the segment's 32-bit relative offsets; stops at the first that is not.

        Offsets only increase: compaction leaves gaps between batches (the cleaner drops
        whole batches, and keeps the base offset and last offset delta of the ones it
        rewrites), so a batch may start past the end of the one before, never inside it."""
        reader = _Reader(self._fd, self.size, chunk)
        while self.size - position >= HEADER_SIZE:
            header = read_header(reader.read(position, HEADER_SIZE))
            size = header.size
            if (
                header.batch_length < MIN_BATCH_LENGTH
                or size > self.size - position
                or header.magic != MAGIC
                or header.last_offset_delta < 0
                or header.base_offset < next_offset
                or header.last_offset - self.base_offset > INT32_MAX
            ):
                return
            if crc_of(reader.read(position, size), 0, size) != header.crc:
                return
            yield position, header
            position += size
            next_offset = header.next_offset

    def recover(self, index_interval_bytes: int, max_index_bytes: int) -> int:
        """Re-read every batch, rebuild both indexes, and cut the file at the first batch
        that is torn or fails its checks. Returns the number of bytes cut."""
        self.offset_index.reset()
        self.time_index.reset()
        self.max_timestamp, self.offset_of_max_timestamp = NO_TIMESTAMP, self.base_offset
        self._bytes_since_last_index_entry = 0
        max_offset_entries = OffsetIndex.max_entries(max_index_bytes)
        max_time_entries = TimeIndex.max_entries(max_index_bytes)
        end = 0
        next_offset = self.base_offset
        for position, header in self._valid_batches(0, self.base_offset, _RECOVERY_CHUNK):
            self._index_batch(
                header, position, index_interval_bytes, max_offset_entries, max_time_entries
            )
            end = position + header.size
            next_offset = header.next_offset
        self.next_offset = next_offset
        self.indexes_missing = False
        self.dirty = True
        return self._cut(end)

    def load_tail(self) -> int | None:
        """Load the last segment of a cleanly shut down log: trust the indexes, re-read
        only the batches from the last offset index entry on (which gives the next
        offset), and cut a partial or bad batch at the end. Returns the bytes cut, or
        None when the index does not match the log (the caller then recovers)."""
        entry_offset, position = self.offset_index.last_entry()
        indexed = self.offset_index.entries > 0
        next_offset = self.base_offset
        end = position
        first = True
        expected = self.base_offset
        if indexed:
            if self.size - position < HEADER_SIZE:
                return None
            indexed_header = read_header(os.pread(self._fd, HEADER_SIZE, position))
            if indexed_header.last_offset != entry_offset:
                return None
            expected = indexed_header.base_offset
        for pos, header in self._valid_batches(position, expected, _SCAN_CHUNK):
            first = False
            if header.max_timestamp > self.max_timestamp:
                self.max_timestamp = header.max_timestamp
                self.offset_of_max_timestamp = header.last_offset
            end = pos + header.size
            next_offset = header.next_offset
        if indexed and first:
            return None  # the indexed batch itself is bad
        if self.time_index.entries and self.time_index.last_entry()[1] >= next_offset:
            return None
        self.next_offset = next_offset
        self._bytes_since_last_index_entry = end - position if indexed else end
        return self._cut(end)

    def _cut(self, end: int) -> int:
        cut = self.size - end
        if cut > 0:
            os.ftruncate(self._fd, end)
            self.size = end
            self.dirty = True
        return cut

    # --- reads ----------------------------------------------------------------------

    def headers_from(self, position: int) -> Iterator[tuple[int, BatchHeader]]:
        """(position, header) of each batch from ``position`` to the end (trusted)."""
        reader = _Reader(self._fd, self.size, _SCAN_CHUNK)
        while self.size - position >= HEADER_SIZE:
            header = read_header(reader.read(position, HEADER_SIZE))
            if header.batch_length < MIN_BATCH_LENGTH:
                raise LogError(f"{self.log_path}: bad batch length at position {position}")
            yield position, header
            position += header.size

    def find_batch(self, offset: int) -> tuple[int, BatchHeader] | None:
        """(position, header) of the first batch whose last offset is >= ``offset``, or
        None if the segment ends before it."""
        position = self.offset_index.lookup(offset)[1]
        for pos, header in self.headers_from(position):
            if header.last_offset >= offset:
                return pos, header
        return None

    def read_batch(self, position: int, size: int) -> bytes:
        return os.pread(self._fd, size, position)

    def read_batches(
        self, position: int, max_bytes: int, max_offset: int, min_one: bool
    ) -> tuple[bytes, int, bool]:
        """Whole batches from ``position``: as many as fit in ``max_bytes`` (but the first
        even if it does not, when ``min_one``), none holding an offset >= ``max_offset``.

        Returns (bytes, the offset after the last batch returned or -1, whether the read
        stopped at a limit rather than at the end of the segment).

        The batches are read with one pread of exactly their bytes: reading ``max_bytes``
        and slicing off the batch that does not fit copied up to ``max_bytes`` again per
        fetch. The batches up to the last index entry within both limits fit without a
        look at their headers (an entry is where a batch starts, with that batch's last
        offset): headers are read from the entry before it on, so that the offset after
        the last batch returned is read from a header too.
        """
        end = self.size
        stop = position + min(max_bytes, end - position)
        cursor = position
        within = self.offset_index.entries_within(stop, max_offset)
        if within >= 2:
            skip_to = self.offset_index.entry(within - 2)[1]
            if skip_to > position:
                cursor = skip_to
        reader = _Reader(self._fd, end, _HEADER_SCAN_CHUNK)
        next_offset = -1
        stopped = True
        while True:
            if cursor >= end:
                stopped = False
                break
            first = cursor == position
            if stop - cursor < HEADER_SIZE and not (first and min_one):
                break
            header = read_header(reader.read(cursor, HEADER_SIZE))
            if header.batch_length < MIN_BATCH_LENGTH:
                raise LogError(f"{self.log_path}: bad batch length at {cursor}")
            # Kafka's rule: a batch reaching the high watermark is not yet committed.
            if header.last_offset >= max_offset:
                break
            if cursor + header.size > stop:
                if first and min_one:  # KIP-74: the first batch even if too big
                    return os.pread(self._fd, header.size, position), header.next_offset, True
                break
            cursor += header.size
            next_offset = header.next_offset
        data = os.pread(self._fd, cursor - position, position) if cursor > position else b""
        return data, next_offset, stopped

    def find_offset_by_timestamp(self, timestamp: int, min_offset: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record at or above ``min_offset`` whose
        timestamp is >= ``timestamp``, or None if this segment has none."""
        indexed_ts, indexed_offset = self.time_index.lookup(timestamp - 1)
        # Every record up to indexed_offset has a timestamp <= indexed_ts < timestamp.
        start = indexed_offset + 1 if indexed_ts > NO_TIMESTAMP else self.base_offset
        start = max(start, min_offset)
        found = self.find_batch(start)
        if found is None:
            return None
        for position, header in self.headers_from(found[0]):
            if header.max_timestamp < timestamp:
                continue
            for record in iter_records(self.read_batch(position, header.size)):
                if record.offset >= start and record.timestamp >= timestamp:
                    return record.offset, record.timestamp
        return None

    def max_timestamp_from(self, min_offset: int) -> tuple[int, int]:
        """(largest timestamp, last offset of the first batch with it) among batches
        holding offsets >= ``min_offset``."""
        best_ts, best_offset = NO_TIMESTAMP, self.base_offset
        found = self.find_batch(min_offset)
        if found is None:
            return best_ts, best_offset
        for position, header in self.headers_from(found[0]):
            batch_max = header.max_timestamp
            if header.base_offset < min_offset:
                # The batch straddles min_offset: only its records from there count.
                batch = self.read_batch(position, header.size)
                batch_max = max(
                    (r.timestamp for r in iter_records(batch) if r.offset >= min_offset),
                    default=NO_TIMESTAMP,
                )
            if batch_max > best_ts:
                best_ts, best_offset = batch_max, header.last_offset
        return best_ts, best_offset

    def first_record_with_timestamp(
        self, timestamp: int, batch_offset: int, min_offset: int
    ) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record at or above ``min_offset`` with exactly
        ``timestamp`` in the batch holding ``batch_offset``."""
        found = self.find_batch(batch_offset)
        if found is None:
            return None
        position, header = found
        for record in iter_records(self.read_batch(position, header.size)):
            if record.offset >= min_offset and record.timestamp == timestamp:
                return record.offset, record.timestamp
        return None

    # --- truncation -----------------------------------------------------------------

    def truncate_to(self, offset: int) -> int:
        """Remove the batches whose last offset is >= ``offset`` (the caller makes
        ``offset`` a batch boundary). Returns the number of bytes removed."""
        found = self.find_batch(offset)
        self.next_offset = offset
        if found is None:
            return 0
        position = found[0]
        self.offset_index.truncate_to(offset)
        self.txn_index.truncate_to(offset)
        self.time_index.truncate_to(offset)
        cut = self._cut(position)
        # The time index is sparse: batches after its last entry may hold a larger
        # timestamp than that entry, so scan them.
        self.max_timestamp, self.offset_of_max_timestamp = self.time_index.last_entry()
        if self.time_index.entries:
            start = self.find_batch(self.offset_of_max_timestamp + 1)
            scan_from = start[0] if start is not None else self.size
        else:
            self.offset_of_max_timestamp = self.base_offset
            scan_from = 0
        for _, header in self.headers_from(scan_from):
            if header.max_timestamp > self.max_timestamp:
                self.max_timestamp = header.max_timestamp
                self.offset_of_max_timestamp = header.last_offset
        self._bytes_since_last_index_entry = self._bytes_after_last_index_entry()
        if self.size == 0:
            self.created_ms = None
        return cut

    # --- files ----------------------------------------------------------------------

    def flush(self) -> None:
        if self.dirty:
            os.fsync(self._fd)
            self.offset_index.flush()
            self.time_index.flush()
            self.txn_index.flush()
            self.dirty = False

    def close(self) -> None:
        if self._fd >= 0:
            self.seal()
            os.close(self._fd)
            self._fd = -1
        self.offset_index.close()
        self.time_index.close()

    def change_suffix(self, suffix: str) -> None:
        """Rename the three files to end in ``suffix`` instead of the current one (the
        indexes first: the ``.log`` name is what loading goes by). Open files stay open."""
        renames = [
            (index, index.path.with_name(index.path.name[: len(index.path.name) - len(self.suffix)] + suffix))
            for index in (self.offset_index, self.time_index)
        ]
        for index, target in renames:
            os.rename(index.path, target)
            index.path = target
        txn_path = self.txn_index.path
        self.txn_index.rename(txn_path.with_name(txn_path.name[: len(txn_path.name) - len(self.suffix)] + suffix))
        target = self.log_path.with_name(self.log_path.name[: len(self.log_path.name) - len(self.suffix)] + suffix)
        os.rename(self.log_path, target)
        self.log_path = target
        self.suffix = suffix

    def delete(self) -> None:
        """Close and remove the files; the .log goes first, so a crash in between
        leaves only index files, which loading removes."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self.log_path.unlink(missing_ok=True)
        self.offset_index.delete()
        self.time_index.delete()
        self.txn_index.delete()

    def __repr__(self) -> str:
        return f"LogSegment(base_offset={self.base_offset}, size={self.size})"

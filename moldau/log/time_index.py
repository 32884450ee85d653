"""TimeIndex: the ``.timeindex`` file of one segment, mapping timestamps to offsets."""

from __future__ import annotations

import struct
from bisect import bisect_left, bisect_right
from pathlib import Path

from moldau.log.errors import CorruptIndexError, LogError
from moldau.log.index_file import IndexFile, IndexFileOwner, read_index_file

ENTRY = struct.Struct(
    ">q"  # timestamp => Int64: the largest timestamp in the segment so far
    "i"  # relativeOffset => Int32: offset - the segment's base offset
)
ENTRY_SIZE = ENTRY.size  # 12
NO_TIMESTAMP = -1


class TimeIndex(IndexFileOwner):
    """A sparse map from timestamps to offsets in one segment.

    The file is a sequence of 12-byte entries, as in Kafka's TimeIndex.java: an 8-byte
    timestamp and a 4-byte offset relative to the segment's base offset (if the base
    offset was 50, offset 55 is stored as 5), big-endian.

    An entry (T, o) says: T is the largest timestamp of any record in the segment up to
    and including offset o, and o is the last offset of the first batch that reached T.
    So every record at or below o has a timestamp <= T. Entries are written at the same
    points as offset index entries, and only when T has grown, so timestamps strictly
    increase and offsets never decrease. When a segment is rolled or closed, a final
    entry with the segment's largest timestamp is forced in, so the last entry gives
    the segment's largest timestamp when it is opened again.
    """

    def __init__(self, path: Path, base_offset: int) -> None:
        self._file = IndexFile(path)
        self.base_offset = base_offset
        data = read_index_file(path)
        self._torn_bytes = len(data) % ENTRY_SIZE
        self._timestamps: list[int] = []
        self._relative_offsets: list[int] = []
        for timestamp, relative in ENTRY.iter_unpack(data[: len(data) - self._torn_bytes]):
            self._timestamps.append(timestamp)
            self._relative_offsets.append(relative)

    # --- queries --------------------------------------------------------------------

    @property
    def entries(self) -> int:
        return len(self._timestamps)

    @property
    def size_in_bytes(self) -> int:
        return self.entries * ENTRY_SIZE

    @staticmethod
    def max_entries(max_index_size: int) -> int:
        return max(max_index_size, 0) // ENTRY_SIZE

    def last_entry(self) -> tuple[int, int]:
        """(timestamp, offset) of the last entry, or (-1, base offset) if there is none."""
        if not self._timestamps:
            return NO_TIMESTAMP, self.base_offset
        return self._timestamps[-1], self.base_offset + self._relative_offsets[-1]

    def lookup(self, timestamp: int) -> tuple[int, int]:
        """The entry with the largest timestamp <= ``timestamp`` as (timestamp, offset), or
        (-1, base offset) when there is none."""
        i = bisect_right(self._timestamps, timestamp) - 1
        if i < 0:
            return NO_TIMESTAMP, self.base_offset
        return self._timestamps[i], self.base_offset + self._relative_offsets[i]

    # --- changes --------------------------------------------------------------------

    def maybe_append(self, timestamp: int, offset: int) -> bool:
        """Add (timestamp, offset) if the timestamp is above the last entry's."""
        if self._timestamps and timestamp <= self._timestamps[-1]:
            return False
        if timestamp <= NO_TIMESTAMP:
            return False
        relative = offset - self.base_offset
        if not 0 <= relative < 2**31:
            raise LogError(f"offset {offset} does not fit segment base {self.base_offset}")
        if self._relative_offsets and relative < self._relative_offsets[-1]:
            raise LogError(f"time index offset {offset} goes backwards in {self.path}")
        self._file.append(ENTRY.pack(timestamp, relative))
        self._timestamps.append(timestamp)
        self._relative_offsets.append(relative)
        return True

    def truncate_to(self, offset: int) -> None:
        """Remove every entry for ``offset`` and above."""
        keep = bisect_left(self._relative_offsets, offset - self.base_offset)
        self._truncate_entries(keep)

    def reset(self) -> None:
        self._truncate_entries(0)
        self._torn_bytes = 0

    def _truncate_entries(self, keep: int) -> None:
        if keep >= self.entries and not self._torn_bytes:
            return
        del self._timestamps[keep:]
        del self._relative_offsets[keep:]
        self._file.truncate(keep * ENTRY_SIZE)
        self._torn_bytes = 0

    def sanity_check(self, next_offset_bound: int | None = None) -> None:
        """Raise CorruptIndexError unless the file could have been written by
        maybe_append(); ``next_offset_bound`` (if known) is an offset no entry reaches."""
        if self._torn_bytes:
            raise CorruptIndexError(f"{self.path}: size is not a multiple of {ENTRY_SIZE}")
        prev_ts = NO_TIMESTAMP
        prev_rel = 0
        for timestamp, relative in zip(self._timestamps, self._relative_offsets, strict=True):
            if timestamp <= prev_ts or relative < prev_rel:
                raise CorruptIndexError(f"{self.path}: entries are out of order")
            if next_offset_bound is not None and self.base_offset + relative >= next_offset_bound:
                raise CorruptIndexError(
                    f"{self.path}: entry offset {self.base_offset + relative} is past "
                    f"the segment's end {next_offset_bound}"
                )
            prev_ts, prev_rel = timestamp, relative

"""OffsetIndex: the ``.index`` file of one segment, mapping offsets to file positions."""

from __future__ import annotations

import struct
import sys
from array import array
from bisect import bisect_left, bisect_right
from pathlib import Path

from moldau.log.errors import CorruptIndexError, LogError
from moldau.log.index_file import IndexFile, IndexFileOwner, read_index_file

ENTRY = struct.Struct(
    ">i"  # relativeOffset => Int32: offset - the segment's base offset
    "i"  # position => Int32: where the batch starts in the .log file
)
ENTRY_SIZE = ENTRY.size  # 8


class OffsetIndex(IndexFileOwner):
    """A sparse map from offsets to positions in a segment's ``.log`` file.

    The file is a sequence of 8-byte entries, as in Kafka's OffsetIndex.java: a 4-byte
    offset relative to the segment's base offset and a 4-byte physical position in the
    log file, both big-endian. If the base offset was 50, offset 55 is stored as 5;
    using relative offsets keeps an entry at 8 bytes.

    As in Kafka, an entry is written for a batch once more than ``index.interval.bytes``
    of log have been written since the previous entry; it holds the batch's *last*
    offset and the position where the batch *starts*. Entries are strictly increasing
    in both fields, so a lookup is a binary search: the entry with the largest offset
    at or below the target gives a position from which a forward scan of batch headers
    finds the batch holding the target.

    The file is not preallocated: entries are appended, and a copy is kept in memory;
    the file is open only while it is written (see index_file).
    """

    def __init__(self, path: Path, base_offset: int) -> None:
        self._file = IndexFile(path)
        self.base_offset = base_offset
        data = read_index_file(path)
        self._torn_bytes = len(data) % ENTRY_SIZE
        words = array("i")
        words.frombytes(data[: len(data) - self._torn_bytes])
        if sys.byteorder == "little":
            words.byteswap()
        self._relative_offsets: array[int] = words[0::2]
        self._positions: array[int] = words[1::2]

    # --- queries --------------------------------------------------------------------

    @property
    def entries(self) -> int:
        return len(self._relative_offsets)

    @property
    def size_in_bytes(self) -> int:
        return self.entries * ENTRY_SIZE

    @staticmethod
    def max_entries(max_index_size: int) -> int:
        """How many entries ``segment.index.bytes`` allows."""
        return max(max_index_size, 0) // ENTRY_SIZE

    def last_entry(self) -> tuple[int, int]:
        """(offset, position) of the last entry, or (base offset, 0) if there is none."""
        if not self._relative_offsets:
            return self.base_offset, 0
        return self.base_offset + self._relative_offsets[-1], self._positions[-1]

    def lookup(self, offset: int) -> tuple[int, int]:
        """The entry with the largest offset <= ``offset`` as (offset, position), or
        (base offset, 0) when every entry is above it (or there is none)."""
        i = bisect_right(self._relative_offsets, offset - self.base_offset) - 1
        if i < 0:
            return self.base_offset, 0
        return self.base_offset + self._relative_offsets[i], self._positions[i]

    def entries_within(self, position_limit: int, offset_limit: int) -> int:
        """How many entries, from the first, have a position at most ``position_limit``
        and an offset below ``offset_limit``."""
        return min(bisect_right(self._positions, position_limit),
                   bisect_left(self._relative_offsets, offset_limit - self.base_offset))

    def entry(self, n: int) -> tuple[int, int]:
        return self.base_offset + self._relative_offsets[n], self._positions[n]

    # --- changes --------------------------------------------------------------------

    def append(self, offset: int, position: int) -> None:
        relative = offset - self.base_offset
        if not 0 <= relative < 2**31:
            raise LogError(f"offset {offset} does not fit segment base {self.base_offset}")
        if self._relative_offsets and relative <= self._relative_offsets[-1]:
            raise LogError(
                f"index entry for offset {offset} is not above the last entry "
                f"{self.last_entry()[0]} in {self.path}"
            )
        self._file.append(ENTRY.pack(relative, position))
        self._relative_offsets.append(relative)
        self._positions.append(position)

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
        del self._relative_offsets[keep:]
        del self._positions[keep:]
        self._file.truncate(keep * ENTRY_SIZE)
        self._torn_bytes = 0

    def sanity_check(self, log_size: int, next_offset_bound: int | None = None) -> None:
        """Raise CorruptIndexError unless the file could have been written by append();
        ``next_offset_bound`` (if known) is an offset no entry reaches."""
        if self._torn_bytes:
            raise CorruptIndexError(f"{self.path}: size is not a multiple of {ENTRY_SIZE}")
        prev_offset = -1
        prev_position = -1
        for relative, position in zip(self._relative_offsets, self._positions, strict=True):
            if relative <= prev_offset or position <= prev_position or position >= log_size:
                raise CorruptIndexError(
                    f"{self.path}: entry ({self.base_offset + relative}, {position}) is out "
                    f"of order or past the end of a {log_size}-byte log"
                )
            if next_offset_bound is not None and self.base_offset + relative >= next_offset_bound:
                raise CorruptIndexError(
                    f"{self.path}: entry offset {self.base_offset + relative} is past "
                    f"the segment's end {next_offset_bound}"
                )
            prev_offset, prev_position = relative, position

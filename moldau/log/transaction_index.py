"""TransactionIndex: the ``.txnindex`` file of one segment, the aborted transactions
whose ABORT marker is in that segment (Kafka's TransactionIndex).

A read_committed consumer gets, with each fetched range, the aborted transactions that
overlap it, and drops their records; this index is where the broker finds them without
reading the log. Each entry is 34 bytes, big-endian, as in Kafka's ``AbortedTxn``::

    version            int16   0
    producer_id        int64   the producer whose transaction was aborted
    first_offset       int64   the transaction's first offset in this partition
    last_offset        int64   the offset of its ABORT marker
    last_stable_offset int64   the partition's last stable offset once the marker was
                               written (the first offset of the oldest transaction still
                               open, else the marker's offset + 1)

Entries are appended in marker order, so ``last_offset`` increases through the file.
The file is created on the first entry (a segment without aborted transactions has
none), kept in memory as well, and rebuilt by the log's recovery from the batches.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from moldau.log.errors import CorruptIndexError

TXN_INDEX_SUFFIX = ".txnindex"
ABORTED_TXN = struct.Struct(
    ">h"  # version => Int16 (0)
    "q"  # producerId => Int64
    "q"  # firstOffset => Int64
    "q"  # lastOffset => Int64
    "q"  # lastStableOffset => Int64
)
ABORTED_TXN_SIZE = ABORTED_TXN.size  # 34
ABORTED_TXN_VERSION = 0


@dataclass(frozen=True)
class AbortedTxn:
    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int

    def encode(self) -> bytes:
        return ABORTED_TXN.pack(ABORTED_TXN_VERSION, self.producer_id, self.first_offset, self.last_offset,
                                self.last_stable_offset)


class TransactionIndex:
    """The aborted transactions of one segment, in ``path`` (created on first append)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: list[AbortedTxn] = []
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return
        # A torn last entry (a crash mid-write) is dropped; recovery rewrites the index
        # of every segment it re-reads anyway.
        usable = len(data) - len(data) % ABORTED_TXN_SIZE
        for pos in range(0, usable, ABORTED_TXN_SIZE):
            version, pid, first, last, lso = ABORTED_TXN.unpack_from(data, pos)
            if version != ABORTED_TXN_VERSION:
                raise CorruptIndexError(f"{path}: aborted transaction entry version {version} at {pos}")
            self._entries.append(AbortedTxn(pid, first, last, lso))

    @property
    def entries(self) -> list[AbortedTxn]:
        return list(self._entries)

    @property
    def last_offset(self) -> int | None:
        """The marker offset of the newest entry."""
        return self._entries[-1].last_offset if self._entries else None

    def append(self, txn: AbortedTxn) -> None:
        if self._entries and txn.last_offset <= self._entries[-1].last_offset:
            raise ValueError(
                f"{self.path}: aborted transaction ending at {txn.last_offset} is not after "
                f"the last one, ending at {self._entries[-1].last_offset}")
        self._entries.append(txn)
        with open(self.path, "ab") as f:
            f.write(txn.encode())

    def collect(self, fetch_offset: int, upper_bound_offset: int) -> list[AbortedTxn]:
        """Entries of transactions that overlap [``fetch_offset``, ``upper_bound_offset``):
        the transaction started before the bound and its marker is at or after the fetch
        offset (Kafka's collectAbortedTxns)."""
        return [t for t in self._entries if t.last_offset >= fetch_offset and t.first_offset < upper_bound_offset]

    def truncate_to(self, offset: int) -> None:
        """Drop the entries whose marker is at or above ``offset``."""
        kept = [t for t in self._entries if t.last_offset < offset]
        if len(kept) != len(self._entries):
            self._rewrite(kept)

    def reset(self) -> None:
        """Forget every entry (the segment is re-read by recovery)."""
        self._rewrite([])

    def replace(self, entries: Iterable[AbortedTxn]) -> None:
        self._rewrite(list(entries))

    def _rewrite(self, entries: list[AbortedTxn]) -> None:
        self._entries = entries
        if not entries:
            self.path.unlink(missing_ok=True)
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(b"".join(t.encode() for t in entries))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def flush(self) -> None:
        if self.path.exists():
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def rename(self, target: Path) -> None:
        if self.path.exists():
            os.rename(self.path, target)
        self.path = target

    def delete(self) -> None:
        self._entries = []
        if self.path.exists():
            self.path.unlink()

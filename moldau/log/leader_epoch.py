"""LeaderEpochCache: which leader epoch wrote which offsets of a partition (KIP-101).

The cache is the sequence of (epoch, start offset) entries of a partition's log: epoch
``e`` covers the offsets from its start offset up to the next entry's start offset (the
last one up to the log end offset). Both epochs and start offsets strictly increase.
Followers ask the leader for the end offset of their latest epoch (OffsetForLeaderEpoch)
and truncate there instead of to their high watermark, which lost data in Kafka before
KIP-101/KIP-279.

The semantics follow Kafka's LeaderEpochFileCache: an assignment that conflicts with
later entries removes them, ``end_offset_for`` answers with the largest epoch <= the one
asked for and the start offset of the next one. The entries are persisted in the
partition dir as ``leader-epoch-checkpoint``, rewritten atomically on every change
(Kafka fsyncs on assign and flushes truncations in the background; Moldau does both
synchronously, so the file is never behind the cache).
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from moldau.log.checkpoint import LeaderEpochCheckpointFile

UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1

logger = logging.getLogger(__name__)


class EpochEntry(NamedTuple):
    epoch: int
    start_offset: int


class LeaderEpochCache:
    """The epoch entries of one partition, oldest first.

    ``path`` is the checkpoint file written after each change; None keeps the cache in
    memory only. Constructing a cache never writes: ``entries`` (e.g. read from a
    checkpoint) are normalised by assigning them in order, as Kafka does on load.
    """

    def __init__(self, path: Path | None, entries: Iterable[tuple[int, int]] = ()) -> None:
        self.path = path
        self._unsynced = False  # the checkpoint was written without fsync since the last sync
        self._entries: list[EpochEntry] = []
        for epoch, start_offset in entries:
            self._assign(EpochEntry(epoch, start_offset))

    @classmethod
    def load(cls, path: Path) -> LeaderEpochCache:
        """The cache in ``path``, empty if there is no file. Raises CheckpointError when
        the file does not parse."""
        return cls(path, LeaderEpochCheckpointFile(path).read() or ())

    # --- reads ----------------------------------------------------------------------

    def entries(self) -> list[EpochEntry]:
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def latest_entry(self) -> EpochEntry | None:
        return self._entries[-1] if self._entries else None

    def earliest_entry(self) -> EpochEntry | None:
        return self._entries[0] if self._entries else None

    def latest_epoch(self) -> int | None:
        """The epoch of the last entry: the latest epoch that has (or had) records."""
        return self._entries[-1].epoch if self._entries else None

    def epoch_for_offset(self, offset: int) -> int | None:
        """The epoch whose range holds ``offset`` (the latest one for offsets past the
        last start), or None below the first entry."""
        i = bisect_right(self._entries, offset, key=lambda e: e.start_offset) - 1
        return self._entries[i].epoch if i >= 0 else None

    def end_offset_for(self, requested_epoch: int, log_end_offset: int) -> tuple[int, int]:
        """(epoch, end offset) for OffsetForLeaderEpoch, Kafka's endOffsetFor.

        - the latest epoch: (latest epoch, ``log_end_offset``);
        - an earlier epoch: (the largest epoch <= ``requested_epoch``, the start offset
          of the first epoch above ``requested_epoch``);
        - below the first epoch: (``requested_epoch``, the first entry's start offset):
          that data is gone from this log, the follower truncates to where it starts;
        - an undefined (negative) epoch, one above the latest, or an empty cache:
          (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET).
        """
        if requested_epoch < 0 or not self._entries:
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        if self._entries[-1].epoch == requested_epoch:
            return requested_epoch, log_end_offset
        higher = bisect_right(self._entries, requested_epoch, key=lambda e: e.epoch)
        if higher == len(self._entries):
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        if higher == 0:
            return requested_epoch, self._entries[0].start_offset
        return self._entries[higher - 1].epoch, self._entries[higher].start_offset

    # --- changes --------------------------------------------------------------------

    def assign(self, epoch: int, start_offset: int, *, durable: bool = True) -> bool:
        """Record that ``epoch`` starts at ``start_offset``; returns whether the cache
        changed (then the checkpoint was rewritten; without ``durable`` it is left to
        `sync`, and until then a crash may lose the entry. The log syncs before its
        recovery point passes the entry, so a lost entry is one that recovery checks
        against the batches it re-reads.)

        Nothing changes when ``epoch`` is the latest epoch and ``start_offset`` is not
        below its start (later batches of the same epoch). Otherwise the new entry goes
        last, and every entry at its end with an epoch >= ``epoch`` or a start offset >=
        ``start_offset`` is removed first, so that both keep increasing (Kafka's
        maybeTruncateNonMonotonicEntries)."""
        if not self._assign(EpochEntry(epoch, start_offset)):
            return False
        self._write(durable=durable)
        return True

    def _assign(self, entry: EpochEntry) -> bool:
        if entry.epoch < 0 or entry.start_offset < 0:
            raise ValueError(f"invalid leader epoch entry {entry}")
        latest = self.latest_entry()
        if latest is not None and latest.epoch == entry.epoch and entry.start_offset >= latest.start_offset:
            return False
        removed: list[EpochEntry] = []
        while self._entries and (
            self._entries[-1].epoch >= entry.epoch or self._entries[-1].start_offset >= entry.start_offset
        ):
            removed.append(self._entries.pop())
        if len(removed) > 1 or (removed and removed[0].start_offset != entry.start_offset):
            # The same start offset means no record was written in the removed epoch:
            # expected. Anything else is a conflict worth knowing about.
            logger.warning("%s: new epoch entry %s removed conflicting entries %s", self.path, entry, removed[::-1])
        self._entries.append(entry)
        return True

    def truncate_from_end(self, end_offset: int, *, durable: bool = True) -> list[EpochEntry]:
        """Remove the entries starting at or after ``end_offset`` (the log was truncated
        there); a negative offset changes nothing. Returns the removed entries.
        ``durable``: as in `assign` (loading a log truncates without writing: the next
        load truncates the same way)."""
        removed: list[EpochEntry] = []
        if end_offset < 0:
            return removed
        while self._entries and self._entries[-1].start_offset >= end_offset:
            removed.append(self._entries.pop())
        if removed:
            self._write(durable=durable)
        return removed[::-1]

    def truncate_from_start(self, start_offset: int, *, durable: bool = True) -> list[EpochEntry]:
        """The log now starts at ``start_offset``: remove the entries starting at or
        below it, and put the last of them back starting at ``start_offset`` (the epoch
        covering the new log start is kept). Returns the removed entries."""
        i = bisect_right(self._entries, start_offset, key=lambda e: e.start_offset)
        if i == 0:
            return []
        removed = self._entries[:i]
        kept = EpochEntry(removed[-1].epoch, start_offset)
        if i == 1 and kept == removed[0]:
            return []  # the first entry starts exactly there: nothing changes
        self._entries[:i] = [kept]
        self._write(durable=durable)
        return removed

    def clear(self) -> None:
        """Remove every entry."""
        if self._entries:
            self._entries.clear()
            self._write()

    def flush(self) -> None:
        """Write the checkpoint now (after constructing a cache from something other
        than its file)."""
        self._write()

    @property
    def unsynced(self) -> bool:
        """Whether changes made with ``durable=False`` are not in the checkpoint yet."""
        return self._unsynced

    def sync(self) -> None:
        """Write the changes made with ``durable=False`` to the checkpoint, durably (no-op
        if there are none)."""
        if self._unsynced:
            self._write()

    def _write(self, *, durable: bool = True) -> None:
        if not durable:
            # Left for `sync` (the log's next flush): even an unsynced write costs a
            # rename, 1 ms on a loaded disk, 10 s for 10,000 new leaders.
            self._unsynced = True
            return
        if self.path is not None:
            LeaderEpochCheckpointFile(self.path).write(self._entries)
        self._unsynced = False

    def __repr__(self) -> str:
        inner = ", ".join(f"({e.epoch}, {e.start_offset})" for e in self._entries)
        return f"LeaderEpochCache([{inner}])"

"""Kafka's offset checkpoint files: one offset per partition, kept in a log dir's root.

``recovery-point-offset-checkpoint``, ``log-start-offset-checkpoint``,
``replication-offset-checkpoint`` and ``cleaner-offset-checkpoint`` (the log cleaner's
first dirty offset of each compacted log) share one text format (Kafka's
CheckpointFile)::

    0                   version
    2                   number of entries
    orders 0 1234       topic partition offset
    orders 1 98

Each partition dir also holds a ``leader-epoch-checkpoint`` (Kafka's
LeaderEpochCheckpointFile): the same version and count lines, then one
``<epoch> <start offset>`` line per leader epoch, oldest first.

Writes go to ``<name>.tmp``, are fsynced, and renamed over the old file (then the
directory is fsynced), so a crash leaves either the old or the new checkpoint.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from moldau.log.errors import CheckpointError

RECOVERY_POINT_CHECKPOINT = "recovery-point-offset-checkpoint"
LOG_START_OFFSET_CHECKPOINT = "log-start-offset-checkpoint"
REPLICATION_OFFSET_CHECKPOINT = "replication-offset-checkpoint"
CLEANER_OFFSET_CHECKPOINT = "cleaner-offset-checkpoint"
LEADER_EPOCH_CHECKPOINT = "leader-epoch-checkpoint"
VERSION = 0


def fsync_directory(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new content:
    write ``<name>.tmp``, fsync it, rename it over ``path``, fsync the directory."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_directory(path.parent)


def _read_lines(path: Path) -> list[str] | None:
    """The entry lines of a checkpoint after checking its version and count; None if
    there is no file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise CheckpointError(f"{path}: not text") from None
    lines = text.splitlines()
    if len(lines) < 2:
        raise CheckpointError(f"{path}: missing version or entry count")
    try:
        version = int(lines[0].strip())
        count = int(lines[1].strip())
    except ValueError:
        raise CheckpointError(f"{path}: version and count must be integers") from None
    if version != VERSION:
        raise CheckpointError(f"{path}: unknown checkpoint version {version}")
    entries = [line for line in lines[2:] if line.strip()]
    if len(entries) != count:
        raise CheckpointError(f"{path}: says {count} entries, holds {len(entries)}")
    return entries


class OffsetCheckpointFile:
    """One checkpoint file: a map (topic, partition) -> offset."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, offsets: Mapping[tuple[str, int], int]) -> None:
        lines = [str(VERSION), str(len(offsets))]
        for (topic, partition), offset in sorted(offsets.items()):
            lines.append(f"{topic} {partition} {offset}")
        write_atomically(self.path, ("\n".join(lines) + "\n").encode())

    def read(self) -> dict[tuple[str, int], int]:
        """The offsets in the file; empty if there is no file. Raises CheckpointError
        when the file does not parse."""
        entries = _read_lines(self.path)
        offsets: dict[tuple[str, int], int] = {}
        for line in entries or ():
            parts = line.split()
            if len(parts) != 3:
                raise CheckpointError(f"{self.path}: bad line {line!r}")
            try:
                offsets[(parts[0], int(parts[1]))] = int(parts[2])
            except ValueError:
                raise CheckpointError(f"{self.path}: bad line {line!r}") from None
        return offsets


class LeaderEpochCheckpointFile:
    """A partition's ``leader-epoch-checkpoint``: (epoch, start offset) pairs."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, entries: Iterable[tuple[int, int]]) -> None:
        pairs = list(entries)
        lines = [str(VERSION), str(len(pairs))]
        lines.extend(f"{epoch} {start_offset}" for epoch, start_offset in pairs)
        write_atomically(self.path, ("\n".join(lines) + "\n").encode())

    def read(self) -> list[tuple[int, int]] | None:
        """The pairs in the file, in file order; None if there is no file. Raises
        CheckpointError when the file does not parse or holds a negative number."""
        entries = _read_lines(self.path)
        if entries is None:
            return None
        pairs: list[tuple[int, int]] = []
        for line in entries:
            parts = line.split()
            if len(parts) != 2:
                raise CheckpointError(f"{self.path}: bad line {line!r}")
            try:
                epoch, start_offset = int(parts[0]), int(parts[1])
            except ValueError:
                raise CheckpointError(f"{self.path}: bad line {line!r}") from None
            if epoch < 0 or start_offset < 0:
                raise CheckpointError(f"{self.path}: negative epoch or offset in {line!r}")
            pairs.append((epoch, start_offset))
        return pairs

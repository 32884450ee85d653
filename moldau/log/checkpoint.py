"""Kafka's offset checkpoint files: one offset per partition, kept in a log dir's root.

``recovery-point-offset-checkpoint``, ``log-start-offset-checkpoint`` and
``replication-offset-checkpoint`` share one text format (Kafka's CheckpointFile)::

    0                   version
    2                   number of entries
    orders 0 1234       topic partition offset
    orders 1 98

Writes go to ``<name>.tmp``, are fsynced, and renamed over the old file (then the
directory is fsynced), so a crash leaves either the old or the new checkpoint.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from moldau.log.errors import CheckpointError

RECOVERY_POINT_CHECKPOINT = "recovery-point-offset-checkpoint"
LOG_START_OFFSET_CHECKPOINT = "log-start-offset-checkpoint"
REPLICATION_OFFSET_CHECKPOINT = "replication-offset-checkpoint"
VERSION = 0


def fsync_directory(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class OffsetCheckpointFile:
    """One checkpoint file: a map (topic, partition) -> offset."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, offsets: Mapping[tuple[str, int], int]) -> None:
        lines = [str(VERSION), str(len(offsets))]
        for (topic, partition), offset in sorted(offsets.items()):
            lines.append(f"{topic} {partition} {offset}")
        data = ("\n".join(lines) + "\n").encode()
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        fsync_directory(self.path.parent)

    def read(self) -> dict[tuple[str, int], int]:
        """The offsets in the file; empty if there is no file. Raises CheckpointError
        when the file does not parse."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        lines = text.splitlines()
        if len(lines) < 2:
            raise CheckpointError(f"{self.path}: missing version or entry count")
        try:
            version = int(lines[0].strip())
            count = int(lines[1].strip())
        except ValueError:
            raise CheckpointError(f"{self.path}: version and count must be integers") from None
        if version != VERSION:
            raise CheckpointError(f"{self.path}: unknown checkpoint version {version}")
        entries = [line for line in lines[2:] if line.strip()]
        if len(entries) != count:
            raise CheckpointError(f"{self.path}: says {count} entries, holds {len(entries)}")
        offsets: dict[tuple[str, int], int] = {}
        for line in entries:
            parts = line.split()
            if len(parts) != 3:
                raise CheckpointError(f"{self.path}: bad line {line!r}")
            try:
                offsets[(parts[0], int(parts[1]))] = int(parts[2])
            except ValueError:
                raise CheckpointError(f"{self.path}: bad line {line!r}") from None
        return offsets

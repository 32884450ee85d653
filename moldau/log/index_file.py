"""IndexFile: the file under an offset or time index, and the bounded set of open ones.

An index (``.index``, ``.timeindex``) is read whole when its segment is opened and kept
in memory; lookups never touch the file. The file is only appended to, truncated,
fsynced and deleted. Kafka mmaps its index files and closes their descriptors, so a
partition costs one open file (its ``.log``). Here the descriptors used for writing are
shared out by one bounded, least-recently-used cache (`OpenIndexFiles`): an index that
is written keeps its descriptor while it is among the most recently written, and
10,000 partitions being written at once hold at most ``capacity`` index descriptors,
not two each. A descriptor closed by the cache loses nothing: its writes are in the page
cache, and fsync goes through a descriptor opened for it (fsync makes the file durable,
whichever descriptor wrote).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

DEFAULT_OPEN_INDEX_FILES = 1024


def read_index_file(path: Path) -> bytes:
    """The content of an index file, created empty if missing."""
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        return os.pread(fd, size, 0) if size else b""
    finally:
        os.close(fd)


class OpenIndexFiles:
    """At most ``capacity`` index files open for writing, the least recently written
    closed first. Thread-safe: the cleaner writes its indexes from a thread, recovery
    from several."""

    def __init__(self, capacity: int = DEFAULT_OPEN_INDEX_FILES) -> None:
        self.capacity = capacity
        self._fds: OrderedDict[IndexFile, int] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._fds)

    def write(self, index: IndexFile, data: bytes) -> None:
        with self._lock:
            os.write(self._fd(index), data)

    def truncate(self, index: IndexFile, size: int) -> None:
        with self._lock:
            os.ftruncate(self._fd(index), size)

    def close(self, index: IndexFile) -> None:
        with self._lock:
            fd = self._fds.pop(index, None)
            if fd is not None:
                os.close(fd)

    def _fd(self, index: IndexFile) -> int:
        fd = self._fds.get(index)
        if fd is not None:
            self._fds.move_to_end(index)
            return fd
        fd = os.open(index.path, os.O_RDWR | os.O_APPEND)
        self._fds[index] = fd
        while len(self._fds) > max(self.capacity, 1):
            _, oldest = self._fds.popitem(last=False)
            os.close(oldest)
        return fd


OPEN_INDEX_FILES = OpenIndexFiles()


class IndexFile:
    """One index file: appended, truncated, fsynced, renamed (``path`` is reassigned by
    the segment), deleted. ``unsynced`` is True from a change until the next flush."""

    def __init__(self, path: Path, open_files: OpenIndexFiles | None = None) -> None:
        self.path = path
        self._open_files = open_files if open_files is not None else OPEN_INDEX_FILES
        self.unsynced = False

    def append(self, data: bytes) -> None:
        self._open_files.write(self, data)
        self.unsynced = True

    def truncate(self, size: int) -> None:
        self._open_files.truncate(self, size)
        self.unsynced = True

    def flush(self) -> None:
        if not self.unsynced:  # nothing written since it was read or last synced
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self.unsynced = False

    def close(self) -> None:
        self._open_files.close(self)

    def delete(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)
        self.unsynced = False


class IndexFileOwner:
    """What an index (OffsetIndex, TimeIndex) does with its file: ``path`` (reassigned
    when the segment renames its files), flush, close, delete."""

    _file: IndexFile

    @property
    def path(self) -> Path:
        return self._file.path

    @path.setter
    def path(self, path: Path) -> None:
        self._file.path = path

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def delete(self) -> None:
        self._file.delete()

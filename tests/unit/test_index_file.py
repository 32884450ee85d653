"""Index files open only while written: a bounded set of descriptors for every index of
a broker (issue 9: 10,000 partitions written at once hold one open file each, not three)."""

import os
from pathlib import Path

import pytest

from moldau.log import index_file
from moldau.log.config import LogConfig
from moldau.log.index_file import IndexFile, OpenIndexFiles
from moldau.log.manager import LogManager
from moldau.protocol.records import RecordInput, build_batch, validate_batches


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_the_least_recently_written_index_file_is_closed_and_loses_nothing(tmp_path: Path) -> None:
    open_files = OpenIndexFiles(capacity=2)
    files = [IndexFile(tmp_path / f"{i}.index", open_files) for i in range(5)]
    for f in files:
        f.path.touch()
    for round_ in range(3):
        for i, f in enumerate(files):
            f.append(bytes([round_, i]))
            assert len(open_files) <= 2
    files[0].truncate(4)  # reopened for it
    for f in files:
        f.flush()  # fsync through a descriptor of its own
        assert not f.unsynced
    assert files[0].path.read_bytes() == bytes([0, 0, 1, 0])
    assert [f.path.read_bytes() for f in files[1:]] == [bytes([0, i, 1, i, 2, i]) for i in range(1, 5)]
    for f in files:
        f.delete()
    assert len(open_files) == 0 and not any(f.path.exists() for f in files)


def test_many_partitions_written_at_once_hold_one_open_file_each(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_file.OPEN_INDEX_FILES, "capacity", 8)
    config = LogConfig(index_interval_bytes=1)  # an index entry per batch
    manager = LogManager([tmp_path / "d"], config)
    manager.load(0)
    before = open_fds()
    logs = [manager.create("t", p, config, 0) for p in range(40)]
    for round_ in range(3):
        for log in logs:
            buf = bytearray(build_batch([RecordInput(b"x" * 20, timestamp=1000 + round_)]))
            log.append(buf, validate_batches(buf), leader_epoch=0, now_ms=0)
    assert open_fds() - before <= len(logs) + 8  # each .log, and at most 8 index files
    written = [(log.active_segment.offset_index.entries, log.active_segment.time_index.entries,
                log.active_segment.offset_index.lookup(2)) for log in logs]
    assert all(o >= 2 and t >= 2 for o, t, _ in written)  # an entry for each batch but the first
    manager.shutdown()
    again = LogManager([tmp_path / "d"], config)
    again.load(0)  # a clean shutdown: the index files are trusted as they are
    for p in range(40):
        segment = again.get("t", p).active_segment  # type: ignore[union-attr]
        assert (segment.offset_index.entries, segment.time_index.entries,
                segment.offset_index.lookup(2)) == written[p]
    again.shutdown()

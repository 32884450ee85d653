"""LogManager and checkpoint files: loading, locking, clean and unclean restarts."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from moldau.log.checkpoint import OffsetCheckpointFile
from moldau.log.config import LogConfig
from moldau.log.errors import CheckpointError, LogDirLockedError, LogError
from moldau.log.log import Log
from moldau.log.manager import CLEAN_SHUTDOWN_FILE, LOCK_FILE, LogManager
from moldau.protocol.records import (
    RecordInput,
    build_batch,
    iter_batches,
    iter_records,
    validate_batches,
)

CONFIG = LogConfig(segment_bytes=400, index_interval_bytes=64)


def produce(log: Log, values: list[bytes], now_ms: int = 0) -> None:
    buf = bytearray(build_batch([RecordInput(v, timestamp=1000) for v in values]))
    log.append(buf, validate_batches(buf), leader_epoch=0, now_ms=now_ms)


def values(log: Log) -> list[bytes | None]:
    data = log.read(log.log_start_offset, 10**9)
    if data:
        validate_batches(data)  # nothing failing its CRC is served
    return [
        r.value
        for _, batch in iter_batches(data)
        for r in iter_records(batch)
        if r.offset >= log.log_start_offset
    ]


@pytest.fixture
def dirs(tmp_path: Path) -> list[Path]:
    return [tmp_path / "d1", tmp_path / "d2"]


def started(dirs: list[Path], now_ms: int = 0) -> LogManager:
    manager = LogManager(dirs, CONFIG)
    manager.load(now_ms)
    return manager


# --- checkpoint files ------------------------------------------------------------------


def test_checkpoint_file_round_trip_in_kafkas_format(tmp_path: Path) -> None:
    path = tmp_path / "recovery-point-offset-checkpoint"
    offsets = {("orders", 1): 98, ("orders", 0): 1234, ("a-b.c", 7): 0}
    OffsetCheckpointFile(path).write(offsets)
    assert path.read_text() == "0\n3\na-b.c 7 0\norders 0 1234\norders 1 98\n"
    assert OffsetCheckpointFile(path).read() == offsets
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no .tmp left
    OffsetCheckpointFile(path).write({})
    assert path.read_text() == "0\n0\n"
    assert OffsetCheckpointFile(path).read() == {}


def test_missing_checkpoint_reads_empty(tmp_path: Path) -> None:
    assert OffsetCheckpointFile(tmp_path / "nope").read() == {}


@pytest.mark.parametrize(
    "text",
    ["", "0\n", "1\n0\n", "0\n2\nt 0 5\n", "0\n1\nt 0\n", "0\n1\nt x 5\n", "x\n0\n"],
)
def test_malformed_checkpoint_raises(tmp_path: Path, text: str) -> None:
    path = tmp_path / "cp"
    path.write_text(text)
    with pytest.raises(CheckpointError):
        OffsetCheckpointFile(path).read()


# --- loading, creating, deleting -------------------------------------------------------


def test_load_creates_dirs_and_takes_locks(dirs: list[Path]) -> None:
    manager = started(dirs)
    for d in dirs:
        assert (d / LOCK_FILE).exists()
    assert manager.all_logs() == {}
    manager.shutdown()


def test_create_is_idempotent_and_balances_dirs(dirs: list[Path]) -> None:
    manager = started(dirs)
    a0 = manager.create("a", 0, CONFIG, 0)
    a1 = manager.create("a", 1, CONFIG, 0)
    b0 = manager.create("b", 0, CONFIG, 0)
    assert manager.create("a", 0, CONFIG, 0) is a0
    assert manager.get("a", 0) is a0
    assert manager.get("a", 5) is None
    assert set(manager.all_logs()) == {("a", 0), ("a", 1), ("b", 0)}
    assert [log.directory.parent for log in (a0, a1, b0)] == [dirs[0], dirs[1], dirs[0]]
    manager.shutdown()


def test_create_rejects_illegal_names(dirs: list[Path]) -> None:
    manager = started(dirs)
    for topic in ("", "a/b", "..", "a b"):
        with pytest.raises(LogError):
            manager.create(topic, 0, CONFIG, 0)
    with pytest.raises(LogError):
        manager.create("ok", -1, CONFIG, 0)
    manager.shutdown()


def test_delete_removes_the_partition(dirs: list[Path]) -> None:
    manager = started(dirs)
    log = manager.create("gone", 0, CONFIG, 0)
    produce(log, [b"a"])
    manager.delete("gone", 0)
    manager.delete("gone", 0)  # twice is fine
    assert manager.get("gone", 0) is None
    assert not (dirs[0] / "gone-0").exists()
    manager.shutdown()
    assert started(dirs).get("gone", 0) is None


def test_load_skips_foreign_dirs_and_removes_interrupted_deletes(dirs: list[Path]) -> None:
    dirs[0].mkdir(parents=True)
    (dirs[0] / "not a partition").mkdir()
    (dirs[0] / "t-x").mkdir()
    (dirs[0] / "t-0.abc123-delete").mkdir()
    (dirs[0] / "t-0.abc123-delete" / "00000000000000000000.log").write_bytes(b"junk")
    (dirs[0] / "meta.properties").write_text("broker.id=1\n")
    manager = started(dirs)
    assert manager.all_logs() == {}
    assert not (dirs[0] / "t-0.abc123-delete").exists()
    assert (dirs[0] / "not a partition").exists()
    assert (dirs[0] / "meta.properties").exists()
    manager.shutdown()


def test_the_same_partition_in_two_dirs_is_an_error(dirs: list[Path]) -> None:
    for d in dirs:
        (d / "t-0").mkdir(parents=True)
    with pytest.raises(LogError, match="both"):
        started(dirs)
    # the failed load released its locks
    (dirs[1] / "t-0").rmdir()
    started(dirs).shutdown()


def test_update_config_reaches_every_partition_of_the_topic(dirs: list[Path]) -> None:
    manager = started(dirs)
    for p in range(3):
        manager.create("t", p, CONFIG, 0)
    other = manager.create("u", 0, CONFIG, 0)
    new = LogConfig(retention_ms=5)
    manager.update_config("t", new)
    assert all(manager.get("t", p).config is new for p in range(3))  # type: ignore[union-attr]
    assert other.config is CONFIG
    manager.shutdown()



def _count_flush_visits(manager: LogManager, monkeypatch: pytest.MonkeyPatch) -> dict[tuple[str, int], int]:
    visits: dict[tuple[str, int], int] = {}
    for key, log in manager.all_logs().items():
        def counted(now_ms: int, log: Log = log, key: tuple[str, int] = key) -> None:
            visits[key] = visits.get(key, 0) + 1
            Log.flush_if_due(log, now_ms)
        monkeypatch.setattr(log, "flush_if_due", counted)
    return visits


def test_flush_due_visits_only_logs_with_something_to_flush(
        dirs: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 9: idle partitions cost no CPU. The periodic flush visits a log only from its
    first write after a flush until it is flushed; flush.ms and the flush itself are what
    they were."""
    manager = started(dirs)
    config = LogConfig(flush_ms=100)
    logs = [manager.create("t", p, config, 0) for p in range(3)]
    manager.flush_due(0)  # a new partition's empty segment needs no flush
    visits = _count_flush_visits(manager, monkeypatch)
    for now in range(0, 1000, 10):
        manager.flush_due(now)
    assert visits == {}
    produce(logs[1], [b"a", b"b"], now_ms=1000)
    # flush.ms counts from the last flush that wrote something (Kafka's lastFlushTime):
    # none for 1,000 ms, so the next tick flushes.
    manager.flush_due(1010)
    assert visits == {("t", 1): 1} and logs[1].recovery_point == 2
    produce(logs[1], [b"c"], now_ms=1020)
    manager.flush_due(1050)
    assert visits == {("t", 1): 2} and logs[1].recovery_point == 2
    manager.flush_due(1110)  # 100 ms after its last flush: flushed, then no longer visited
    assert visits == {("t", 1): 3} and logs[1].recovery_point == 3
    for now in range(1110, 3000, 10):
        manager.flush_due(now)
    assert visits == {("t", 1): 3}
    assert [log.recovery_point for log in logs] == [0, 3, 0]
    manager.shutdown()


def test_flush_due_does_not_visit_logs_that_never_flush_by_time(
        dirs: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    manager = started(dirs)
    log = manager.create("t", 0, LogConfig(), 0)  # flush.ms: Kafka's default, never
    visits = _count_flush_visits(manager, monkeypatch)
    produce(log, [b"a"])
    log.roll(0)
    manager.flush_due(10**12)
    assert visits == {} and log.recovery_point == 0
    log.update_config(LogConfig(flush_ms=100))  # now it flushes by time: visited
    manager.flush_due(10**12)
    assert visits == {("t", 0): 1} and log.recovery_point == 1
    manager.shutdown()


def test_flush_due_finds_logs_recovered_with_something_to_flush(dirs: list[Path]) -> None:
    manager = started(dirs)
    log = manager.create("t", 0, LogConfig(flush_ms=100), 0)
    produce(log, [b"a", b"b"])
    manager.checkpoint()  # recovery point 0: a restart without a clean shutdown re-reads
    manager._unlock_all()
    again = LogManager(dirs, LogConfig(flush_ms=100))
    again.load(5000)
    reloaded = again.get("t", 0)
    assert reloaded is not None and reloaded.recovery_point == 2  # recovered: durable again
    produce(reloaded, [b"c"], now_ms=5000)
    again.flush_due(5100)
    assert reloaded.recovery_point == 3
    again.shutdown()


def test_run_retention_and_flush_due(dirs: list[Path]) -> None:
    manager = started(dirs)
    config = LogConfig(segment_bytes=200, retention_ms=1000, flush_ms=100)
    log = manager.create("t", 0, config, 0)
    for i in range(10):
        produce(log, [b"x" * 50, b"%d" % i])
    assert len(log.segment_base_offsets()) > 2
    manager.flush_due(50)
    assert log.recovery_point == 0
    manager.flush_due(100)
    assert log.recovery_point == 20
    assert manager.run_retention(now_ms=10_000) == 0  # nothing below the high watermark yet
    log.update_high_watermark(20)
    deleted = manager.run_retention(now_ms=10_000)
    assert deleted >= 3
    assert log.log_start_offset == log.log_end_offset == 20
    manager.shutdown()


# --- restarts --------------------------------------------------------------------------


def test_clean_shutdown_and_load(dirs: list[Path]) -> None:
    manager = started(dirs)
    for p in range(3):
        log = manager.create("t", p, CONFIG, 0)
        for i in range(20):
            produce(log, [b"p%d-%d" % (p, i)])
    manager.get("t", 1).delete_records_before(5)  # type: ignore[union-attr]
    manager.get("t", 1).update_high_watermark(20)  # type: ignore[union-attr]
    manager.shutdown()
    for d in dirs:
        assert (d / CLEAN_SHUTDOWN_FILE).exists()
    assert (dirs[0] / "recovery-point-offset-checkpoint").read_text() == (
        "0\n2\nt 0 20\nt 2 20\n"
    )
    assert (dirs[1] / "log-start-offset-checkpoint").read_text() == "0\n1\nt 1 5\n"
    assert (dirs[1] / "replication-offset-checkpoint").read_text() == "0\n1\nt 1 20\n"

    again = started(dirs)
    for d in dirs:
        assert not (d / CLEAN_SHUTDOWN_FILE).exists()
    for p in range(3):
        reloaded = again.get("t", p)
        assert reloaded is not None
        start = 5 if p == 1 else 0
        assert reloaded.log_start_offset == start
        assert reloaded.recovery_point == 20
        assert values(reloaded) == [b"p%d-%d" % (p, i) for i in range(start, 20)]
        produce(reloaded, [b"more"])
    again.shutdown()


def test_lock_keeps_a_second_manager_out(dirs: list[Path]) -> None:
    first = started(dirs)
    second = LogManager([dirs[1]], CONFIG)
    with pytest.raises(LogDirLockedError, match="locked"):
        second.load(0)
    first.shutdown()
    second.load(0)
    second.shutdown()


CRASHING_BROKER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from moldau.log.config import LogConfig
    from moldau.log.manager import LogManager
    from moldau.protocol.records import RecordInput, build_batch, validate_batches

    dirs = [Path(p) for p in sys.argv[1:]]
    manager = LogManager(dirs, LogConfig(segment_bytes=400, index_interval_bytes=64))
    manager.load(0)
    for p in range(2):
        log = manager.create("t", p, LogConfig(segment_bytes=400, index_interval_bytes=64), 0)
        for i in range(30):
            if i == 10:
                log.flush()
                log.delete_records_before(3)
                manager.checkpoint()
            buf = bytearray(build_batch([RecordInput(b"p%d-%d" % (p, i))]))
            log.append(buf, validate_batches(buf), leader_epoch=0, now_ms=0)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def crash_a_broker(dirs: list[Path]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CRASHING_BROKER, *map(str, dirs)], capture_output=True
    )
    assert result.returncode == -9, result.stderr.decode()


def test_load_after_a_crash_recovers_the_same_data(dirs: list[Path]) -> None:
    crash_a_broker(dirs)
    for d in dirs:
        assert not (d / CLEAN_SHUTDOWN_FILE).exists()
    manager = started(dirs)
    for p in range(2):
        log = manager.get("t", p)
        assert log is not None
        assert log.log_start_offset == 3  # from the checkpoint written before the crash
        assert log.recovery_point == log.log_end_offset == 30
        assert values(log) == [b"p%d-%d" % (p, i) for i in range(3, 30)]
    manager.shutdown()


def test_recovery_threads_load_the_same_logs(dirs: list[Path]) -> None:
    """num.recovery.threads.per.data.dir: the logs of a dir opened by several threads."""
    crash_a_broker(dirs)
    manager = LogManager(dirs, CONFIG, recovery_threads_per_dir=4)
    manager.load(0)
    for p in range(2):
        log = manager.get("t", p)
        assert log is not None and log.recovery_point == log.log_end_offset == 30
        assert values(log) == [b"p%d-%d" % (p, i) for i in range(3, 30)]
    for p in range(2, 40):
        manager.create("t", p, CONFIG, 0)
    manager.shutdown()
    again = LogManager(dirs, CONFIG, recovery_threads_per_dir=4)
    again.load(0)
    assert sorted(again.all_logs()) == [("t", p) for p in range(40)]
    again.shutdown()


def test_only_logs_left_without_a_clean_shutdown_are_called_unclean(
    dirs: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="moldau.log.manager")
    started(dirs).shutdown()  # new, empty dirs: nothing to recover, nothing to say
    crash_a_broker(dirs)
    started(dirs).shutdown()
    unclean = [r.getMessage() for r in caplog.records if "not shut down cleanly" in r.getMessage()]
    assert unclean == [f"{d} was not shut down cleanly: recovering its logs" for d in dirs]


def test_load_after_a_crash_with_a_torn_write(dirs: list[Path]) -> None:
    crash_a_broker(dirs)
    log_dir = dirs[0] / "t-0"
    last = sorted(log_dir.glob("*.log"))[-1]
    size = last.stat().st_size
    with last.open("r+b") as f:
        f.truncate(size - 7)  # the last write only partly reached the disk
    with (dirs[0] / "t-0" / sorted(p.name for p in log_dir.glob("*.index"))[-1]).open("ab") as f:
        f.write(b"\x01\x02\x03")  # and an index entry half written
    manager = started(dirs)
    log = manager.get("t", 0)
    assert log is not None
    assert log.log_end_offset == 29
    assert values(log) == [b"p0-%d" % i for i in range(3, 29)]
    produce(log, [b"after"])
    manager.shutdown()
    again = started(dirs)
    assert values(again.get("t", 0))[-2:] == [b"p0-28", b"after"]  # type: ignore[arg-type]
    again.shutdown()


def test_corrupt_checkpoint_means_full_recovery(dirs: list[Path]) -> None:
    manager = started(dirs)
    log = manager.create("t", 0, CONFIG, 0)
    for i in range(12):
        produce(log, [b"%d" % i])
    manager.shutdown()
    (dirs[0] / CLEAN_SHUTDOWN_FILE).unlink()
    (dirs[0] / "recovery-point-offset-checkpoint").write_text("garbage")
    again = started(dirs)
    assert values(again.get("t", 0)) == [b"%d" % i for i in range(12)]  # type: ignore[arg-type]
    again.shutdown()

"""The log's idempotent-producer state: checked on leader appends, applied on follower
appends, snapshotted at rolls and close, rebuilt after truncation and crashes."""

from __future__ import annotations

from pathlib import Path

import pytest

from moldau.log.config import LogConfig
from moldau.log.log import AppendInfo, Log
from moldau.log.producer_state import InvalidProducerEpochError, OutOfOrderSequenceError
from moldau.protocol.records import RecordInput, build_batch, validate_batches

PID = 4242


def produce(log: Log, sequence: int, count: int = 1, *, epoch: int = 0, pid: int = PID) -> AppendInfo:
    buf = bytearray(build_batch([RecordInput(b"s%d" % (sequence + i)) for i in range(count)], producer_id=pid,
                                producer_epoch=epoch, base_sequence=sequence, timestamp=1000))
    return log.append(buf, validate_batches(buf), leader_epoch=0, now_ms=1000)


def open_log(directory: Path, **config: int) -> Log:
    return Log.open(directory, LogConfig(**config), now_ms=0)


def test_a_retry_is_not_written_again(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    assert produce(log, 0, 3).first_offset == 0
    assert produce(log, 3, 2).first_offset == 3
    retry = produce(log, 0, 3)
    assert (retry.first_offset, retry.last_offset, retry.duplicate) == (0, 2, True)
    assert log.log_end_offset == 5
    with pytest.raises(OutOfOrderSequenceError):
        produce(log, 9)
    with pytest.raises(InvalidProducerEpochError):
        produce(log, 5, epoch=-2 + 1)  # epoch -1 < 0
    assert log.log_end_offset == 5  # refused batches are not written


def test_followers_apply_the_leaders_producer_state(tmp_path: Path) -> None:
    leader = open_log(tmp_path / "t-0")
    produce(leader, 0, 2)
    produce(leader, 2, 2)
    data = leader.read(0, 1 << 20)
    follower = open_log(tmp_path / "f" / "t-0")
    follower.append_as_follower(bytearray(data), validate_batches(bytearray(data)))
    assert follower.producer_state.producers[PID].last_sequence == 3
    assert produce(follower, 2, 2).duplicate  # a new leader recognises the retry
    assert produce(follower, 4).first_offset == 4


def test_truncation_rebuilds_the_state_from_what_is_left(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", segment_bytes=200)  # a roll (and a snapshot) every batch or two
    for seq in range(6):
        produce(log, seq)
    assert len(log.segment_base_offsets()) > 2
    log.truncate_to(3)
    assert log.producer_state.producers[PID].last_sequence == 2
    assert all(o <= 3 for o in log.producer_state.snapshot_offsets())
    assert not produce(log, 3).duplicate  # sequence 3 was truncated away: written anew at offset 3
    assert log.log_end_offset == 4
    log.truncate_to(0)
    assert log.producer_state.producers == {}
    assert produce(log, 17).first_offset == 0  # unknown producer again: any sequence


def test_state_survives_close_and_crash(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", segment_bytes=300)
    for seq in range(8):
        produce(log, seq)
    log.close()
    assert max(log.producer_state.snapshot_offsets()) == 8
    again = open_log(tmp_path / "t-0", segment_bytes=300)
    assert produce(again, 7).duplicate
    produce(again, 8)
    # A crash: no snapshot at the log end, only the one taken at the last roll.
    for offset in again.producer_state.snapshot_offsets():
        if offset > again.segment_base_offsets()[-1]:
            again.producer_state.snapshot_path(offset).unlink()
    crashed = Log.open(tmp_path / "t-0", LogConfig(segment_bytes=300), now_ms=0, recover=True)
    assert crashed.producer_state.producers[PID].last_sequence == 8
    assert produce(crashed, 8).duplicate
    with pytest.raises(OutOfOrderSequenceError):
        produce(crashed, 10)


def test_a_log_without_snapshots_is_replayed_whole(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", segment_bytes=250)
    for seq in range(5):
        produce(log, seq, pid=1)
        produce(log, seq, pid=2)
    log.close(snapshot=False)
    for offset in log.producer_state.snapshot_offsets():
        log.producer_state.snapshot_path(offset).unlink()
    again = open_log(tmp_path / "t-0", segment_bytes=250)
    assert {p: e.last_sequence for p, e in again.producer_state.producers.items()} == {1: 4, 2: 4}


def test_retention_deletes_the_snapshots_of_deleted_segments(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", segment_bytes=200, retention_bytes=0)
    for seq in range(6):
        produce(log, seq)
    log.update_high_watermark(log.log_end_offset)
    before = log.producer_state.snapshot_offsets()
    assert len(before) >= 2
    log.delete_old_segments(now_ms=1000)
    first = log.segment_base_offsets()[0]
    assert first == 6
    assert log.producer_state.snapshot_offsets() == [6]  # taken by the roll that retention forced
    assert log.producer_state.producers[PID].last_sequence == 5  # the state outlives the data


def test_a_batch_whose_fsync_failed_is_taken_out_and_its_retry_written_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = open_log(tmp_path / "t-0", flush_messages=1)  # every append is fsynced
    produce(log, 0, 2)
    import moldau.log.segment as segment_module

    real_fsync = segment_module.os.fsync

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(segment_module.os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        produce(log, 2, 3)
    assert log.log_end_offset == 2  # not served, not acknowledged
    assert len(validate_batches(bytearray(log.read(0, 1 << 20)))) == 1
    monkeypatch.setattr(segment_module.os, "fsync", real_fsync)
    assert produce(log, 2, 3).first_offset == 2  # the client's retry, once the disk works
    again = produce(log, 2, 3)  # and its retry is recognised
    assert (again.first_offset, again.duplicate) == (2, True)
    assert log.log_end_offset == 5


def test_a_crash_after_compaction_and_truncation_keeps_the_producers_of_the_snapshot(tmp_path: Path) -> None:
    """Found by the compacted-log state machine: the cleaner removed a producer's batch
    because a later one (above the high watermark) was its last; a truncation then took
    the later one away, and the snapshot at the roll is all that remembers the producer.
    A crash reopen rebuilt the producer state by replaying the compacted log from its
    start (to rebuild the transaction indexes) and forgot it; the state now comes from
    the newest snapshot, the indexes from a replay of their own."""
    from moldau.log.cleaner import clean_log
    from moldau.log.cleaner_manager import log_to_clean

    config = LogConfig(cleanup_policy="compact", segment_bytes=600, min_cleanable_dirty_ratio=0.0,
                       delete_retention_ms=10**12)
    directory = tmp_path / "t-0"
    log = Log.open(directory, config, now_ms=1000)

    def write(pid: int, sequence: int) -> None:
        buf = bytearray(build_batch([RecordInput(b"v", b"k0", timestamp=1000)], producer_id=pid,
                                    producer_epoch=0 if pid >= 0 else -1, base_sequence=sequence))
        log.append(buf, validate_batches(buf), leader_epoch=0, now_ms=1000)

    write(7, 0)  # offset 0
    write(-1, -1)  # offset 1: same key, no producer id
    log.update_high_watermark(2)
    log.roll(1000)  # a producer snapshot at 2: producer 7's last batch at offset 0
    write(7, 1)  # offset 2, above the high watermark
    todo = log_to_clean(log, 1000)
    clean_log(log, todo.first_dirty_offset, todo.first_uncleanable_offset, 10**6)  # offset 0 goes
    log.truncate_to(2)  # a new leader never had offset 2
    assert log.producer_state.producers[7].last_sequence == 0
    reopened = Log.open(directory, config, now_ms=1000, recover=True)  # the crash: no close
    try:
        assert reopened.producer_state.producers[7].last_sequence == 0
        assert reopened.producer_state.producers[7].last_offset == 0
    finally:
        reopened.close(snapshot=False)
        log.close(snapshot=False)

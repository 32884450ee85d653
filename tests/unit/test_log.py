"""Log: appends, rolls, reads, timestamps, retention, truncation and crash recovery, on
real files."""

import dataclasses
import os
import shutil
from pathlib import Path

import pytest

from moldau.log.checkpoint import LEADER_EPOCH_CHECKPOINT, REPLICATION_OFFSET_CHECKPOINT
from moldau.log.config import LogConfig
from moldau.log.errors import LogError, OffsetOutOfRangeError, RecordTooLargeError
from moldau.log.leader_epoch import UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
from moldau.log.log import AppendInfo, Log
from moldau.log.manager import LogManager
from moldau.log.segment import segment_file_name
from moldau.protocol.records import (
    BatchHeader,
    Record,
    RecordInput,
    build_batch,
    iter_batches,
    iter_records,
    read_header,
    validate_batches,
)

BIG = 10**9


def make_batch(values: list[bytes], timestamps: list[int] | None = None, ts: int = 1000) -> bytes:
    stamps = timestamps if timestamps is not None else [ts] * len(values)
    return build_batch([RecordInput(v, timestamp=t) for v, t in zip(values, stamps, strict=True)])


def append(
    log: Log,
    *batches: bytes,
    now_ms: int = 0,
    leader_epoch: int = 0,
) -> AppendInfo:
    buf = bytearray(b"".join(batches))
    return log.append(buf, validate_batches(buf), leader_epoch=leader_epoch, now_ms=now_ms)


def append_n(log: Log, n: int, *, records: int = 1, ts: int = 1000, now_ms: int = 0) -> None:
    for _ in range(n):
        start = log.log_end_offset
        append(log, make_batch([b"v%04d" % (start + i) for i in range(records)], ts=ts),
               now_ms=now_ms)


def records_of(data: bytes) -> list[Record]:
    return [r for _, batch in iter_batches(data) for r in iter_records(batch)]


def headers_of(data: bytes) -> list[BatchHeader]:
    return [h for h, _ in iter_batches(data)]


def read_all(log: Log, max_bytes: int = 200) -> list[Record]:
    """Read like a consumer: from the log start, ``max_bytes`` at a time."""
    out: list[Record] = []
    offset = log.log_start_offset
    while offset < log.log_end_offset:
        data = log.read(offset, max_bytes)
        assert data, f"no progress at offset {offset}"
        validate_batches(data)  # nothing that fails its CRC is ever served
        for record in records_of(data):
            if record.offset >= offset:
                out.append(record)
        offset = headers_of(data)[-1].next_offset
    return out


def batch_size(records: int = 1) -> int:
    return len(make_batch([b"v%04d" % i for i in range(records)]))


@pytest.fixture
def config() -> LogConfig:
    return LogConfig(index_interval_bytes=100)


@pytest.fixture
def log(tmp_path: Path, config: LogConfig) -> Log:
    return Log.open(tmp_path / "orders-3", config, now_ms=0)


# --- opening ---------------------------------------------------------------------------


def test_open_creates_the_directory_and_parses_topic_partition(tmp_path: Path) -> None:
    log = Log.open(tmp_path / "a" / "my-topic-name-12", LogConfig(), now_ms=0)
    assert (log.topic, log.partition) == ("my-topic-name", 12)
    assert (tmp_path / "a" / "my-topic-name-12" / "00000000000000000000.log").exists()
    assert (log.log_start_offset, log.log_end_offset, log.size_in_bytes) == (0, 0, 0)
    assert log.read(0, 100) == b""


def test_open_rejects_a_directory_not_named_topic_partition(tmp_path: Path) -> None:
    with pytest.raises(LogError):
        Log.open(tmp_path / "nopartition", LogConfig(), now_ms=0)


def test_open_empty_log_starts_at_log_start_offset(tmp_path: Path) -> None:
    log = Log.open(tmp_path / "t-0", LogConfig(), now_ms=0, log_start_offset=42)
    assert (log.log_start_offset, log.log_end_offset) == (42, 42)
    assert append(log, make_batch([b"a"])).first_offset == 42
    assert log.segment_base_offsets() == [42]


# --- appends ---------------------------------------------------------------------------


def test_append_assigns_offsets_and_leader_epoch(log: Log) -> None:
    info = append(log, make_batch([b"a", b"b", b"c"]), make_batch([b"d", b"e"]), leader_epoch=7)
    assert info == AppendInfo(first_offset=0, last_offset=4, log_append_time=-1, log_start_offset=0)
    assert log.log_end_offset == 5
    data = log.read(0, BIG)
    headers = validate_batches(data)
    assert [(h.base_offset, h.partition_leader_epoch) for h in headers] == [(0, 7), (3, 7)]
    assert [(r.offset, r.value) for r in records_of(data)] == list(
        enumerate([b"a", b"b", b"c", b"d", b"e"])
    )
    assert info == AppendInfo(0, 4, -1, 0)
    assert append(log, make_batch([b"f"])).first_offset == 5


def test_appended_bytes_are_stored_as_given(log: Log) -> None:
    buf = bytearray(make_batch([b"a", b"b"]))
    log.append(buf, validate_batches(buf), leader_epoch=3, now_ms=0)
    # the buffer was patched in place, and the file holds exactly those bytes
    assert (log.directory / "00000000000000000000.log").read_bytes() == bytes(buf)


def test_log_append_time_stamps_batches(tmp_path: Path) -> None:
    config = LogConfig(message_timestamp_type="LogAppendTime")
    log = Log.open(tmp_path / "t-0", config, now_ms=0)
    info = append(log, make_batch([b"a", b"b"], ts=5), now_ms=123456)
    assert info.log_append_time == 123456
    data = log.read(0, BIG)
    (header,) = validate_batches(data)  # CRC recomputed
    assert header.is_log_append_time
    assert [r.timestamp for r in records_of(data)] == [123456, 123456]
    assert log.offset_for_timestamp(123456) == (0, 123456)


def test_record_too_large_writes_nothing(tmp_path: Path) -> None:
    small = make_batch([b"x"])
    config = LogConfig(max_message_bytes=len(small))
    log = Log.open(tmp_path / "t-0", config, now_ms=0)
    append(log, small)
    with pytest.raises(RecordTooLargeError):
        append(log, small, make_batch([b"x" * 100]))
    assert log.log_end_offset == 1
    assert log.size_in_bytes == len(small)


def test_batch_larger_than_a_segment_is_too_large(tmp_path: Path) -> None:
    log = Log.open(tmp_path / "t-0", LogConfig(segment_bytes=100), now_ms=0)
    with pytest.raises(RecordTooLargeError):
        append(log, make_batch([b"x" * 200]))


def test_append_as_follower(log: Log) -> None:
    data = build_batch([RecordInput(b"a"), RecordInput(b"b")], base_offset=0)
    info = log.append_as_follower(data, validate_batches(data))
    assert (info.first_offset, info.last_offset) == (0, 1)
    behind = build_batch([RecordInput(b"c")], base_offset=1)
    with pytest.raises(LogError):
        log.append_as_follower(behind, validate_batches(behind))
    right = build_batch([RecordInput(b"c")], base_offset=2)
    log.append_as_follower(right, validate_batches(right))
    assert [r.value for r in read_all(log)] == [b"a", b"b", b"c"]


# --- rolling ---------------------------------------------------------------------------


def test_follower_rolls_by_time_at_the_time_it_is_given(tmp_path: Path) -> None:
    """A follower's appends carry the fetcher's clock: nothing else keeps an idle log's
    time current (the periodic flush visits only logs with something to flush)."""
    log = Log.open(tmp_path / "t-0", LogConfig(segment_ms=100), now_ms=0)
    for offset, now_ms in ((0, 500), (1, 599), (2, 600)):
        data = build_batch([RecordInput(b"a")], base_offset=offset)
        log.append_as_follower(data, validate_batches(data), now_ms=now_ms)
    assert log.segment_base_offsets() == [0, 2]


def test_roll_by_size(tmp_path: Path) -> None:
    size = batch_size()
    log = Log.open(tmp_path / "t-0", LogConfig(segment_bytes=3 * size), now_ms=0)
    append_n(log, 7)
    assert log.segment_base_offsets() == [0, 3, 6]
    assert log.size_in_bytes == 7 * size
    assert [r.offset for r in read_all(log)] == list(range(7))


def test_roll_by_time_counts_from_the_first_append(tmp_path: Path) -> None:
    log = Log.open(tmp_path / "t-0", LogConfig(segment_ms=100), now_ms=0)
    append_n(log, 1, now_ms=500)  # the segment's clock starts here, not at open
    append_n(log, 1, now_ms=599)
    assert log.segment_base_offsets() == [0]
    append_n(log, 1, now_ms=600)
    assert log.segment_base_offsets() == [0, 2]
    append_n(log, 1, now_ms=650)
    assert log.segment_base_offsets() == [0, 2]


def test_roll_by_index_size(tmp_path: Path) -> None:
    # index.interval.bytes 0: every batch after the first of a segment gets an entry;
    # 16 bytes hold two offset index entries and one time index entry.
    config = LogConfig(segment_index_bytes=16, index_interval_bytes=0)
    log = Log.open(tmp_path / "t-0", config, now_ms=0)
    for ts in (1, 2, 3, 4, 5, 6):
        append(log, make_batch([b"a"], ts=ts))
    # batch 0: no entry; batch 1: first entries; batch 2 would need a 2nd time entry
    assert log.segment_base_offsets() == [0, 2, 4]
    log2 = Log.open(tmp_path / "u-0", config, now_ms=0)
    for _ in range(6):
        append(log2, make_batch([b"a"], ts=1))  # no timestamp growth: 2 offset entries fit
    assert log2.segment_base_offsets() == [0, 3]


def test_no_roll_of_an_empty_segment(tmp_path: Path) -> None:
    log = Log.open(tmp_path / "t-0", LogConfig(segment_ms=1), now_ms=0)
    log.roll(now_ms=100)
    append_n(log, 1, now_ms=1000)
    assert log.segment_base_offsets() == [0]
    log.roll(now_ms=1001)
    log.roll(now_ms=1002)
    assert log.segment_base_offsets() == [0, 1]


# --- reads -----------------------------------------------------------------------------


@pytest.fixture
def five_batches(tmp_path: Path) -> Log:
    """Offsets 0-14 in five 3-record batches, two per segment."""
    size = batch_size(3)
    log = Log.open(tmp_path / "t-0", LogConfig(segment_bytes=2 * size, index_interval_bytes=0),
                   now_ms=0)
    append_n(log, 5, records=3)
    assert log.segment_base_offsets() == [0, 6, 12]
    return log


def test_read_inside_a_batch_returns_the_whole_batch(five_batches: Log) -> None:
    for offset in range(15):
        first = headers_of(five_batches.read(offset, 1))[0]
        assert first.base_offset == offset - offset % 3
        assert first.last_offset >= offset


def test_read_crosses_segments_and_respects_max_bytes(five_batches: Log) -> None:
    size = batch_size(3)
    assert [h.base_offset for h in headers_of(five_batches.read(0, BIG))] == [0, 3, 6, 9, 12]
    assert [h.base_offset for h in headers_of(five_batches.read(4, 3 * size))] == [3, 6, 9]
    assert [h.base_offset for h in headers_of(five_batches.read(4, 3 * size - 1))] == [3, 6]


def test_read_returns_at_least_one_batch_kip_74(five_batches: Log) -> None:
    assert len(five_batches.read(7, 1)) == batch_size(3)
    assert len(five_batches.read(7, 0)) == batch_size(3)


def test_read_respects_max_offset(five_batches: Log) -> None:
    assert [h.base_offset for h in headers_of(five_batches.read(0, BIG, max_offset=9))] == [
        0, 3, 6
    ]
    assert five_batches.read(9, BIG, max_offset=9) == b""
    # a batch holding the high watermark is not committed yet
    assert [h.base_offset for h in headers_of(five_batches.read(0, BIG, max_offset=10))] == [
        0, 3, 6
    ]
    assert five_batches.read(0, BIG, max_offset=0) == b""


def test_read_at_log_end_and_out_of_range(five_batches: Log) -> None:
    assert five_batches.read(15, BIG) == b""
    with pytest.raises(OffsetOutOfRangeError):
        five_batches.read(16, BIG)
    with pytest.raises(OffsetOutOfRangeError):
        five_batches.read(-1, BIG)


# --- timestamps ------------------------------------------------------------------------


def test_offset_for_timestamp_out_of_order_within_and_across_batches(tmp_path: Path) -> None:
    config = LogConfig(segment_bytes=3 * batch_size(3) + 10, index_interval_bytes=0)
    log = Log.open(tmp_path / "t-0", config, now_ms=0)
    stamps = [
        [100, 300, 200],  # 0-2
        [150, 120, 110],  # 3-5
        [500, 400, 450],  # 6-8
        [50, 60, 70],  # 9-11   (segment 2)
        [600, 350, 320],  # 12-14
        [330, 900, 10],  # 15-17
    ]
    for ts in stamps:
        append(log, make_batch([b"x"] * 3, ts))
    assert len(log.segment_base_offsets()) == 2
    flat = [(o, t) for o, t in enumerate(t for batch in stamps for t in batch)]

    def expected(target: int) -> tuple[int, int] | None:
        return next(((o, t) for o, t in flat if t >= target), None)

    for target in sorted({t for _, t in flat} | {t + 1 for _, t in flat} | {0, 1000}):
        assert log.offset_for_timestamp(target) == expected(target), target
    assert log.max_timestamp_offset() == (16, 900)


def test_offset_for_timestamp_skips_records_below_the_log_start(log: Log) -> None:
    append(log, make_batch([b"a", b"b", b"c"], [500, 100, 600]))
    log.delete_records_before(1)
    assert log.offset_for_timestamp(200) == (2, 600)
    assert log.offset_for_timestamp(50) == (1, 100)


def test_max_timestamp_offset_is_the_earliest_with_the_largest(log: Log) -> None:
    assert log.max_timestamp_offset() is None
    append(log, make_batch([b"a", b"b", b"c"], [5, 9, 9]))
    append(log, make_batch([b"d"], [9]))
    assert log.max_timestamp_offset() == (1, 9)
    log.delete_records_before(2)
    assert log.max_timestamp_offset() == (2, 9)
    log.delete_records_before(4)
    assert log.max_timestamp_offset() is None


def test_timestamps_survive_reopen(tmp_path: Path) -> None:
    config = LogConfig(segment_bytes=2 * batch_size(1), index_interval_bytes=10**6)
    log = Log.open(tmp_path / "t-0", config, now_ms=0)
    for ts in (30, 10, 20, 5, 1, 2):
        append(log, make_batch([b"x"], ts=ts))
    log.close()
    for recover in (False, True):
        again = Log.open(tmp_path / "t-0", config, now_ms=0, recover=recover)
        assert again.offset_for_timestamp(15) == (0, 30)
        assert again.offset_for_timestamp(2) == (0, 30)
        assert again.offset_for_timestamp(31) is None
        assert again.max_timestamp_offset() == (0, 30)
        again.close()
    again = Log.open(tmp_path / "t-0", config, now_ms=0)
    again.delete_records_before(2)
    assert again.offset_for_timestamp(2) == (2, 20)
    assert again.offset_for_timestamp(21) is None
    assert again.max_timestamp_offset() == (2, 20)


# --- retention -------------------------------------------------------------------------


def timed_log(
    tmp_path: Path, *, retention_ms: int = -1, retention_bytes: int = -1,
    cleanup_policy: str = "delete",
) -> Log:
    """Three segments with largest timestamps 1000, 2000 and 3000, two batches each."""
    config = LogConfig(
        segment_bytes=2 * batch_size(),
        retention_ms=retention_ms,
        retention_bytes=retention_bytes,
        cleanup_policy=cleanup_policy,
    )
    log = Log.open(tmp_path / "t-0", config, now_ms=0)
    for ts in (900, 1000, 2000, 1500, 2500, 3000):
        append(log, make_batch([b"x"], ts=ts))
    assert log.segment_base_offsets() == [0, 2, 4]
    log.update_high_watermark(log.log_end_offset)  # everything replicated
    return log


def test_retention_by_time(tmp_path: Path) -> None:
    log = timed_log(tmp_path, retention_ms=1000)
    assert log.delete_old_segments(now_ms=2000) == 0  # 2000 - 1000 is not > 1000
    assert log.delete_old_segments(now_ms=2999) == 1
    assert log.segment_base_offsets() == [2, 4]
    assert log.log_start_offset == 2
    with pytest.raises(OffsetOutOfRangeError):
        log.read(1, BIG)
    assert [r.offset for r in read_all(log)] == [2, 3, 4, 5]
    assert not (log.directory / segment_file_name(0, ".log")).exists()


def test_retention_never_deletes_at_or_above_the_high_watermark(tmp_path: Path) -> None:
    log = timed_log(tmp_path, retention_ms=100, retention_bytes=0)
    log.update_high_watermark(3)  # offsets 3-5 not yet on every in-sync replica
    assert log.delete_old_segments(now_ms=10_000) == 1
    assert log.segment_base_offsets() == [2, 4]  # segment [2, 4) holds offset 3
    log.update_high_watermark(4)
    assert log.delete_old_segments(now_ms=10_000) == 1
    assert log.segment_base_offsets() == [4]
    log.update_high_watermark(6)
    assert log.delete_old_segments(now_ms=10_000) == 1
    assert (log.log_start_offset, log.log_end_offset) == (6, 6)


def test_retention_forever(tmp_path: Path) -> None:
    log = timed_log(tmp_path, retention_ms=-1, retention_bytes=-1)
    assert log.delete_old_segments(now_ms=10**12) == 0
    assert log.segment_base_offsets() == [0, 2, 4]


def test_retention_rolls_an_expired_active_segment_then_deletes_it(tmp_path: Path) -> None:
    log = timed_log(tmp_path, retention_ms=100)
    assert log.delete_old_segments(now_ms=10_000) == 3
    assert log.segment_base_offsets() == [6]
    assert (log.log_start_offset, log.log_end_offset, log.size_in_bytes) == (6, 6, 0)
    assert log.read(6, BIG) == b""
    assert log.delete_old_segments(now_ms=20_000) == 0  # an empty active segment stays
    assert append(log, make_batch([b"y"], ts=20_000)).first_offset == 6


def test_retention_by_size(tmp_path: Path) -> None:
    size = batch_size()
    log = timed_log(tmp_path, retention_ms=-1, retention_bytes=3 * size)
    assert log.delete_old_segments(now_ms=0) == 1  # 6 batches -> 4 (>= 3 kept)
    assert log.segment_base_offsets() == [2, 4]
    assert log.delete_old_segments(now_ms=0) == 0
    log.update_config(dataclasses.replace(log.config, retention_bytes=0))
    assert log.delete_old_segments(now_ms=0) == 2
    assert log.segment_base_offsets() == [6]
    assert log.log_start_offset == 6


def test_compact_only_topics_are_kept(tmp_path: Path) -> None:
    log = timed_log(tmp_path, retention_ms=1, cleanup_policy="compact")
    assert log.delete_old_segments(now_ms=10**9) == 0
    log.update_config(dataclasses.replace(log.config, cleanup_policy="compact,delete"))
    assert log.delete_old_segments(now_ms=10**9) == 3


def test_retention_never_moves_the_log_start_backwards(tmp_path: Path) -> None:
    log = timed_log(tmp_path, retention_ms=1000)
    log.delete_records_before(3)  # deletes segment 0, which is entirely below 3
    assert log.segment_base_offsets() == [2, 4]
    assert log.delete_old_segments(now_ms=2999) == 0
    assert log.log_start_offset == 3


# --- delete records, truncation ----------------------------------------------------------


def test_delete_records_before(five_batches: Log) -> None:
    log = five_batches
    assert log.delete_records_before(4) == 4
    assert log.segment_base_offsets() == [0, 6, 12]  # segment 0 still holds 4 and 5
    with pytest.raises(OffsetOutOfRangeError):
        log.read(3, BIG)
    assert headers_of(log.read(4, 1))[0].base_offset == 3  # the whole batch holding 4
    assert [r.offset for r in read_all(log)] == list(range(4, 15))
    assert log.delete_records_before(12) == 12
    assert log.segment_base_offsets() == [12]
    with pytest.raises(OffsetOutOfRangeError):
        log.delete_records_before(11)
    with pytest.raises(OffsetOutOfRangeError):
        log.delete_records_before(16)
    assert log.delete_records_before(15) == 15
    assert log.segment_base_offsets() == [12]  # the active segment is not deleted
    assert log.read(15, BIG) == b""
    with pytest.raises(OffsetOutOfRangeError):
        log.read(14, BIG)


def test_truncate_to_a_batch_boundary(five_batches: Log) -> None:
    log = five_batches
    log.truncate_to(10)  # inside batch 9-11: the whole batch goes
    assert log.log_end_offset == 9
    assert log.segment_base_offsets() == [0, 6]
    assert [r.offset for r in read_all(log)] == list(range(9))
    assert append(log, make_batch([b"new"])).first_offset == 9
    log.truncate_to(6)  # exactly a segment's base: that segment goes
    assert log.segment_base_offsets() == [0]
    assert log.log_end_offset == 6
    log.truncate_to(100)  # above the log end: nothing
    assert log.log_end_offset == 6
    log.truncate_to(0)
    assert (log.log_start_offset, log.log_end_offset, log.segment_base_offsets()) == (0, 0, [0])


def test_truncate_below_log_start_restarts_there(five_batches: Log) -> None:
    log = five_batches
    log.delete_records_before(8)
    log.truncate_to(7)
    assert (log.log_start_offset, log.log_end_offset) == (6, 6)
    assert log.segment_base_offsets() == [6]
    assert append(log, make_batch([b"z"])).first_offset == 6


def test_truncated_log_reopens_the_same(five_batches: Log) -> None:
    five_batches.truncate_to(8)
    five_batches.close()
    for recover in (False, True):
        again = Log.open(five_batches.directory, five_batches.config, now_ms=0, recover=recover)
        assert again.log_end_offset == 6
        assert [r.offset for r in read_all(again)] == list(range(6))
        again.close()


# --- flushing --------------------------------------------------------------------------


def test_flush_moves_the_recovery_point(log: Log) -> None:
    append_n(log, 3)
    assert log.recovery_point == 0
    log.flush()
    assert log.recovery_point == 3


def test_flush_messages(tmp_path: Path) -> None:
    log = Log.open(tmp_path / "t-0", LogConfig(flush_messages=3), now_ms=0)
    append_n(log, 2)
    assert log.recovery_point == 0
    append_n(log, 1)
    assert log.recovery_point == 3


def test_flush_if_due(tmp_path: Path) -> None:
    log = Log.open(tmp_path / "t-0", LogConfig(flush_ms=1000), now_ms=0)
    append_n(log, 2)
    log.flush_if_due(999)
    assert log.recovery_point == 0
    log.flush_if_due(1000)
    assert log.recovery_point == 2
    append_n(log, 1)
    log.flush_if_due(1999)
    assert log.recovery_point == 2
    log.flush_if_due(2000)
    assert log.recovery_point == 3


def test_default_flush_is_never(log: Log) -> None:
    append_n(log, 2)
    log.flush_if_due(10**15)
    assert log.recovery_point == 0


def test_delete_removes_the_directory(log: Log) -> None:
    append_n(log, 2)
    parent = log.directory.parent
    log.delete()
    assert list(parent.iterdir()) == []


# --- recovery --------------------------------------------------------------------------


def build_source(tmp_path: Path, config: LogConfig, batches: int = 10) -> Log:
    log = Log.open(tmp_path / "src-0", config, now_ms=0)
    for i in range(batches):
        append(log, make_batch([b"v%02d-%d" % (i, j) for j in range(3)], ts=1000 + i))
    log.close()
    return log


def copy_log(source: Log, tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(source.directory, target)
    return target


def last_segment(directory: Path) -> Path:
    return sorted(directory.glob("*.log"))[-1]


def test_recovery_cuts_the_last_batch_torn_at_every_byte(tmp_path: Path) -> None:
    config = LogConfig(index_interval_bytes=100)
    source = build_source(tmp_path, config)
    size = batch_size(3)
    full = source.directory / segment_file_name(0, ".log")
    last_start = full.stat().st_size - size
    for cut in range(last_start, last_start + size):
        for recover in (True, False):
            directory = copy_log(source, tmp_path, f"t{cut}{recover}-0")
            with (directory / segment_file_name(0, ".log")).open("r+b") as f:
                f.truncate(cut)
            log = Log.open(directory, config, now_ms=0, recover=recover)
            assert log.log_end_offset == 27, (cut, recover)
            assert log.size_in_bytes == last_start
            assert len(read_all(log)) == 27
            assert append(log, make_batch([b"again"])).first_offset == 27
            log.close()
            shutil.rmtree(directory)


def test_recovery_drops_everything_from_a_corrupt_batch(tmp_path: Path) -> None:
    config = LogConfig(index_interval_bytes=100)
    source = build_source(tmp_path, config)
    original = read_all(Log.open(copy_log(source, tmp_path, "orig-0"), config, now_ms=0))
    size = batch_size(3)
    bad = 5  # the sixth batch
    for byte in range(size):
        directory = copy_log(source, tmp_path, f"flip{byte}-0")
        path = directory / segment_file_name(0, ".log")
        data = bytearray(path.read_bytes())
        data[bad * size + byte] ^= 0x40
        path.write_bytes(bytes(data))
        log = Log.open(directory, config, now_ms=0, recover=True)
        records = read_all(log)  # validates every CRC served
        if 12 <= byte < 16:
            # partitionLeaderEpoch is outside the CRC (as in Kafka): nothing to notice
            assert log.log_end_offset == 30
        elif byte < 8:
            # So is baseOffset. A lower one goes backwards and is cut; a higher one looks
            # like a gap compaction left (Kafka cannot tell either), and the batch after
            # it, now going backwards, is cut.
            assert records[: 3 * bad] == original[: 3 * bad]
            assert len(records) in (3 * bad, 3 * bad + 3), byte
        else:
            assert log.log_end_offset == 3 * bad, byte
            assert records == original[: 3 * bad]
        log.close()
        shutil.rmtree(directory)


def test_corruption_in_an_earlier_segment_drops_the_later_ones(tmp_path: Path) -> None:
    size = batch_size(3)
    config = LogConfig(segment_bytes=3 * size)
    source = build_source(tmp_path, config)
    assert source.segment_base_offsets() == [0, 9, 18, 27]
    directory = copy_log(source, tmp_path, "c-0")
    path = directory / segment_file_name(9, ".log")
    data = bytearray(path.read_bytes())
    data[size + 70] ^= 0xFF  # inside the second batch of segment 9
    path.write_bytes(bytes(data))
    log = Log.open(directory, config, now_ms=0, recover=True)
    assert log.segment_base_offsets() == [0, 9]
    assert log.log_end_offset == 12
    assert [r.offset for r in read_all(log)] == list(range(12))
    assert not (directory / segment_file_name(18, ".log")).exists()
    assert append(log, make_batch([b"n"])).first_offset == 12


def test_recovery_starts_at_the_recovery_point(tmp_path: Path) -> None:
    size = batch_size(3)
    config = LogConfig(segment_bytes=3 * size)
    source = build_source(tmp_path, config)
    for recovery_point, expected_end in ((0, 12), (20, 30)):
        directory = copy_log(source, tmp_path, f"rp{recovery_point}-0")
        path = directory / segment_file_name(9, ".log")
        data = bytearray(path.read_bytes())
        data[size + 70] ^= 0xFF
        path.write_bytes(bytes(data))
        log = Log.open(directory, config, now_ms=0, recovery_point=recovery_point)
        # below the recovery point the files are trusted (they were fsynced)
        assert log.log_end_offset == expected_end
        assert log.recovery_point == expected_end
        log.close()


def test_deleted_index_files_are_rebuilt(tmp_path: Path) -> None:
    size = batch_size(3)
    config = LogConfig(segment_bytes=3 * size, index_interval_bytes=0)
    source = build_source(tmp_path, config)
    for recover in (True, False):
        directory = copy_log(source, tmp_path, f"idx{recover}-0")
        saved = {p.name: p.read_bytes() for p in directory.glob("*index")}
        for path in directory.glob("*index"):
            path.unlink()
        log = Log.open(directory, config, now_ms=0, recover=recover)
        assert log.log_end_offset == 30
        assert log.offset_for_timestamp(1004) == (12, 1004)
        assert headers_of(log.read(22, 1))[0].base_offset == 21
        log.close()
        assert {p.name: p.read_bytes() for p in directory.glob("*index")} == saved


def test_corrupt_index_is_rebuilt(tmp_path: Path) -> None:
    config = LogConfig(index_interval_bytes=0)
    source = build_source(tmp_path, config)
    directory = copy_log(source, tmp_path, "ci-0")
    (directory / segment_file_name(0, ".index")).write_bytes(b"\xff" * 13)
    log = Log.open(directory, config, now_ms=0, recover=False)
    assert log.log_end_offset == 30
    assert [r.offset for r in read_all(log)] == list(range(30))


def test_garbage_at_the_end_is_cut(tmp_path: Path) -> None:
    config = LogConfig(index_interval_bytes=100)
    source = build_source(tmp_path, config)
    for recover in (True, False):
        for garbage in (b"\x00" * 100, os.urandom(300), b"\x00" * 8 + b"\x00\x00\x01\x00"):
            directory = copy_log(source, tmp_path, f"g{recover}{len(garbage)}-0")
            with last_segment(directory).open("ab") as f:
                f.write(garbage)
            log = Log.open(directory, config, now_ms=0, recover=recover)
            assert log.log_end_offset == 30
            assert log.size_in_bytes == 10 * batch_size(3)
            assert append(log, make_batch([b"n"])).first_offset == 30
            log.close()
            shutil.rmtree(directory)


def test_clean_open_trusts_earlier_segments(tmp_path: Path) -> None:
    """After a clean shutdown only the tail of the last segment is re-read: a flipped
    byte in an earlier segment goes unnoticed (that is what a full recovery is for)."""
    size = batch_size(3)
    config = LogConfig(segment_bytes=3 * size)
    source = build_source(tmp_path, config)
    directory = copy_log(source, tmp_path, "clean-0")
    path = directory / segment_file_name(9, ".log")
    data = bytearray(path.read_bytes())
    data[size + 70] ^= 0xFF
    path.write_bytes(bytes(data))
    log = Log.open(directory, config, now_ms=0, recover=False, recovery_point=30)
    assert log.log_end_offset == 30
    assert log.recovery_point == 30
    assert [r.offset for r in records_of(log.read(0, BIG))][:9] == list(range(9))
    assert append(log, make_batch([b"n"])).first_offset == 30
    log.close()


def test_log_start_offset_beyond_the_data_restarts_empty(tmp_path: Path) -> None:
    config = LogConfig()
    source = build_source(tmp_path, config, batches=2)
    directory = copy_log(source, tmp_path, "ls-0")
    log = Log.open(directory, config, now_ms=0, log_start_offset=50)
    assert (log.log_start_offset, log.log_end_offset, log.segment_base_offsets()) == (50, 50, [50])
    assert append(log, make_batch([b"n"])).first_offset == 50


def test_leftover_files_are_removed_and_foreign_files_kept(tmp_path: Path) -> None:
    config = LogConfig()
    source = build_source(tmp_path, config, batches=2)
    directory = copy_log(source, tmp_path, "lf-0")
    (directory / "00000000000000000099.index").write_bytes(b"")
    (directory / "00000000000000000000.log.deleted").write_bytes(b"x")
    (directory / "leader-epoch-checkpoint").write_bytes(b"0\n0\n")
    log = Log.open(directory, config, now_ms=0)
    names = sorted(p.name for p in directory.iterdir())
    assert names == [
        "00000000000000000000.index",
        "00000000000000000000.log",
        "00000000000000000000.timeindex",
        "00000000000000000006.snapshot",  # producer state, written when the source log closed
        "leader-epoch-checkpoint",
    ]
    assert log.log_end_offset == 6


def test_read_after_reopen_matches(tmp_path: Path) -> None:
    config = LogConfig(segment_bytes=5 * batch_size(3), index_interval_bytes=50)
    source = build_source(tmp_path, config, batches=23)
    for recover in (True, False):
        log = Log.open(source.directory, config, now_ms=0, recover=recover)
        assert len(log.segment_base_offsets()) == 5
        assert [r.value for r in read_all(log)] == [
            b"v%02d-%d" % (i, j) for i in range(23) for j in range(3)
        ]
        for offset in range(0, 69, 7):
            assert headers_of(log.read(offset, 1))[0].base_offset == offset - offset % 3
        log.close()


def test_header_of_patched_batch(log: Log) -> None:
    """The bytes handed in are patched in place: base offset and leader epoch."""
    append_n(log, 2)
    buf = bytearray(make_batch([b"a"]))
    log.append(buf, validate_batches(buf), leader_epoch=9, now_ms=0)
    header = read_header(buf)
    assert (header.base_offset, header.partition_leader_epoch) == (2, 9)


# --- leader epochs ---------------------------------------------------------------------


def follower_batch(values: list[bytes], base_offset: int, epoch: int, ts: int = 1000) -> bytes:
    """A batch as a leader stored it: offset and partition leader epoch assigned."""
    return build_batch(
        [RecordInput(v, timestamp=ts) for v in values], base_offset=base_offset, partition_leader_epoch=epoch
    )


def replicate(leader: Log, follower: Log, max_bytes: int = 300) -> None:
    """Fetch from the leader as a follower does, until caught up."""
    while follower.log_end_offset < leader.log_end_offset:
        data = leader.read(follower.log_end_offset, max_bytes)
        follower.append_as_follower(data, validate_batches(data))


def checkpoint_text(log: Log) -> str:
    return (log.directory / LEADER_EPOCH_CHECKPOINT).read_text()


def test_leader_appends_record_epochs(log: Log) -> None:
    assert log.latest_epoch is None
    assert log.end_offset_for_epoch(0) == (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
    append(log, make_batch([b"a", b"b"]), make_batch([b"c"]), leader_epoch=0)
    append(log, make_batch([b"d"]), leader_epoch=0)
    append(log, make_batch([b"e", b"f"]), leader_epoch=3)
    append(log, make_batch([b"g"]), leader_epoch=4)
    assert log.leader_epoch_cache.entries() == [(0, 0), (3, 4), (4, 6)]
    assert log.latest_epoch == 4
    assert checkpoint_text(log) == "0\n3\n0 0\n3 4\n4 6\n"
    assert log.end_offset_for_epoch(4) == (4, 7)
    assert log.end_offset_for_epoch(3) == (3, 6)
    assert log.end_offset_for_epoch(2) == (0, 4)
    assert log.end_offset_for_epoch(5) == (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
    assert [h.partition_leader_epoch for h in headers_of(log.read(0, BIG))] == [0, 0, 0, 3, 4]


def test_leader_append_with_an_undefined_epoch_records_nothing(log: Log) -> None:
    append(log, make_batch([b"a"]), leader_epoch=-1)
    assert log.leader_epoch_cache.entries() == []


def test_follower_appends_record_each_batches_epoch(log: Log) -> None:
    data = (
        follower_batch([b"a", b"b"], 0, 1)
        + follower_batch([b"c"], 2, 1)
        + follower_batch([b"d"], 3, 2)
        + follower_batch([b"e"], 4, -1)  # no epoch (old format): covered by the one before
        + follower_batch([b"f"], 5, 5)
    )
    log.append_as_follower(data, validate_batches(data))
    assert log.leader_epoch_cache.entries() == [(1, 0), (2, 3), (5, 5)]
    assert log.end_offset_for_epoch(2) == (2, 5)
    assert log.read(0, BIG) == data


def test_follower_append_is_byte_identical_without_restamping(tmp_path: Path) -> None:
    config = LogConfig(message_timestamp_type="LogAppendTime", index_interval_bytes=100)
    leader = Log.open(tmp_path / "t-0", config, now_ms=0)
    follower = Log.open(tmp_path / "f" / "t-0", config, now_ms=0)
    append(leader, make_batch([b"a", b"b"], ts=5), now_ms=111, leader_epoch=2)
    append(leader, make_batch([b"c"], ts=6), now_ms=222, leader_epoch=3)
    follower.roll(999_999)
    replicate(leader, follower)
    assert follower.read(0, BIG) == leader.read(0, BIG)
    assert [r.timestamp for r in read_all(follower)] == [111, 111, 222]
    assert follower.leader_epoch_cache.entries() == leader.leader_epoch_cache.entries() == [(2, 0), (3, 2)]


def test_follower_append_rejects_overlaps(log: Log) -> None:
    first = follower_batch([b"a", b"b"], 0, 1)
    log.append_as_follower(first, validate_batches(first))
    overlap = follower_batch([b"c", b"d"], 2, 1) + follower_batch([b"e"], 3, 1)
    with pytest.raises(LogError):
        log.append_as_follower(overlap, validate_batches(overlap))
    behind = follower_batch([b"x"], 1, 1)
    with pytest.raises(LogError):
        log.append_as_follower(behind, validate_batches(behind))
    assert log.log_end_offset == 2
    assert log.leader_epoch_cache.entries() == [(1, 0)]


def test_truncation_removes_later_epochs(five_batches: Log) -> None:
    log = five_batches  # batches of 3 records from offset 0, epoch 0
    append(log, make_batch([b"x"]), leader_epoch=2)  # 15
    append(log, make_batch([b"y", b"z"]), leader_epoch=5)  # 16-17
    assert log.leader_epoch_cache.entries() == [(0, 0), (2, 15), (5, 16)]
    log.truncate_to(17)  # inside the epoch 5 batch: it goes whole
    assert log.log_end_offset == 16
    assert log.leader_epoch_cache.entries() == [(0, 0), (2, 15)]
    assert checkpoint_text(log) == "0\n2\n0 0\n2 15\n"
    assert log.end_offset_for_epoch(2) == (2, 16)
    log.truncate_to(7)
    assert log.leader_epoch_cache.entries() == [(0, 0)]
    append(log, make_batch([b"w"]), leader_epoch=6)
    assert log.leader_epoch_cache.entries() == [(0, 0), (6, 6)]


def test_truncation_at_the_log_end_drops_an_epoch_with_nothing_written(log: Log) -> None:
    append(log, make_batch([b"a"]), leader_epoch=1)
    log.leader_epoch_cache.assign(2, 1)  # as if an append in epoch 2 failed after it
    log.truncate_to(5)
    assert log.leader_epoch_cache.entries() == [(1, 0)]


def test_truncation_below_the_log_start_clears_the_epochs(five_batches: Log) -> None:
    log = five_batches
    append(log, make_batch([b"x"]), leader_epoch=2)
    log.delete_records_before(8)
    log.truncate_to(7)
    assert (log.log_start_offset, log.log_end_offset) == (6, 6)
    assert log.leader_epoch_cache.entries() == []
    append(log, make_batch([b"z"]), leader_epoch=3)
    assert log.leader_epoch_cache.entries() == [(3, 6)]


def test_log_start_movement_truncates_epochs_from_the_start(five_batches: Log) -> None:
    log = five_batches
    append(log, make_batch([b"x"]), leader_epoch=2)  # 15
    append(log, make_batch([b"y"]), leader_epoch=3)  # 16
    log.delete_records_before(4)
    assert log.leader_epoch_cache.entries() == [(0, 4), (2, 15), (3, 16)]
    log.delete_records_before(16)
    assert log.leader_epoch_cache.entries() == [(3, 16)]
    log.delete_records_before(17)  # everything: the latest epoch stays, at the log end
    assert log.leader_epoch_cache.entries() == [(3, 17)]
    assert log.end_offset_for_epoch(3) == (3, 17)
    assert log.end_offset_for_epoch(0) == (0, 17)
    assert checkpoint_text(log) == "0\n1\n3 17\n"


def test_retention_truncates_epochs_from_the_start(tmp_path: Path) -> None:
    config = LogConfig(segment_bytes=batch_size(3) * 2, retention_bytes=batch_size(3))
    log = Log.open(tmp_path / "t-0", config, now_ms=0)
    for epoch in range(5):
        append(log, make_batch([b"v%04d" % i for i in range(3)]), leader_epoch=epoch)
    assert log.segment_base_offsets() == [0, 6, 12]
    log.update_high_watermark(log.log_end_offset)
    assert log.delete_old_segments(0) == 2
    assert log.log_start_offset == 12
    assert log.leader_epoch_cache.entries() == [(4, 12)]


def reopen(log: Log, *, recover: bool = False, **kwargs: int) -> Log:
    log.close()
    return Log.open(log.directory, log.config, now_ms=0, recover=recover,
                    log_start_offset=log.log_start_offset, **kwargs)


def epoch_log(tmp_path: Path) -> Log:
    log = Log.open(tmp_path / "t-0", LogConfig(segment_bytes=batch_size(2) * 3, index_interval_bytes=100),
                   now_ms=0)
    for epoch, n in ((0, 4), (2, 3), (3, 1), (7, 4)):
        for _ in range(n):
            append(log, make_batch([b"a", b"b"]), leader_epoch=epoch)
    assert log.leader_epoch_cache.entries() == [(0, 0), (2, 8), (3, 14), (7, 16)]
    assert len(log.segment_base_offsets()) > 3
    return log


@pytest.mark.parametrize("recover", [False, True])
def test_restart_with_the_checkpoint(tmp_path: Path, recover: bool) -> None:
    log = epoch_log(tmp_path)
    log.flush()
    again = reopen(log, recover=recover)
    assert again.leader_epoch_cache.entries() == [(0, 0), (2, 8), (3, 14), (7, 16)]
    assert again.end_offset_for_epoch(2) == (2, 14)


@pytest.mark.parametrize("recover", [False, True])
@pytest.mark.parametrize("damage", ["missing", "corrupt", "behind", "empty", "ahead"])
def test_restart_rebuilds_a_missing_or_wrong_checkpoint(tmp_path: Path, recover: bool, damage: str) -> None:
    log = epoch_log(tmp_path)
    log.delete_records_before(3)
    path = log.directory / LEADER_EPOCH_CHECKPOINT
    if damage == "missing":
        path.unlink()
    elif damage == "corrupt":
        path.write_text("0\n4\n0 0\n")
    elif damage == "behind":
        path.write_text("0\n2\n0 0\n2 8\n")  # lost epochs 3 and 7
    elif damage == "empty":
        path.write_text("0\n0\n")
    else:
        path.write_text("0\n6\n0 0\n2 8\n3 14\n7 16\n8 24\n9 30\n")  # beyond the log end
    again = reopen(log, recover=recover)
    assert again.leader_epoch_cache.entries() == [(0, 3), (2, 8), (3, 14), (7, 16)]
    # A rebuilt checkpoint is written at once; one only cut at the log end at the log's
    # next flush (every load cuts it the same way meanwhile).
    again.leader_epoch_cache.sync()
    assert path.read_text() == "0\n4\n0 3\n2 8\n3 14\n7 16\n"


def test_restart_rebuilds_when_the_checkpoint_disagrees_in_recovered_segments(tmp_path: Path) -> None:
    log = epoch_log(tmp_path)
    path = log.directory / LEADER_EPOCH_CHECKPOINT
    path.write_text("0\n4\n0 0\n2 6\n3 14\n7 16\n")  # epoch 2 starts at 8, not 6
    trusted = reopen(log)  # clean: only the tail is checked, and it agrees
    assert trusted.leader_epoch_cache.entries() == [(0, 0), (2, 6), (3, 14), (7, 16)]
    recovered = reopen(trusted, recover=True, recovery_point=0)
    assert recovered.leader_epoch_cache.entries() == [(0, 0), (2, 8), (3, 14), (7, 16)]


def test_crash_after_the_epoch_was_written_before_the_batch(tmp_path: Path) -> None:
    """The checkpoint is written before the append: a crash in between leaves an epoch
    starting at the log end, which loading drops (from the file at the next flush)."""
    log = epoch_log(tmp_path)
    log.leader_epoch_cache.assign(9, log.log_end_offset)
    again = reopen(log, recover=True)
    assert again.leader_epoch_cache.entries() == [(0, 0), (2, 8), (3, 14), (7, 16)]
    again.leader_epoch_cache.sync()
    assert checkpoint_text(again) == "0\n4\n0 0\n2 8\n3 14\n7 16\n"


def test_torn_tail_truncates_the_epochs(tmp_path: Path) -> None:
    log = epoch_log(tmp_path)
    log.close()
    last = last_segment(log.directory)
    with last.open("r+b") as f:
        f.truncate(last.stat().st_size - 1)  # the last batch (epoch 7, at 22) is torn
    again = reopen(log, recover=True)
    assert again.log_end_offset == 22
    assert again.leader_epoch_cache.entries() == [(0, 0), (2, 8), (3, 14), (7, 16)]
    # everything of epoch 7 lost: it goes from the cache
    again.truncate_to(16)
    again.close()
    again = reopen(again, recover=True)
    assert again.leader_epoch_cache.entries() == [(0, 0), (2, 8), (3, 14)]


def test_new_empty_log_writes_no_checkpoint(log: Log) -> None:
    assert not (log.directory / LEADER_EPOCH_CHECKPOINT).exists()
    again = reopen(log)
    assert again.leader_epoch_cache.entries() == []


# --- the KIP-101 scenarios, at the log level ------------------------------------------


def truncation_offset(follower: Log, leader: Log) -> int:
    """Where a follower truncates (KIP-101 with KIP-279): ask the leader for the end of
    the follower's latest epoch; if the leader answers with an earlier epoch, the
    follower also stops at its own end of that epoch."""
    epoch = follower.latest_epoch
    assert epoch is not None
    leader_epoch, leader_end = leader.end_offset_for_epoch(epoch)
    assert leader_end != UNDEFINED_EPOCH_OFFSET
    offset = min(leader_end, follower.log_end_offset)
    if leader_epoch != epoch:
        offset = min(offset, follower.end_offset_for_epoch(leader_epoch)[1])
    return offset


def assert_identical(a: Log, b: Log) -> None:
    assert (a.log_start_offset, a.log_end_offset) == (b.log_start_offset, b.log_end_offset)
    assert a.read(a.log_start_offset, BIG) == b.read(b.log_start_offset, BIG)
    assert a.leader_epoch_cache.entries() == b.leader_epoch_cache.entries()


def test_kip_101_divergent_logs(tmp_path: Path) -> None:
    """A (leader, epoch 1) writes 2 batches that B never gets, then dies; B leads in
    epoch 2 and writes other batches at the same offsets. A comes back: truncation by
    epoch removes exactly its unreplicated epoch 1 batches, and the logs converge byte
    for byte."""
    config = LogConfig(segment_bytes=batch_size(2) * 3, index_interval_bytes=100)
    a = Log.open(tmp_path / "a" / "t-0", config, now_ms=0)
    b = Log.open(tmp_path / "b" / "t-0", config, now_ms=0)
    for i in range(4):
        append(a, make_batch([b"m%d" % i, b"n%d" % i]), leader_epoch=0)
    replicate(a, b)
    append(a, make_batch([b"lost1"]), leader_epoch=1)  # offsets 8, 9: never replicated
    append(a, make_batch([b"lost2"]), leader_epoch=1)
    a.update_high_watermark(8)
    append(b, make_batch([b"new1", b"new2"]), leader_epoch=2)  # 8-9, then 10
    append(b, make_batch([b"new3"]), leader_epoch=2)
    assert a.log_end_offset == b.log_end_offset - 1

    a = reopen(a, recover=True)  # A restarts
    assert b.end_offset_for_epoch(1) == (0, 8)
    offset = truncation_offset(a, b)
    assert offset == 8
    a.truncate_to(offset)
    assert a.leader_epoch_cache.entries() == [(0, 0)]
    replicate(b, a)
    assert_identical(a, b)
    assert b"lost1" not in a.read(0, BIG)
    assert [r.value for r in read_all(a)][8:] == [b"new1", b"new2", b"new3"]


def test_kip_101_no_truncation_to_the_high_watermark(tmp_path: Path) -> None:
    """KIP-101 scenario 1: a follower restarts with a high watermark below its log end.
    Truncating to the high watermark would drop records the leader has (and may have
    acknowledged); truncation by epoch keeps them."""
    config = LogConfig(index_interval_bytes=100)
    leader = Log.open(tmp_path / "a" / "t-0", config, now_ms=0)
    follower = Log.open(tmp_path / "b" / "t-0", config, now_ms=0)
    append(leader, make_batch([b"m1"]), leader_epoch=0)
    append(leader, make_batch([b"m2"]), leader_epoch=0)
    replicate(leader, follower)
    follower.update_high_watermark(1)  # it had not learnt that m2 is committed
    follower = reopen(follower, recover=True, high_watermark=follower.high_watermark)
    assert follower.high_watermark == 1
    offset = truncation_offset(follower, leader)
    assert offset == 2
    follower.truncate_to(offset)
    assert follower.log_end_offset == 2
    assert follower.high_watermark == 1
    # the leader dies, the follower leads in epoch 1: m2 is still there
    append(follower, make_batch([b"m3"]), leader_epoch=1)
    assert [r.value for r in read_all(follower)] == [b"m1", b"m2", b"m3"]
    # and the old leader, back as a follower, keeps m2 too and converges
    offset = truncation_offset(leader, follower)
    assert offset == 2
    leader.truncate_to(offset)
    replicate(follower, leader)
    assert_identical(leader, follower)


def test_kip_279_leader_answers_with_an_earlier_epoch(tmp_path: Path) -> None:
    """The follower's latest epoch (3) is unknown to the leader, which answers with its
    epoch below it (1) and where that ends; the follower then also stops at its own end
    of epoch 1, which is earlier."""
    config = LogConfig(index_interval_bytes=100)
    leader = Log.open(tmp_path / "a" / "t-0", config, now_ms=0)
    follower = Log.open(tmp_path / "b" / "t-0", config, now_ms=0)
    append(leader, make_batch([b"a", b"b"]), leader_epoch=1)
    replicate(leader, follower)
    append(follower, make_batch([b"f1"]), leader_epoch=3)  # 2: follower led in epoch 3
    append(leader, make_batch([b"l1"]), leader_epoch=1)  # 2
    append(leader, make_batch([b"l2"]), leader_epoch=1)  # 3
    append(leader, make_batch([b"l3"]), leader_epoch=4)  # 4
    assert leader.end_offset_for_epoch(3) == (1, 4)
    assert truncation_offset(follower, leader) == 2
    follower.truncate_to(2)
    replicate(leader, follower)
    assert_identical(leader, follower)
    assert [r.value for r in read_all(follower)] == [b"a", b"b", b"l1", b"l2", b"l3"]


# --- high watermark --------------------------------------------------------------------


def test_high_watermark_is_clamped(five_batches: Log) -> None:
    log = five_batches
    assert log.high_watermark == 0
    assert log.update_high_watermark(7) == 7
    assert log.update_high_watermark(100) == 15
    assert log.update_high_watermark(-3) == 0
    log.update_high_watermark(10)
    log.delete_records_before(12)
    assert log.high_watermark == 12  # never below the log start
    log.truncate_to(13)
    assert (log.log_end_offset, log.high_watermark) == (12, 12)
    log.update_high_watermark(5)
    assert log.high_watermark == 12


def test_truncation_lowers_the_high_watermark(five_batches: Log) -> None:
    log = five_batches
    log.update_high_watermark(14)
    log.truncate_to(7)
    assert log.high_watermark == 6
    log.truncate_to(100)
    assert log.high_watermark == 6


def test_open_clamps_the_high_watermark(tmp_path: Path) -> None:
    log = build_source(tmp_path, LogConfig())  # 30 records
    for given, expected in ((12, 12), (1000, 30), (-5, 0)):
        again = Log.open(log.directory, log.config, now_ms=0, high_watermark=given)
        assert again.high_watermark == expected
        again.close()
    again = Log.open(log.directory, log.config, now_ms=0, log_start_offset=9, high_watermark=3)
    assert again.high_watermark == 9
    again.close()


@pytest.mark.parametrize("clean", [True, False])
def test_high_watermark_survives_a_log_manager_restart(tmp_path: Path, clean: bool) -> None:
    dirs = [tmp_path / "d1", tmp_path / "d2"]
    manager = LogManager(dirs, LogConfig())
    manager.load(0)
    for p in range(2):
        log = manager.create("t", p, LogConfig(), 0)
        for _ in range(5):
            append(log, make_batch([b"a", b"b"]), leader_epoch=p + 1)
        log.update_high_watermark(3 + p)
    if clean:
        manager.shutdown()
    else:
        manager.checkpoint()  # the periodic checkpoint, then a crash
        for log in manager.all_logs().values():
            log.flush()
            log.close()
        manager._unlock_all()
    text = (dirs[0] / REPLICATION_OFFSET_CHECKPOINT).read_text() + (dirs[1] / REPLICATION_OFFSET_CHECKPOINT).read_text()
    assert "t 0 3\n" in text and "t 1 4\n" in text
    again = LogManager(dirs, LogConfig())
    again.load(0)
    try:
        for p in range(2):
            loaded = again.get("t", p)
            assert loaded is not None
            assert loaded.high_watermark == 3 + p
            assert loaded.log_end_offset == 10
            assert loaded.leader_epoch_cache.entries() == [(p + 1, 0)]
    finally:
        again.shutdown()

"""Logs whose offsets have gaps, as compaction leaves them: reads, indexes, timestamps,
recovery, truncation and follower appends."""

import shutil
from pathlib import Path

import pytest

from moldau.log.config import LogConfig
from moldau.log.errors import LogError
from moldau.log.log import Log
from moldau.log.segment import segment_file_name
from moldau.protocol.records import (
    CRC_FIELD,
    CRC_POS,
    InvalidRecordError,
    RecordInput,
    build_batch,
    crc_of,
    iter_batches,
    iter_records,
    validate_batches,
)

BIG = 10**9

# (base offset, values): gaps at 2-4, 7-9 (across the segment roll) and 12-19.
GAPPED = [(0, [b"a", b"b"]), (5, [b"c"]), (6, [b"d"]), (10, [b"e", b"f"]), (20, [b"g"]), (21, [b"h", b"i"])]


def leader_batch(base_offset: int, values: list[bytes], ts: int = 1000, epoch: int = 0) -> bytes:
    return build_batch([RecordInput(v, key=v, timestamp=ts + i) for i, v in enumerate(values)],
                       base_offset=base_offset, partition_leader_epoch=epoch)


def gapped_log(directory: Path, segment_bytes: int = 250) -> Log:
    """A follower log holding GAPPED, batch by batch (a roll about every three batches);
    timestamps are 1000 + the offset."""
    log = Log.open(directory, LogConfig(segment_bytes=segment_bytes, index_interval_bytes=0), now_ms=0)
    for base, values in GAPPED:
        data = leader_batch(base, values, ts=1000 + base)
        log.append_as_follower(data, validate_batches(data, from_producer=False))
    return log


def offsets(data: bytes) -> list[int]:
    return [r.offset for _, batch in iter_batches(data) for r in iter_records(batch)]


def all_offsets(log: Log) -> list[int]:
    return offsets(log.read(log.log_start_offset, BIG))


EXPECTED = [0, 1, 5, 6, 10, 11, 20, 21, 22]


def test_a_gapped_log_rolls_and_ends_at_the_last_batch(tmp_path: Path) -> None:
    log = gapped_log(tmp_path / "t-0")
    assert len(log.segment_base_offsets()) > 1
    assert log.log_end_offset == 23
    assert all_offsets(log) == EXPECTED


@pytest.mark.parametrize("fetch_offset", range(23))
def test_a_read_in_a_gap_returns_the_next_batch(tmp_path: Path, fetch_offset: int) -> None:
    log = gapped_log(tmp_path / "t-0")
    data = log.read(fetch_offset, 1)  # one batch (KIP-74)
    first = next(iter_batches(data))[0]
    expected_batch = next((b, v) for b, v in GAPPED if b + len(v) - 1 >= fetch_offset)
    assert first.base_offset == expected_batch[0]


def test_offset_index_lookups_land_on_batches_after_gaps(tmp_path: Path) -> None:
    log = gapped_log(tmp_path / "t-0", segment_bytes=BIG)  # one segment, an index entry per batch
    segment = log.active_segment
    for offset in range(23):
        position, header = segment.find_batch(offset)  # type: ignore[misc]
        assert header.last_offset >= offset
        assert header.base_offset == min(b for b, v in GAPPED if b + len(v) - 1 >= offset)
        assert segment.read_batch(position, header.size)[:8] == header.base_offset.to_bytes(8, "big")
    assert segment.find_batch(23) is None


def test_offset_for_timestamp_in_a_gapped_log(tmp_path: Path) -> None:
    log = gapped_log(tmp_path / "t-0")
    # Records of the batch at base b have timestamps 1000 + b + i.
    assert log.offset_for_timestamp(0) == (0, 1000)
    assert log.offset_for_timestamp(1002) == (5, 1005)  # no record has 1002-1004
    assert log.offset_for_timestamp(1012) == (20, 1020)
    assert log.offset_for_timestamp(1022) == (22, 1022)  # batch 21: 1021, 1022
    assert log.offset_for_timestamp(1023) is None
    assert log.max_timestamp_offset() == (22, 1022)


@pytest.mark.parametrize("clean", [True, False])
def test_recovery_keeps_a_gapped_log_whole(tmp_path: Path, clean: bool) -> None:
    log = gapped_log(tmp_path / "t-0")
    before = log.read(0, BIG)
    if clean:
        log.flush()
        log.close()
    # else: a crash, nothing flushed; the files are what the appends wrote.
    reopened = Log.open(tmp_path / "t-0", LogConfig(segment_bytes=250, index_interval_bytes=0), now_ms=0,
                        recover=not clean)
    assert reopened.read(0, BIG) == before
    assert reopened.log_end_offset == 23
    assert all_offsets(reopened) == EXPECTED


def test_recovery_still_cuts_a_batch_that_goes_backwards(tmp_path: Path) -> None:
    directory = tmp_path / "t-0"
    directory.mkdir()
    good = leader_batch(0, [b"a", b"b"]) + leader_batch(5, [b"c"])
    backwards = leader_batch(4, [b"x"])  # starts inside the batch before it ends
    (directory / segment_file_name(0, ".log")).write_bytes(good + backwards + leader_batch(9, [b"y"]))
    log = Log.open(directory, LogConfig(), now_ms=0, recover=True)
    assert all_offsets(log) == [0, 1, 5]
    assert log.log_end_offset == 6


def test_truncation_into_a_gap(tmp_path: Path) -> None:
    log = gapped_log(tmp_path / "t-0")
    log.truncate_to(8)  # between 6 and 10: the batch at 10 goes, the log ends at 8
    assert log.log_end_offset == 8
    assert all_offsets(log) == [0, 1, 5, 6]
    assert log.segment_base_offsets()[-1] <= 8
    data = leader_batch(8, [b"z"])
    log.append_as_follower(data, validate_batches(data))
    assert all_offsets(log) == [0, 1, 5, 6, 8]
    log.truncate_to(3)  # the gap between 1 and 5
    assert log.log_end_offset == 3
    assert all_offsets(log) == [0, 1]


def test_follower_replicates_a_gapped_leader_byte_for_byte(tmp_path: Path) -> None:
    leader = gapped_log(tmp_path / "t-0")
    follower = Log.open(tmp_path / "f" / "t-0", LogConfig(segment_bytes=400), now_ms=0)
    while follower.log_end_offset < leader.log_end_offset:
        data = leader.read(follower.log_end_offset, 150)  # fetch offsets land in gaps
        follower.append_as_follower(data, validate_batches(data, from_producer=False))
    assert follower.read(0, BIG) == leader.read(0, BIG)
    assert follower.log_end_offset == leader.log_end_offset
    follower.close()
    reopened = Log.open(tmp_path / "f" / "t-0", LogConfig(segment_bytes=400), now_ms=0, recover=True)
    assert reopened.read(0, BIG) == leader.read(0, BIG)


def test_follower_append_rejects_a_batch_inside_the_one_before(tmp_path: Path) -> None:
    log = gapped_log(tmp_path / "t-0")
    for data in (leader_batch(22, [b"x"]), leader_batch(30, [b"x", b"y"]) + leader_batch(31, [b"z"])):
        with pytest.raises(LogError):
            log.append_as_follower(data, validate_batches(data))
    assert log.log_end_offset == 23


def test_follower_gap_beyond_a_segments_relative_offsets_starts_a_new_segment(tmp_path: Path) -> None:
    log = gapped_log(tmp_path / "t-0", segment_bytes=BIG)
    far = 23 + 2**31 + 5
    data = leader_batch(far, [b"x"])
    log.append_as_follower(data, validate_batches(data))
    assert log.segment_base_offsets() == [0, far]
    log.roll(0)
    data = leader_batch(2 * far, [b"y"])
    log.append_as_follower(data, validate_batches(data))  # an empty active segment starts over
    assert log.segment_base_offsets() == [0, far, 2 * far]
    assert all_offsets(log) == [*EXPECTED, far, 2 * far]
    log.close()
    copy = tmp_path / "copy" / "t-0"
    shutil.copytree(log.directory, copy)
    assert all_offsets(Log.open(copy, LogConfig(), now_ms=0, recover=True)) == [*EXPECTED, far, 2 * far]


def test_validate_batches_accepts_compacted_batches_only_from_a_log() -> None:
    batch = bytearray(build_batch([RecordInput(b"a"), RecordInput(b"b")]))
    batch[57:61] = (1).to_bytes(4, "big")  # records count 1 of 2 offsets: what the cleaner writes
    CRC_FIELD.pack_into(batch, CRC_POS, crc_of(batch, 0, len(batch)))
    with pytest.raises(InvalidRecordError):
        validate_batches(batch)
    assert validate_batches(batch, from_producer=False)[0].records_count == 1

"""LogSegment: appends, sparse indexing, reads, recovery and truncation of one segment."""

from pathlib import Path

import pytest

from moldau.log.segment import LogSegment, segment_file_name
from moldau.protocol.records import (
    BatchHeader,
    RecordInput,
    build_batch,
    iter_batches,
    read_header,
)

INTERVAL = 100
INDEX_BYTES = 1 << 20


def batch(base_offset: int, n: int, ts: int, *, size: int = 30) -> bytes:
    return build_batch(
        [RecordInput(b"x" * size, timestamp=ts + i) for i in range(n)], base_offset=base_offset
    )


def fill(segment: LogSegment, count: int, *, records: int = 2, start_ts: int = 1000) -> list[
    tuple[int, BatchHeader]
]:
    """Append ``count`` batches one by one; returns (position, header) of each."""
    out = []
    for i in range(count):
        data = batch(segment.next_offset, records, start_ts + 10 * i)
        header = read_header(data)
        out.append((segment.size, header))
        segment.append(data, [header], index_interval_bytes=INTERVAL, max_index_bytes=INDEX_BYTES)
    return out


@pytest.fixture
def segment(tmp_path: Path) -> LogSegment:
    return LogSegment.create(tmp_path, 100)


def test_file_names_are_twenty_digit_base_offsets(segment: LogSegment, tmp_path: Path) -> None:
    assert segment_file_name(100, ".log") == "00000000000000000100.log"
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "00000000000000000100.index",
        "00000000000000000100.log",
        "00000000000000000100.timeindex",
    ]


def test_append_writes_bytes_as_given_and_indexes_sparsely(segment: LogSegment) -> None:
    batches = fill(segment, 20)
    raw = segment.log_path.read_bytes()
    assert len(raw) == segment.size == sum(h.size for _, h in batches)
    assert segment.next_offset == 140
    # An entry for a batch each time more than INTERVAL bytes were written since the
    # last one: (the batch's last offset, where the batch starts).
    since = 0
    expected = []
    for position, header in batches:
        if since > INTERVAL:
            expected.append((header.last_offset, position))
            since = 0
        since += header.size
    assert [segment.offset_index.entry(i) for i in range(segment.offset_index.entries)] == expected
    assert 0 < segment.offset_index.entries < 20
    assert segment.max_timestamp == batches[-1][1].max_timestamp
    assert segment.offset_of_max_timestamp == 139


def test_index_entries_needed_predicts_append(segment: LogSegment) -> None:
    fill(segment, 3)
    data = b"".join(batch(106 + 2 * i, 2, 5000 + i) for i in range(6))
    headers = [h for h, _ in iter_batches(data)]
    predicted = segment.index_entries_needed(
        [(h.size, h.max_timestamp) for h in headers], INTERVAL
    )
    before = (segment.offset_index.entries, segment.time_index.entries)
    segment.append(data, headers, index_interval_bytes=INTERVAL, max_index_bytes=INDEX_BYTES)
    after = (segment.offset_index.entries, segment.time_index.entries)
    assert predicted == (after[0] - before[0], after[1] - before[1])


def test_find_batch_for_offsets_inside_between_and_past(segment: LogSegment) -> None:
    batches = fill(segment, 20, records=3)
    for position, header in batches:
        for offset in range(header.base_offset, header.next_offset):
            assert segment.find_batch(offset) == (position, header)
    assert segment.find_batch(50) == batches[0]
    assert segment.find_batch(segment.next_offset) is None


def test_read_batches_limits(segment: LogSegment) -> None:
    batches = fill(segment, 10)
    size = batches[0][1].size
    data, next_offset, stopped = segment.read_batches(0, 3 * size + 5, 10**9, min_one=True)
    assert len(data) == 3 * size and next_offset == 106 and stopped
    data, next_offset, stopped = segment.read_batches(0, 10**6, 10**9, min_one=True)
    assert len(data) == segment.size and next_offset == 120 and not stopped
    # KIP-74: the first batch even if larger than max_bytes, but only with min_one
    data, next_offset, _ = segment.read_batches(0, 1, 10**9, min_one=True)
    assert len(data) == size and next_offset == 102
    assert segment.read_batches(0, 1, 10**9, min_one=False)[0] == b""
    # nothing holding an offset >= max_offset
    data, next_offset, stopped = segment.read_batches(0, 10**6, 105, min_one=True)
    assert next_offset == 104 and stopped


def test_read_batches_is_every_whole_batch_within_the_limits(tmp_path: Path) -> None:
    """Reads skip ahead by the offset index and read exactly the batches returned: the
    same answer as a scan of every header, for every start, size limit and offset limit
    (batches of varying sizes, an index entry every few batches)."""
    segment = LogSegment.create(tmp_path, 0)
    batches: list[tuple[int, BatchHeader]] = []
    for i in range(40):
        data = batch(segment.next_offset, 1 + i % 4, 1000 + i, size=10 + (i * 37) % 90)
        header = read_header(data)
        batches.append((segment.size, header))
        segment.append(data, [header], index_interval_bytes=INTERVAL, max_index_bytes=INDEX_BYTES)
    assert segment.offset_index.entries > 5
    raw = segment.log_path.read_bytes()

    def expected(start: int, max_bytes: int, max_offset: int, min_one: bool) -> tuple[bytes, int, bool]:
        taken = [(pos, h) for pos, h in batches[start:]]
        position = taken[0][0]
        end, next_offset = position, -1
        for pos, h in taken:
            if h.last_offset >= max_offset:
                return raw[position:end], next_offset, True
            if pos + h.size - position > max_bytes:
                if pos == position and min_one:
                    return raw[pos:pos + h.size], h.next_offset, True
                return raw[position:end], next_offset, True
            end, next_offset = pos + h.size, h.next_offset
        return raw[position:end], next_offset, False

    for start in range(0, 40, 3):
        for max_bytes in (1, 50, 100, 333, 1000, 2500, 10**6):
            for max_offset in (5, 40, 77, 10**9):
                for min_one in (True, False):
                    assert segment.read_batches(batches[start][0], max_bytes, max_offset, min_one) == expected(
                        start, max_bytes, max_offset, min_one), (start, max_bytes, max_offset, min_one)
    segment.close()


def test_recover_rebuilds_the_same_indexes(segment: LogSegment) -> None:
    fill(segment, 30)
    entries = [segment.offset_index.entry(i) for i in range(segment.offset_index.entries)]
    time_entries = segment.time_index.path.read_bytes()
    max_ts = (segment.max_timestamp, segment.offset_of_max_timestamp)
    assert segment.recover(INTERVAL, INDEX_BYTES) == 0
    assert [segment.offset_index.entry(i) for i in range(segment.offset_index.entries)] == entries
    assert segment.time_index.path.read_bytes() == time_entries
    assert (segment.max_timestamp, segment.offset_of_max_timestamp) == max_ts
    assert segment.next_offset == 160


def test_recover_cuts_a_torn_tail(segment: LogSegment, tmp_path: Path) -> None:
    batches = fill(segment, 5)
    segment.close()
    with segment.log_path.open("r+b") as f:
        f.truncate(batches[-1][0] + 20)
    again = LogSegment(tmp_path, 100)
    assert again.recover(INTERVAL, INDEX_BYTES) == 20
    assert again.size == batches[-1][0]
    assert again.next_offset == batches[-1][1].base_offset


def test_load_tail_trusts_the_index_and_cuts_a_partial_batch(
    segment: LogSegment, tmp_path: Path
) -> None:
    fill(segment, 12)
    size, next_offset = segment.size, segment.next_offset
    segment.close()
    with segment.log_path.open("ab") as f:
        f.write(b"\x00" * 30)
    again = LogSegment(tmp_path, 100)
    assert again.check_indexes(None)
    assert again.load_tail() == 30
    assert (again.size, again.next_offset) == (size, next_offset)


def test_load_tail_rejects_an_index_that_does_not_match(
    segment: LogSegment, tmp_path: Path
) -> None:
    fill(segment, 12)
    segment.close()
    (tmp_path / segment_file_name(100, ".index")).write_bytes(
        (1).to_bytes(4, "big") + (200).to_bytes(4, "big")
    )
    again = LogSegment(tmp_path, 100)
    assert again.load_tail() is None


def test_check_indexes_notices_missing_files(segment: LogSegment, tmp_path: Path) -> None:
    fill(segment, 5)
    segment.close()
    (tmp_path / segment_file_name(100, ".timeindex")).unlink()
    again = LogSegment(tmp_path, 100)
    assert not again.check_indexes(None)


def test_truncate_to_recomputes_the_largest_timestamp(segment: LogSegment) -> None:
    batches = fill(segment, 20)
    segment.truncate_to(114)
    assert segment.size == batches[7][0]
    assert segment.next_offset == 114
    assert segment.max_timestamp == batches[6][1].max_timestamp
    assert segment.offset_of_max_timestamp == 113
    assert all(o < 114 for o in (segment.offset_index.last_entry()[0],))
    fill(segment, 1, start_ts=9999)
    assert segment.next_offset == 116
    assert segment.max_timestamp == 10000


def test_find_offset_by_timestamp_with_out_of_order_records(segment: LogSegment) -> None:
    # offsets 100..: timestamps out of order within the batch
    data = build_batch(
        [RecordInput(b"a", timestamp=t) for t in (50, 10, 70, 30)], base_offset=100
    )
    segment.append(
        data, [read_header(data)], index_interval_bytes=0, max_index_bytes=INDEX_BYTES
    )
    assert segment.find_offset_by_timestamp(20, 0) == (100, 50)
    assert segment.find_offset_by_timestamp(60, 0) == (102, 70)
    assert segment.find_offset_by_timestamp(5, 101) == (101, 10)
    assert segment.find_offset_by_timestamp(71, 0) is None


def test_seal_records_the_largest_timestamp(segment: LogSegment, tmp_path: Path) -> None:
    fill(segment, 1, records=3, start_ts=7000)  # too small for an index entry
    assert segment.time_index.entries == 0
    segment.seal()
    assert segment.time_index.last_entry() == (7002, 102)
    segment.close()
    again = LogSegment(tmp_path, 100)
    assert (again.max_timestamp, again.offset_of_max_timestamp) == (7002, 102)


def test_delete_removes_the_files(segment: LogSegment, tmp_path: Path) -> None:
    fill(segment, 2)
    segment.delete()
    assert list(tmp_path.iterdir()) == []

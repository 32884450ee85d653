"""OffsetIndex and TimeIndex: lookups, on-disk format, truncation, sanity checks."""

from pathlib import Path

import pytest

from moldau.log.errors import CorruptIndexError, LogError
from moldau.log.offset_index import OffsetIndex
from moldau.log.time_index import TimeIndex


@pytest.fixture
def index(tmp_path: Path) -> OffsetIndex:
    idx = OffsetIndex(tmp_path / "00000000000000000050.index", 50)
    for offset, position in [(55, 100), (60, 200), (70, 350)]:
        idx.append(offset, position)
    return idx


def test_offsets_are_stored_relative_to_the_base_big_endian(index: OffsetIndex) -> None:
    data = index.path.read_bytes()
    assert len(data) == 3 * 8
    # base offset 50: offset 55 is stored as 5
    assert data[:8] == (5).to_bytes(4, "big") + (100).to_bytes(4, "big")
    assert data[16:] == (20).to_bytes(4, "big") + (350).to_bytes(4, "big")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (50, (50, 0)),  # before the first entry: start of the segment
        (54, (50, 0)),
        (55, (55, 100)),  # at an entry
        (59, (55, 100)),  # between entries: the one below
        (60, (60, 200)),
        (69, (60, 200)),
        (70, (70, 350)),
        (10**9, (70, 350)),  # past the last
        (3, (50, 0)),  # below the base offset
    ],
)
def test_lookup_finds_largest_entry_at_or_below(
    index: OffsetIndex, target: int, expected: tuple[int, int]
) -> None:
    assert index.lookup(target) == expected


def test_empty_index(tmp_path: Path) -> None:
    idx = OffsetIndex(tmp_path / "x.index", 7)
    assert idx.entries == 0
    assert idx.lookup(100) == (7, 0)
    assert idx.last_entry() == (7, 0)
    idx.sanity_check(0)


def test_entries_must_increase(index: OffsetIndex) -> None:
    with pytest.raises(LogError):
        index.append(70, 400)
    with pytest.raises(LogError):
        index.append(49, 400)  # below the base offset


def test_reopen_loads_entries(index: OffsetIndex) -> None:
    index.close()
    again = OffsetIndex(index.path, 50)
    assert again.entries == 3
    assert again.lookup(65) == (60, 200)
    assert again.last_entry() == (70, 350)


def test_truncate_to_drops_entries_at_and_above(index: OffsetIndex) -> None:
    index.truncate_to(60)
    assert index.entries == 1
    assert index.last_entry() == (55, 100)
    assert index.path.stat().st_size == 8
    index.append(58, 150)  # appends continue after truncation
    index.close()
    assert OffsetIndex(index.path, 50).last_entry() == (58, 150)


def test_reset_empties_the_file(index: OffsetIndex) -> None:
    index.reset()
    assert index.entries == 0
    assert index.path.stat().st_size == 0


def test_torn_file_fails_sanity_check(index: OffsetIndex) -> None:
    index.close()
    with index.path.open("ab") as f:
        f.write(b"\x00\x01\x02")
    again = OffsetIndex(index.path, 50)
    assert again.entries == 3
    with pytest.raises(CorruptIndexError):
        again.sanity_check(1000)


def test_sanity_check_rejects_positions_past_the_log(index: OffsetIndex) -> None:
    index.sanity_check(351)
    with pytest.raises(CorruptIndexError):
        index.sanity_check(350)
    with pytest.raises(CorruptIndexError):
        index.sanity_check(1000, next_offset_bound=70)


def test_sanity_check_rejects_out_of_order_entries(tmp_path: Path) -> None:
    path = tmp_path / "00000000000000000000.index"
    path.write_bytes(b"".join(
        o.to_bytes(4, "big") + p.to_bytes(4, "big") for o, p in [(5, 100), (3, 200)]
    ))
    with pytest.raises(CorruptIndexError):
        OffsetIndex(path, 0).sanity_check(1000)


def test_max_entries() -> None:
    assert OffsetIndex.max_entries(10485760) == 1310720
    assert OffsetIndex.max_entries(15) == 1
    assert TimeIndex.max_entries(24) == 2


# --- TimeIndex ---------------------------------------------------------------------------


@pytest.fixture
def time_index(tmp_path: Path) -> TimeIndex:
    idx = TimeIndex(tmp_path / "00000000000000000050.timeindex", 50)
    for ts, offset in [(1000, 52), (2000, 60), (3000, 60), (4000, 75)]:
        assert idx.maybe_append(ts, offset)
    return idx


def test_time_index_format(time_index: TimeIndex) -> None:
    data = time_index.path.read_bytes()
    assert len(data) == 4 * 12
    assert data[:12] == (1000).to_bytes(8, "big") + (2).to_bytes(4, "big")


def test_time_index_appends_only_growing_timestamps(time_index: TimeIndex) -> None:
    assert not time_index.maybe_append(4000, 80)
    assert not time_index.maybe_append(500, 80)
    assert not time_index.maybe_append(-1, 80)
    assert time_index.entries == 4
    with pytest.raises(LogError):
        time_index.maybe_append(5000, 70)  # offsets never go backwards


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (999, (-1, 50)),
        (1000, (1000, 52)),
        (1999, (1000, 52)),
        (2000, (2000, 60)),
        (3500, (3000, 60)),
        (10**12, (4000, 75)),
    ],
)
def test_time_index_lookup(time_index: TimeIndex, target: int, expected: tuple[int, int]) -> None:
    assert time_index.lookup(target) == expected


def test_time_index_truncate_and_reopen(time_index: TimeIndex) -> None:
    time_index.truncate_to(60)
    assert time_index.last_entry() == (1000, 52)
    time_index.close()
    again = TimeIndex(time_index.path, 50)
    assert again.entries == 1
    again.sanity_check(53)
    with pytest.raises(CorruptIndexError):
        again.sanity_check(52)


def test_time_index_sanity_check_rejects_decreasing_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "t.timeindex"
    path.write_bytes(
        (2000).to_bytes(8, "big") + (1).to_bytes(4, "big")
        + (1000).to_bytes(8, "big") + (2).to_bytes(4, "big")
    )
    with pytest.raises(CorruptIndexError):
        TimeIndex(path, 0).sanity_check()

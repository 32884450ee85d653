"""Keeping some records of a batch (what the log cleaner writes), and key checks."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moldau.protocol.records import (
    Compression,
    RawRecord,
    Record,
    RecordInput,
    build_batch,
    filter_batch,
    has_keyless_record,
    iter_raw_records,
    iter_records,
    read_header,
    set_log_append_time,
    validate_batches,
)


def sample(codec: int = Compression.NONE) -> bytes:
    records = [
        RecordInput(b"v%d" % i if i != 3 else None, b"k%d" % (i % 4), [("h", b"%d" % i)], 5000 - 10 * i)
        for i in range(8)
    ]
    return build_batch(records, base_offset=100, compression=codec, partition_leader_epoch=7,
                       producer_id=42, producer_epoch=3, base_sequence=9)


def test_raw_records_carry_offsets_keys_and_tombstones() -> None:
    raw = list(iter_raw_records(sample()))
    assert [r.offset for r in raw] == list(range(100, 108))
    assert [r.key for r in raw] == [b"k%d" % (i % 4) for i in range(8)]
    assert [r.has_value for r in raw] == [i != 3 for i in range(8)]


def test_keeping_everything_returns_the_batch_itself() -> None:
    batch = sample()
    assert filter_batch(batch, lambda r: True) is batch


def test_keeping_nothing_drops_the_batch() -> None:
    assert filter_batch(sample(), lambda r: False) is None


@pytest.mark.parametrize("codec", [0, 1, 2, 3, 4])
def test_kept_records_keep_offsets_timestamps_and_the_batch_fields(codec: int) -> None:
    batch = sample(codec)
    original = list(iter_records(batch))

    def keep(record: RawRecord) -> bool:
        return record.offset in (101, 103, 106)

    filtered = filter_batch(batch, keep)
    assert filtered is not None
    (header,) = validate_batches(filtered, from_producer=False)  # the CRC holds
    before = read_header(batch)
    assert header.base_offset == 100 and header.last_offset == 107  # the batch spans the same offsets
    assert header.records_count == 3
    assert header.compression == codec
    assert (header.partition_leader_epoch, header.producer_id, header.producer_epoch, header.base_sequence) == (
        before.partition_leader_epoch, before.producer_id, before.producer_epoch, before.base_sequence)
    assert list(iter_records(filtered)) == [r for r in original if r.offset in (101, 103, 106)]
    assert header.base_timestamp == 4990  # the first kept record's
    assert header.max_timestamp == 4990  # timestamps decrease in this batch


def test_log_append_time_survives_filtering() -> None:
    batch = bytearray(sample())
    set_log_append_time(batch, 0, 123_456)
    filtered = filter_batch(batch, lambda r: r.offset >= 104)
    assert filtered is not None
    assert read_header(filtered).max_timestamp == 123_456
    assert read_header(filtered).is_log_append_time
    assert {r.timestamp for r in iter_records(filtered)} == {123_456}


def test_keyless_records_are_found() -> None:
    assert not has_keyless_record(sample())
    mixed = build_batch([RecordInput(b"a", b"k"), RecordInput(b"b", None)], compression=Compression.LZ4)
    assert has_keyless_record(mixed)


records_strategy = st.lists(
    st.tuples(
        st.one_of(st.none(), st.binary(max_size=8)),
        st.one_of(st.none(), st.binary(max_size=30)),
        st.integers(min_value=0, max_value=2**40),
        st.booleans(),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(records_strategy, st.sampled_from([0, 1, 2, 3, 4]), st.integers(min_value=0, max_value=2**40))
def test_filtering_keeps_exactly_the_chosen_records(
    spec: list[tuple[bytes | None, bytes | None, int, bool]], codec: int, base: int
) -> None:
    batch = build_batch([RecordInput(value, key, [("x", key)], ts) for key, value, ts, _ in spec],
                        base_offset=base, compression=codec)
    chosen = {base + i for i, (*_, keep) in enumerate(spec) if keep}
    filtered = filter_batch(batch, lambda r: r.offset in chosen)
    expected: list[Record] = [r for r in iter_records(batch) if r.offset in chosen]
    if not chosen:
        assert filtered is None
        return
    assert filtered is not None
    if len(chosen) == len(spec):
        assert filtered is batch
    (header,) = validate_batches(filtered, from_producer=False)
    assert header.last_offset == base + len(spec) - 1
    assert list(iter_records(filtered)) == expected
    assert header.max_timestamp == max(r.timestamp for r in expected)


def test_an_empty_batch_can_be_kept_for_its_producer_fields() -> None:
    batch = sample(Compression.GZIP)
    empty = filter_batch(batch, lambda r: False, keep_empty=True)
    assert empty is not None
    (header,) = validate_batches(empty, from_producer=False)
    before = read_header(batch)
    assert (header.base_offset, header.last_offset, header.records_count) == (100, 107, 0)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (42, 3, 9)
    assert header.compression == Compression.NONE
    assert header.base_timestamp == header.max_timestamp == before.max_timestamp
    assert list(iter_records(empty)) == []

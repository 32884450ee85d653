"""RecordBatch v2: header checks, CRC, offset patching, record decoding."""
import pytest

from moldau.protocol.records import (
    Compression,
    CorruptRecordError,
    RecordInput,
    assign_offset,
    build_batch,
    iter_records,
    read_header,
    set_log_append_time,
    validate_batches,
)


@pytest.mark.parametrize("codec", [0, 1, 2, 3, 4])
def test_round_trip_every_codec(codec: int) -> None:
    recs = [RecordInput(b"v%d" % i, b"k", [("h", b"x")], 1000 + i) for i in range(10)]
    batch = build_batch(recs, compression=codec)
    (header,) = validate_batches(batch)
    assert header.compression == codec
    assert header.size == len(batch)
    out = list(iter_records(batch))
    assert [r.value for r in out] == [r.value for r in recs]
    assert [r.timestamp for r in out] == list(range(1000, 1010))
    assert out[0].headers == (("h", b"x"),)


def test_crc_mismatch_is_corrupt() -> None:
    batch = bytearray(build_batch([RecordInput(b"v")]))
    batch[-1] ^= 0xFF
    with pytest.raises(CorruptRecordError, match="CRC"):
        validate_batches(batch)


def test_patching_offset_keeps_crc_valid() -> None:
    batch = bytearray(build_batch([RecordInput(b"a"), RecordInput(b"b")]))
    assign_offset(batch, 0, 42, 7)
    (header,) = validate_batches(batch)
    assert (header.base_offset, header.partition_leader_epoch, header.last_offset) == (42, 7, 43)
    assert [r.offset for r in iter_records(batch)] == [42, 43]


def test_log_append_time_rewrites_crc() -> None:
    batch = bytearray(build_batch([RecordInput(b"a", timestamp=5)], compression=Compression.LZ4))
    set_log_append_time(batch, 0, 99)
    validate_batches(batch)
    assert read_header(batch).is_log_append_time
    assert [r.timestamp for r in iter_records(batch)] == [99]


# --- property tests -------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

records_strategy = st.lists(
    st.builds(
        RecordInput,
        value=st.one_of(st.none(), st.binary(max_size=200)),
        key=st.one_of(st.none(), st.binary(max_size=50)),
        headers=st.lists(st.tuples(st.text(max_size=10), st.one_of(st.none(), st.binary(max_size=20))), max_size=3),
        timestamp=st.integers(0, 2**40),
    ),
    min_size=1,
    max_size=20,
)


@settings(max_examples=150, deadline=None)
@given(records_strategy, st.sampled_from([0, 1, 2, 3, 4]), st.integers(0, 2**40), st.integers(-1, 2**20))
def test_batch_round_trip(recs: list[RecordInput], codec: int, base: int, epoch: int) -> None:
    batch = bytearray(build_batch(recs, compression=codec))
    assign_offset(batch, 0, base, epoch)
    (header,) = validate_batches(batch)
    assert (header.base_offset, header.partition_leader_epoch) == (base, epoch)
    assert header.max_timestamp == max(r.timestamp for r in recs)  # type: ignore[type-var]
    out = list(iter_records(batch))
    assert [r.offset for r in out] == list(range(base, base + len(recs)))
    assert [(r.key, r.value, r.timestamp) for r in out] == [(r.key, r.value, r.timestamp) for r in recs]
    assert [list(r.headers) for r in out] == [[(k, v) for k, v in r.headers] for r in recs]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_never_crashes_validation(data: bytes) -> None:
    try:
        validate_batches(data)
    except (CorruptRecordError, ValueError):
        pass


@settings(max_examples=100, deadline=None)
@given(records_strategy, st.integers(0, 10_000))
def test_any_flipped_byte_is_caught(recs: list[RecordInput], where: int) -> None:
    batch = bytearray(build_batch(recs))
    pos = 21 + where % (len(batch) - 21)  # inside the CRC-covered part
    batch[pos] ^= 0x01
    with pytest.raises((CorruptRecordError, ValueError)):
        validate_batches(batch)

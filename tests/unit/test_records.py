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

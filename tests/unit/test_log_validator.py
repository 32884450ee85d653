"""LogValidator: producer batches checked before a leader appends them."""
from __future__ import annotations

import pytest

from moldau.log.config import LogConfig
from moldau.log.validator import RecordValidationError, validate_producer_batches
from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import Compression, RecordInput, build_batch, crc_of

NOW = 1_700_000_000_000


def batch(keys: list[bytes | None], compression: int = Compression.NONE) -> bytes:
    return build_batch([RecordInput(b"v", k) for k in keys], timestamp=1, compression=compression)


def test_accepts_good_batches() -> None:
    data = batch([b"a"]) + batch([b"b", b"c"])
    headers = validate_producer_batches(bytearray(data), LogConfig(), "t", 0, NOW)
    assert [h.records_count for h in headers] == [1, 2]


def test_corrupt_and_empty_and_oversized() -> None:
    data = bytearray(batch([b"a"]))
    data[-1] ^= 0xFF
    with pytest.raises(RecordValidationError) as e:
        validate_producer_batches(data, LogConfig(), "t", 0, NOW)
    assert e.value.code == ErrorCode.corrupt_message
    with pytest.raises(RecordValidationError) as e:
        validate_producer_batches(bytearray(), LogConfig(), "t", 0, NOW)
    assert e.value.code == ErrorCode.invalid_record
    big = batch([b"k" * 200])
    with pytest.raises(RecordValidationError) as e:
        validate_producer_batches(bytearray(big), LogConfig(max_message_bytes=100), "t", 0, NOW)
    assert e.value.code == ErrorCode.message_too_large
    with pytest.raises(RecordValidationError) as e:
        validate_producer_batches(bytearray(big * 2), LogConfig(segment_bytes=len(big) + 1), "t", 0, NOW)
    assert e.value.code == ErrorCode.record_list_too_large


@pytest.mark.parametrize("compression", [Compression.NONE, Compression.GZIP, Compression.ZSTD])
def test_compacted_topic_names_every_keyless_record(compression: int) -> None:
    data = batch([b"a", None, b"c", None], compression)
    with pytest.raises(RecordValidationError) as e:
        validate_producer_batches(bytearray(data), LogConfig(cleanup_policy="compact"), "orders", 3, NOW)
    assert e.value.code == ErrorCode.invalid_record
    assert [r.batch_index for r in e.value.record_errors] == [1, 3]
    assert all("Compacted topic cannot accept message without key in topic partition orders-3." in r.message
               for r in e.value.record_errors)
    assert "2 record errors" in e.value.message
    # The same records are fine in a topic that is not compacted.
    validate_producer_batches(bytearray(data), LogConfig(), "orders", 3, NOW)


def stamped(timestamps: list[int], log_append_time: bool = False) -> bytes:
    data = bytearray(build_batch([RecordInput(b"v", b"k", timestamp=t) for t in timestamps], timestamp=timestamps[0]))
    if log_append_time:
        data[22] |= 0x08  # attributes (int16 at 21): bit 3 is the timestamp type
        data[17:21] = crc_of(data, 0, len(data)).to_bytes(4, "big")
    return bytes(data)


def test_timestamps_out_of_the_topic_window_are_refused_one_by_one() -> None:
    config = LogConfig(message_timestamp_before_max_ms=1000, message_timestamp_after_max_ms=500)
    data = stamped([NOW - 1000, NOW - 1001, NOW, NOW + 500, NOW + 501])
    with pytest.raises(RecordValidationError) as e:
        validate_producer_batches(bytearray(data), config, "t", 0, NOW)
    assert e.value.code == ErrorCode.invalid_timestamp
    assert [r.batch_index for r in e.value.record_errors] == [1, 4]
    assert f"The timestamp should be within [{NOW - 1000}, {NOW + 500}]" in e.value.record_errors[0].message
    # Unbounded (Kafka's default), or a topic that stamps its own time: all accepted.
    validate_producer_batches(bytearray(data), LogConfig(), "t", 0, NOW)
    validate_producer_batches(bytearray(data), LogConfig(message_timestamp_type="LogAppendTime",
                                                          message_timestamp_before_max_ms=1000), "t", 0, NOW)


def test_a_producer_batch_claiming_log_append_time_is_refused_by_a_log_append_time_topic() -> None:
    data = stamped([NOW, NOW], log_append_time=True)
    with pytest.raises(RecordValidationError) as e:
        validate_producer_batches(bytearray(data), LogConfig(message_timestamp_type="LogAppendTime"), "t", 0, NOW)
    assert e.value.code == ErrorCode.invalid_timestamp
    assert [r.batch_index for r in e.value.record_errors] == [0, 1]


def test_control_batches_come_only_from_the_transaction_coordinator() -> None:
    from moldau.transactions.control import ControlRecordType, EndTransactionMarker, build_end_txn_marker

    marker = bytearray(build_end_txn_marker(EndTransactionMarker(5, 0, ControlRecordType.COMMIT, 0), 1))
    with pytest.raises(RecordValidationError) as e:
        validate_producer_batches(marker, LogConfig(), "t", 0, NOW)
    assert e.value.code == ErrorCode.invalid_record
    headers = validate_producer_batches(marker, LogConfig(), "t", 0, NOW, from_coordinator=True)
    assert [h.is_control for h in headers] == [True]

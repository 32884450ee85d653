"""__transaction_state record codecs: golden bytes written by hand from Kafka's JSON
schemas (TransactionLogKey.json, TransactionLogValue.json), hypothesis round-trips, and
the transactional id → partition hash."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moldau.transactions.records import (
    RecordDecodeError,
    TopicPartitions,
    TransactionLogValue,
    UnknownRecordType,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
    group_partitions,
    java_string_hash,
    partition_for,
    transaction_record,
)
from moldau.transactions.state import TransactionState


def i16(v: int) -> bytes:
    return struct.pack(">h", v)


def i32(v: int) -> bytes:
    return struct.pack(">i", v)


def i64(v: int) -> bytes:
    return struct.pack(">q", v)


ONGOING = TransactionLogValue(
    producer_id=1000,
    producer_epoch=2,
    transaction_timeout_ms=60000,
    transaction_status=TransactionState.ONGOING,
    transaction_partitions=(TopicPartitions("t", (0, 1)),),
    transaction_last_update_timestamp_ms=5000,
    transaction_start_timestamp_ms=4000,
)


def test_key_golden() -> None:
    expected = b"\x00\x00" + b"\x00\x04txn1"
    assert encode_key("txn1") == expected
    assert decode_key(expected) == "txn1"


def test_key_of_another_version_is_not_a_transaction_record() -> None:
    with pytest.raises(UnknownRecordType) as e:
        decode_key(b"\x00\x01\x00\x01x")
    assert e.value.version == 1


def test_value_v0_golden() -> None:
    expected = (
        i16(0)  # version
        + i64(1000)  # producer_id
        + i16(2)  # producer_epoch
        + i32(60000)  # transaction_timeout_ms
        + b"\x01"  # transaction_status: Ongoing
        + i32(1)  # one topic
        + i16(1) + b"t"  # topic
        + i32(2) + i32(0) + i32(1)  # partition_ids
        + i64(5000)  # last update
        + i64(4000)  # start
    )
    assert encode_value(ONGOING, version=0) == expected
    assert decode_value(expected) == ONGOING


def test_value_v1_golden_with_tagged_fields() -> None:
    value = TransactionLogValue(
        producer_id=1000,
        producer_epoch=2,
        transaction_timeout_ms=60000,
        transaction_status=TransactionState.ONGOING,
        transaction_partitions=(TopicPartitions("t", (0, 1)),),
        transaction_last_update_timestamp_ms=5000,
        transaction_start_timestamp_ms=4000,
        previous_producer_id=999,
        client_transaction_version=2,
    )
    expected = (
        i16(1)
        + i64(1000)
        + i16(2)
        + i32(60000)
        + b"\x01"
        + b"\x02"  # compact array: 1 entry + 1
        + b"\x02t"  # compact string: length 1 + 1
        + b"\x03" + i32(0) + i32(1)  # compact array of 2 int32
        + b"\x00"  # the entry's tagged fields: none
        + i64(5000)
        + i64(4000)
        + b"\x02"  # two tagged fields (next_producer_id is at its default, left out)
        + b"\x00\x08" + i64(999)  # tag 0 previous_producer_id, 8 bytes
        + b"\x02\x02" + i16(2)  # tag 2 client_transaction_version, 2 bytes
    )
    assert encode_value(value, version=1) == expected
    assert decode_value(expected) == value


def test_value_v1_without_tagged_fields_ends_with_an_empty_section() -> None:
    encoded = encode_value(ONGOING, version=1)
    assert encoded.endswith(i64(5000) + i64(4000) + b"\x00")
    assert decode_value(encoded) == ONGOING


def test_empty_transaction_has_null_partitions() -> None:
    empty = TransactionLogValue(7, 0, 60000, TransactionState.EMPTY, None, 10, -1)
    v0 = encode_value(empty, version=0)
    assert v0 == i16(0) + i64(7) + i16(0) + i32(60000) + b"\x00" + i32(-1) + i64(10) + i64(-1)
    v1 = encode_value(empty, version=1)
    assert v1 == i16(1) + i64(7) + i16(0) + i32(60000) + b"\x00" + b"\x00" + i64(10) + i64(-1) + b"\x00"
    assert decode_value(v0) == empty
    assert decode_value(v1) == empty
    assert empty.partitions() == frozenset()
    with pytest.raises(ValueError):
        encode_value(TransactionLogValue(7, 0, 1, TransactionState.EMPTY, (TopicPartitions("t", (0,)),), 1, 1))


def test_v0_drops_tagged_fields() -> None:
    value = TransactionLogValue(1, 0, 1, TransactionState.COMPLETE_COMMIT, (), 2, 3, previous_producer_id=5)
    assert decode_value(encode_value(value, version=0)).previous_producer_id == -1


def test_unknown_tags_are_skipped() -> None:
    base = encode_value(ONGOING, version=1)[:-1]
    with_unknown = base + b"\x01" + b"\x09\x03abc"  # tag 9, 3 bytes
    assert decode_value(with_unknown) == ONGOING


def test_bad_values_are_refused() -> None:
    with pytest.raises(RecordDecodeError):
        decode_value(i16(2) + encode_value(ONGOING, 1)[2:])  # unknown version
    with pytest.raises(RecordDecodeError):
        decode_value(encode_value(ONGOING, 0)[:-3])  # truncated
    bad_status = bytearray(encode_value(ONGOING, 0))
    bad_status[2 + 8 + 2 + 4] = 9
    with pytest.raises(RecordDecodeError):
        decode_value(bytes(bad_status))


def test_tombstone() -> None:
    key, value = transaction_record("txn1", None)
    assert key == encode_key("txn1")
    assert value is None


def test_group_partitions_sorts_and_groups() -> None:
    grouped = group_partitions([("b", 2), ("a", 1), ("b", 0), ("a", 1)])
    assert grouped == (TopicPartitions("a", (1,)), TopicPartitions("b", (0, 2)))


# --- round trips -----------------------------------------------------------------------

_int64 = st.integers(-(2**63), 2**63 - 1)
_int32 = st.integers(-(2**31), 2**31 - 1)
_int16 = st.integers(-(2**15), 2**15 - 1)
_topic = st.text(max_size=20)
_entries = st.lists(
    st.builds(TopicPartitions, _topic, st.lists(_int32, max_size=5).map(tuple)), max_size=4
).map(tuple)


@st.composite
def values(draw: st.DrawFn, tagged: bool) -> TransactionLogValue:
    status = draw(st.sampled_from(list(TransactionState)))
    partitions = None if status is TransactionState.EMPTY else draw(st.none() | _entries)
    return TransactionLogValue(
        producer_id=draw(_int64),
        producer_epoch=draw(_int16),
        transaction_timeout_ms=draw(_int32),
        transaction_status=status,
        transaction_partitions=partitions,
        transaction_last_update_timestamp_ms=draw(_int64),
        transaction_start_timestamp_ms=draw(_int64),
        previous_producer_id=draw(_int64) if tagged else -1,
        next_producer_id=draw(_int64) if tagged else -1,
        client_transaction_version=draw(_int16) if tagged else 0,
    )


@given(values(tagged=True))
def test_value_v1_round_trip(value: TransactionLogValue) -> None:
    assert decode_value(encode_value(value, version=1)) == value


@given(values(tagged=False))
def test_value_v0_round_trip(value: TransactionLogValue) -> None:
    assert decode_value(encode_value(value, version=0)) == value


@given(st.text(max_size=100))
def test_key_round_trip(transactional_id: str) -> None:
    assert decode_key(encode_key(transactional_id)) == transactional_id


# --- partitioning ----------------------------------------------------------------------


def test_java_string_hash() -> None:
    assert java_string_hash("") == 0
    assert java_string_hash("hello") == 99162322
    assert java_string_hash("polygenelubricants") == -(2**31)  # Integer.MIN_VALUE
    assert java_string_hash("\U0001f600") == 1772899  # a surrogate pair: two UTF-16 units


def test_partition_for_is_kafkas() -> None:
    assert partition_for("hello", 50) == 99162322 % 50
    # Utils.abs(Integer.MIN_VALUE) is 0, not a negative number
    assert partition_for("polygenelubricants", 50) == 0
    # a negative hash: abs, then modulo
    h = java_string_hash("my-transactional-id")
    assert partition_for("my-transactional-id", 50) == abs(h) % 50
    with pytest.raises(ValueError):
        partition_for("x", 0)

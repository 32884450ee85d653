"""Transaction markers: control batches built byte for byte as Kafka's
``MemoryRecords.withEndTransactionMarker`` writes them, and parsed back."""

from __future__ import annotations

import struct

import crc32c
import pytest
from hypothesis import given
from hypothesis import strategies as st

from moldau.protocol.records import RecordInput, build_batch, read_header, validate_batches
from moldau.transactions.control import (
    ControlRecordType,
    EndTransactionMarker,
    InvalidControlRecord,
    build_end_txn_marker,
    parse_control_record_type,
    parse_end_txn_marker,
)


def golden(control_type: int, producer_id: int, producer_epoch: int, coordinator_epoch: int, ts: int) -> bytes:
    record = (
        b"\x20"  # record length 16, zigzag varint
        + b"\x00"  # attributes
        + b"\x00"  # timestamp delta 0
        + b"\x00"  # offset delta 0
        + b"\x08" + struct.pack(">hh", 0, control_type)  # key: 4 bytes, version 0, type
        + b"\x0c" + struct.pack(">hi", 0, coordinator_epoch)  # value: 6 bytes, version 0, epoch
        + b"\x00"  # no headers
    )
    after_crc = (
        struct.pack(">h", 0x30)  # attributes: transactional | control
        + struct.pack(">i", 0)  # last offset delta
        + struct.pack(">qq", ts, ts)  # base and max timestamp
        + struct.pack(">qhi", producer_id, producer_epoch, -1)  # producer id, epoch, base sequence
        + struct.pack(">i", 1)  # one record
        + record
    )
    return (
        struct.pack(">q", 0)  # base offset
        + struct.pack(">i", 4 + 1 + 4 + len(after_crc))  # batch length
        + struct.pack(">i", -1)  # partition leader epoch
        + b"\x02"  # magic
        + struct.pack(">I", crc32c.crc32c(after_crc))
        + after_crc
    )


def test_commit_marker_golden() -> None:
    marker = EndTransactionMarker(5, 1, ControlRecordType.COMMIT, 3)
    batch = build_end_txn_marker(marker, timestamp=1000)
    assert batch == golden(1, 5, 1, 3, 1000)
    assert len(batch) == 78
    assert parse_end_txn_marker(batch) == marker
    assert parse_end_txn_marker(batch).committed


def test_abort_marker_golden() -> None:
    marker = EndTransactionMarker(123456789, 7, ControlRecordType.ABORT, 0)
    batch = build_end_txn_marker(marker, timestamp=1_700_000_000_000)
    assert batch == golden(0, 123456789, 7, 0, 1_700_000_000_000)
    assert not parse_end_txn_marker(batch).committed


def test_a_marker_is_a_valid_batch_for_the_log() -> None:
    batch = build_end_txn_marker(EndTransactionMarker(5, 1, ControlRecordType.COMMIT, 3), 1000, base_offset=42,
                                 partition_leader_epoch=4)
    (header,) = validate_batches(batch)
    assert header.is_control and header.is_transactional
    assert header.base_offset == 42 and header.partition_leader_epoch == 4
    assert header.base_sequence == -1 and header.records_count == 1


@given(
    st.integers(0, 2**63 - 1),
    st.integers(0, 2**15 - 1),
    st.sampled_from(list(ControlRecordType)),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(0, 2**62),
)
def test_round_trip(producer_id: int, epoch: int, control_type: ControlRecordType, coordinator_epoch: int,
                    ts: int) -> None:
    marker = EndTransactionMarker(producer_id, epoch, control_type, coordinator_epoch)
    batch = build_end_txn_marker(marker, ts)
    assert parse_end_txn_marker(batch) == marker
    assert read_header(batch).max_timestamp == ts


def test_newer_versions_are_read_as_version_0() -> None:
    batch = bytearray(golden(1, 5, 1, 3, 1000))
    # key version 1 and value version 3: Kafka parses the fields it knows
    pos = 61 + 5
    batch[pos : pos + 2] = b"\x00\x01"
    batch[pos + 5 : pos + 7] = b"\x00\x03"
    batch[17:21] = struct.pack(">I", crc32c.crc32c(bytes(batch[21:])))
    assert parse_end_txn_marker(bytes(batch)) == EndTransactionMarker(5, 1, ControlRecordType.COMMIT, 3)


def test_not_markers() -> None:
    data = build_batch([RecordInput(b"v", key=b"\x00\x00\x00\x01")], producer_id=5, producer_epoch=1)
    with pytest.raises(InvalidControlRecord):
        parse_end_txn_marker(data)
    with pytest.raises(InvalidControlRecord):
        parse_control_record_type(b"\x00")
    with pytest.raises(InvalidControlRecord):
        parse_control_record_type(b"\xff\xff\x00\x01")
    assert parse_control_record_type(b"\x00\x00\x00\x02") == 2  # KRaft's LEADER_CHANGE
    with pytest.raises(ValueError):
        build_end_txn_marker(EndTransactionMarker(-1, 0, ControlRecordType.ABORT, 0), 0)
    # a control batch of another type (LEADER_CHANGE) is not a transaction marker
    leader_change = bytearray(golden(1, 5, 1, 3, 1000))
    leader_change[61 + 5 + 2 : 61 + 5 + 4] = b"\x00\x02"
    leader_change[17:21] = struct.pack(">I", crc32c.crc32c(bytes(leader_change[21:])))
    with pytest.raises(InvalidControlRecord):
        parse_end_txn_marker(bytes(leader_change))

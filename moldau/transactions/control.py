"""Control batches: the COMMIT and ABORT markers that end a transaction in a data
partition (Kafka's ``EndTransactionMarker`` and ``ControlRecordType``).

A marker is a RecordBatch v2 of one record, written by the partition's leader on the
transaction coordinator's behalf (WriteTxnMarkers), never by a producer. Its header
carries the producer id and epoch of the transaction it ends, base sequence -1, and the
attributes ``TRANSACTIONAL (0x10) | CONTROL (0x20)`` (no compression, CreateTime). The
record has no headers; its key and value are, big-endian::

    key    version: int16 (= 0)   type: int16 (0 = ABORT, 1 = COMMIT)
    value  version: int16 (= 0)   coordinator_epoch: int32

Readers accept any key or value version >= 0 and parse the fields they know (Kafka
logs newer versions at debug and reads them as version 0); a negative version is
corrupt. Other control types (2-6 are KRaft's) are not transaction markers.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from moldau.protocol.records import (
    CONTROL_MASK,
    CONTROL_RECORD_KEY,
    CRC_FIELD,
    CRC_POS,
    HEADER,
    HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC,
    TRANSACTIONAL_MASK,
    InvalidRecordError,
    control_record_type,
    crc_of,
    iter_records,
    read_header,
    write_varint,
)

CONTROL_RECORD_KEY_VERSION = 0
END_TXN_MARKER_VALUE_VERSION = 0
NO_SEQUENCE = -1
NO_PARTITION_LEADER_EPOCH = -1

_KEY = CONTROL_RECORD_KEY  # version, type
_VALUE = struct.Struct(">hi")  # version, coordinator_epoch


class ControlRecordType(IntEnum):
    """The ``type`` of a control record key (the transaction markers' two)."""

    ABORT = 0
    COMMIT = 1


class InvalidControlRecord(ValueError):
    """A batch or record that is not a valid transaction marker (Kafka's
    InvalidRecordException)."""


@dataclass(frozen=True)
class EndTransactionMarker:
    """What a marker batch says: which producer's transaction ends, how, and by which
    coordinator epoch."""

    producer_id: int
    producer_epoch: int
    control_type: ControlRecordType
    coordinator_epoch: int

    @property
    def committed(self) -> bool:
        return self.control_type is ControlRecordType.COMMIT


def control_record_key(control_type: ControlRecordType) -> bytes:
    return _KEY.pack(CONTROL_RECORD_KEY_VERSION, control_type)


def end_txn_marker_value(coordinator_epoch: int) -> bytes:
    return _VALUE.pack(END_TXN_MARKER_VALUE_VERSION, coordinator_epoch)


def build_end_txn_marker(
    marker: EndTransactionMarker,
    timestamp: int,
    *,
    base_offset: int = 0,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
) -> bytes:
    """The control batch for ``marker`` (Kafka's ``MemoryRecords.withEndTransactionMarker``).

    The leader assigns the offset and stamps its leader epoch on append, as for any batch.
    """
    if marker.producer_id < 0:
        raise ValueError("an end transaction marker needs a producer id")
    key = control_record_key(marker.control_type)
    value = end_txn_marker_value(marker.coordinator_epoch)
    body = bytearray()
    body.append(0)  # record attributes
    write_varint(body, 0)  # timestamp delta
    write_varint(body, 0)  # offset delta
    write_varint(body, len(key))
    body += key
    write_varint(body, len(value))
    body += value
    write_varint(body, 0)  # headers
    record = bytearray()
    write_varint(record, len(body))
    record += body
    out = bytearray(HEADER_SIZE)
    HEADER.pack_into(
        out,
        0,
        base_offset,
        HEADER_SIZE - LOG_OVERHEAD + len(record),
        partition_leader_epoch,
        MAGIC,
        0,  # crc, below
        TRANSACTIONAL_MASK | CONTROL_MASK,
        0,  # last offset delta
        timestamp,
        timestamp,
        marker.producer_id,
        marker.producer_epoch,
        NO_SEQUENCE,
        1,
    )
    out += record
    CRC_FIELD.pack_into(out, CRC_POS, crc_of(out, 0, len(out)))
    return bytes(out)


def parse_control_record_type(key: bytes | None) -> int:
    """The type id of a control record key (any type, KRaft's included)."""
    try:
        return control_record_type(key)
    except InvalidRecordError as e:
        raise InvalidControlRecord(str(e)) from None


def parse_end_txn_marker(batch: bytes | memoryview) -> EndTransactionMarker:
    """The marker a control batch holds; InvalidControlRecord when the batch is not a
    transaction marker (not control and transactional, not one COMMIT/ABORT record, or a
    value too short)."""
    header = read_header(batch)
    if not (header.is_control and header.is_transactional):
        raise InvalidControlRecord("not a transactional control batch")
    records = list(iter_records(batch))
    if len(records) != 1:
        raise InvalidControlRecord(f"a control batch holds one record, this one {len(records)}")
    record = records[0]
    type_id = parse_control_record_type(record.key)
    if type_id not in (ControlRecordType.ABORT, ControlRecordType.COMMIT):
        raise InvalidControlRecord(f"control record type {type_id} is not a transaction marker")
    value = record.value
    if value is None or len(value) < _VALUE.size:
        raise InvalidControlRecord("end transaction marker value shorter than 6 bytes")
    version, coordinator_epoch = _VALUE.unpack_from(value)
    if version < 0:
        raise InvalidControlRecord(f"invalid end transaction marker version {version}")
    return EndTransactionMarker(
        header.producer_id, header.producer_epoch, ControlRecordType(type_id), int(coordinator_epoch)
    )

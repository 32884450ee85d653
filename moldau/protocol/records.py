"""RecordBatch v2: the unit a producer sends, the log stores and a consumer reads.

The broker treats a batch as opaque bytes on the produce path: it checks the header
and the CRC, patches the base offset and the partition leader epoch (both outside the
CRC), and writes the bytes to the log as they came. Records inside a batch are decoded
only where something needs them (timestamps, the CLI, tests).

Layout (all integers big-endian), from Kafka's DefaultRecordBatch::

    offset  size  field
         0     8  baseOffset
         8     4  batchLength            bytes that follow this field
        12     4  partitionLeaderEpoch
        16     1  magic                  always 2
        17     4  crc                    CRC-32C of bytes [21, end)
        21     2  attributes             bits 0-2 compression, 3 timestamp type,
                                         4 transactional, 5 control, 6 delete horizon
        23     4  lastOffsetDelta
        27     8  baseTimestamp
        35     8  maxTimestamp
        43     8  producerId
        51     2  producerEpoch
        53     4  baseSequence
        57     4  recordsCount
        61     -  records (compressed as a whole when attributes say so)

A record inside the batch::

    length: varint, attributes: int8, timestampDelta: varlong, offsetDelta: varint,
    keyLength: varint, key, valueLength: varint, value,
    headersCount: varint, [headerKeyLength: varint, headerKey, headerValueLength: varint,
    headerValue]
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import crc32c as _crc32c

HEADER = struct.Struct(
    ">q"  # baseOffset
    "i"  # batchLength
    "i"  # partitionLeaderEpoch
    "b"  # magic
    "I"  # crc
    "h"  # attributes
    "i"  # lastOffsetDelta
    "q"  # baseTimestamp
    "q"  # maxTimestamp
    "q"  # producerId
    "h"  # producerEpoch
    "i"  # baseSequence
    "i"  # recordsCount
)
HEADER_SIZE = HEADER.size  # 61
LOG_OVERHEAD = 12  # baseOffset + batchLength: the part not counted by batchLength
CRC_START = 21
MAGIC = 2

BASE_OFFSET_AND_LENGTH = struct.Struct(">qi")
OFFSET_FIELD = struct.Struct(">q")
LEADER_EPOCH_FIELD = struct.Struct(">i")
LEADER_EPOCH_POS = 12
CRC_FIELD = struct.Struct(">I")
CRC_POS = 17
ATTRIBUTES_FIELD = struct.Struct(">h")
ATTRIBUTES_POS = 21
MAX_TIMESTAMP_FIELD = struct.Struct(">q")
MAX_TIMESTAMP_POS = 35

COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_MASK = 0x08
TRANSACTIONAL_MASK = 0x10
CONTROL_MASK = 0x20

NO_PRODUCER_ID = -1
NO_TIMESTAMP = -1


class Compression:
    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4

    NAMES = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


class InvalidRecordError(ValueError):
    """A batch is well framed but breaks a rule (Kafka's INVALID_RECORD)."""


class CorruptRecordError(ValueError):
    """A batch whose size, magic or CRC is wrong (Kafka's CORRUPT_MESSAGE)."""


class BatchHeader(NamedTuple):
    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int

    @property
    def size(self) -> int:
        """Bytes the whole batch takes, header included."""
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def compression(self) -> int:
        return self.attributes & COMPRESSION_MASK

    @property
    def is_log_append_time(self) -> bool:
        return bool(self.attributes & TIMESTAMP_TYPE_MASK)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_MASK)

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_MASK)


def read_header(buf: bytes | bytearray | memoryview, pos: int = 0) -> BatchHeader:
    """The header of the batch at ``pos``; the caller ensures 61 bytes are there."""
    return BatchHeader._make(HEADER.unpack_from(buf, pos))


def crc_of(buf: bytes | bytearray | memoryview, pos: int, size: int) -> int:
    """CRC-32C of a batch's checksummed part: from the attributes to its end."""
    return int(_crc32c.crc32c(memoryview(buf)[pos + CRC_START : pos + size]))


def validate_batches(buf: bytes | bytearray | memoryview, *, from_producer: bool = True) -> list[BatchHeader]:
    """Check every batch in ``buf`` and return their headers.

    Raises CorruptRecordError for framing, magic or CRC faults and InvalidRecordError
    for batches that are well formed but not acceptable. A producer's batch holds one
    record per offset; a batch read from a log (``from_producer=False``: a follower's
    fetch) may hold fewer, down to none, once the cleaner has compacted it.
    """
    view = memoryview(buf)
    total = len(view)
    headers: list[BatchHeader] = []
    pos = 0
    if total == 0:
        raise InvalidRecordError("empty record set")
    while pos < total:
        if total - pos < HEADER_SIZE:
            raise CorruptRecordError(
                f"truncated batch: {total - pos} bytes left, a header needs {HEADER_SIZE}"
            )
        header = read_header(view, pos)
        size = header.size
        if header.batch_length < HEADER_SIZE - LOG_OVERHEAD or size > total - pos:
            raise CorruptRecordError(
                f"batch length {header.batch_length} does not fit the {total - pos} bytes left"
            )
        if header.magic != MAGIC:
            raise CorruptRecordError(f"unsupported magic {header.magic}; only v2 is accepted")
        actual = crc_of(view, pos, size)
        if actual != header.crc:
            raise CorruptRecordError(
                f"CRC mismatch: batch says {header.crc:#010x}, bytes give {actual:#010x}"
            )
        if header.records_count < 0 or header.last_offset_delta < 0:
            raise InvalidRecordError("negative record count or last offset delta")
        if not from_producer:
            if header.records_count > header.last_offset_delta + 1:
                raise InvalidRecordError(
                    f"batch says {header.records_count} records but spans only "
                    f"{header.last_offset_delta + 1} offsets"
                )
        elif header.records_count == 0 and not header.is_control:
            raise InvalidRecordError("batch with no records")
        elif header.records_count != header.last_offset_delta + 1:
            raise InvalidRecordError(
                f"batch says {header.records_count} records but its last offset delta is "
                f"{header.last_offset_delta}"
            )
        if header.compression > Compression.ZSTD:
            raise InvalidRecordError(f"unknown compression codec {header.compression}")
        headers.append(header)
        pos += size
    return headers


def assign_offset(buf: bytearray | memoryview, pos: int, base_offset: int, leader_epoch: int) -> None:
    """Patch the base offset and the leader epoch: neither is covered by the CRC."""
    OFFSET_FIELD.pack_into(buf, pos, base_offset)
    LEADER_EPOCH_FIELD.pack_into(buf, pos + LEADER_EPOCH_POS, leader_epoch)


def set_log_append_time(buf: bytearray | memoryview, pos: int, now_ms: int) -> None:
    """Stamp a batch with the broker's time (message.timestamp.type=LogAppendTime).

    Kafka marks the timestamp type in the attributes and puts the append time in
    maxTimestamp; consumers then read that time for every record. Both fields are under
    the CRC, so it is recomputed.
    """
    (attributes,) = ATTRIBUTES_FIELD.unpack_from(buf, pos + ATTRIBUTES_POS)
    ATTRIBUTES_FIELD.pack_into(buf, pos + ATTRIBUTES_POS, attributes | TIMESTAMP_TYPE_MASK)
    MAX_TIMESTAMP_FIELD.pack_into(buf, pos + MAX_TIMESTAMP_POS, now_ms)
    (batch_length,) = struct.unpack_from(">i", buf, pos + 8)
    CRC_FIELD.pack_into(buf, pos + CRC_POS, crc_of(buf, pos, batch_length + LOG_OVERHEAD))


# --- records inside a batch: decoded only where needed ---------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()


@dataclass(slots=True)
class RecordInput:
    """A record to put in a new batch (tests, tools)."""

    value: bytes | None
    key: bytes | None = None
    headers: Sequence[tuple[str, bytes | None]] = field(default_factory=tuple)
    timestamp: int | None = None


def _zigzag(n: int) -> int:
    return (n << 1) ^ (n >> 63)


def write_varint(out: bytearray, n: int) -> None:
    """Append a zigzag varint (Kafka's varint/varlong in record bodies)."""
    z = _zigzag(n) & 0xFFFFFFFFFFFFFFFF
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)


def read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Read a zigzag varint at ``pos``; returns (value, next position)."""
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise CorruptRecordError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
        if shift > 63:
            raise CorruptRecordError("varint too long")
    return (result >> 1) ^ -(result & 1), pos


def _write_bytes(out: bytearray, data: bytes | None) -> None:
    if data is None:
        write_varint(out, -1)
    else:
        write_varint(out, len(data))
        out += data


def build_batch(
    records: Sequence[RecordInput],
    *,
    base_offset: int = 0,
    compression: int = Compression.NONE,
    timestamp: int | None = None,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    partition_leader_epoch: int = -1,
    transactional: bool = False,
) -> bytes:
    """Encode records as one RecordBatch v2, as a producer would (``transactional``: in
    a transaction, attributes bit 4)."""
    if not records:
        raise ValueError("a batch holds at least one record")
    default_ts = timestamp if timestamp is not None else 0
    stamps = [r.timestamp if r.timestamp is not None else default_ts for r in records]
    base_ts = min(stamps)
    body = bytearray()
    for delta, (rec, ts) in enumerate(zip(records, stamps, strict=True)):
        rec_body = bytearray()
        rec_body.append(0)  # record attributes: unused
        write_varint(rec_body, ts - base_ts)
        write_varint(rec_body, delta)
        _write_bytes(rec_body, rec.key)
        _write_bytes(rec_body, rec.value)
        write_varint(rec_body, len(rec.headers))
        for hkey, hval in rec.headers:
            _write_bytes(rec_body, hkey.encode())
            _write_bytes(rec_body, hval)
        write_varint(body, len(rec_body))
        body += rec_body
    if compression != Compression.NONE:
        from moldau.protocol import compression as codecs

        body = bytearray(codecs.compress(compression, bytes(body)))
    attributes = (compression & COMPRESSION_MASK) | (TRANSACTIONAL_MASK if transactional else 0)
    batch_length = HEADER_SIZE - LOG_OVERHEAD + len(body)
    out = bytearray(HEADER_SIZE)
    HEADER.pack_into(
        out,
        0,
        base_offset,
        batch_length,
        partition_leader_epoch,
        MAGIC,
        0,
        attributes,
        len(records) - 1,
        base_ts,
        max(stamps),
        producer_id,
        producer_epoch,
        base_sequence,
        len(records),
    )
    out += body
    CRC_FIELD.pack_into(out, CRC_POS, crc_of(out, 0, len(out)))
    return bytes(out)


def iter_batches(buf: bytes | bytearray | memoryview) -> Iterator[tuple[BatchHeader, memoryview]]:
    """Each complete batch in ``buf`` with its bytes; a partial batch at the end is skipped
    (Kafka allows a fetch response to end in one)."""
    view = memoryview(buf)
    pos = 0
    while len(view) - pos >= HEADER_SIZE:
        header = read_header(view, pos)
        if header.batch_length < HEADER_SIZE - LOG_OVERHEAD:
            raise CorruptRecordError(f"batch length {header.batch_length} too small")
        end = pos + header.size
        if end > len(view):
            break
        yield header, view[pos:end]
        pos = end


def iter_records(batch: bytes | memoryview) -> Iterator[Record]:
    """Decode the records of one batch (decompressing it when needed)."""
    header = read_header(batch, 0)
    body = records_section(batch)
    pos = 0
    for _ in range(header.records_count):
        length, pos = read_varint(body, pos)
        end = pos + length
        if length < 0 or end > len(body):
            raise CorruptRecordError("record runs past its batch")
        pos += 1  # attributes
        ts_delta, pos = read_varint(body, pos)
        off_delta, pos = read_varint(body, pos)
        key, pos = _read_bytes(body, pos)
        value, pos = _read_bytes(body, pos)
        n_headers, pos = read_varint(body, pos)
        hdrs: list[tuple[str, bytes | None]] = []
        for _h in range(n_headers):
            hkey, pos = _read_bytes(body, pos)
            hval, pos = _read_bytes(body, pos)
            hdrs.append(((hkey or b"").decode("utf-8", "replace"), hval))
        if pos != end:
            raise CorruptRecordError("record length does not match its fields")
        timestamp = (
            header.max_timestamp if header.is_log_append_time else header.base_timestamp + ts_delta
        )
        yield Record(header.base_offset + off_delta, timestamp, key, value, tuple(hdrs))


CONTROL_RECORD_KEY = struct.Struct(">hh")  # version => Int16, type => Int16
CONTROL_TYPE_ABORT = 0
CONTROL_TYPE_COMMIT = 1


def control_record_type(key: bytes | None) -> int:
    """The type id of a control record's key (0 ABORT, 1 COMMIT; 2-6 are KRaft's)."""
    if key is None or len(key) < CONTROL_RECORD_KEY.size:
        raise InvalidRecordError(f"control record key of {0 if key is None else len(key)} bytes (at least 4)")
    version, control_type = CONTROL_RECORD_KEY.unpack_from(key)
    if version < 0:
        raise InvalidRecordError(f"invalid control record key version {version}")
    return int(control_type)


def control_batch_type(batch: bytes | memoryview) -> int:
    """The control type of a control batch: its (only) record's key type."""
    for record in iter_records(batch):
        return control_record_type(record.key)
    raise InvalidRecordError("control batch without a record")


def _read_bytes(buf: bytes | memoryview, pos: int) -> tuple[bytes | None, int]:
    n, pos = read_varint(buf, pos)
    if n < 0:
        return None, pos
    if pos + n > len(buf):
        raise CorruptRecordError("field runs past its record")
    return bytes(buf[pos : pos + n]), pos + n


# --- records as stored: what compaction needs ------------------------------------------


class RawRecord(NamedTuple):
    """One record of a batch as it is encoded, for code that keeps or drops records
    without re-encoding them (the log cleaner, key checks on the produce path)."""

    attributes: int
    timestamp_delta: int
    offset: int  # absolute: the batch's base offset + the record's offset delta
    key: bytes | None
    has_value: bool  # False for a tombstone (null value)
    tail: memoryview  # the record's bytes from its offset delta to its end


def records_section(batch: bytes | bytearray | memoryview) -> bytes | memoryview:
    """The records of one batch as encoded, decompressed when the batch is compressed."""
    header = read_header(batch, 0)
    body = memoryview(batch)[HEADER_SIZE : header.size]
    if header.compression == Compression.NONE:
        return body
    from moldau.protocol import compression as codecs

    return codecs.decompress(header.compression, bytes(body))


def iter_raw_records(batch: bytes | bytearray | memoryview) -> Iterator[RawRecord]:
    """The records of one batch without decoding their values and headers."""
    header = read_header(batch, 0)
    body = memoryview(records_section(batch))
    pos = 0
    for _ in range(header.records_count):
        length, pos = read_varint(body, pos)
        end = pos + length
        if length < 2 or end > len(body):
            raise CorruptRecordError("record runs past its batch")
        attributes = body[pos]
        ts_delta, tail_start = read_varint(body, pos + 1)
        off_delta, pos = read_varint(body, tail_start)
        key, pos = _read_bytes(body, pos)
        value_length, pos = read_varint(body, pos)
        if pos + max(value_length, 0) > end:
            raise CorruptRecordError("record length does not match its fields")
        yield RawRecord(attributes, ts_delta, header.base_offset + off_delta, key, value_length >= 0,
                        body[tail_start:end])
        pos = end


def has_keyless_record(batch: bytes | bytearray | memoryview) -> bool:
    """Whether a record of the batch has a null key (refused by a compacted topic)."""
    return any(record.key is None for record in iter_raw_records(batch))


def filter_batch(
    batch: bytes | bytearray | memoryview, keep: Callable[[RawRecord], bool], *, keep_empty: bool = False
) -> bytes | bytearray | memoryview | None:
    """The batch with only the records ``keep`` accepts, as Kafka's cleaner writes it:
    ``batch`` itself when every record is kept, None when none is (unless
    ``keep_empty``: then a batch with no records, uncompressed, its timestamps the
    batch's max timestamp, which keeps an idempotent producer's last sequence in the
    log), otherwise a new batch with the same base offset, last offset delta (so the
    same last offset), partition leader epoch, attributes, producer fields and
    compression codec. Kept records keep their offsets and timestamps: the base
    timestamp becomes the first kept record's, and their timestamp deltas follow it.
    The CRC is recomputed."""
    header = read_header(batch, 0)
    records = list(iter_raw_records(batch))
    kept = [record for record in records if keep(record)]
    if len(kept) == len(records):
        return batch
    if not kept and not keep_empty:
        return None
    attributes = header.attributes if kept else header.attributes & ~COMPRESSION_MASK
    base_timestamp = header.base_timestamp + kept[0].timestamp_delta if kept else header.max_timestamp
    max_timestamp = NO_TIMESTAMP if kept else header.max_timestamp
    body = bytearray()
    for record in kept:
        timestamp = header.base_timestamp + record.timestamp_delta
        max_timestamp = max(max_timestamp, timestamp)
        encoded = bytearray([record.attributes])
        write_varint(encoded, timestamp - base_timestamp)
        encoded += record.tail
        write_varint(body, len(encoded))
        body += encoded
    if header.is_log_append_time:
        max_timestamp = header.max_timestamp  # the append time, which consumers read
    if kept and header.compression != Compression.NONE:
        from moldau.protocol import compression as codecs

        body = bytearray(codecs.compress(header.compression, bytes(body)))
    out = bytearray(HEADER_SIZE)
    HEADER.pack_into(
        out,
        0,
        header.base_offset,
        HEADER_SIZE - LOG_OVERHEAD + len(body),
        header.partition_leader_epoch,
        MAGIC,
        0,
        attributes,
        header.last_offset_delta,
        base_timestamp,
        max_timestamp,
        header.producer_id,
        header.producer_epoch,
        header.base_sequence,
        len(kept),
    )
    out += body
    CRC_FIELD.pack_into(out, CRC_POS, crc_of(out, 0, len(out)))
    return out

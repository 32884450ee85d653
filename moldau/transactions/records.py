"""The records of ``__transaction_state``: key, value, and the transactional id →
partition hash.

One record per transactional id and state change; the latest record of a key is the id's
state, a tombstone (null value) removes the id. Layouts from Kafka's JSON schemas
(``TransactionLogKey.json``, ``TransactionLogValue.json``), every integer big-endian:

Key (``TransactionLogKey`` v0, non-flexible)::

    version: int16 (= 0)          the key version is also the record type
    transactional_id: string      int16 length + UTF-8

Value v0 (non-flexible: strings int16 length, arrays int32 count, null array = -1)::

    version: int16 (= 0)
    producer_id: int64
    producer_epoch: int16
    transaction_timeout_ms: int32
    transaction_status: int8      TransactionState id (state.py)
    transaction_partitions: nullable array of
        topic: string
        partition_ids: array of int32
    transaction_last_update_timestamp_ms: int64
    transaction_start_timestamp_ms: int64

Value v1 (flexible, KIP-915): the same fields in the same order, but strings and arrays
carry an unsigned varint ``length + 1`` (0 = null), each partitions entry ends with a
tagged-field section, and the value ends with one holding, each only when it differs
from its default (Kafka's generated writers leave defaults out), in tag order::

    tag 0  previous_producer_id: int64      default -1
    tag 1  next_producer_id: int64          default -1
    tag 2  client_transaction_version: int16 default 0

A tagged field is ``tag: uvarint, size: uvarint, bytes``. Unknown tags are skipped on
read, so a newer broker's additions do not make a partition unloadable.

Kafka writes v0 while the ``transaction.version`` feature is 0 and v1 from 1 on. An
Empty transaction is written with null partitions; others list their partitions grouped
by topic (Moldau sorts topics and partition ids; Kafka's order is a hash map's).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from moldau.protocol.partitioning import java_string_hash as java_string_hash  # re-exported
from moldau.protocol.partitioning import partition_for as partition_for  # re-exported
from moldau.transactions.state import TransactionState

TRANSACTION_STATE_TOPIC = "__transaction_state"
TRANSACTION_LOG_KEY_VERSION = 0
NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1

_INT8 = struct.Struct(">b")
_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_INT64 = struct.Struct(">q")

_TAG_PREVIOUS_PRODUCER_ID = 0
_TAG_NEXT_PRODUCER_ID = 1
_TAG_CLIENT_TRANSACTION_VERSION = 2


class RecordDecodeError(ValueError):
    """Bytes that are not a valid ``__transaction_state`` key or value."""


class UnknownRecordType(RecordDecodeError):
    """A key version other than 0: not a transaction record (Kafka skips it on load)."""

    def __init__(self, version: int) -> None:
        super().__init__(f"unknown __transaction_state key version {version}")
        self.version = version


@dataclass(frozen=True)
class TopicPartitions:
    """One entry of ``TransactionPartitions``: a topic and some of its partitions."""

    topic: str
    partition_ids: tuple[int, ...]


@dataclass(frozen=True)
class TransactionLogValue:
    """A transactional id's state as ``__transaction_state`` holds it.

    ``transaction_partitions`` is None (null) for an Empty transaction, as Kafka writes
    it. ``previous_producer_id``, ``next_producer_id`` and ``client_transaction_version``
    exist only in v1 (tagged); v0 reads them as their defaults.
    """

    producer_id: int
    producer_epoch: int
    transaction_timeout_ms: int
    transaction_status: TransactionState
    transaction_partitions: tuple[TopicPartitions, ...] | None
    transaction_last_update_timestamp_ms: int
    transaction_start_timestamp_ms: int
    previous_producer_id: int = NO_PRODUCER_ID
    next_producer_id: int = NO_PRODUCER_ID
    client_transaction_version: int = 0

    def partitions(self) -> frozenset[tuple[str, int]]:
        """The (topic, partition) pairs of the transaction; none for Empty (Kafka's
        loader ignores any it finds there)."""
        if self.transaction_status is TransactionState.EMPTY or self.transaction_partitions is None:
            return frozenset()
        return frozenset((tp.topic, p) for tp in self.transaction_partitions for p in tp.partition_ids)


def group_partitions(partitions: Iterable[tuple[str, int]]) -> tuple[TopicPartitions, ...]:
    """(topic, partition) pairs as ``TransactionPartitions`` entries, one per topic,
    topics and partition ids sorted."""
    by_topic: dict[str, set[int]] = {}
    for topic, partition in partitions:
        by_topic.setdefault(topic, set()).add(partition)
    return tuple(TopicPartitions(t, tuple(sorted(ps))) for t, ps in sorted(by_topic.items()))


# --- primitive codec -------------------------------------------------------------------


def _uvarint(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


class _Writer:
    def __init__(self, flexible: bool) -> None:
        self.parts: list[bytes] = []
        self.flexible = flexible

    def int8(self, v: int) -> None:
        self.parts.append(_INT8.pack(v))

    def int16(self, v: int) -> None:
        self.parts.append(_INT16.pack(v))

    def int32(self, v: int) -> None:
        self.parts.append(_INT32.pack(v))

    def int64(self, v: int) -> None:
        self.parts.append(_INT64.pack(v))

    def string(self, v: str) -> None:
        raw = v.encode("utf-8")
        if len(raw) > 0x7FFF:
            raise ValueError(f"string of {len(raw)} bytes is longer than 32767")
        self.parts.append(_uvarint(len(raw) + 1) if self.flexible else _INT16.pack(len(raw)))
        self.parts.append(raw)

    def array_len(self, n: int | None) -> None:
        if self.flexible:
            self.parts.append(_uvarint(0 if n is None else n + 1))
        else:
            self.int32(-1 if n is None else n)

    def tagged_fields(self, fields: list[tuple[int, bytes]]) -> None:
        if not self.flexible:
            return
        self.parts.append(_uvarint(len(fields)))
        for tag, data in fields:
            self.parts.append(_uvarint(tag))
            self.parts.append(_uvarint(len(data)))
            self.parts.append(data)

    def getvalue(self) -> bytes:
        return b"".join(self.parts)


class _Reader:
    def __init__(self, buf: bytes, flexible: bool = False) -> None:
        self.buf = memoryview(buf)
        self.pos = 0
        self.flexible = flexible

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise RecordDecodeError(f"truncated record: need {n} bytes at {self.pos} of {len(self.buf)}")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def int8(self) -> int:
        return int(_INT8.unpack(self.take(1))[0])

    def int16(self) -> int:
        return int(_INT16.unpack(self.take(2))[0])

    def int32(self) -> int:
        return int(_INT32.unpack(self.take(4))[0])

    def int64(self) -> int:
        return int(_INT64.unpack(self.take(8))[0])

    def uvarint(self) -> int:
        result = 0
        shift = 0
        while True:
            b = self.take(1)[0]
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise RecordDecodeError("varint too long")

    def string(self) -> str:
        n = self.uvarint() - 1 if self.flexible else self.int16()
        if n < 0:
            raise RecordDecodeError("null in a non-nullable string field")
        try:
            return bytes(self.take(n)).decode("utf-8")
        except UnicodeDecodeError as e:
            raise RecordDecodeError(f"string is not UTF-8: {e}") from e

    def array_len(self, nullable: bool) -> int | None:
        n = self.uvarint() - 1 if self.flexible else self.int32()
        if n < 0:
            if nullable and n == -1:
                return None
            raise RecordDecodeError(f"invalid array length {n}")
        return n

    def tagged_fields(self) -> dict[int, memoryview]:
        if not self.flexible:
            return {}
        fields: dict[int, memoryview] = {}
        for _ in range(self.uvarint()):
            tag = self.uvarint()
            fields[tag] = self.take(self.uvarint())
        return fields


# --- key -------------------------------------------------------------------------------


def encode_key(transactional_id: str) -> bytes:
    """``version:int16 (=0) transactional_id:string``."""
    w = _Writer(flexible=False)
    w.int16(TRANSACTION_LOG_KEY_VERSION)
    w.string(transactional_id)
    return w.getvalue()


def decode_key(buf: bytes) -> str:
    """The transactional id of a key; :class:`UnknownRecordType` for a version other than 0."""
    r = _Reader(buf)
    version = r.int16()
    if version != TRANSACTION_LOG_KEY_VERSION:
        raise UnknownRecordType(version)
    return r.string()


# --- value -----------------------------------------------------------------------------


def encode_value(value: TransactionLogValue, version: int = 1) -> bytes:
    """Encode a TransactionLogValue as version 0 or 1 (see the module docstring).

    v0 cannot carry the tagged fields: they are dropped, as Kafka drops them.
    """
    if version not in (0, 1):
        raise ValueError(f"TransactionLogValue version {version} (0 or 1)")
    if value.transaction_status is TransactionState.EMPTY and value.transaction_partitions:
        raise ValueError("an Empty transaction has no partitions")
    w = _Writer(flexible=version >= 1)
    w.int16(version)
    w.int64(value.producer_id)
    w.int16(value.producer_epoch)
    w.int32(value.transaction_timeout_ms)
    w.int8(value.transaction_status.id)
    partitions = value.transaction_partitions
    w.array_len(None if partitions is None else len(partitions))
    for entry in partitions or ():
        w.string(entry.topic)
        w.array_len(len(entry.partition_ids))
        for p in entry.partition_ids:
            w.int32(p)
        w.tagged_fields([])
    w.int64(value.transaction_last_update_timestamp_ms)
    w.int64(value.transaction_start_timestamp_ms)
    tagged: list[tuple[int, bytes]] = []
    if value.previous_producer_id != NO_PRODUCER_ID:
        tagged.append((_TAG_PREVIOUS_PRODUCER_ID, _INT64.pack(value.previous_producer_id)))
    if value.next_producer_id != NO_PRODUCER_ID:
        tagged.append((_TAG_NEXT_PRODUCER_ID, _INT64.pack(value.next_producer_id)))
    if value.client_transaction_version != 0:
        tagged.append((_TAG_CLIENT_TRANSACTION_VERSION, _INT16.pack(value.client_transaction_version)))
    w.tagged_fields(tagged)
    return w.getvalue()


def decode_value(buf: bytes) -> TransactionLogValue:
    """Decode a TransactionLogValue v0 or v1; RecordDecodeError for anything else
    (Kafka refuses unknown value versions: a newer broker's partition cannot be read)."""
    r = _Reader(buf)
    version = r.int16()
    if version not in (0, 1):
        raise RecordDecodeError(f"unknown TransactionLogValue version {version}")
    r.flexible = version >= 1
    producer_id = r.int64()
    producer_epoch = r.int16()
    timeout_ms = r.int32()
    status_id = r.int8()
    try:
        status = TransactionState.from_id(status_id)
    except ValueError as e:
        raise RecordDecodeError(str(e)) from None
    n = r.array_len(nullable=True)
    partitions: tuple[TopicPartitions, ...] | None = None
    if n is not None:
        entries: list[TopicPartitions] = []
        for _ in range(n):
            topic = r.string()
            count = r.array_len(nullable=False) or 0
            ids = tuple(r.int32() for _ in range(count))
            r.tagged_fields()
            entries.append(TopicPartitions(topic, ids))
        partitions = tuple(entries)
    last_update = r.int64()
    start = r.int64()
    tags = r.tagged_fields()
    return TransactionLogValue(
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        transaction_timeout_ms=timeout_ms,
        transaction_status=status,
        transaction_partitions=partitions,
        transaction_last_update_timestamp_ms=last_update,
        transaction_start_timestamp_ms=start,
        previous_producer_id=_tag_int(tags, _TAG_PREVIOUS_PRODUCER_ID, _INT64, NO_PRODUCER_ID),
        next_producer_id=_tag_int(tags, _TAG_NEXT_PRODUCER_ID, _INT64, NO_PRODUCER_ID),
        client_transaction_version=_tag_int(tags, _TAG_CLIENT_TRANSACTION_VERSION, _INT16, 0),
    )


def _tag_int(tags: dict[int, memoryview], tag: int, codec: struct.Struct, default: int) -> int:
    data = tags.get(tag)
    if data is None:
        return default
    if len(data) != codec.size:
        raise RecordDecodeError(f"tagged field {tag} has {len(data)} bytes, expected {codec.size}")
    return int(codec.unpack(data)[0])


def transaction_record(
    transactional_id: str, value: TransactionLogValue | None, version: int = 1
) -> tuple[bytes, bytes | None]:
    """(key, value) of a transactional id's record; ``value`` None makes the tombstone."""
    return encode_key(transactional_id), None if value is None else encode_value(value, version)

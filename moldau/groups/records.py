"""The records of ``__consumer_offsets``: keys, values and the group → partition hash.

Every record in ``__consumer_offsets`` starts, in its key and in its value, with an
int16 version. The key version says which kind of record it is (Kafka's "coordinator
record type"), the value version which layout its value has:

====================  ===========  ======================  ==========================
record                key version  value versions (read)   value version written
====================  ===========  ======================  ==========================
OffsetCommit          0 or 1       OffsetCommitValue 0-4   1 with an expire timestamp,
                                                           3 otherwise (as Kafka)
GroupMetadata         2            GroupMetadataValue 0-4  3
====================  ===========  ======================  ==========================

A value of ``None`` (a tombstone) deletes the key: a committed offset or a whole group.
Key versions 3 and above are KIP-848 consumer-group / share-group records that this
classic coordinator does not use; :func:`decode_key` raises
:class:`UnknownRecordType` for them so a loader can skip them.

Field layouts come from Kafka's JSON schemas
(``group-coordinator/src/main/resources/common/message/*.json``). Versions 0-3 of the
values are "non-flexible": strings are an int16 length then UTF-8 (length -1 = null),
bytes an int32 length, arrays an int32 count. Version 4 is "flexible": lengths and
counts are unsigned varints holding ``n + 1`` (0 = null) and each struct ends with a
tagged-field section (a varint count of ``(tag, size, bytes)`` entries), which readers
skip.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from moldau.protocol.partitioning import java_string_hash as java_string_hash  # re-exported
from moldau.protocol.partitioning import partition_for as partition_for  # re-exported

OFFSET_COMMIT_KEY_VERSION = 1
"""The key version Kafka writes for offset commits (0 is the same layout, pre-0.10)."""
GROUP_METADATA_KEY_VERSION = 2
GROUP_METADATA_VALUE_VERSION = 3
"""GroupMetadataValue v3 (Kafka >= 2.3): adds ``group_instance_id`` (KIP-345)."""

_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_INT64 = struct.Struct(">q")


class RecordDecodeError(ValueError):
    """Bytes that are not a valid ``__consumer_offsets`` key or value."""


class UnknownRecordType(RecordDecodeError):
    """A key version this coordinator does not know (e.g. KIP-848 group records)."""

    def __init__(self, version: int) -> None:
        super().__init__(f"unknown __consumer_offsets key version {version}")
        self.version = version


# --- records as data -------------------------------------------------------------------


@dataclass(frozen=True)
class OffsetCommitKey:
    """Key of a committed offset (OffsetCommitKey.json): group, topic, partition."""

    group: str
    topic: str
    partition: int


@dataclass(frozen=True)
class OffsetCommitValue:
    """A committed offset (OffsetCommitValue.json).

    ``leader_epoch`` exists from v3 (-1 = unknown); ``expire_timestamp`` exists only in
    v1 (-1 = none: the broker's ``offsets.retention.minutes`` applies).
    """

    offset: int
    metadata: str
    commit_timestamp: int
    leader_epoch: int = -1
    expire_timestamp: int = -1


@dataclass(frozen=True)
class GroupMetadataKey:
    """Key of a group's metadata record (GroupMetadataKey.json)."""

    group: str


@dataclass(frozen=True)
class MemberMetadata:
    """One member in GroupMetadataValue: its subscription (the chosen protocol's
    metadata) and the assignment the leader gave it."""

    member_id: str
    client_id: str
    client_host: str
    session_timeout: int
    subscription: bytes
    assignment: bytes
    rebalance_timeout: int = -1
    group_instance_id: str | None = None


@dataclass(frozen=True)
class GroupMetadataValue:
    """A classic group's generation (GroupMetadataValue.json).

    ``protocol`` and ``leader`` are null for an Empty group; ``current_state_timestamp``
    (v2+, -1 = unknown) is when the group entered its current state, which is what
    offset expiration of Empty groups counts from.
    """

    protocol_type: str
    generation: int
    protocol: str | None
    leader: str | None
    current_state_timestamp: int = -1
    members: tuple[MemberMetadata, ...] = field(default_factory=tuple)


RecordKey = OffsetCommitKey | GroupMetadataKey


# --- writer ----------------------------------------------------------------------------


class _Writer:
    def __init__(self, flexible: bool = False) -> None:
        self.parts: list[bytes] = []
        self.flexible = flexible

    def int16(self, v: int) -> None:
        self.parts.append(_INT16.pack(v))

    def int32(self, v: int) -> None:
        self.parts.append(_INT32.pack(v))

    def int64(self, v: int) -> None:
        self.parts.append(_INT64.pack(v))

    def uvarint(self, v: int) -> None:
        out = bytearray()
        while v >= 0x80:
            out.append((v & 0x7F) | 0x80)
            v >>= 7
        out.append(v)
        self.parts.append(bytes(out))

    def string(self, v: str | None) -> None:
        if v is None:
            if self.flexible:
                self.uvarint(0)
            else:
                self.int16(-1)
            return
        raw = v.encode("utf-8")
        if len(raw) > 0x7FFF:
            raise ValueError(f"string of {len(raw)} bytes is longer than 32767")
        if self.flexible:
            self.uvarint(len(raw) + 1)
        else:
            self.int16(len(raw))
        self.parts.append(raw)

    def bytes_(self, v: bytes) -> None:
        if self.flexible:
            self.uvarint(len(v) + 1)
        else:
            self.int32(len(v))
        self.parts.append(bytes(v))

    def array_len(self, n: int) -> None:
        if self.flexible:
            self.uvarint(n + 1)
        else:
            self.int32(n)

    def tagged_fields(self) -> None:
        if self.flexible:
            self.uvarint(0)  # we write no tagged fields

    def getvalue(self) -> bytes:
        return b"".join(self.parts)


class _Reader:
    def __init__(self, buf: bytes, pos: int = 0, flexible: bool = False) -> None:
        self.buf = memoryview(buf)
        self.pos = pos
        self.flexible = flexible

    def _take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise RecordDecodeError(f"truncated record: need {n} bytes at {self.pos} of {len(self.buf)}")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def int16(self) -> int:
        return int(_INT16.unpack(self._take(2))[0])

    def int32(self) -> int:
        return int(_INT32.unpack(self._take(4))[0])

    def int64(self) -> int:
        return int(_INT64.unpack(self._take(8))[0])

    def uvarint(self) -> int:
        result = 0
        shift = 0
        while True:
            b = self._take(1)[0]
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise RecordDecodeError("varint too long")

    def nullable_string(self) -> str | None:
        if self.flexible:
            n = self.uvarint() - 1
        else:
            n = self.int16()
        if n < 0:
            if n == -1:
                return None
            raise RecordDecodeError(f"negative string length {n}")
        try:
            return bytes(self._take(n)).decode("utf-8")
        except UnicodeDecodeError as e:
            raise RecordDecodeError(f"string is not UTF-8: {e}") from e

    def string(self) -> str:
        v = self.nullable_string()
        if v is None:
            raise RecordDecodeError("null in a non-nullable string field")
        return v

    def bytes_(self) -> bytes:
        n = self.uvarint() - 1 if self.flexible else self.int32()
        if n < 0:
            raise RecordDecodeError("null in a non-nullable bytes field")
        return bytes(self._take(n))

    def array_len(self) -> int:
        n = self.uvarint() - 1 if self.flexible else self.int32()
        if n < 0:
            raise RecordDecodeError("null in a non-nullable array field")
        return n

    def skip_tagged_fields(self) -> None:
        if not self.flexible:
            return
        for _ in range(self.uvarint()):
            self.uvarint()  # tag
            self._take(self.uvarint())

    def end(self) -> None:
        # Kafka's readers ignore trailing bytes of a known version; we do the same so a
        # newer broker's ignorable additions don't make a partition unloadable.
        return


# --- keys ------------------------------------------------------------------------------


def encode_offset_commit_key(key: OffsetCommitKey, version: int = OFFSET_COMMIT_KEY_VERSION) -> bytes:
    """``version:int16 group:string topic:string partition:int32`` (key versions 0 and 1)."""
    if version not in (0, 1):
        raise ValueError(f"OffsetCommitKey version {version} (0 or 1)")
    w = _Writer()
    w.int16(version)
    w.string(key.group)
    w.string(key.topic)
    w.int32(key.partition)
    return w.getvalue()


def encode_group_metadata_key(key: GroupMetadataKey) -> bytes:
    """``version:int16 (=2) group:string``."""
    w = _Writer()
    w.int16(GROUP_METADATA_KEY_VERSION)
    w.string(key.group)
    return w.getvalue()


def decode_key(buf: bytes) -> RecordKey:
    """Decode a ``__consumer_offsets`` key; raises :class:`UnknownRecordType` for key
    versions other than 0, 1 (offset commit) and 2 (group metadata)."""
    r = _Reader(buf)
    version = r.int16()
    if version in (0, 1):
        group = r.string()
        topic = r.string()
        partition = r.int32()
        r.end()
        return OffsetCommitKey(group, topic, partition)
    if version == GROUP_METADATA_KEY_VERSION:
        group = r.string()
        r.end()
        return GroupMetadataKey(group)
    raise UnknownRecordType(version)


# --- OffsetCommitValue -----------------------------------------------------------------


def offset_commit_value_version(value: OffsetCommitValue) -> int:
    """The version Kafka writes: 1 when the commit carries an expire timestamp (OffsetCommit
    v2-v4 with a retention time), else 3 (adds the leader epoch, drops expiry)."""
    return 1 if value.expire_timestamp != -1 else 3


def encode_offset_commit_value(value: OffsetCommitValue, version: int | None = None) -> bytes:
    """Encode an OffsetCommitValue; ``version`` None picks the one Kafka writes.

    v0: ``offset:int64 metadata:string commitTimestamp:int64``
    v1: ``offset:int64 metadata:string commitTimestamp:int64 expireTimestamp:int64``
    v2: as v0
    v3: ``offset:int64 leaderEpoch:int32 metadata:string commitTimestamp:int64``
    v4: as v3, flexible (compact string, trailing tagged fields)
    """
    if version is None:
        version = offset_commit_value_version(value)
    if not 0 <= version <= 4:
        raise ValueError(f"OffsetCommitValue version {version} (0-4)")
    w = _Writer(flexible=version >= 4)
    w.int16(version)
    w.int64(value.offset)
    if version >= 3:
        w.int32(value.leader_epoch)
    w.string(value.metadata)
    w.int64(value.commit_timestamp)
    if version == 1:
        w.int64(value.expire_timestamp)
    w.tagged_fields()
    return w.getvalue()


def decode_offset_commit_value(buf: bytes) -> OffsetCommitValue:
    r = _Reader(buf)
    version = r.int16()
    if not 0 <= version <= 4:
        # Kafka refuses unknown value versions too: a newer broker's partition cannot be
        # read by an older one.
        raise RecordDecodeError(f"unknown OffsetCommitValue version {version}")
    r.flexible = version >= 4
    offset = r.int64()
    leader_epoch = r.int32() if version >= 3 else -1
    metadata = r.string()
    commit_timestamp = r.int64()
    expire_timestamp = r.int64() if version == 1 else -1
    r.skip_tagged_fields()
    r.end()
    return OffsetCommitValue(offset, metadata, commit_timestamp, leader_epoch, expire_timestamp)


# --- GroupMetadataValue ----------------------------------------------------------------


def encode_group_metadata_value(value: GroupMetadataValue, version: int = GROUP_METADATA_VALUE_VERSION) -> bytes:
    """Encode a GroupMetadataValue (Kafka writes v3).

    ``protocolType:string generation:int32 protocol:string? leader:string?``
    ``[v2+ currentStateTimestamp:int64] members:[MemberMetadata]`` where MemberMetadata is
    ``memberId:string [v3+ groupInstanceId:string?] clientId:string clientHost:string``
    ``[v1+ rebalanceTimeout:int32] sessionTimeout:int32 subscription:bytes assignment:bytes``.
    """
    if not 0 <= version <= 4:
        raise ValueError(f"GroupMetadataValue version {version} (0-4)")
    w = _Writer(flexible=version >= 4)
    w.int16(version)
    w.string(value.protocol_type)
    w.int32(value.generation)
    w.string(value.protocol)
    w.string(value.leader)
    if version >= 2:
        w.int64(value.current_state_timestamp)
    w.array_len(len(value.members))
    for m in value.members:
        w.string(m.member_id)
        if version >= 3:
            w.string(m.group_instance_id)
        w.string(m.client_id)
        w.string(m.client_host)
        if version >= 1:
            w.int32(m.rebalance_timeout)
        w.int32(m.session_timeout)
        w.bytes_(m.subscription)
        w.bytes_(m.assignment)
        w.tagged_fields()
    w.tagged_fields()
    return w.getvalue()


def decode_group_metadata_value(buf: bytes) -> GroupMetadataValue:
    """Decode any GroupMetadataValue version 0-4.

    v0 has no rebalance timeout; like Kafka's loader we take the session timeout for it.
    """
    r = _Reader(buf)
    version = r.int16()
    if not 0 <= version <= 4:
        raise RecordDecodeError(f"unknown GroupMetadataValue version {version}")
    r.flexible = version >= 4
    protocol_type = r.string()
    generation = r.int32()
    protocol = r.nullable_string()
    leader = r.nullable_string()
    current_state_timestamp = r.int64() if version >= 2 else -1
    members: list[MemberMetadata] = []
    for _ in range(r.array_len()):
        member_id = r.string()
        group_instance_id = r.nullable_string() if version >= 3 else None
        client_id = r.string()
        client_host = r.string()
        rebalance_timeout = r.int32() if version >= 1 else None
        session_timeout = r.int32()
        subscription = r.bytes_()
        assignment = r.bytes_()
        r.skip_tagged_fields()
        members.append(
            MemberMetadata(
                member_id=member_id,
                client_id=client_id,
                client_host=client_host,
                session_timeout=session_timeout,
                subscription=subscription,
                assignment=assignment,
                rebalance_timeout=session_timeout if rebalance_timeout is None else rebalance_timeout,
                group_instance_id=group_instance_id,
            )
        )
    r.skip_tagged_fields()
    r.end()
    return GroupMetadataValue(protocol_type, generation, protocol, leader, current_state_timestamp, tuple(members))


# --- whole records ---------------------------------------------------------------------


def offset_commit_record(
    group: str, topic: str, partition: int, value: OffsetCommitValue | None
) -> tuple[bytes, bytes | None]:
    """(key, value) of an offset commit; ``value`` None makes the tombstone."""
    key = encode_offset_commit_key(OffsetCommitKey(group, topic, partition))
    return key, None if value is None else encode_offset_commit_value(value)


def group_metadata_record(group: str, value: GroupMetadataValue | None) -> tuple[bytes, bytes | None]:
    """(key, value) of a group's metadata; ``value`` None makes the tombstone."""
    key = encode_group_metadata_key(GroupMetadataKey(group))
    return key, None if value is None else encode_group_metadata_value(value)

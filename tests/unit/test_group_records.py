"""__consumer_offsets record codecs: golden bytes derived by hand from Kafka's JSON
schemas, hypothesis round-trips, and the group → partition hash."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moldau.groups.records import (
    GroupMetadataKey,
    GroupMetadataValue,
    MemberMetadata,
    OffsetCommitKey,
    OffsetCommitValue,
    RecordDecodeError,
    UnknownRecordType,
    decode_group_metadata_value,
    decode_key,
    decode_offset_commit_value,
    encode_group_metadata_key,
    encode_group_metadata_value,
    encode_offset_commit_key,
    encode_offset_commit_value,
    group_metadata_record,
    java_string_hash,
    offset_commit_record,
    partition_for,
)

# --- golden bytes ------------------------------------------------------------------------


def test_offset_commit_key_golden() -> None:
    # version=1 | group "g" (int16 len) | topic "t" | partition int32 1
    expected = b"\x00\x01" + b"\x00\x01g" + b"\x00\x01t" + b"\x00\x00\x00\x01"
    assert encode_offset_commit_key(OffsetCommitKey("g", "t", 1)) == expected
    assert decode_key(expected) == OffsetCommitKey("g", "t", 1)
    # key version 0 has the same layout (written by Kafka < 0.10)
    assert decode_key(b"\x00\x00" + expected[2:]) == OffsetCommitKey("g", "t", 1)


def test_group_metadata_key_golden() -> None:
    expected = b"\x00\x02\x00\x05group"
    assert encode_group_metadata_key(GroupMetadataKey("group")) == expected
    assert decode_key(expected) == GroupMetadataKey("group")


def test_offset_commit_value_v3_golden() -> None:
    # version 3 | offset int64 5 | leaderEpoch int32 2 | metadata "m" | commitTimestamp int64 1000
    expected = (
        b"\x00\x03"
        + b"\x00\x00\x00\x00\x00\x00\x00\x05"
        + b"\x00\x00\x00\x02"
        + b"\x00\x01m"
        + b"\x00\x00\x00\x00\x00\x00\x03\xe8"
    )
    value = OffsetCommitValue(offset=5, metadata="m", commit_timestamp=1000, leader_epoch=2)
    assert encode_offset_commit_value(value) == expected  # no expire timestamp -> v3, as Kafka
    assert decode_offset_commit_value(expected) == value


def test_offset_commit_value_v1_golden_when_expire_timestamp() -> None:
    # version 1 | offset | metadata | commitTimestamp | expireTimestamp (no leader epoch)
    expected = (
        b"\x00\x01"
        + b"\x00\x00\x00\x00\x00\x00\x00\x07"
        + b"\x00\x00"
        + b"\x00\x00\x00\x00\x00\x00\x00\x0a"
        + b"\x00\x00\x00\x00\x00\x00\x00\x14"
    )
    value = OffsetCommitValue(offset=7, metadata="", commit_timestamp=10, expire_timestamp=20)
    assert encode_offset_commit_value(value) == expected
    assert decode_offset_commit_value(expected) == value


def test_offset_commit_value_v4_flexible_skips_tagged_fields() -> None:
    # version 4 | offset | leaderEpoch | compact string "m" (len+1 = 2) | commitTimestamp
    # | tagged fields: 1 field, tag 0, size 2, two bytes
    raw = (
        b"\x00\x04"
        + struct.pack(">q", 9)
        + struct.pack(">i", -1)
        + b"\x02m"
        + struct.pack(">q", 5)
        + b"\x01\x00\x02\xaa\xbb"
    )
    assert decode_offset_commit_value(raw) == OffsetCommitValue(9, "m", 5, -1)
    assert encode_offset_commit_value(OffsetCommitValue(9, "m", 5, -1), version=4) == raw[:-5] + b"\x00"


def test_group_metadata_value_v3_golden() -> None:
    expected = (
        b"\x00\x03"
        + b"\x00\x08consumer"  # protocolType
        + b"\x00\x00\x00\x01"  # generation
        + b"\x00\x05range"  # protocol
        + b"\x00\x02m1"  # leader
        + b"\x00\x00\x00\x00\x00\x00\x03\xe8"  # currentStateTimestamp 1000
        + b"\x00\x00\x00\x01"  # 1 member
        + b"\x00\x02m1"  # memberId
        + b"\xff\xff"  # groupInstanceId null
        + b"\x00\x01c"  # clientId
        + b"\x00\x02/h"  # clientHost
        + b"\x00\x04\x93\xe0"  # rebalanceTimeout 300000
        + b"\x00\x00\x27\x10"  # sessionTimeout 10000
        + b"\x00\x00\x00\x01s"  # subscription
        + b"\x00\x00\x00\x01a"  # assignment
    )
    value = GroupMetadataValue(
        protocol_type="consumer",
        generation=1,
        protocol="range",
        leader="m1",
        current_state_timestamp=1000,
        members=(
            MemberMetadata(
                member_id="m1",
                client_id="c",
                client_host="/h",
                session_timeout=10000,
                subscription=b"s",
                assignment=b"a",
                rebalance_timeout=300000,
            ),
        ),
    )
    assert encode_group_metadata_value(value) == expected
    assert decode_group_metadata_value(expected) == value


def test_empty_group_metadata_value_golden() -> None:
    expected = (
        b"\x00\x03\x00\x08consumer\x00\x00\x00\x02"
        + b"\xff\xff\xff\xff"  # protocol and leader null
        + b"\x00\x00\x00\x00\x00\x00\x00\x07"
        + b"\x00\x00\x00\x00"
    )
    value = GroupMetadataValue("consumer", 2, None, None, 7, ())
    assert encode_group_metadata_value(value) == expected
    assert decode_group_metadata_value(expected) == value


def test_group_metadata_value_v0_takes_session_timeout_as_rebalance_timeout() -> None:
    member = MemberMetadata("m", "c", "h", 6000, b"", b"", rebalance_timeout=6000)
    value = GroupMetadataValue("consumer", 3, "range", "m", -1, (member,))
    raw = encode_group_metadata_value(value, version=0)
    assert decode_group_metadata_value(raw) == value


def test_tombstones() -> None:
    key, value = offset_commit_record("g", "t", 0, None)
    assert value is None and decode_key(key) == OffsetCommitKey("g", "t", 0)
    key, value = group_metadata_record("g", None)
    assert value is None and decode_key(key) == GroupMetadataKey("g")


def test_unknown_key_version_and_garbage() -> None:
    with pytest.raises(UnknownRecordType):
        decode_key(b"\x00\x03\x00\x01g")  # KIP-848 ConsumerGroupMetadataKey
    with pytest.raises(RecordDecodeError):
        decode_key(b"\x00\x01\x00\x05ab")
    with pytest.raises(RecordDecodeError):
        decode_offset_commit_value(b"\x00\x09")
    with pytest.raises(RecordDecodeError):
        decode_group_metadata_value(b"\x00\x03\x00")


# --- hypothesis round-trips -------------------------------------------------------------

names = st.text(max_size=40)
int32 = st.integers(-(2**31), 2**31 - 1)
int64 = st.integers(-(2**63), 2**63 - 1)


@given(names, names, int32, st.sampled_from([0, 1]))
def test_offset_commit_key_roundtrip(group: str, topic: str, partition: int, version: int) -> None:
    key = OffsetCommitKey(group, topic, partition)
    assert decode_key(encode_offset_commit_key(key, version)) == key


@given(names)
def test_group_metadata_key_roundtrip(group: str) -> None:
    assert decode_key(encode_group_metadata_key(GroupMetadataKey(group))) == GroupMetadataKey(group)


@given(int64, names, int64, int32, int64, st.sampled_from([0, 1, 2, 3, 4]))
def test_offset_commit_value_roundtrip(
    offset: int, metadata: str, commit: int, epoch: int, expire: int, version: int
) -> None:
    value = OffsetCommitValue(
        offset,
        metadata,
        commit,
        leader_epoch=epoch if version >= 3 else -1,
        expire_timestamp=expire if version == 1 else -1,
    )
    assert decode_offset_commit_value(encode_offset_commit_value(value, version)) == value


@given(int64, names, int64, int32, st.one_of(st.just(-1), st.integers(0, 2**62)))
def test_offset_commit_value_default_version_roundtrip(
    offset: int, metadata: str, commit: int, epoch: int, expire: int
) -> None:
    value = OffsetCommitValue(
        offset, metadata, commit, leader_epoch=epoch if expire == -1 else -1, expire_timestamp=expire
    )
    raw = encode_offset_commit_value(value)
    assert raw[:2] == (b"\x00\x01" if expire != -1 else b"\x00\x03")
    assert decode_offset_commit_value(raw) == value


members = st.builds(
    MemberMetadata,
    member_id=names,
    client_id=names,
    client_host=names,
    session_timeout=int32,
    subscription=st.binary(max_size=64),
    assignment=st.binary(max_size=64),
    rebalance_timeout=int32,
    group_instance_id=st.one_of(st.none(), names),
)


@given(
    names,
    int32,
    st.one_of(st.none(), names),
    st.one_of(st.none(), names),
    int64,
    st.lists(members, max_size=4),
    st.sampled_from([0, 1, 2, 3, 4]),
)
def test_group_metadata_value_roundtrip(
    protocol_type: str,
    generation: int,
    protocol: str | None,
    leader: str | None,
    timestamp: int,
    member_list: list[MemberMetadata],
    version: int,
) -> None:
    # fields a version lacks decode to their defaults
    adjusted = tuple(
        MemberMetadata(
            member_id=m.member_id,
            client_id=m.client_id,
            client_host=m.client_host,
            session_timeout=m.session_timeout,
            subscription=m.subscription,
            assignment=m.assignment,
            rebalance_timeout=m.rebalance_timeout if version >= 1 else m.session_timeout,
            group_instance_id=m.group_instance_id if version >= 3 else None,
        )
        for m in member_list
    )
    value = GroupMetadataValue(protocol_type, generation, protocol, leader, timestamp if version >= 2 else -1, adjusted)
    assert decode_group_metadata_value(encode_group_metadata_value(value, version)) == value


@given(st.binary(max_size=64))
def test_decoders_never_crash_on_garbage(raw: bytes) -> None:
    for decode in (decode_key, decode_offset_commit_value, decode_group_metadata_value):
        try:
            decode(raw)
        except RecordDecodeError:
            pass


# --- partitioning -------------------------------------------------------------------------


def test_java_string_hash_known_values() -> None:
    assert java_string_hash("") == 0
    assert java_string_hash("hello") == 99162322
    assert java_string_hash("polygenelubricants") == -(2**31)  # Integer.MIN_VALUE
    # a character outside the BMP is two UTF-16 code units: 0xD83D, 0xDE00
    assert java_string_hash("\U0001f600") == 0xD83D * 31 + 0xDE00


def test_partition_for() -> None:
    assert partition_for("hello", 50) == 99162322 % 50
    assert partition_for("polygenelubricants", 50) == 0  # Utils.abs(MIN_VALUE) == 0
    assert partition_for("", 50) == 0
    negative = "Aa" * 7 + "zzzzzzzz"
    h = java_string_hash(negative)
    assert partition_for(negative, 7) == abs(h) % 7


@given(st.text(max_size=30), st.integers(1, 200))
def test_partition_for_in_range(group_id: str, partitions: int) -> None:
    assert 0 <= partition_for(group_id, partitions) < partitions

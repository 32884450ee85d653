"""Which partition of an internal topic holds a key: Kafka's
``Utils.abs(key.hashCode()) % partitions`` (the group's ``__consumer_offsets`` partition,
a transactional id's ``__transaction_state`` partition)."""

from __future__ import annotations

import struct

_UINT16 = struct.Struct(">H")


def java_string_hash(s: str) -> int:
    """Java's ``String.hashCode``: ``s[0]*31^(n-1) + ... + s[n-1]`` over UTF-16 code
    units, in 32-bit two's complement."""
    raw = s.encode("utf-16-be", "surrogatepass")
    h = 0
    for (unit,) in _UINT16.iter_unpack(raw):
        h = (31 * h + unit) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: str, partitions: int) -> int:
    """``Utils.abs(key.hashCode()) % partitions``, where ``Utils.abs`` maps
    Integer.MIN_VALUE to 0 (``Math.abs`` would leave it negative)."""
    if partitions <= 0:
        raise ValueError("partitions must be positive")
    h = java_string_hash(key)
    return (0 if h == -(1 << 31) else abs(h)) % partitions

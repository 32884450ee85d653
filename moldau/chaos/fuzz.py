"""Protocol fuzzing, the pure part: requests generated from the message schemas, and
mutations of them. Bytes out, no sockets (`fuzz_run.py` sends them to a broker).

`generate(api_key, version, rng)` walks the request's kio entity (kio generates one
dataclass per API version from Kafka's `common/message/*.json`; Moldau's inter-broker
APIs are declared the same way in `moldau.protocol.interbroker`) and fills every field by
its Kafka type: integers near the interesting edges, strings from a small vocabulary (so
the topics and groups a run may create stay few: memory stays bounded for a legitimate
reason), nullable fields sometimes null, arrays of 0-3 elements, record batches built by
`records.build_batch` with every codec. Timeouts are kept short so a valid request never
waits long. The result is a whole frame: size, request header v1 or v2, body.

`mutate(frame, rng)` returns the frame changed in one of the ways decoders get wrong:
bytes flipped, truncated, extended, a length or count field set to an edge value, a
varint that never ends, unknown tagged fields (which the spec says must be skipped), an
unsupported version or an unknown API key; the size prefix is recomputed, so the broker
always receives a whole frame.
"""

from __future__ import annotations

import contextvars
import dataclasses
import datetime
import io
import random
import struct
import types
import typing
import uuid
from functools import cache
from typing import Any

from kio.serial import entity_writer

from moldau.protocol.apis import SUPPORTED_VERSIONS, is_flexible, request_type
from moldau.protocol.records import Compression, RecordInput, build_batch

NAMES = ("fuzz-0", "fuzz-1", "fuzz-2", "", "g0", "g1", "\u00e9t\u00e9")
# The controller's requests to brokers. Without an authorizer (Kafka's ClusterAction ACL)
# a client that sends them may take a broker's partitions away, in Kafka as in Moldau, so
# a run that checks the broker keeps serving a real client leaves them out by default.
INTER_BROKER_ONLY = frozenset({4, 5, 6, 7})
INT_EDGES = (0, 1, -1, 2, 3, -2)
MUTATIONS = (
    "flip",
    "truncate",
    "extend",
    "length",
    "varint",
    "tagged",
    "version",
    "api_key",
    "zero_body",
)
CODECS = (Compression.NONE, Compression.GZIP, Compression.SNAPPY, Compression.LZ4, Compression.ZSTD)
_BOUNDS = {"int8": 8, "int16": 16, "int32": 32, "int64": 64}
_BOUNDED: contextvars.ContextVar[bool] = contextvars.ContextVar("bounded", default=False)


def advertised(inter_broker: bool = True) -> list[tuple[int, int]]:
    """Every (api key, version) Moldau advertises (`inter_broker=False`: without the
    controller-to-broker APIs)."""
    return [
        (k, v)
        for k, (lo, hi) in sorted(SUPPORTED_VERSIONS.items())
        if inter_broker or k not in INTER_BROKER_ONLY
        for v in range(lo, hi + 1)
    ]


# ----------------------------------------------------------------------- values


# Fields that size what the broker builds (partitions of a topic). Unbounded, one request
# makes the broker build millions of partitions (docs/reliability.md #3); `bounded=True` keeps them
# small so that a run can look for other bugs.
SIZE_FIELDS = frozenset({"num_partitions", "count"})


def _int(rng: random.Random, bits: int, name: str) -> int:
    if "timeout" in name or "max_wait" in name or "wait_ms" in name:
        return rng.choice((0, 10, 50, 100))
    if name in SIZE_FIELDS and _BOUNDED.get():
        return rng.choice((-1, 0, 1, 2, 3, 100))
    roll = rng.random()
    if roll < 0.6:
        return rng.choice(INT_EDGES)
    if roll < 0.8:
        return rng.randrange(0, 100)
    top = 1 << (bits - 1)
    return rng.choice((top - 1, -top, rng.randrange(-top, top)))


def _string(rng: random.Random) -> str:
    if rng.random() < 0.85:
        return rng.choice(NAMES)
    return "".join(rng.choice("abcxyz-._0") for _ in range(rng.randrange(0, 40)))


def _records(rng: random.Random) -> bytes:
    batches = []
    for _ in range(rng.randrange(1, 3)):
        n = rng.randrange(1, 4)
        recs = [
            RecordInput(
                key=rng.choice((None, b"k", b"key-" + bytes([rng.randrange(256)]))),
                value=rng.choice((None, b"", b"v" * rng.randrange(1, 64))),
            )
            for _ in range(n)
        ]
        idempotent = rng.random() < 0.2
        batches.append(
            build_batch(
                recs,
                compression=rng.choice(CODECS),
                timestamp=rng.choice((0, 1_700_000_000_000)),
                producer_id=rng.randrange(0, 3) if idempotent else -1,
                producer_epoch=0 if idempotent else -1,
                base_sequence=rng.randrange(0, 3) if idempotent else -1,
            )
        )
    return b"".join(batches)


def _primitive(kafka_type: str, py_type: Any, rng: random.Random, name: str) -> Any:
    if kafka_type in _BOUNDS:
        return (
            py_type(_int(rng, _BOUNDS[kafka_type], name))
            if isinstance(py_type, type)
            else _int(rng, _BOUNDS[kafka_type], name)
        )
    if kafka_type == "uint16":
        return rng.choice((0, 1, 65535, rng.randrange(65536)))
    if kafka_type == "uint32":
        return rng.choice((0, 1, 2**32 - 1))
    if kafka_type == "float64":
        return rng.choice((0.0, 1.5, -1.0))
    if kafka_type == "bool":
        return rng.random() < 0.5
    if kafka_type == "string":
        return _string(rng)
    if kafka_type == "bytes":
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 32)))
    if kafka_type == "uuid":
        return rng.choice((uuid.UUID(int=0), uuid.UUID(int=rng.getrandbits(128))))
    if kafka_type == "records":
        return _records(rng)
    if kafka_type == "timedelta_i32" or kafka_type == "timedelta_i64":
        return datetime.timedelta(milliseconds=rng.choice((0, 10, 100, -1)))
    if kafka_type in ("datetime_i64", "datetime_u64"):
        return datetime.datetime.fromtimestamp(rng.choice((0, 1_700_000_000)), tz=datetime.UTC)
    raise ValueError(f"no generator for Kafka type {kafka_type!r} ({name})")


@cache
def _hints(entity: type) -> dict[str, Any]:
    return typing.get_type_hints(entity)


def _optional(tp: Any) -> tuple[Any, bool]:
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(tp))
    return tp, False


def entity(cls: type, rng: random.Random, depth: int = 0) -> Any:
    """An instance of a kio entity with every field filled."""
    hints = _hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        values[f.name] = _value(hints[f.name], f.metadata.get("kafka_type"), rng, f.name, depth)
    return cls(**values)


def _value(tp: Any, kafka_type: str | None, rng: random.Random, name: str, depth: int) -> Any:
    inner, nullable = _optional(tp)
    if nullable and rng.random() < 0.1:
        return None
    if typing.get_origin(inner) is tuple:
        (element,) = typing.get_args(inner)[:1]
        count = rng.choice((0, 1, 1, 2, 3)) if depth < 3 else 0
        return tuple(_value(element, kafka_type, rng, name, depth + 1) for _ in range(count))
    if dataclasses.is_dataclass(inner):
        return entity(inner, rng, depth + 1)  # type: ignore[arg-type]
    if kafka_type is None:
        raise ValueError(f"field {name} of type {inner} has no kafka_type")
    return _primitive(kafka_type, inner, rng, name)


# ------------------------------------------------------------------------ frames

_SIZE = struct.Struct(">i")
_HEADER = struct.Struct(">hhih")


def header(api_key: int, version: int, correlation_id: int, client_id: str = "fuzz") -> bytes:
    raw = client_id.encode()
    head = _HEADER.pack(api_key, version, correlation_id, len(raw)) + raw
    flexible = (api_key, version) in _ADVERTISED and is_flexible(api_key, version)
    return head + (b"\x00" if flexible else b"")


_ADVERTISED = frozenset(advertised())


def body(api_key: int, version: int, rng: random.Random) -> bytes:
    cls = request_type(api_key, version)
    out = io.BytesIO()
    entity_writer(cls)(out, entity(cls, rng))
    return out.getvalue()


def generate(api_key: int, version: int, correlation_id: int, rng: random.Random, bounded: bool = False) -> bytes:
    """A valid request frame (size prefix included). `bounded`: SIZE_FIELDS stay small."""
    token = _BOUNDED.set(bounded)
    try:
        payload = header(api_key, version, correlation_id) + body(api_key, version, rng)
    finally:
        _BOUNDED.reset(token)
    return _SIZE.pack(len(payload)) + payload


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def mutate(frame: bytes, rng: random.Random, kind: str | None = None) -> tuple[str, bytes]:
    """(the mutation's name, the mutated frame). The header's first 8 bytes (api key,
    version, correlation id) are kept unless the mutation is about them, so answers can
    still be matched to requests."""
    payload = bytearray(frame[4:])
    kind = kind or rng.choice(MUTATIONS)
    start = 8  # after api key, version, correlation id
    if len(payload) <= start:
        kind = "extend"
    if kind == "flip":
        for _ in range(rng.randrange(1, 5)):
            i = rng.randrange(start, len(payload))
            payload[i] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        del payload[rng.randrange(start, len(payload)) :]
    elif kind == "extend":
        payload += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    elif kind == "length":
        if len(payload) - start >= 4:
            i = rng.randrange(start, len(payload) - 3)
            width = rng.choice((2, 4))
            edge = rng.choice((-1, -2, 0x7FFF, 0x7FFFFFFF, -0x80000000, 0xFFFF, 1000))
            fmt = ">h" if width == 2 else ">i"
            try:
                payload[i : i + width] = struct.pack(fmt, edge)
            except struct.error:
                payload[i : i + width] = struct.pack(
                    ">H" if width == 2 else ">I", edge & (0xFFFF if width == 2 else 0xFFFFFFFF)
                )
    elif kind == "varint":
        i = rng.randrange(start, len(payload) + 1)
        payload[i:i] = b"\xff" * rng.randrange(5, 12)
    elif kind == "tagged":
        # A flexible body ends with its tagged-field count (0): replace it by unknown
        # tagged fields, which a reader must skip.
        n = rng.randrange(1, 3)
        fields = b"".join(
            _uvarint(rng.randrange(100, 10_000)) + _uvarint(size) + bytes(size)
            for size in (rng.randrange(0, 8) for _ in range(n))
        )
        if payload and payload[-1] == 0:
            payload[-1:] = _uvarint(n) + fields
        else:
            payload += _uvarint(n) + fields
    elif kind == "version":
        key = struct.unpack_from(">h", payload, 0)[0]
        lo, hi = SUPPORTED_VERSIONS.get(key, (0, 0))
        struct.pack_into(">h", payload, 2, rng.choice((hi + 1, lo - 1, 0x7FFF, -1)))
    elif kind == "api_key":
        struct.pack_into(">h", payload, 0, rng.choice((-1, 1000, 0x7FFF, 27, 68)))
    elif kind == "zero_body":
        del payload[start:]
        payload += b"\x00" * rng.randrange(0, 16)
    return kind, _SIZE.pack(len(payload)) + bytes(payload)

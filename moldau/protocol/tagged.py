"""Unknown tagged fields: skip them, as the protocol says.

Flexible versions (KIP-482) end every structure with tagged fields:

    TaggedFields => count:uvarint { tag:uvarint size:uvarint data:bytes[size] }

A reader must skip the tags it does not know: that is how a newer client adds optional
fields without a new version. kio's decoder raises on an unknown tag instead, so
`decode_request` (framing.py) falls back to this module when that happens: it walks the
body by the request's schema (the kio entity's fields and their Kafka types), copies it,
and leaves out every tagged field the schema does not declare, at any depth. The result
decodes with kio. Only such requests pay for the walk.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from functools import cache
from typing import Any

# Fixed-size Kafka types and their sizes in bytes.
_FIXED = {
    "bool": 1,
    "int8": 1,
    "int16": 2,
    "uint16": 2,
    "int32": 4,
    "uint32": 4,
    "timedelta_i32": 4,
    "int64": 8,
    "timedelta_i64": 8,
    "datetime_i64": 8,
    "datetime_u64": 8,
    "float64": 8,
    "uuid": 16,
}
_SIZED = frozenset({"string", "bytes", "records"})  # compact: uvarint length + 1, 0 = null


class TaggedFieldError(ValueError):
    """The body does not follow its schema (it runs past its end, a count is bad)."""


def read_uvarint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise TaggedFieldError("varint runs past the frame")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
        if shift > 35:
            raise TaggedFieldError("varint longer than 5 bytes")


def write_uvarint(out: bytearray, value: int) -> None:
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


@dataclasses.dataclass(frozen=True)
class _Field:
    kafka_type: str | None  # None: an entity (nested structure)
    array: bool
    entity: type | None


@cache
def _layout(cls: type) -> tuple[tuple[_Field, ...], frozenset[int]]:
    """The wire order of a flexible entity's untagged fields, and its known tags."""
    hints = typing.get_type_hints(cls)
    fields: list[_Field] = []
    tags: set[int] = set()
    for f in dataclasses.fields(cls):
        if "tag" in f.metadata:
            tags.add(int(f.metadata["tag"]))
            continue
        tp = hints[f.name]
        if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        array = typing.get_origin(tp) is tuple
        element = typing.get_args(tp)[0] if array else tp
        if dataclasses.is_dataclass(element):
            fields.append(_Field(None, array, element))  # type: ignore[arg-type]
        else:
            fields.append(_Field(f.metadata.get("kafka_type"), array, None))
    return tuple(fields), frozenset(tags)


def _copy_value(field: _Field, buf: memoryview, pos: int, out: bytearray) -> int:
    if field.entity is not None:
        return _copy_entity(field.entity, buf, pos, out)
    kafka_type = field.kafka_type
    if kafka_type in _FIXED:
        end = pos + _FIXED[kafka_type]
    elif kafka_type in _SIZED:
        start = pos
        length, pos = read_uvarint(buf, pos)
        end = pos + max(length - 1, 0)
        out += buf[start:pos]
    else:
        raise TaggedFieldError(f"no layout for Kafka type {kafka_type!r}")
    if end > len(buf):
        raise TaggedFieldError("field runs past the frame")
    out += buf[pos:end]
    return end


def _copy_entity(cls: type, buf: memoryview, pos: int, out: bytearray) -> int:
    fields, known = _layout(cls)
    for field in fields:
        if field.array:
            start = pos
            count, pos = read_uvarint(buf, pos)
            out += buf[start:pos]
            if count - 1 > len(buf) - pos:
                raise TaggedFieldError("array count larger than the frame")
            for _ in range(count - 1):
                pos = _copy_value(_Field(field.kafka_type, False, field.entity), buf, pos, out)
        else:
            pos = _copy_value(field, buf, pos, out)
    count, pos = read_uvarint(buf, pos)
    kept = bytearray()
    n_kept = 0
    for _ in range(count):
        start = pos
        tag, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        if pos + size > len(buf):
            raise TaggedFieldError("tagged field runs past the frame")
        if tag in known:
            kept += buf[start : pos + size]
            n_kept += 1
        pos += size
    write_uvarint(out, n_kept)
    out += kept
    return pos


def strip_unknown_tagged_fields(cls: type, buf: bytes | memoryview, pos: int) -> bytes:
    """The body of a flexible `cls` at `buf[pos:]` without the tagged fields `cls` does
    not declare (at any depth); bytes after the body are kept as they are."""
    view = memoryview(buf)
    out = bytearray()
    end = _copy_entity(cls, view, pos, out)
    out += view[end:]
    return bytes(out)


__all__ = ["TaggedFieldError", "strip_unknown_tagged_fields"]


# --- array counts checked before kio decodes -------------------------------------------
#
# kio's native reader reserves memory for an array from the count on the wire before it
# reads a single element: a count of a few billion (a corrupt or hostile request) makes
# it ask for hundreds of GB and the process aborts (Rust's allocation failure handler),
# taking the broker down. Every element takes at least one byte, so a count larger than
# the bytes left is refused here first, by a walk of the body that copies nothing.

_LEGACY_SIZED = {"string": 2, "bytes": 4, "records": 4}  # length field size; -1 = null


class _Unknown(Exception):
    """A type the walk does not know: leave the request to kio."""


def check_array_counts(cls: type, flexible: bool, buf: bytes | memoryview, pos: int) -> None:
    """Raise TaggedFieldError if an array count in the body runs past the frame."""
    try:
        _check_entity(_plan(cls), flexible, buf, pos, len(buf))
    except (_Unknown, IndexError):
        return  # kio decides (and refuses what runs short of bytes itself)


# A compiled walk: per field (array, fixed size or -1, sized type's legacy width or 0,
# nested plan or None). The walk runs before every decode, the hot paths included: it
# stays a tight loop over tuples.
_Plan = tuple[tuple[bool, int, int, Any], ...]


@cache
def _plan(cls: type) -> _Plan:
    fields, _known = _layout(cls)
    out: list[tuple[bool, int, int, _Plan | None]] = []
    for field in fields:
        if field.entity is not None:
            out.append((field.array, -1, 0, _plan(field.entity)))
        elif field.kafka_type in _FIXED:
            out.append((field.array, _FIXED[field.kafka_type], 0, None))
        elif field.kafka_type in _SIZED:
            out.append((field.array, -1, _LEGACY_SIZED[field.kafka_type], None))
        else:
            raise _Unknown(field.kafka_type)
    return tuple(out)


def _check_entity(plan: _Plan, flexible: bool, buf: bytes | memoryview, pos: int, end: int) -> int:
    for array, fixed, width, nested in plan:
        if array:
            if flexible:
                count, pos = read_uvarint(buf, pos)
                count -= 1
            else:
                count = int.from_bytes(buf[pos:pos + 4], "big", signed=True)
                pos += 4
            if count > end - pos:
                raise TaggedFieldError(f"array of {count} elements in {end - pos} bytes")
            if fixed >= 0:
                pos += fixed * max(count, 0)
                continue
            for _ in range(count):
                pos = _check_one(fixed, width, nested, flexible, buf, pos, end)
        else:
            pos = _check_one(fixed, width, nested, flexible, buf, pos, end)
    if flexible:
        count, pos = read_uvarint(buf, pos)
        for _ in range(count):
            _tag, pos = read_uvarint(buf, pos)
            size, pos = read_uvarint(buf, pos)
            pos += size
    return pos


def _check_one(fixed: int, width: int, nested: _Plan | None, flexible: bool, buf: bytes | memoryview, pos: int,
               end: int) -> int:
    if nested is not None:
        return _check_entity(nested, flexible, buf, pos, end)
    if fixed >= 0:
        return pos + fixed
    if flexible:
        length, pos = read_uvarint(buf, pos)
        return pos + max(length - 1, 0)
    length = int.from_bytes(buf[pos:pos + width], "big", signed=True)
    return pos + width + max(length, 0)

"""Metadata responses put together from topics encoded once (Kafka's MetadataCache idea).

A Metadata response for 10,000 partitions took tens of milliseconds to build and encode
with kio on every request. Its topics change only when the controller says so, so the
server encodes each topic once per change and per API version (`topic_bytes`) and a
response is the envelope (throttle time, brokers, cluster id, controller id: small and
per listener) with the cached topics spliced in where its topics array goes.

Where the topics array sits in a response body, by version (Kafka's
MetadataResponse.json)::

    [throttle_time_ms (v3+)] brokers [cluster_id (v2+)] [controller_id (v1+)]
    topics [cluster_authorized_operations (v8-v10)] [tagged fields (v9+)]

`envelope_parts` encodes the response with no topics and cuts it around that empty
array: what is after it has a fixed size per version.
"""

from __future__ import annotations

import io
import struct
from functools import cache
from typing import Any

from kio.serial import entity_writer

from moldau.protocol.apis import ApiKey, is_flexible, response_type
from moldau.protocol.framing import response_header
from moldau.protocol.tagged import write_uvarint

FLEXIBLE_FROM = 9  # Metadata v9+ is a flexible version (compact arrays, tagged fields)


@cache
def _topic_writer(api_version: int) -> Any:
    module = __import__(response_type(ApiKey.METADATA, api_version).__module__, fromlist=["x"])
    return entity_writer(module.MetadataResponseTopic)


@cache
def _response_writer(api_version: int) -> Any:
    return entity_writer(response_type(ApiKey.METADATA, api_version))


def topic_bytes(api_version: int, topic: Any) -> bytes:
    """One MetadataResponseTopic entity of this version, encoded."""
    out = io.BytesIO()
    _topic_writer(api_version)(out, topic)
    return out.getvalue()


def _array_header(api_version: int, count: int) -> bytes:
    if api_version >= FLEXIBLE_FROM:
        out = bytearray()
        write_uvarint(out, count + 1)  # a compact array: the count + 1
        return bytes(out)
    return struct.pack(">i", count)


def _suffix_size(api_version: int) -> int:
    return (4 if 8 <= api_version <= 10 else 0) + (1 if api_version >= FLEXIBLE_FROM else 0)


def envelope_parts(api_version: int, envelope: Any) -> tuple[bytes, bytes]:
    """The body of ``envelope`` (a MetadataResponse of this version with no topics) cut
    into what goes before the topics array and what goes after it."""
    out = io.BytesIO()
    _response_writer(api_version)(out, envelope)
    body = out.getvalue()
    empty = _array_header(api_version, 0)
    end = len(body) - _suffix_size(api_version)
    start = end - len(empty)
    if body[start:end] != empty:
        raise ValueError(f"Metadata v{api_version}: no empty topics array where expected")
    return body[:start], body[end:]


def response_frame(api_version: int, correlation_id: int, envelope: Any, topics: list[bytes]) -> bytes:
    """A whole response frame: size, response header, the envelope around ``topics``."""
    assert is_flexible(ApiKey.METADATA, api_version) == (api_version >= FLEXIBLE_FROM)
    before, after = envelope_parts(api_version, envelope)
    parts = [response_header(ApiKey.METADATA, api_version, correlation_id), before,
             _array_header(api_version, len(topics)), *topics, after]
    size = sum(len(p) for p in parts)
    return b"".join([struct.pack(">i", size), *parts])


def with_throttle_time(frame: bytes, api_version: int, throttle_ms: int) -> bytes:
    """A `response_frame` with its throttle_time_ms (v3+, the body's first field) set: a
    client over its request quota is told in a response that was encoded whole before."""
    if api_version < 3 or throttle_ms <= 0:
        return frame
    at = 4 + len(response_header(ApiKey.METADATA, api_version, 0))
    return frame[:at] + struct.pack(">i", throttle_ms) + frame[at + 4:]

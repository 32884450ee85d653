"""Framing and headers, with no sockets."""
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moldau.protocol.apis import ApiKey, is_flexible
from moldau.protocol.framing import (
    FrameDecoder,
    FrameTooLargeError,
    MalformedRequestError,
    body_offset,
    decode_request,
    parse_request_header,
)


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


@given(st.lists(st.binary(max_size=300), max_size=10), st.integers(1, 50))
def test_frames_survive_any_chunking(payloads: list[bytes], chunk: int) -> None:
    stream = b"".join(frame(p) for p in payloads)
    dec = FrameDecoder(1000)
    out: list[bytes] = []
    for i in range(0, len(stream), chunk):
        out += dec.feed(stream[i : i + chunk])
    assert out == payloads
    assert dec.buffered == 0


def test_oversized_and_negative_sizes_are_refused_before_allocation() -> None:
    with pytest.raises(FrameTooLargeError):
        FrameDecoder(100).feed(struct.pack(">i", 101))
    with pytest.raises(FrameTooLargeError):
        FrameDecoder(100).feed(struct.pack(">i", -5))


def test_header_v1_and_v2() -> None:
    v1 = struct.pack(">hhih", 3, 1, 77, 3) + b"cli"
    header, pos = parse_request_header(v1)
    assert header[:4] == (3, 1, 77, "cli") and pos == len(v1)
    assert not is_flexible(ApiKey.METADATA, 1)
    v2 = struct.pack(">hhih", 3, 12, 78, -1) + b"\x01\x05\x02ab"  # one tagged field
    header, pos = parse_request_header(v2)
    assert header.client_id is None
    assert body_offset(header, pos, v2) == len(v2)


@pytest.mark.parametrize("data", [b"\x00\x03", struct.pack(">hhih", 3, 1, 1, 50) + b"x",
                                  struct.pack(">hhih", 3, 1, 1, -7)])
def test_malformed_headers(data: bytes) -> None:
    with pytest.raises(MalformedRequestError):
        parse_request_header(data)


def test_truncated_body_is_malformed() -> None:
    body = struct.pack(">i", 5)  # Metadata v1: array of 5 topics, none present
    with pytest.raises(MalformedRequestError):
        decode_request(ApiKey.METADATA, 1, body, 0)

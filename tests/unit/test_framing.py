"""Framing and headers, with no sockets."""
import datetime
import io
import struct
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kio.serial import entity_writer

from moldau.protocol.apis import ApiKey, is_flexible, response_type
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import (
    FrameDecoder,
    FrameTooLargeError,
    MalformedRequestError,
    body_offset,
    build,
    decode_request,
    encode_response,
    parse_request_header,
    response_header,
)
from moldau.server.handlers._common import response_types


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


@pytest.mark.parametrize("version", [4, 11, 12, 13, 16])
def test_a_fetch_response_frame_is_kios_encoding_with_its_size(version: int) -> None:
    """encode_response joins what kio writes once (a 4 MB flexible Fetch response took
    3-5 ms into a BytesIO): the frame is kio's bytes, size-prefixed, all the same."""
    t = response_types(ApiKey.FETCH, version)
    records = bytes(range(256)) * 4096
    partitions = tuple(
        build(t.PartitionData, partition_index=p, error_code=ErrorCode.none, high_watermark=10,
              last_stable_offset=10, log_start_offset=0, aborted_transactions=None, preferred_read_replica=-1,
              records=records if p == 0 else None)
        for p in range(2))
    response = build(t.FetchResponse, throttle_time=datetime.timedelta(0), error_code=ErrorCode.none, session_id=3,
                     responses=(build(t.FetchableTopicResponse, topic="t", topic_id=uuid.UUID(int=7),
                                      partitions=partitions),))
    expected = io.BytesIO()
    expected.write(response_header(ApiKey.FETCH, version, 9))
    entity_writer(response_type(ApiKey.FETCH, version))(expected, response)
    body = expected.getvalue()
    assert encode_response(ApiKey.FETCH, version, 9, response) == struct.pack(">i", len(body)) + body

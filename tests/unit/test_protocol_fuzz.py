"""Decoder fuzz target (the unit ring): requests generated from the schemas of every API
and version Moldau advertises decode; mutated ones either decode or raise
MalformedRequestError (which the server turns into a closed connection), nothing else."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from moldau.chaos import fuzz
from moldau.protocol.framing import (
    FrameDecoder,
    FrameTooLargeError,
    MalformedRequestError,
    body_offset,
    decode_request,
    parse_request_header,
)

TARGETS = fuzz.advertised()


def decode(frame: bytes) -> object:
    payload = frame[4:]
    header, pos = parse_request_header(payload)
    return decode_request(header.api_key, header.api_version, payload, body_offset(header, pos, payload))


def test_every_advertised_version_is_generated_and_decodes() -> None:
    rng = random.Random(0)
    for api_key, version in TARGETS:
        for i in range(3):
            request = decode(fuzz.generate(api_key, version, i, rng))
            assert type(request).__name__.endswith("Request")


@settings(max_examples=400, deadline=None)
@given(target=st.sampled_from(TARGETS), seed=st.integers(0, 2**32), kind=st.sampled_from(fuzz.MUTATIONS))
def test_mutated_requests_decode_or_are_refused_cleanly(target: tuple[int, int], seed: int, kind: str) -> None:
    rng = random.Random(seed)
    api_key, version = target
    _kind, frame = fuzz.mutate(fuzz.generate(api_key, version, 7, rng), rng, kind)
    payload = frame[4:]
    try:
        header, pos = parse_request_header(payload)
    except MalformedRequestError:
        return
    if (header.api_key, header.api_version) not in set(TARGETS):
        return  # the dispatcher refuses unknown APIs and versions before decoding
    try:
        decode_request(header.api_key, header.api_version, payload, body_offset(header, pos, payload))
    except MalformedRequestError:
        pass


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=64), cuts=st.lists(st.integers(0, 64), max_size=5))
def test_the_frame_decoder_takes_any_bytes_in_any_chunks(data: bytes, cuts: list[int]) -> None:
    decoder = FrameDecoder(1024)
    points = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    try:
        for a, b in zip(points, points[1:], strict=False):
            for frame in decoder.feed(data[a:b]):
                assert len(frame) <= 1024
    except FrameTooLargeError:
        pass

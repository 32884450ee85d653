"""Unknown tagged fields are skipped, at the top of a body and inside nested structures
(KIP-482), instead of failing the request (found by the protocol fuzzer: kio raises)."""

from __future__ import annotations

import dataclasses
import io
import random
import struct

import pytest
from kio.serial import entity_writer

from moldau.chaos import fuzz
from moldau.protocol.apis import is_flexible, request_type
from moldau.protocol.framing import MalformedRequestError, decode_request
from moldau.protocol.tagged import strip_unknown_tagged_fields


def metadata_v12_body(topic_tags: bytes, top_tags: bytes) -> bytes:
    topic = bytes(16) + b"\x07fuzz-0" + topic_tags  # topic_id (zero), name, tagged fields
    return b"\x02" + topic + b"\x01\x00" + top_tags  # 1 topic, allow auto creation, no auth ops


def test_unknown_tags_inside_a_nested_structure_and_at_the_top_are_skipped() -> None:
    plain = decode_request(3, 12, metadata_v12_body(b"\x00", b"\x00"), 0)
    tagged = decode_request(3, 12, metadata_v12_body(b"\x01\x63\x02ab", b"\x02\xe8\x07\x00\x09\x01z"), 0)
    assert tagged == plain
    assert plain.topics[0].name == "fuzz-0"


def test_known_tags_are_kept() -> None:
    # Fetch v12's cluster_id is tagged field 0 of the request.
    cls = request_type(1, 12)
    out = io.BytesIO()
    entity_writer(cls)(out, dataclasses.replace(fuzz.entity(cls, random.Random(4)), cluster_id=None))
    body = out.getvalue()
    assert body[-1] == 0
    with_cluster = body[:-1] + b"\x02\x00\x03\x03ab" + b"\x05\x01x"  # tag 0 (cluster_id "ab"), tag 5 unknown
    stripped = strip_unknown_tagged_fields(cls, with_cluster, 0)
    assert stripped == body[:-1] + b"\x01\x00\x03\x03ab"
    assert decode_request(1, 12, with_cluster, 0).cluster_id == "ab"


@pytest.mark.parametrize("target", [t for t in fuzz.advertised() if is_flexible(*t)])
def test_every_flexible_request_decodes_the_same_with_unknown_top_level_tags(target: tuple[int, int]) -> None:
    rng = random.Random(target[0] * 100 + target[1])
    for i in range(3):
        frame = fuzz.generate(*target, i, rng)
        _kind, mutated = fuzz.mutate(frame, rng, "tagged")
        header_size = 4 + 8 + 2 + 4 + 1  # size, api key/version/correlation, client id "fuzz", header tags
        assert decode_request(*target, mutated, header_size) == decode_request(*target, frame, header_size)


def test_a_tagged_field_running_past_the_frame_is_malformed() -> None:
    with pytest.raises(MalformedRequestError):
        decode_request(3, 12, metadata_v12_body(b"\x00", b"\x01\x63\x7f" + struct.pack(">h", 1)), 0)


def test_an_array_count_past_the_frame_is_refused_before_kio_reserves_memory_for_it() -> None:
    """Found by the fuzzer (seed 1, request 1003): AlterPartitionReassignments v1 with a
    compact array count of 33,017,561,087 in 18 bytes. kio's native reader reserved
    264 GB for it and the broker process aborted; now it is a malformed request."""
    import pytest

    from moldau.protocol.framing import MalformedRequestError, body_offset, decode_request, parse_request_header

    frame = bytes.fromhex("0000002b002d0001000003eb000466757a7a000000000001ffffffff7a7a2d32"
                          "030000000101000000000301000000")
    payload = frame[4:]
    head, pos = parse_request_header(payload)
    with pytest.raises(MalformedRequestError, match="array of 33017561086 elements"):
        decode_request(head.api_key, head.api_version, payload, body_offset(head, pos, payload))

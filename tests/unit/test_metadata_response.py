"""Metadata responses spliced from cached topic bytes are byte for byte what kio encodes
whole, in every version; and the broker's metadata cache merges UpdateMetadata as Kafka's
does (only what changed, leader -2 for a deleted topic, a new controller's first request
replacing everything) and re-encodes a topic only when it changed."""
from __future__ import annotations

import uuid
from typing import Any

import pytest

from moldau.controller.embedded import PartitionState, TopicState
from moldau.protocol import interbroker as ib
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import build, encode_response
from moldau.protocol.metadata_response import response_frame, topic_bytes, with_throttle_time
from moldau.server.handlers._common import NO_THROTTLE, response_types
from moldau.server.handlers.metadata import _error_topic, _topic
from moldau.server.metadata_cache import MetadataCache


@pytest.mark.parametrize("version", range(13))
@pytest.mark.parametrize("count", [0, 1, 200])  # 200: a compact array length of two varint bytes
def test_spliced_response_is_what_kio_encodes(version: int, count: int) -> None:
    t = response_types(ApiKey.METADATA, version)
    state = TopicState("orders", uuid.uuid4(), {p: PartitionState(1, 3, [1, 2], [1]) for p in range(3)}, {})
    topics = [_topic(t, state), _error_topic(t, "gone", None, ErrorCode.unknown_topic_or_partition)] * (count // 2)
    topics += [_topic(t, state)] * (count % 2)
    brokers = (build(t.MetadataResponseBroker, node_id=1, host="h", port=9092, rack="r"),)

    def response(with_topics: list[Any]) -> Any:
        return build(t.MetadataResponse, throttle_time=NO_THROTTLE, brokers=brokers, cluster_id="c",
                     controller_id=1, topics=tuple(with_topics), cluster_authorized_operations=-2147483648)

    whole = encode_response(ApiKey.METADATA, version, 42, response(topics))
    assert response_frame(version, 42, response([]), [topic_bytes(version, x) for x in topics]) == whole


@pytest.mark.parametrize("version", range(13))
def test_a_throttle_time_set_in_a_spliced_response_is_what_kio_encodes(version: int) -> None:
    import datetime

    t = response_types(ApiKey.METADATA, version)
    state = TopicState("orders", uuid.uuid4(), {0: PartitionState(1, 3, [1], [1])}, {})

    def response(throttle: datetime.timedelta, with_topics: list[Any]) -> Any:
        return build(t.MetadataResponse, throttle_time=throttle, brokers=(), cluster_id="c", controller_id=1,
                     topics=tuple(with_topics), cluster_authorized_operations=-2147483648)

    frame = response_frame(version, 7, response(NO_THROTTLE, []), [topic_bytes(version, _topic(t, state))])
    patched = with_throttle_time(frame, version, 1234)
    if version < 3:  # no throttle_time_ms before v3
        assert patched == frame
    else:
        assert patched == encode_response(ApiKey.METADATA, version, 7, response(
            datetime.timedelta(milliseconds=1234), [_topic(t, state)]))


def update(epoch: int, topics: dict[str, dict[int, int]], topic_ids: dict[str, uuid.UUID]) -> ib.UpdateMetadataRequest:
    """UpdateMetadata with these partitions (partition -> leader; -2: deleted)."""
    return ib.UpdateMetadataRequest(
        controller_id=1, controller_epoch=epoch, broker_epoch=-1,
        topic_states=tuple(ib.UpdateMetadataTopicState(
            topic_name=name, topic_id=topic_ids[name], partition_states=tuple(
                ib.UpdateMetadataPartitionState(partition_index=p, controller_epoch=epoch, leader=leader,
                                                leader_epoch=0, isr=(1,), zk_version=0, replicas=(1,),
                                                offline_replicas=())
                for p, leader in parts.items())) for name, parts in topics.items()),
        live_brokers=(ib.UpdateMetadataBroker(id=1, endpoints=(ib.UpdateMetadataEndpoint(
            port=9092, host="h", listener="PLAINTEXT", security_protocol=0),), rack=None),))


def test_the_cache_merges_deltas_deletes_and_replaces_on_a_new_controller() -> None:
    ids = {name: uuid.uuid4() for name in ("a", "b", "c")}
    cache = MetadataCache()
    assert cache.apply(update(1, {"a": {0: 1, 1: 1}, "b": {0: 1}}, ids)) == ["a", "b"]
    encodes: list[str] = []

    def encoded(name: str) -> bytes:
        return cache.encoded_topic(12, name, lambda: encodes.append(name) or name.encode())

    encoded("a"), encoded("b"), encoded("a")
    assert encodes == ["a", "b"]  # once per change
    assert cache.apply(update(1, {"a": {1: -1}, "c": {0: 1}}, ids)) == ["c"]  # a delta
    assert sorted(cache.topics) == ["a", "b", "c"]
    assert cache.topics["a"].partitions[0].leader == 1 and cache.topics["a"].partitions[1].leader == -1
    encoded("a"), encoded("b")
    assert encodes == ["a", "b", "a"]  # only the changed topic again
    cache.apply(update(1, {"b": {0: -2}}, ids))  # LeaderDuringDelete
    assert sorted(cache.topics) == ["a", "c"] and ids["b"] not in cache.topics_by_id
    assert cache.apply(update(2, {"c": {0: 1}}, ids)) == ["c"]  # a new controller: replaced
    assert sorted(cache.topics) == ["c"]

"""ListOffsets: earliest (-2), latest (-1), max timestamp (-3, KIP-734), or by timestamp."""
from __future__ import annotations

from typing import Any

from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.broker import Broker
from moldau.server.handlers._common import NO_THROTTLE, response_types
from moldau.server.handlers.fetch import epoch_error

LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3


def lookup(broker: Broker, topic: str, partition: int, timestamp: int,
           current_leader_epoch: int = -1) -> tuple[ErrorCode, int, int, int]:
    """(error, timestamp, offset, leader epoch) for one partition."""
    plog = broker.partition_log(topic, partition)
    if plog is None:
        return broker.partition_error(topic, partition), -1, -1, -1
    fenced = epoch_error(broker, topic, partition, current_leader_epoch)
    if fenced is not None:
        return fenced, -1, -1, -1
    epoch = broker.leader_epoch(topic, partition)
    if timestamp == LATEST:
        return ErrorCode.none, -1, broker.high_watermark(plog), epoch
    if timestamp == EARLIEST:
        return ErrorCode.none, -1, plog.log_start_offset, epoch
    if timestamp == MAX_TIMESTAMP:
        found = plog.max_timestamp_offset()
    elif timestamp < 0:
        return ErrorCode.invalid_request, -1, -1, -1
    else:
        found = plog.offset_for_timestamp(timestamp)
    if found is None:
        return ErrorCode.none, -1, -1, -1
    offset, ts = found
    return ErrorCode.none, ts, offset, epoch


async def handle(broker: Broker, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.LIST_OFFSETS, header.api_version)
    topics = []
    for topic in request.topics:
        parts = []
        for p in topic.partitions:
            code, ts, offset, epoch = lookup(broker, topic.name, p.partition_index, p.timestamp,
                                             getattr(p, "current_leader_epoch", -1))
            parts.append(build(t.ListOffsetsPartitionResponse, partition_index=p.partition_index,
                               error_code=code, timestamp=ts, offset=offset, leader_epoch=epoch))
        topics.append(build(t.ListOffsetsTopicResponse, name=topic.name, partitions=tuple(parts)))
    return build(t.ListOffsetsResponse, throttle_time=NO_THROTTLE, topics=tuple(topics))

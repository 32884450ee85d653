"""ListOffsets: earliest (-2), latest (-1), max timestamp (-3, KIP-734), or by timestamp.
With an authorizer, each topic needs Describe (TOPIC_AUTHORIZATION_FAILED)."""
from __future__ import annotations

from typing import Any

from moldau.authorizer.acl import AclOperation, ResourceType
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.replication.partition import PartitionError
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE, response_types

LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3
READ_COMMITTED = 1


def lookup(ctx: HandlerContext, topic: str, partition: int, timestamp: int,
           current_leader_epoch: int = -1, isolation_level: int = 0) -> tuple[ErrorCode, int, int, int]:
    """(error, timestamp, offset, leader epoch) for one partition. READ_COMMITTED
    (isolation level 1) answers latest with the last stable offset and finds nothing by
    timestamp at or past it, as Kafka does."""
    try:
        leader = ctx.replicas.leader_partition((topic, partition))
        leader.check_leader_epoch(current_leader_epoch)
    except PartitionError as exc:
        return exc.code, -1, -1, -1
    plog, epoch = leader.log, leader.leader_epoch
    read_committed = isolation_level == READ_COMMITTED
    if timestamp == LATEST:
        return ErrorCode.none, -1, plog.last_stable_offset if read_committed else leader.high_watermark, epoch
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
    if read_committed and offset >= plog.last_stable_offset:
        return ErrorCode.none, -1, -1, -1
    return ErrorCode.none, ts, offset, epoch


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.LIST_OFFSETS, header.api_version)
    topics = []
    for topic in request.topics:
        parts = []
        describable = ctx.acls.allowed(header, AclOperation.DESCRIBE, ResourceType.TOPIC, topic.name)
        for p in topic.partitions:
            if not describable:
                code, ts, offset, epoch = ErrorCode.topic_authorization_failed, -1, -1, -1
            else:
                code, ts, offset, epoch = lookup(ctx, topic.name, p.partition_index, p.timestamp,
                                                 getattr(p, "current_leader_epoch", -1),
                                                 getattr(request, "isolation_level", 0))
            parts.append(build(t.ListOffsetsPartitionResponse, partition_index=p.partition_index,
                               error_code=code, timestamp=ts, offset=offset, leader_epoch=epoch))
        topics.append(build(t.ListOffsetsTopicResponse, name=topic.name, partitions=tuple(parts)))
    return build(t.ListOffsetsResponse, throttle_time=NO_THROTTLE, topics=tuple(topics))

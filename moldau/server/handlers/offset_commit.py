"""OffsetCommit: store a group's consumed positions in __consumer_offsets."""
from __future__ import annotations

from typing import Any

from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE, response_types


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.OFFSET_COMMIT, header.api_version)
    generation = getattr(request, "generation_id_or_member_epoch", None)
    if generation is None:
        generation = request.generation_id
    retention = getattr(request, "retention_time", None)
    retention_ms = -1
    if retention is not None:
        retention_ms = int(retention.total_seconds() * 1000) if hasattr(retention, "total_seconds") else int(retention)
    codes: dict[tuple[str, int], ErrorCode] = {}
    valid: list[tuple[str, int, int, int, str | None]] = []
    for topic in request.topics:
        for p in topic.partitions:
            if not ctx.metadata.partition_exists(topic.name, p.partition_index):
                codes[(topic.name, p.partition_index)] = ErrorCode.unknown_topic_or_partition
            else:
                valid.append((topic.name, p.partition_index, p.committed_offset,
                              getattr(p, "committed_leader_epoch", -1), p.committed_metadata))
    if valid:
        codes.update(ctx.groups.commit_offsets(
            request.group_id, generation, request.member_id, getattr(request, "group_instance_id", None),
            valid, ctx.clock(), retention_ms))
    return build(
        t.OffsetCommitResponse,
        throttle_time=NO_THROTTLE,
        topics=tuple(
            build(t.OffsetCommitResponseTopic, name=topic.name, partitions=tuple(
                build(t.OffsetCommitResponsePartition, partition_index=p.partition_index,
                      error_code=codes.get((topic.name, p.partition_index), ErrorCode.none))
                for p in topic.partitions))
            for topic in request.topics
        ),
    )

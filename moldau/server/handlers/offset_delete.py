"""OffsetDelete: drop a group's committed offsets for partitions it no longer reads. With
an authorizer, Delete on the group (checked by the dispatcher) and Read on each topic
(TOPIC_AUTHORIZATION_FAILED)."""
from __future__ import annotations

from typing import Any

from moldau.authorizer.acl import AclOperation, ResourceType
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE, response_types


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.OFFSET_DELETE, header.api_version)
    codes: dict[tuple[str, int], ErrorCode] = {}
    wanted = []
    for topic in request.topics:
        readable = ctx.acls.allowed(header, AclOperation.READ, ResourceType.TOPIC, topic.name)
        for p in topic.partitions:
            if not readable:
                codes[(topic.name, p.partition_index)] = ErrorCode.topic_authorization_failed
            elif not ctx.metadata.partition_exists(topic.name, p.partition_index):
                codes[(topic.name, p.partition_index)] = ErrorCode.unknown_topic_or_partition
            else:
                wanted.append((topic.name, p.partition_index))
    code, found = ctx.groups.delete_offsets(request.group_id, wanted)
    codes.update(found)
    return build(t.OffsetDeleteResponse, error_code=code, throttle_time=NO_THROTTLE, topics=tuple(
        build(t.OffsetDeleteResponseTopic, name=topic.name, partitions=tuple(
            build(t.OffsetDeleteResponsePartition, partition_index=p.partition_index,
                  error_code=codes.get((topic.name, p.partition_index), ErrorCode.none))
            for p in topic.partitions))
        for topic in request.topics))

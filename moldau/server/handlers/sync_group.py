"""SyncGroup: the leader hands in the assignment; every member gets its own part, once
the group's metadata (written by the leader's SyncGroup) is acks=all safe in
__consumer_offsets, as Kafka answers."""
from __future__ import annotations

from typing import Any

from moldau.groups.coordinator import group_append_error
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE, response_types


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.SYNC_GROUP, header.api_version)
    result = await ctx.groups.sync_group(
        request.group_id,
        request.generation_id,
        request.member_id,
        getattr(request, "group_instance_id", None),
        getattr(request, "protocol_type", None),
        getattr(request, "protocol_name", None),
        [(a.member_id, bytes(a.assignment)) for a in request.assignments],
        ctx.clock(),
    )
    if result.error == ErrorCode.none:
        error = await ctx.coordinator_log.settled(ctx.groups.partition_for(request.group_id))
        if error != ErrorCode.none:
            return build(t.SyncGroupResponse, throttle_time=NO_THROTTLE, error_code=group_append_error(error),
                         protocol_type=None, protocol_name=None, assignment=b"")
    return build(t.SyncGroupResponse, throttle_time=NO_THROTTLE, error_code=result.error,
                 protocol_type=result.protocol_type, protocol_name=result.protocol_name,
                 assignment=result.assignment)

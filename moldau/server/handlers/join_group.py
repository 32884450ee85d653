"""JoinGroup: enter a group's rebalance; the answer waits for the join phase to end."""
from __future__ import annotations

from typing import Any

from moldau.protocol.apis import ApiKey
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE, response_types


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.JOIN_GROUP, header.api_version)
    session_ms = int(request.session_timeout.total_seconds() * 1000)
    rebalance = getattr(request, "rebalance_timeout", None)
    rebalance_ms = int(rebalance.total_seconds() * 1000) if rebalance is not None else session_ms
    result = await ctx.groups.join_group(
        request.group_id,
        request.member_id,
        getattr(request, "group_instance_id", None),
        request.protocol_type,
        [(p.name, bytes(p.metadata)) for p in request.protocols],
        session_ms,
        rebalance_ms,
        header.client_id or "",
        header.client_host,
        header.api_version >= 4,
        getattr(request, "reason", None),
        ctx.clock(),
        skip_assignment_supported=header.api_version >= 9,
    )
    return build(
        t.JoinGroupResponse,
        throttle_time=NO_THROTTLE,
        error_code=result.error,
        generation_id=result.generation_id,
        protocol_type=result.protocol_type,
        protocol_name=result.protocol_name if result.protocol_name is not None or header.api_version >= 7 else "",
        leader=result.leader,
        skip_assignment=result.skip_assignment,
        member_id=result.member_id,
        members=tuple(
            build(t.JoinGroupResponseMember, member_id=m.member_id, group_instance_id=m.group_instance_id,
                  metadata=m.metadata)
            for m in result.members
        ),
    )

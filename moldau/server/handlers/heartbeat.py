"""Heartbeat: keep a member's session alive; learn of a rebalance."""
from __future__ import annotations

from typing import Any

from moldau.protocol.apis import ApiKey
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE, response_types


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.HEARTBEAT, header.api_version)
    code = ctx.groups.heartbeat(request.group_id, request.generation_id, request.member_id,
                                   getattr(request, "group_instance_id", None), ctx.clock())
    return build(t.HeartbeatResponse, throttle_time=NO_THROTTLE, error_code=code)

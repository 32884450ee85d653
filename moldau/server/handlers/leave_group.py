"""LeaveGroup: one member (v0-v2) or a batch of members (v3+, KIP-345) leave."""
from __future__ import annotations

from typing import Any

from moldau.protocol.apis import ApiKey
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE, response_types


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.LEAVE_GROUP, header.api_version)
    if header.api_version < 3:
        members = [(request.member_id, None, None)]
    else:
        members = [(m.member_id, m.group_instance_id, getattr(m, "reason", None)) for m in request.members]
    code, results = ctx.groups.leave_group(request.group_id, members, ctx.clock())
    if header.api_version < 3 and results and code == 0:
        code = results[0][2]
    return build(
        t.LeaveGroupResponse,
        throttle_time=NO_THROTTLE,
        error_code=code,
        members=tuple(
            build(t.MemberResponse, member_id=m, group_instance_id=i, error_code=e) for m, i, e in results
        ) if header.api_version >= 3 else (),
    )

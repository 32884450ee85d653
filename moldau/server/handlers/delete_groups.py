"""DeleteGroups: remove empty groups and their committed offsets. With an authorizer, a
group the principal may not Delete is answered GROUP_AUTHORIZATION_FAILED."""
from __future__ import annotations

from typing import Any

from moldau.authorizer.acl import AclOperation, ResourceType
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE, response_types


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.DELETE_GROUPS, header.api_version)
    names = list(request.groups_names)
    denied = [g for g in names if not ctx.acls.allowed(header, AclOperation.DELETE, ResourceType.GROUP, g)]
    allowed = [g for g in names if g not in denied]
    now_ms = ctx.clock()
    for group_id in allowed:
        ctx.groups.fire_passed_deadlines(group_id, now_ms)
    results = ctx.groups.delete_groups(allowed)
    results.update({g: ErrorCode.group_authorization_failed for g in denied})
    return build(t.DeleteGroupsResponse, throttle_time=NO_THROTTLE, results=tuple(
        build(t.DeletableGroupResult, group_id=g, error_code=code) for g, code in results.items()))

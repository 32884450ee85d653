"""DeleteGroups: remove empty groups and their committed offsets."""
from __future__ import annotations

from typing import Any

from moldau.protocol.apis import ApiKey
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE, response_types


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.DELETE_GROUPS, header.api_version)
    results = ctx.groups.delete_groups(list(request.groups_names))
    return build(t.DeleteGroupsResponse, throttle_time=NO_THROTTLE, results=tuple(
        build(t.DeletableGroupResult, group_id=g, error_code=code) for g, code in results.items()))

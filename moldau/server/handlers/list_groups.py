"""ListGroups, with the state filter (v4+, KIP-518) and type filter (v5+). With an
authorizer, only the groups the principal may Describe are listed (all of them with
Describe on the cluster)."""
from __future__ import annotations

from typing import Any

from moldau.authorizer.acl import AclOperation, ResourceType
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE, response_types


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.LIST_GROUPS, header.api_version)
    states = set(getattr(request, "states_filter", ()) or ()) or None
    types = set(getattr(request, "types_filter", ()) or ()) or None
    if types is not None and "classic" in {x.lower() for x in types}:
        types = None  # every group here is a classic group
    elif types is not None:
        return build(t.ListGroupsResponse, throttle_time=NO_THROTTLE, error_code=ErrorCode.none, groups=())
    listed = ctx.groups.list_groups(states, None)
    if ctx.acls.enabled and not ctx.acls.cluster_allowed(header, AclOperation.DESCRIBE):
        listed = [g for g in listed if ctx.acls.allowed(header, AclOperation.DESCRIBE, ResourceType.GROUP, g[0])]
    return build(t.ListGroupsResponse, throttle_time=NO_THROTTLE, error_code=ErrorCode.none, groups=tuple(
        build(t.ListedGroup, group_id=g, protocol_type=pt, group_state=s, group_type="classic")
        for g, pt, s in listed))

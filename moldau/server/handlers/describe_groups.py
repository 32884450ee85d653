"""DescribeGroups: state, protocol and members (with metadata and assignment). With an
authorizer, a group the principal may not Describe is answered GROUP_AUTHORIZATION_FAILED."""
from __future__ import annotations

from typing import Any

from moldau.authorizer.acl import AclOperation, ResourceType
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE, response_types


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.DESCRIBE_GROUPS, header.api_version)
    groups = []
    for group_id in request.groups:
        if not ctx.acls.allowed(header, AclOperation.DESCRIBE, ResourceType.GROUP, group_id):
            groups.append(build(t.DescribedGroup, error_code=ErrorCode.group_authorization_failed,
                                group_id=group_id, group_state="", protocol_type="", protocol_data="",
                                members=(), authorized_operations=-2147483648))
            continue
        ctx.groups.fire_passed_deadlines(group_id, ctx.clock())
        d = ctx.groups.describe_group(group_id)
        groups.append(build(
            t.DescribedGroup, error_code=d.error, group_id=group_id, group_state=d.state,
            protocol_type=d.protocol_type or "", protocol_data=d.protocol_name or "",
            members=tuple(
                build(t.DescribedGroupMember, member_id=m.member_id, group_instance_id=m.group_instance_id,
                      client_id=m.client_id, client_host=m.client_host, member_metadata=m.metadata,
                      member_assignment=m.assignment)
                for m in d.members),
            authorized_operations=(ctx.acls.authorized_operations(header, ResourceType.GROUP, group_id)
                                   if getattr(request, "include_authorized_operations", False) else -2147483648)))
    return build(t.DescribeGroupsResponse, throttle_time=NO_THROTTLE, groups=tuple(groups))

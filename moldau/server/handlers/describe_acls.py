"""DescribeAcls: the ACLs a filter selects, grouped by resource pattern. Needs Describe on
the cluster; without an authorizer, SECURITY_DISABLED."""
from __future__ import annotations

from itertools import groupby
from typing import Any

from moldau.authorizer.acl import AclOperation, AclValidationError, validate_filter
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.handlers._acls import SECURITY_DISABLED_MESSAGE, binding_filter
from moldau.server.handlers._common import NO_THROTTLE, response_types


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.DESCRIBE_ACLS, header.api_version)

    def error(code: ErrorCode, message: str | None) -> Any:
        return build(t.DescribeAclsResponse, throttle_time=NO_THROTTLE, error_code=code, error_message=message,
                     resources=())

    if not ctx.acls.enabled:
        return error(ErrorCode.security_disabled, SECURITY_DISABLED_MESSAGE)
    if not ctx.acls.cluster_allowed(header, AclOperation.DESCRIBE):
        return error(ErrorCode.cluster_authorization_failed, None)
    acl_filter = binding_filter(request)
    try:
        validate_filter(acl_filter)
    except AclValidationError as refused:
        return error(refused.error_code, refused.message)
    resources = tuple(
        build(t.DescribeAclsResource, resource_type=pattern.resource_type, resource_name=pattern.name,
              pattern_type=pattern.pattern_type,
              acls=tuple(build(t.AclDescription, principal=b.entry.principal, host=b.entry.host,
                               operation=b.entry.operation, permission_type=b.entry.permission_type)
                         for b in bindings))
        for pattern, bindings in groupby(ctx.acls.describe(acl_filter), key=lambda b: b.pattern))
    return build(t.DescribeAclsResponse, throttle_time=NO_THROTTLE, error_code=ErrorCode.none, error_message=None,
                 resources=resources)

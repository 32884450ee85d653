"""DeleteAcls: for each filter, the ACLs it deleted. Needs Alter on the cluster (denied:
every filter fails with CLUSTER_AUTHORIZATION_FAILED); without an authorizer,
SECURITY_DISABLED. A filter with a code this broker does not know fails alone with
INVALID_REQUEST."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from moldau.authorizer.acl import AclBinding, AclBindingFilter, AclOperation, AclValidationError, validate_filter
from moldau.controller.coordination import CoordinationError
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.handlers._acls import SECURITY_DISABLED_MESSAGE, binding_filter
from moldau.server.handlers._common import NO_THROTTLE, response_types


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.DELETE_ACLS, header.api_version)

    def result(code: ErrorCode, message: str | None, deleted: Sequence[AclBinding] = ()) -> Any:
        return build(t.DeleteAclsFilterResult, error_code=code, error_message=message, matching_acls=tuple(
            build(t.DeleteAclsMatchingAcl, error_code=ErrorCode.none, error_message=None,
                  resource_type=b.pattern.resource_type, resource_name=b.pattern.name,
                  pattern_type=b.pattern.pattern_type, principal=b.entry.principal, host=b.entry.host,
                  operation=b.entry.operation, permission_type=b.entry.permission_type)
            for b in deleted))

    def answer(results: list[Any]) -> Any:
        return build(t.DeleteAclsResponse, throttle_time=NO_THROTTLE, filter_results=tuple(results))

    def everyone(code: ErrorCode, message: str | None) -> Any:
        return answer([result(code, message) for _ in request.filters])

    if not ctx.acls.enabled:
        return everyone(ErrorCode.security_disabled, SECURITY_DISABLED_MESSAGE)
    if not ctx.acls.cluster_allowed(header, AclOperation.ALTER):
        return everyone(ErrorCode.cluster_authorization_failed, None)
    refused: dict[int, AclValidationError] = {}
    filters: list[AclBindingFilter] = []
    for index, f in enumerate(request.filters):
        acl_filter = binding_filter(f)
        try:
            validate_filter(acl_filter)
            filters.append(acl_filter)
        except AclValidationError as exc:
            refused[index] = exc
    try:
        deleted = iter(await ctx.acls.delete(filters))
    except CoordinationError as exc:
        return everyone(ErrorCode.unknown_server_error, str(exc))
    return answer([
        result(refused[i].error_code, refused[i].message) if i in refused
        else result(ErrorCode.none, None, next(deleted))
        for i in range(len(request.filters))])

"""CreateAcls: one result per creation, in order. Needs Alter on the cluster (denied: every
creation fails with CLUSTER_AUTHORIZATION_FAILED); without an authorizer, SECURITY_DISABLED.
A creation Kafka would refuse (a bad name, type, operation or principal) fails alone with
INVALID_REQUEST; creating an ACL that exists succeeds."""
from __future__ import annotations

from typing import Any

from moldau.authorizer.acl import AclBinding, AclOperation
from moldau.authorizer.acl_updates import AclCreationResult
from moldau.controller.coordination import CoordinationError
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.handlers._acls import SECURITY_DISABLED_MESSAGE, binding
from moldau.server.handlers._common import NO_THROTTLE, response_types


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.CREATE_ACLS, header.api_version)

    def answer(results: list[AclCreationResult]) -> Any:
        return build(t.CreateAclsResponse, throttle_time=NO_THROTTLE, results=tuple(
            build(t.AclCreationResult, error_code=r.error_code, error_message=r.error_message) for r in results))

    def everyone(code: ErrorCode, message: str | None) -> Any:
        return answer([AclCreationResult(code, message)] * len(request.creations))

    if not ctx.acls.enabled:
        return everyone(ErrorCode.security_disabled, SECURITY_DISABLED_MESSAGE)
    if not ctx.acls.cluster_allowed(header, AclOperation.ALTER):
        return everyone(ErrorCode.cluster_authorization_failed, None)
    results: list[AclCreationResult | None] = []
    valid: list[AclBinding] = []
    for creation in request.creations:
        try:
            valid.append(binding(creation))
            results.append(None)
        except ValueError as exc:
            results.append(AclCreationResult(ErrorCode.invalid_request, str(exc)))
    try:
        created = iter(await ctx.acls.create(valid))
    except CoordinationError as exc:
        return everyone(ErrorCode.unknown_server_error, str(exc))
    return answer([r if r is not None else next(created) for r in results])

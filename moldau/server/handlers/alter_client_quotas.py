"""AlterClientQuotas (KIP-546): set or remove quotas of user, client-id and (user,
client-id) entities (a null name is the default). Each entry succeeds or fails alone:
INVALID_REQUEST for an unknown entity type or quota key, or a value not above zero;
CLUSTER_AUTHORIZATION_FAILED without AlterConfigs on the cluster."""
from __future__ import annotations

from typing import Any

from moldau.authorizer.acl import AclOperation
from moldau.controller.coordination import CoordinationError
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.quotas.client_quotas import QuotaEntity, QuotaEntityError
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE, response_types


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.ALTER_CLIENT_QUOTAS, header.api_version)
    allowed = ctx.acls.cluster_allowed(header, AclOperation.ALTER_CONFIGS)
    results = []
    for entry in request.entries:
        code, message = ErrorCode.none, None
        if not allowed:
            code = ErrorCode.cluster_authorization_failed
        else:
            try:
                components = {e.entity_type: e.entity_name for e in entry.entity}
                if len(components) != len(entry.entity):
                    raise QuotaEntityError("Duplicate entity type in the entity")
                entity = QuotaEntity.from_components(components)
                keys = [op.key for op in entry.ops]
                if len(set(keys)) != len(keys):
                    raise QuotaEntityError("Duplicate quota key in the entry")
                await ctx.quotas.alter(entity, {op.key: None if op.remove else float(op.value) for op in entry.ops},
                                       request.validate_only)
            except QuotaEntityError as exc:
                code, message = ErrorCode.invalid_request, str(exc)
            except CoordinationError as exc:
                code, message = ErrorCode.unknown_server_error, str(exc)
        results.append(build(t.EntryData, error_code=code, error_message=message, entity=tuple(
            build(t.EntityData, entity_type=e.entity_type, entity_name=e.entity_name) for e in entry.entity)))
    return build(t.AlterClientQuotasResponse, throttle_time=NO_THROTTLE, entries=tuple(results))

"""DescribeClientQuotas (KIP-546): the quotas of the entities a filter selects. Needs
DescribeConfigs on the cluster (checked by the dispatcher)."""
from __future__ import annotations

from typing import Any

from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.quotas.client_quotas import FilterComponent, QuotaEntityError
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE, response_types


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.DESCRIBE_CLIENT_QUOTAS, header.api_version)
    components = [FilterComponent(c.entity_type, c.match_type, c.match) for c in request.components]
    try:
        found = ctx.quotas.describe(components, request.strict)
    except QuotaEntityError as exc:
        return build(t.DescribeClientQuotasResponse, throttle_time=NO_THROTTLE, error_code=ErrorCode.invalid_request,
                     error_message=str(exc), entries=None)
    return build(t.DescribeClientQuotasResponse, throttle_time=NO_THROTTLE, error_code=ErrorCode.none,
                 error_message=None, entries=tuple(
                     build(t.EntryData,
                           entity=tuple(build(t.EntityData, entity_type=k, entity_name=v)
                                        for k, v in entity.components().items()),
                           values=tuple(build(t.ValueData, key=k, value=v) for k, v in sorted(quotas.items())))
                     for entity, quotas in found))

"""ApiVersions: the table of APIs and versions Moldau serves (moldau.protocol.apis)."""
from __future__ import annotations

from typing import Any

from moldau.protocol.apis import SUPPORTED_VERSIONS, ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build, encode_response
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE, response_types


def _response(version: int, error: ErrorCode) -> Any:
    t = response_types(ApiKey.API_VERSIONS, version)
    keys = tuple(
        build(t.ApiVersion, api_key=k, min_version=lo, max_version=hi)
        for k, (lo, hi) in sorted(SUPPORTED_VERSIONS.items())
    )
    return build(
        t.ApiVersionsResponse,
        error_code=error,
        api_keys=keys,
        throttle_time=NO_THROTTLE,
        supported_features=(),
        finalized_features_epoch=-1,
        finalized_features=(),
        zk_migration_ready=False,
    )


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    return _response(header.api_version, ErrorCode.none)


def unsupported_version_response(correlation_id: int) -> bytes:
    """Kafka answers an ApiVersions request it cannot read with v0 and this error."""
    return encode_response(
        ApiKey.API_VERSIONS, 0, correlation_id, _response(0, ErrorCode.unsupported_version)
    )

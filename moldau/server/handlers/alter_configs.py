"""AlterConfigs (v0-2), the older, non-incremental form: the configs given become the
resource's whole set of dynamic configs, and any not given go back to their defaults
(kafka-python's KafkaAdminClient.alter_configs uses it). Validated before anything is
stored; validate_only stores nothing."""
from __future__ import annotations

from typing import Any

from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.errors import TopicError
from moldau.server.handlers._alter_configs import alter_resources
from moldau.server.handlers._common import NO_THROTTLE, response_types


def _replacement(configs: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for c in configs:
        if c.value is None:
            raise TopicError(ErrorCode.invalid_config, f"Null value for {c.name}")
        out[c.name] = c.value
    return out


def _replace_with(res: Any, _default: Any) -> Any:
    new = _replacement(res.configs)  # TopicError for a null value, inside the resource's try
    return lambda _current, _kinds: new


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.ALTER_CONFIGS, header.api_version)
    responses = await alter_resources(ctx, header, t, request, _replace_with)
    return build(t.AlterConfigsResponse, throttle_time=NO_THROTTLE, responses=responses)

"""IncrementalAlterConfigs: SET, DELETE, APPEND, SUBTRACT on topic and broker configs.

Every change of a resource is validated before any is applied; validate_only applies
none.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.errors import TopicError
from moldau.server.handlers._alter_configs import alter_resources
from moldau.server.handlers._common import NO_THROTTLE, response_types

SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


def _apply(
    current: dict[str, str], ops: Any, kinds: dict[str, str], default: Callable[[str], str | None]
) -> dict[str, str]:
    """The config map after these operations, or TopicError. APPEND and SUBTRACT start
    from the current value, or from the default when the config is not set (as Kafka)."""
    out = dict(current)
    for c in ops:
        if c.config_operation == SET:
            if c.value is None:
                raise TopicError(ErrorCode.invalid_config, f"Null value for {c.name}")
            out[c.name] = c.value
        elif c.config_operation == DELETE:
            out.pop(c.name, None)
        elif c.config_operation in (APPEND, SUBTRACT):
            if kinds.get(c.name) != "list":
                raise TopicError(ErrorCode.invalid_config,
                                 f"Config value append/subtract is not allowed for config key {c.name}")
            base = out[c.name] if c.name in out else (default(c.name) or "")
            items = [v for v in base.split(",") if v]
            given = [v.strip() for v in (c.value or "").split(",") if v.strip()]
            if c.config_operation == APPEND:
                items += [v for v in given if v not in items]
            else:
                items = [v for v in items if v not in given]
            out[c.name] = ",".join(items)
        else:
            raise TopicError(ErrorCode.invalid_request, f"Unknown config operation {c.config_operation}")
    return out


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.INCREMENTAL_ALTER_CONFIGS, header.api_version)
    responses = await alter_resources(
        ctx, header, t, request,
        lambda res, default: lambda current, kinds: _apply(current, res.configs, kinds, default))
    return build(t.IncrementalAlterConfigsResponse, throttle_time=NO_THROTTLE, responses=responses)

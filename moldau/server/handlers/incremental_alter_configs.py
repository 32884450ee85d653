"""IncrementalAlterConfigs: SET, DELETE, APPEND, SUBTRACT on topic and broker configs.

Every change of a resource is validated before any is applied; validate_only applies
none.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moldau.log.config import TOPIC_CONFIGS
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.broker import Broker, TopicError
from moldau.server.handlers._alter_configs import BROKER, TOPIC, alter_broker, alter_topic, check_unique
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


def _topic_default(broker: Broker, name: str) -> str | None:
    from moldau.server.configs_view import broker_default_of

    return broker_default_of(broker, name) if name in TOPIC_CONFIGS else None


async def handle(broker: Broker, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.INCREMENTAL_ALTER_CONFIGS, header.api_version)
    results = []
    for res in request.resources:
        code, message = ErrorCode.none, None
        try:
            check_unique([c.name for c in res.configs])
            if res.resource_type == TOPIC:
                await alter_topic(broker, res.resource_name,
                                  lambda current, kinds, ops=res.configs: _apply(
                                      current, ops, kinds, lambda n: _topic_default(broker, n)),
                                  request.validate_only)
            elif res.resource_type == BROKER:
                await alter_broker(broker, res.resource_name,
                                   lambda current, kinds, ops=res.configs: _apply(
                                       current, ops, kinds, lambda n: broker.config.describe().get(n)),
                                   request.validate_only)
            else:
                raise TopicError(ErrorCode.invalid_request, f"Unsupported resource type {res.resource_type}")
        except TopicError as exc:
            code, message = exc.code, exc.message
        results.append(build(t.AlterConfigsResourceResponse, error_code=code, error_message=message,
                             resource_type=res.resource_type, resource_name=res.resource_name))
    return build(t.IncrementalAlterConfigsResponse, throttle_time=NO_THROTTLE, responses=tuple(results))

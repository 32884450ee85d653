"""AlterConfigs (v0-2), the older, non-incremental form: the configs given become the
resource's whole set of dynamic configs, and any not given go back to their defaults
(kafka-python's KafkaAdminClient.alter_configs uses it). Validated before anything is
stored; validate_only stores nothing."""
from __future__ import annotations

from typing import Any

from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.broker import Broker, TopicError
from moldau.server.handlers._alter_configs import BROKER, TOPIC, alter_broker, alter_topic, check_unique
from moldau.server.handlers._common import NO_THROTTLE, response_types


def _replacement(configs: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for c in configs:
        if c.value is None:
            raise TopicError(ErrorCode.invalid_config, f"Null value for {c.name}")
        out[c.name] = c.value
    return out


async def handle(broker: Broker, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.ALTER_CONFIGS, header.api_version)
    results = []
    for res in request.resources:
        code, message = ErrorCode.none, None
        try:
            check_unique([c.name for c in res.configs])
            new = _replacement(res.configs)
            if res.resource_type == TOPIC:
                await alter_topic(broker, res.resource_name, lambda _c, _k, new=new: new, request.validate_only)
            elif res.resource_type == BROKER:
                await alter_broker(broker, res.resource_name, lambda _c, _k, new=new: new, request.validate_only)
            else:
                raise TopicError(ErrorCode.invalid_request, f"Unsupported resource type {res.resource_type}")
        except TopicError as exc:
            code, message = exc.code, exc.message
        results.append(build(t.AlterConfigsResourceResponse, error_code=code, error_message=message,
                             resource_type=res.resource_type, resource_name=res.resource_name))
    return build(t.AlterConfigsResponse, throttle_time=NO_THROTTLE, responses=tuple(results))

"""DescribeConfigs for topics (2) and brokers (4), with synonyms and sources. With an
authorizer, DescribeConfigs on the topic or (brokers) on the cluster."""
from __future__ import annotations

from typing import Any

from moldau.authorizer.acl import AclOperation
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.configs_view import ConfigEntry, broker_entries, topic_entries
from moldau.server.context import HandlerContext
from moldau.server.errors import TopicError
from moldau.server.handlers._alter_configs import authorize
from moldau.server.handlers._common import NO_THROTTLE, response_types

TOPIC = 2
BROKER = 4


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.DESCRIBE_CONFIGS, header.api_version)
    results = []
    for res in request.resources:
        code, message = ErrorCode.none, None
        entries: list[ConfigEntry] = []
        try:
            authorize(ctx, header, AclOperation.DESCRIBE_CONFIGS, res.resource_type, res.resource_name)
        except TopicError as exc:
            code, message = exc.code, exc.message
        if code != ErrorCode.none:
            pass
        elif res.resource_type == TOPIC:
            state = ctx.metadata.topics.get(res.resource_name)
            if state is None:
                code = ErrorCode.unknown_topic_or_partition
                message = f"Topic {res.resource_name} does not exist."
            else:
                entries = topic_entries(ctx, state)
        elif res.resource_type == BROKER:
            if res.resource_name not in ("", str(ctx.broker_id)):
                code = ErrorCode.invalid_request
                message = f"Unexpected broker id {res.resource_name}, expected {ctx.broker_id}"
            else:
                entries = broker_entries(ctx)
        else:
            code = ErrorCode.invalid_request
            message = f"Unsupported resource type {res.resource_type}"
        if res.configuration_keys is not None:
            keys = set(res.configuration_keys)
            entries = [e for e in entries if e.name in keys]
        configs = tuple(
            build(
                t.DescribeConfigsResourceResult,
                name=e.name,
                value=e.value,
                read_only=e.read_only,
                config_source=e.source,
                is_sensitive=e.sensitive,
                synonyms=tuple(
                    build(t.DescribeConfigsSynonym, name=n, value=v, source=s)
                    for n, v, s in e.synonyms
                ) if request.include_synonyms else (),
                config_type=e.config_type,
                documentation=None,
            )
            for e in entries
        )
        results.append(build(t.DescribeConfigsResult, error_code=code, error_message=message,
                             resource_type=res.resource_type, resource_name=res.resource_name,
                             configs=configs))
    return build(t.DescribeConfigsResponse, throttle_time=NO_THROTTLE, results=tuple(results))

"""What AlterConfigs and IncrementalAlterConfigs share: validating a resource's new
config set and storing it (topic configs in the coordination service, dynamic broker
configs in its cluster-wide default entry). Each takes a function from the current
configs to the new ones; TopicError carries the Kafka error of a refusal. With an
authorizer, a topic needs AlterConfigs on it (TOPIC_AUTHORIZATION_FAILED), a broker
AlterConfigs on the cluster (CLUSTER_AUTHORIZATION_FAILED)."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from moldau.authorizer.acl import AclOperation, ResourceType
from moldau.log.config import TOPIC_CONFIGS
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.config import DYNAMIC_WITHOUT_EFFECT, PROPERTIES, ConfigError, parse_value
from moldau.server.context import HandlerContext
from moldau.server.errors import TopicError

TOPIC = 2
BROKER = 4

NewConfigs = Callable[[dict[str, str], dict[str, str]], dict[str, str]]  # (current, kinds) -> new
Default = Callable[[str], "str | None"]  # a config's default for the resource


def topic_default(ctx: HandlerContext, name: str) -> str | None:
    from moldau.server.configs_view import broker_default_of

    return broker_default_of(ctx, name) if name in TOPIC_CONFIGS else None


async def alter_resources(ctx: HandlerContext, header: RequestHeader, t: Any, request: Any,
                          new_configs: Callable[[Any, Default], NewConfigs]) -> tuple[Any, ...]:
    """Both APIs' loop: each resource validated and stored on its own, its error (or none)
    in the answer. ``new_configs(resource, default)`` says how a resource's configs change."""
    results = []
    for res in request.resources:
        code, message = ErrorCode.none, None
        try:
            authorize(ctx, header, AclOperation.ALTER_CONFIGS, res.resource_type, res.resource_name)
            check_unique([c.name for c in res.configs])
            if res.resource_type == TOPIC:
                await alter_topic(ctx, res.resource_name,
                                  new_configs(res, lambda n: topic_default(ctx, n)), request.validate_only)
            elif res.resource_type == BROKER:
                await alter_broker(ctx, res.resource_name,
                                   new_configs(res, lambda n: ctx.config.describe().get(n)), request.validate_only)
            else:
                raise TopicError(ErrorCode.invalid_request, f"Unsupported resource type {res.resource_type}")
        except TopicError as exc:
            code, message = exc.code, exc.message
        results.append(build(t.AlterConfigsResourceResponse, error_code=code, error_message=message,
                             resource_type=res.resource_type, resource_name=res.resource_name))
    return tuple(results)


def authorize(ctx: HandlerContext, header: RequestHeader, operation: AclOperation, config_resource_type: int,
              name: str) -> None:
    """TopicError unless the principal may do `operation` (AlterConfigs, DescribeConfigs)
    on a config resource: a topic itself, a broker through the cluster."""
    if not ctx.acls.enabled:
        return
    if config_resource_type == TOPIC:
        if not ctx.acls.allowed(header, operation, ResourceType.TOPIC, name):
            raise TopicError(ErrorCode.topic_authorization_failed, "Topic authorization failed.")
    elif not ctx.acls.cluster_allowed(header, operation):
        raise TopicError(ErrorCode.cluster_authorization_failed, "Cluster authorization failed.")


def check_unique(names: list[str]) -> None:
    if len(set(names)) != len(names):
        raise TopicError(ErrorCode.invalid_request, "Duplicate config keys in one resource.")


async def alter_topic(ctx: HandlerContext, name: str, new_configs: NewConfigs, validate_only: bool) -> None:
    state = ctx.metadata.topics.get(name)
    if state is None:
        raise TopicError(ErrorCode.unknown_topic_or_partition, f"Topic {name} does not exist.")
    new = new_configs(dict(state.configs), {n: s.kind for n, s in TOPIC_CONFIGS.items()})
    ctx.admin.validate_topic_configs(dict(new))
    if not validate_only:
        await ctx.admin.set_topic_configs(name, new)


async def alter_broker(ctx: HandlerContext, resource_name: str, new_configs: NewConfigs, validate_only: bool) -> None:
    if resource_name not in ("", str(ctx.broker_id)):
        raise TopicError(ErrorCode.invalid_request, f"Unexpected broker id {resource_name}")
    new = new_configs(dict(ctx.metadata.broker_configs), {n: p.kind for n, p in PROPERTIES.items()})
    for name, value in new.items():
        if name in DYNAMIC_WITHOUT_EFFECT:
            continue
        prop = PROPERTIES.get(name)
        if prop is None or not prop.dynamic:
            raise TopicError(ErrorCode.invalid_config,
                             f"Cannot update {name} dynamically" if prop else f"Unknown config {name}")
        try:
            parse_value(prop, value)
        except ConfigError as exc:
            raise TopicError(ErrorCode.invalid_config, str(exc)) from None
    if validate_only:
        return
    await asyncio.to_thread(ctx.metadata.save, new)  # stored first, then applied
    for name in set(ctx.metadata.broker_configs) - set(new):
        ctx.config.set_dynamic(name, None)
    for name, value in new.items():
        ctx.config.set_dynamic(name, value)
    ctx.metadata.broker_configs = new
    ctx.admin.refresh_log_configs()

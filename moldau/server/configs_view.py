"""Configs as DescribeConfigs shows them: value, source, type, read-only, synonyms."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from moldau.log.config import TOPIC_CONFIGS
from moldau.server.config import PROPERTIES

if TYPE_CHECKING:
    from moldau.controller.embedded import TopicState
    from moldau.server.context import HandlerContext

# Kafka's ConfigSource and ConfigType codes.
DYNAMIC_TOPIC_CONFIG = 1
DYNAMIC_BROKER_CONFIG = 2
DYNAMIC_DEFAULT_BROKER_CONFIG = 3
STATIC_BROKER_CONFIG = 4
DEFAULT_CONFIG = 5
CONFIG_TYPES = {"boolean": 1, "string": 2, "int": 3, "long": 5, "double": 6, "list": 7, "password": 9}


@dataclass(frozen=True)
class ConfigEntry:
    name: str
    value: str | None
    source: int
    read_only: bool
    config_type: int
    synonyms: tuple[tuple[str, str | None, int], ...] = ()
    sensitive: bool = False  # a password: its value is never shown (Kafka's is_sensitive)


def _broker_source(ctx: HandlerContext, name: str) -> int:
    if name in ctx.config.dynamic:
        return DYNAMIC_DEFAULT_BROKER_CONFIG
    if name in ctx.config.explicit:
        return STATIC_BROKER_CONFIG
    return DEFAULT_CONFIG


def broker_default_of(ctx: HandlerContext, topic_name: str) -> str | None:
    """The broker-level value a topic config falls back to, as a string."""
    spec = TOPIC_CONFIGS[topic_name]
    defaults = ctx.config.log_config()
    if spec.field is not None:
        value = getattr(defaults, spec.field)
        return str(value).lower() if isinstance(value, bool) else str(value)
    if spec.broker_name and spec.broker_name in PROPERTIES:
        value = ctx.config.values.get(spec.broker_name)
        if isinstance(value, bool):
            return "true" if value else "false"
        return None if value is None else str(value)
    return {
        "file.delete.delay.ms": "60000",
        "preallocate": "false",
        "message.timestamp.before.max.ms": "9223372036854775807",
        "message.timestamp.after.max.ms": "9223372036854775807",
    }.get(topic_name)


def topic_entries(ctx: HandlerContext, topic: TopicState) -> list[ConfigEntry]:
    out = []
    for name, spec in sorted(TOPIC_CONFIGS.items()):
        default = broker_default_of(ctx, name)
        broker_syn: tuple[tuple[str, str | None, int], ...] = ()
        if spec.broker_name:
            broker_syn = ((spec.broker_name, default, _broker_source(ctx, spec.broker_name)),)
        if name in topic.configs:
            value, source = topic.configs[name], DYNAMIC_TOPIC_CONFIG
            synonyms = ((name, value, DYNAMIC_TOPIC_CONFIG), *broker_syn)
        else:
            value = default
            source = (
                _broker_source(ctx, spec.broker_name)
                if spec.broker_name and spec.broker_name in PROPERTIES
                else DEFAULT_CONFIG
            )
            if source == DEFAULT_CONFIG:
                source = DEFAULT_CONFIG
            synonyms = broker_syn
        out.append(ConfigEntry(name, value, source, False, CONFIG_TYPES.get(spec.kind, 2), synonyms))
    return out


def broker_entries(ctx: HandlerContext) -> list[ConfigEntry]:
    out = []
    for name, value in sorted(ctx.config.describe().items()):
        prop = PROPERTIES[name]
        out.append(
            ConfigEntry(
                name,
                value,
                _broker_source(ctx, name),
                not prop.dynamic,
                CONFIG_TYPES.get(prop.kind, 2),
                ((name, value, _broker_source(ctx, name)),),
                sensitive=prop.kind == "password",
            )
        )
    return out

"""What AlterConfigs and IncrementalAlterConfigs share: validating a resource's new
config set and storing it (topic configs in the coordination service, dynamic broker
configs in its cluster-wide default entry). Each takes a function from the current
configs to the new ones; TopicError carries the Kafka error of a refusal."""
from __future__ import annotations

import asyncio
from collections.abc import Callable

from moldau.log.config import TOPIC_CONFIGS
from moldau.protocol.errors import ErrorCode
from moldau.server.broker import Broker, TopicError
from moldau.server.config import PROPERTIES, ConfigError, parse_value

TOPIC = 2
BROKER = 4

NewConfigs = Callable[[dict[str, str], dict[str, str]], dict[str, str]]  # (current, kinds) -> new


def check_unique(names: list[str]) -> None:
    if len(set(names)) != len(names):
        raise TopicError(ErrorCode.invalid_request, "Duplicate config keys in one resource.")


async def alter_topic(broker: Broker, name: str, new_configs: NewConfigs, validate_only: bool) -> None:
    state = broker.metadata.topics.get(name)
    if state is None:
        raise TopicError(ErrorCode.unknown_topic_or_partition, f"Topic {name} does not exist.")
    new = new_configs(dict(state.configs), {n: s.kind for n, s in TOPIC_CONFIGS.items()})
    broker.validate_topic_configs(dict(new))
    if not validate_only:
        await broker.set_topic_configs(name, new)


async def alter_broker(broker: Broker, resource_name: str, new_configs: NewConfigs, validate_only: bool) -> None:
    if resource_name not in ("", str(broker.broker_id)):
        raise TopicError(ErrorCode.invalid_request, f"Unexpected broker id {resource_name}")
    new = new_configs(dict(broker.metadata.broker_configs), {n: p.kind for n, p in PROPERTIES.items()})
    for name, value in new.items():
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
    await asyncio.to_thread(broker.metadata.save, new)  # stored first, then applied
    for name in set(broker.metadata.broker_configs) - set(new):
        broker.config.set_dynamic(name, None)
    for name, value in new.items():
        broker.config.set_dynamic(name, value)
    broker.metadata.broker_configs = new
    broker.refresh_log_configs()

"""The produce form: one record with an optional key, partition and headers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from moldau.console import inputs


@dataclass(frozen=True)
class ProduceRequest:
    topic: str
    partition: int | None  # None: the producer's partitioner (by key)
    key: bytes | None  # None: no key (an empty field)
    value: bytes | None  # None: a tombstone (null value)
    headers: tuple[tuple[str, bytes], ...]


def parse_produce(form: Mapping[str, str]) -> ProduceRequest:
    topic = inputs.topic_name(inputs.field(form, "topic"))
    partition = inputs.optional_integer(inputs.field(form, "partition"), "partition", 0)
    key_text = str(form.get("key", ""))
    value_text = str(form.get("value", ""))
    tombstone = inputs.field(form, "null_value") in ("on", "true", "1")
    headers = tuple((k, v.encode()) for k, v in inputs.key_values(str(form.get("headers", "")), "headers"))
    return ProduceRequest(
        topic,
        partition,
        key_text.encode() if key_text else None,
        None if tombstone else value_text.encode(),
        headers,
    )


@dataclass(frozen=True)
class Delivery:
    topic: str
    partition: int
    offset: int

"""The settings one partition's log obeys, by Kafka's topic-level names.

A topic config (``retention.ms``) overrides the broker default (``log.retention.ms``);
the server resolves both into one LogConfig per log.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

LONG_MAX = 9223372036854775807


@dataclass(frozen=True, slots=True)
class LogConfig:
    segment_bytes: int = 1073741824  # segment.bytes / log.segment.bytes
    segment_ms: int = 604800000  # segment.ms / log.roll.ms
    segment_index_bytes: int = 10485760  # segment.index.bytes / log.index.size.max.bytes
    retention_ms: int = 604800000  # retention.ms / log.retention.ms; -1 = forever
    retention_bytes: int = -1  # retention.bytes / log.retention.bytes; -1 = no limit
    index_interval_bytes: int = 4096  # index.interval.bytes / log.index.interval.bytes
    flush_messages: int = LONG_MAX  # flush.messages / log.flush.interval.messages
    flush_ms: int = LONG_MAX  # flush.ms / log.flush.interval.ms
    max_message_bytes: int = 1048588  # max.message.bytes / message.max.bytes
    message_timestamp_type: str = "CreateTime"  # or "LogAppendTime"
    cleanup_policy: str = "delete"  # cleanup.policy: delete, compact or both
    min_insync_replicas: int = 1  # min.insync.replicas
    # The log cleaner (compaction); topic name / broker property:
    delete_retention_ms: int = 86400000  # delete.retention.ms / log.cleaner.delete.retention.ms
    min_compaction_lag_ms: int = 0  # min.compaction.lag.ms / log.cleaner.min.compaction.lag.ms
    max_compaction_lag_ms: int = LONG_MAX  # max.compaction.lag.ms / log.cleaner.max.compaction.lag.ms
    min_cleanable_dirty_ratio: float = 0.5  # min.cleanable.dirty.ratio / log.cleaner.min.cleanable.ratio

    @property
    def compact(self) -> bool:
        """Whether the cleaner compacts this log (cleanup.policy holds "compact")."""
        return "compact" in _policies(self.cleanup_policy)

    @property
    def delete(self) -> bool:
        """Whether retention deletes old segments (cleanup.policy holds "delete")."""
        return "delete" in _policies(self.cleanup_policy)

    def with_overrides(self, overrides: Mapping[str, str]) -> LogConfig:
        """This config with topic-level settings (Kafka names) applied."""
        changes: dict[str, Any] = {}
        for name, value in overrides.items():
            spec = TOPIC_CONFIGS.get(name)
            if spec is None or spec.field is None:
                continue
            changes[spec.field] = spec.parse(value)
        return dataclasses.replace(self, **changes) if changes else self


def _policies(cleanup_policy: str) -> set[str]:
    return {p.strip() for p in cleanup_policy.split(",")}


@dataclass(frozen=True, slots=True)
class TopicConfigSpec:
    """One topic-level config: its Kafka name, the broker property it defaults to, and how
    its value is checked."""

    name: str
    broker_name: str | None
    field: str | None
    kind: str  # "long", "int", "string", "boolean", "list", "double"
    minimum: int | None = None
    choices: tuple[str, ...] | None = None
    maximum: float | None = None  # doubles only

    def parse(self, value: str) -> object:
        """The typed value, or ValueError with a message naming what is wrong."""
        if self.kind in ("long", "int"):
            try:
                n = int(value.strip())
            except ValueError:
                raise ValueError(f"{self.name}: {value!r} is not an integer") from None
            if self.minimum is not None and n < self.minimum:
                raise ValueError(f"{self.name}: {n} is below the minimum {self.minimum}")
            if self.kind == "int" and not -(2**31) <= n < 2**31:
                raise ValueError(f"{self.name}: {n} is out of range for an int")
            return n
        if self.kind == "boolean":
            v = value.strip().lower()
            if v not in ("true", "false"):
                raise ValueError(f"{self.name}: {value!r} is not true or false")
            return v == "true"
        if self.kind == "double":
            try:
                x = float(value)
            except ValueError:
                raise ValueError(f"{self.name}: {value!r} is not a number") from None
            if self.minimum is not None and x < self.minimum:
                raise ValueError(f"{self.name}: {x} is below the minimum {self.minimum}")
            if self.maximum is not None and x > self.maximum:
                raise ValueError(f"{self.name}: {x} is above the maximum {self.maximum}")
            return x
        v = value.strip()
        if self.choices is not None:
            parts = [p.strip() for p in v.split(",")] if self.kind == "list" else [v]
            for p in parts:
                if p not in self.choices:
                    raise ValueError(
                        f"{self.name}: {p!r} is not one of {', '.join(self.choices)}"
                    )
        return v


def _spec(name: str, broker: str | None, fld: str | None, kind: str, **kw: object) -> TopicConfigSpec:
    return TopicConfigSpec(name, broker, fld, kind, **kw)  # type: ignore[arg-type]


TOPIC_CONFIGS: dict[str, TopicConfigSpec] = {
    s.name: s
    for s in (
        _spec("segment.bytes", "log.segment.bytes", "segment_bytes", "int", minimum=14),
        _spec("segment.ms", "log.roll.ms", "segment_ms", "long", minimum=1),
        _spec("segment.index.bytes", "log.index.size.max.bytes", "segment_index_bytes", "int", minimum=4),
        _spec("retention.ms", "log.retention.ms", "retention_ms", "long", minimum=-1),
        _spec("retention.bytes", "log.retention.bytes", "retention_bytes", "long"),
        _spec("index.interval.bytes", "log.index.interval.bytes", "index_interval_bytes", "int", minimum=0),
        _spec("flush.messages", "log.flush.interval.messages", "flush_messages", "long", minimum=1),
        _spec("flush.ms", "log.flush.interval.ms", "flush_ms", "long", minimum=0),
        _spec("max.message.bytes", "message.max.bytes", "max_message_bytes", "int", minimum=0),
        _spec(
            "message.timestamp.type",
            "log.message.timestamp.type",
            "message_timestamp_type",
            "string",
            choices=("CreateTime", "LogAppendTime"),
        ),
        _spec(
            "cleanup.policy",
            "log.cleanup.policy",
            "cleanup_policy",
            "list",
            choices=("delete", "compact"),
        ),
        _spec("min.insync.replicas", "min.insync.replicas", "min_insync_replicas", "int", minimum=1),
        _spec("compression.type", "compression.type", None, "string",
              choices=("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")),
        _spec("unclean.leader.election.enable", "unclean.leader.election.enable", None, "boolean"),
        _spec("file.delete.delay.ms", "log.segment.delete.delay.ms", None, "long", minimum=0),
        _spec("preallocate", "log.preallocate", None, "boolean"),
        _spec("delete.retention.ms", "log.cleaner.delete.retention.ms", "delete_retention_ms", "long", minimum=0),
        _spec("min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms", "min_compaction_lag_ms", "long",
              minimum=0),
        _spec("max.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms", "max_compaction_lag_ms", "long",
              minimum=1),
        _spec("min.cleanable.dirty.ratio", "log.cleaner.min.cleanable.ratio", "min_cleanable_dirty_ratio", "double",
              minimum=0, maximum=1.0),
        _spec("message.timestamp.before.max.ms", "log.message.timestamp.before.max.ms", None, "long", minimum=0),
        _spec("message.timestamp.after.max.ms", "log.message.timestamp.after.max.ms", None, "long", minimum=0),
    )
}

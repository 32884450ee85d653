"""The settings one partition's log obeys, by Kafka's topic-level names.

A topic config (``retention.ms``) overrides the broker default (``log.retention.ms``);
the server resolves both into one LogConfig per log.

Deprecated topic configs that Kafka 3.9 still accepts (``message.format.version``,
``message.downconversion.enable``, ``message.timestamp.difference.max.ms``; all removed in
Kafka 4.0) are checked like any other and stored, and change nothing: a log whose topic sets
one carries it in ``LogConfig.deprecated_overrides``, and the LogManager says once per topic
and config that it is ignored.
"""

from __future__ import annotations

import dataclasses
import functools
import re
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
    # CreateTime records older / newer than now by more than these are refused (KIP-937).
    message_timestamp_before_max_ms: int = LONG_MAX  # message.timestamp.before.max.ms
    message_timestamp_after_max_ms: int = LONG_MAX  # message.timestamp.after.max.ms
    cleanup_policy: str = "delete"  # cleanup.policy: delete, compact or both
    min_insync_replicas: int = 1  # min.insync.replicas
    # The log cleaner (compaction); topic name / broker property:
    delete_retention_ms: int = 86400000  # delete.retention.ms / log.cleaner.delete.retention.ms
    min_compaction_lag_ms: int = 0  # min.compaction.lag.ms / log.cleaner.min.compaction.lag.ms
    max_compaction_lag_ms: int = LONG_MAX  # max.compaction.lag.ms / log.cleaner.max.compaction.lag.ms
    min_cleanable_dirty_ratio: float = 0.5  # min.cleanable.dirty.ratio / log.cleaner.min.cleanable.ratio
    # Replication quotas: the replicas whose replication the leader (follower) throttles,
    # "partition:broker,..." or "*" (see `replica_throttled`).
    leader_replication_throttled_replicas: str = ""  # leader.replication.throttled.replicas
    follower_replication_throttled_replicas: str = ""  # follower.replication.throttled.replicas
    # Deprecated and ignored (nothing reads them): here so that DescribeConfigs shows Kafka 3.9's defaults.
    message_format_version: str = "3.0-IV1"  # message.format.version
    message_downconversion_enable: bool = True  # message.downconversion.enable
    message_timestamp_difference_max_ms: int = LONG_MAX  # message.timestamp.difference.max.ms
    # The deprecated configs the topic sets, as (name, value): accepted, ignored, logged once.
    deprecated_overrides: tuple[tuple[str, str], ...] = ()

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
        deprecated = dict(self.deprecated_overrides)
        for name, value in overrides.items():
            spec = TOPIC_CONFIGS.get(name)
            if spec is None or spec.field is None:
                continue
            changes[spec.field] = spec.parse(value)
            if spec.deprecated:
                deprecated[name] = value
        if deprecated != dict(self.deprecated_overrides):
            changes["deprecated_overrides"] = tuple(sorted(deprecated.items()))
        return dataclasses.replace(self, **changes) if changes else self


def _policies(cleanup_policy: str) -> set[str]:
    return {p.strip() for p in cleanup_policy.split(",")}


@dataclass(frozen=True, slots=True)
class TopicConfigSpec:
    """One topic-level config: its Kafka name, the broker property it defaults to, and how
    its value is checked. A ``deprecated`` one is accepted and checked as Kafka 3.9 does,
    then ignored (see the module docstring)."""

    name: str
    broker_name: str | None
    field: str | None
    kind: str  # "long", "int", "string", "boolean", "list", "double"
    minimum: int | None = None
    choices: tuple[str, ...] | None = None
    maximum: float | None = None  # doubles only
    pattern: re.Pattern[str] | None = None  # strings only: the whole value must match
    deprecated: bool = False
    expected: str | None = None  # what a value that does not match the pattern should look like

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
        if self.pattern is not None and not self.pattern.fullmatch(v):
            raise ValueError(f"{self.name}: {value!r} is not a valid value"
                             + (f": {self.expected}" if self.expected else ""))
        if self.choices is not None:
            parts = [p.strip() for p in v.split(",")] if self.kind == "list" else [v]
            for p in parts:
                if p not in self.choices:
                    raise ValueError(
                        f"{self.name}: {p!r} is not one of {', '.join(self.choices)}"
                    )
        return v


_spec = TopicConfigSpec

# A Kafka version as MetadataVersion names them: "2.8", "0.10.2", "3.0-IV1".
_KAFKA_VERSION = re.compile(r"\d+\.\d+(\.\d+)?(-IV\d+)?")
# Kafka's ThrottledReplicaListValidator: "*", or [partition]:[broker] pairs separated by commas.
_THROTTLED_REPLICAS = re.compile(r"(\*|\d+:\d+(\s*,\s*\d+:\d+)*)?")
_THROTTLED_REPLICAS_EXPECTED = ("the literal '*' or a list of replicas "
                                "[partitionId]:[brokerId],[partitionId]:[brokerId],...")


@functools.lru_cache(maxsize=1024)
def _throttled_replicas(value: str) -> frozenset[tuple[int, int]] | None:
    """The (partition, broker) pairs of a throttled-replicas list; None for "*"."""
    value = value.strip()
    if value == "*":
        return None
    pairs = (item.split(":") for item in value.split(",") if item.strip())
    return frozenset((int(p), int(b)) for p, b in pairs)


def replica_throttled(throttled_replicas: str, partition: int, broker_id: int) -> bool:
    """Whether a `leader/follower.replication.throttled.replicas` value throttles the
    replica of ``partition`` on ``broker_id`` (Kafka's parseThrottledPartitions: the pairs
    naming this broker, or every replica for "*")."""
    if not throttled_replicas:
        return False
    pairs = _throttled_replicas(throttled_replicas)
    return pairs is None or (partition, broker_id) in pairs

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
        _spec("message.timestamp.before.max.ms", "log.message.timestamp.before.max.ms",
              "message_timestamp_before_max_ms", "long", minimum=0),
        _spec("message.timestamp.after.max.ms", "log.message.timestamp.after.max.ms",
              "message_timestamp_after_max_ms", "long", minimum=0),
        _spec("leader.replication.throttled.replicas", None, "leader_replication_throttled_replicas", "list",
              pattern=_THROTTLED_REPLICAS, expected=_THROTTLED_REPLICAS_EXPECTED),
        _spec("follower.replication.throttled.replicas", None, "follower_replication_throttled_replicas", "list",
              pattern=_THROTTLED_REPLICAS, expected=_THROTTLED_REPLICAS_EXPECTED),
        # Deprecated in Kafka 3.x, removed in 4.0; 3.9 accepts and ignores them.
        _spec("message.format.version", "log.message.format.version", "message_format_version", "string",
                        pattern=_KAFKA_VERSION, deprecated=True),
        _spec("message.downconversion.enable", "log.message.downconversion.enable",
                        "message_downconversion_enable", "boolean", deprecated=True),
        _spec("message.timestamp.difference.max.ms", "log.message.timestamp.difference.max.ms",
                        "message_timestamp_difference_max_ms", "long", minimum=0, deprecated=True),
    )
}

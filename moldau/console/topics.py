"""The topics screens: the topic list, one topic's partitions and configs, and the
requests that change them (create, delete, add partitions, edit configs)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from moldau.console import inputs
from moldau.console.brokers import PartitionState
from moldau.console.errors import BadInput

MAX_PARTITIONS = 10_000


@dataclass(frozen=True)
class PartitionRow:
    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    log_start_offset: int | None
    high_watermark: int | None
    size_bytes: int | None

    @property
    def offline(self) -> bool:
        return self.leader < 0

    @property
    def under_replicated(self) -> bool:
        return len(self.isr) < len(self.replicas)

    @property
    def messages(self) -> int | None:
        """Offsets between the log start and the high watermark (compaction leaves gaps)."""
        if self.log_start_offset is None or self.high_watermark is None:
            return None
        return max(0, self.high_watermark - self.log_start_offset)


@dataclass(frozen=True)
class ReplicaSize:
    broker: int
    topic: str
    partition: int
    size_bytes: int


def partition_rows(
    states: Sequence[PartitionState],
    log_start: Mapping[int, int],
    high_watermark: Mapping[int, int],
    sizes: Sequence[ReplicaSize],
) -> list[PartitionRow]:
    """One row per partition. The size is the leader's replica's (DescribeLogDirs answers
    per broker), or the largest replica's when the leader's is unknown."""
    by_replica = {(s.partition, s.broker): s.size_bytes for s in sizes}
    rows = []
    for s in sorted(states, key=lambda s: s.partition):
        size = by_replica.get((s.partition, s.leader))
        if size is None:
            known = [v for (p, _), v in by_replica.items() if p == s.partition]
            size = max(known) if known else None
        rows.append(
            PartitionRow(
                s.partition,
                s.leader,
                s.replicas,
                s.isr,
                log_start.get(s.partition),
                high_watermark.get(s.partition),
                size,
            )
        )
    return rows


@dataclass(frozen=True)
class TopicSummary:
    name: str
    partitions: int
    replication_factor: int
    under_replicated: int
    offline: int
    internal: bool
    error: str | None = None


def topic_summaries(topics: Mapping[str, Sequence[PartitionState]], errors: Mapping[str, str]) -> list[TopicSummary]:
    rows = []
    for name in sorted(set(topics) | set(errors)):
        parts = topics.get(name, ())
        rows.append(
            TopicSummary(
                name,
                len(parts),
                max((len(p.replicas) for p in parts), default=0),
                sum(1 for p in parts if p.under_replicated),
                sum(1 for p in parts if p.offline),
                name.startswith("__"),
                errors.get(name),
            )
        )
    return rows


# ----------------------------------------------------------------------- requests


@dataclass(frozen=True)
class NewTopicRequest:
    name: str
    partitions: int
    replication_factor: int  # -1: the broker's default.replication.factor
    configs: dict[str, str] = field(default_factory=dict)


def parse_new_topic(form: Mapping[str, str]) -> NewTopicRequest:
    name = inputs.topic_name(inputs.field(form, "name"))
    partitions = inputs.integer(inputs.field(form, "partitions", "1") or "1", "partitions", 1, MAX_PARTITIONS)
    rf_text = inputs.field(form, "replication_factor")
    replication_factor = -1 if not rf_text else inputs.integer(rf_text, "replication factor", 1, 100)
    configs = dict(inputs.key_values(inputs.field(form, "configs"), "configs"))
    return NewTopicRequest(name, partitions, replication_factor, configs)


def parse_partition_count(form: Mapping[str, str], current: int) -> int:
    count = inputs.integer(inputs.field(form, "count"), "new partition count", 1, MAX_PARTITIONS)
    if count <= current:
        raise BadInput(f"new partition count: the topic has {current} partitions; partitions can only be added")
    return count


class ConfigOp(Enum):
    SET = "set"
    DELETE = "delete"  # back to the broker's default


@dataclass(frozen=True)
class ConfigChange:
    name: str
    op: ConfigOp
    value: str | None


def parse_config_change(form: Mapping[str, str]) -> ConfigChange:
    name = inputs.field(form, "name")
    if not name:
        raise BadInput("config name: required")
    if any(c.isspace() for c in name) or "=" in name:
        raise BadInput(f"config name: {name!r} is not a config name")
    try:
        op = ConfigOp(inputs.field(form, "op", "set") or "set")
    except ValueError:
        raise BadInput("config change: op must be 'set' or 'delete'") from None
    value = inputs.field(form, "value")
    if op is ConfigOp.SET and not value:
        raise BadInput(f"{name}: a value is required (use 'reset to default' to remove the topic's own value)")
    return ConfigChange(name, op, value if op is ConfigOp.SET else None)


@dataclass(frozen=True)
class ConfigRow:
    name: str
    value: str | None
    source: str  # Kafka's ConfigSource name: DYNAMIC_TOPIC_CONFIG, DEFAULT_CONFIG, ...
    is_default: bool
    read_only: bool
    sensitive: bool


def config_rows(entries: Sequence[ConfigRow]) -> list[ConfigRow]:
    """Topic overrides first, then the rest, each by name; sensitive values hidden."""
    rows = [
        ConfigRow(e.name, None if e.sensitive else e.value, e.source, e.is_default, e.read_only, e.sensitive)
        for e in entries
    ]
    return sorted(rows, key=lambda r: (r.source != "DYNAMIC_TOPIC_CONFIG", r.name))

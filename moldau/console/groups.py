"""The consumer groups screens: state, members and their assignment, lag per partition,
and the requests that change a group (reset offsets, delete)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from moldau.console import inputs
from moldau.console.errors import BadInput

TopicPartition = tuple[str, int]

# Kafka's kafka-consumer-groups tool resets only groups without members.
RESETTABLE_STATES = frozenset({"EMPTY", "DEAD", "UNKNOWN"})


@dataclass(frozen=True)
class Member:
    member_id: str
    client_id: str
    host: str
    group_instance_id: str | None
    assignment: tuple[TopicPartition, ...]


@dataclass(frozen=True)
class GroupDescription:
    group_id: str
    state: str  # Kafka's names, upper case as the AdminClient gives them: STABLE, EMPTY, ...
    protocol: str  # the assignor
    coordinator: int | None
    members: tuple[Member, ...]


@dataclass(frozen=True)
class GroupListing:
    group_id: str
    state: str


@dataclass(frozen=True)
class LagRow:
    topic: str
    partition: int
    committed: int | None  # None: no committed offset
    log_end: int | None  # the high watermark
    lag: int | None
    client_id: str | None  # the member the partition is assigned to


def lag_rows(
    committed: Mapping[TopicPartition, int],
    log_end: Mapping[TopicPartition, int],
    members: Sequence[Member],
) -> list[LagRow]:
    """Lag = high watermark - committed offset, as kafka-consumer-groups and kafka_exporter
    compute it, for every partition with a committed offset or an owner."""
    owner = {tp: m.client_id for m in members for tp in m.assignment}
    rows = []
    for tp in sorted(set(committed) | set(owner)):
        offset = committed.get(tp)
        end = log_end.get(tp)
        lag = max(0, end - offset) if offset is not None and end is not None else None
        rows.append(LagRow(tp[0], tp[1], offset, end, lag, owner.get(tp)))
    return rows


def total_lag(rows: Sequence[LagRow]) -> int:
    return sum(r.lag for r in rows if r.lag is not None)


class ResetStrategy(Enum):
    EARLIEST = "earliest"
    LATEST = "latest"
    TIMESTAMP = "timestamp"
    OFFSET = "offset"


@dataclass(frozen=True)
class ResetRequest:
    strategy: ResetStrategy
    topic: str | None  # None: every topic the group has offsets for
    offset: int | None = None
    timestamp_ms: int | None = None


def parse_reset(form: Mapping[str, str]) -> ResetRequest:
    try:
        strategy = ResetStrategy(inputs.field(form, "strategy"))
    except ValueError:
        raise BadInput("reset to: choose earliest, latest, timestamp or offset") from None
    topic_text = inputs.field(form, "topic")
    topic = inputs.topic_name(topic_text) if topic_text else None
    value = inputs.field(form, "value")
    if strategy is ResetStrategy.OFFSET:
        return ResetRequest(strategy, topic, offset=inputs.integer(value, "offset", 0))
    if strategy is ResetStrategy.TIMESTAMP:
        return ResetRequest(strategy, topic, timestamp_ms=inputs.timestamp_ms(value))
    return ResetRequest(strategy, topic)


def check_resettable(group: GroupDescription) -> None:
    if group.state.upper() not in RESETTABLE_STATES or group.members:
        raise BadInput(
            f"group {group.group_id} is {group.state.lower()} with {len(group.members)} member(s): "
            "offsets can only be reset while no consumer is in the group; stop its consumers first"
        )


def reset_partitions(request: ResetRequest, committed: Mapping[TopicPartition, int]) -> list[TopicPartition]:
    partitions = sorted(tp for tp in committed if request.topic is None or tp[0] == request.topic)
    if not partitions:
        where = f"topic {request.topic}" if request.topic else "any topic"
        raise BadInput(f"the group has no committed offsets for {where}")
    return partitions


def reset_targets(
    request: ResetRequest,
    partitions: Sequence[TopicPartition],
    log_start: Mapping[TopicPartition, int],
    log_end: Mapping[TopicPartition, int],
    by_timestamp: Mapping[TopicPartition, int] | None = None,
) -> dict[TopicPartition, int]:
    """The new committed offset of each partition. An offset out of the log is clamped to
    it, and a timestamp after the last record goes to the end, as kafka-consumer-groups does."""
    targets = {}
    for tp in partitions:
        first, end = log_start.get(tp, 0), log_end.get(tp, 0)
        if request.strategy is ResetStrategy.EARLIEST:
            target = first
        elif request.strategy is ResetStrategy.LATEST:
            target = end
        elif request.strategy is ResetStrategy.OFFSET:
            assert request.offset is not None
            target = min(max(first, request.offset), end)
        else:
            found = (by_timestamp or {}).get(tp, -1)
            target = end if found < 0 else found
        targets[tp] = target
    return targets

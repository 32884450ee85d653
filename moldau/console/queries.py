"""What each screen needs, gathered from the cluster in one blocking call per screen.

Each function takes the gateway, asks the cluster, and hands the answers to the screen
module's pure functions. The web layer runs one of these per request on a worker thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from moldau.console import brokers, groups, messages, replication, topics
from moldau.console.errors import ConsoleError
from moldau.console.gateway import KafkaGateway

# The groups list shows each group's total lag; past this many groups it would cost too
# many round trips for one page.
MAX_GROUPS_WITH_LAG = 50


@dataclass(frozen=True)
class BrokersPage:
    cluster_id: str | None
    controller_id: int | None
    rows: list[brokers.BrokerRow]


def brokers_page(gateway: KafkaGateway) -> BrokersPage:
    snapshot = gateway.snapshot()
    rows = brokers.broker_rows(snapshot.brokers, snapshot.controller_id, snapshot.all_partitions())
    return BrokersPage(snapshot.cluster_id, snapshot.controller_id, rows)


def topics_page(gateway: KafkaGateway) -> list[topics.TopicSummary]:
    snapshot = gateway.snapshot()
    return topics.topic_summaries(snapshot.partitions, snapshot.topic_errors)


@dataclass(frozen=True)
class PartitionsView:
    topic: str
    rows: list[topics.PartitionRow]
    size_error: str | None  # why sizes are missing (DescribeLogDirs failed)


def partitions_view(gateway: KafkaGateway, topic: str) -> PartitionsView:
    states = gateway.topic_partitions(topic)
    tps = [(topic, s.partition) for s in states]
    log_start = {p: o for (_, p), o in gateway.offsets(tps, "earliest").items()}
    high_watermark = {p: o for (_, p), o in gateway.offsets(tps, "latest").items()}
    size_error = None
    try:
        sizes = gateway.replica_sizes(topic)
    except ConsoleError as e:
        sizes, size_error = [], e.message
    return PartitionsView(topic, topics.partition_rows(states, log_start, high_watermark, sizes), size_error)


@dataclass(frozen=True)
class TopicPage:
    partitions: PartitionsView
    configs: list[topics.ConfigRow]


def topic_page(gateway: KafkaGateway, topic: str) -> TopicPage:
    view = partitions_view(gateway, topic)
    return TopicPage(view, topics.config_rows(gateway.topic_configs(topic)))


@dataclass(frozen=True)
class BrowseResult:
    query: messages.BrowseQuery
    partitions: int
    messages: list[messages.Message]
    scanned: int
    timed_out: bool


def browse(gateway: KafkaGateway, topic: str, params: Mapping[str, str]) -> BrowseResult:
    states = gateway.topic_partitions(topic)
    query = messages.parse_browse_query(params, len(states))
    wanted = [s.partition for s in states] if query.partition is None else [query.partition]
    tps = [(topic, p) for p in wanted]
    log_start = {p: o for (_, p), o in gateway.offsets(tps, "earliest").items()}
    high_watermark = {p: o for (_, p), o in gateway.offsets(tps, "latest").items()}
    by_time = None
    if query.timestamp_ms is not None:
        by_time = {p: o for (_, p), o in gateway.offsets(tps, query.timestamp_ms).items()}
    ranges = messages.read_ranges(query, wanted, log_start, high_watermark, by_time)

    def keep(m: messages.Message) -> bool:
        return messages.matches(m, query.search, query.search_in)

    result = gateway.read(topic, ranges, keep if query.search else None)
    return BrowseResult(query, len(states), messages.select(result.messages, query), result.scanned, result.timed_out)


@dataclass(frozen=True)
class GroupRow:
    listing: groups.GroupListing
    total_lag: int | None


def groups_page(gateway: KafkaGateway) -> list[GroupRow]:
    """Every group with its total lag. Committed offsets take one request per group, so
    only the first MAX_GROUPS_WITH_LAG get a lag; the high watermarks take one request."""
    listings = gateway.list_groups()
    committed = {g.group_id: gateway.committed_offsets(g.group_id) for g in listings[:MAX_GROUPS_WITH_LAG]}
    log_end = gateway.offsets(sorted({tp for offsets in committed.values() for tp in offsets}), "latest")
    return [
        GroupRow(
            g,
            groups.total_lag(groups.lag_rows(committed[g.group_id], log_end, ())) if g.group_id in committed else None,
        )
        for g in listings
    ]


@dataclass(frozen=True)
class GroupPage:
    group: groups.GroupDescription
    lag: list[groups.LagRow]

    @property
    def total_lag(self) -> int:
        return groups.total_lag(self.lag)


def group_page(gateway: KafkaGateway, group_id: str) -> GroupPage:
    group = gateway.describe_group(group_id)
    committed = gateway.committed_offsets(group_id)
    assigned = {tp for m in group.members for tp in m.assignment}
    log_end = gateway.offsets(sorted(set(committed) | assigned), "latest")
    return GroupPage(group, groups.lag_rows(committed, log_end, group.members))


def reset_offsets(
    gateway: KafkaGateway, group_id: str, request: groups.ResetRequest
) -> dict[groups.TopicPartition, int]:
    groups.check_resettable(gateway.describe_group(group_id))
    partitions = groups.reset_partitions(request, gateway.committed_offsets(group_id))
    log_start = gateway.offsets(partitions, "earliest")
    log_end = gateway.offsets(partitions, "latest")
    by_time = gateway.offsets(partitions, request.timestamp_ms) if request.timestamp_ms is not None else None
    targets = groups.reset_targets(request, partitions, log_start, log_end, by_time)
    gateway.alter_group_offsets(group_id, targets)
    return targets


def replication_page(gateway: KafkaGateway) -> replication.Health:
    snapshot = gateway.snapshot()
    return replication.replication_health(snapshot.all_partitions(), {b.id for b in snapshot.brokers})

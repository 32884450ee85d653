"""The group coordinator's settings, with the defaults of Kafka's broker properties."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GroupConfig:
    """Coordinator settings; each field names the Kafka property it stands for.

    ``max_member_metadata_bytes`` has no Kafka property: Kafka accepts any JoinGroup
    metadata / SyncGroup assignment that fits a request, and only fails later when the
    group record does not fit ``__consumer_offsets`` (the whole group then loops on
    UNKNOWN_SERVER_ERROR). Moldau refuses the one oversized member instead, with
    INVALID_REQUEST, so that the rest of the group keeps working.
    """

    min_session_timeout_ms: int = 6000  # group.min.session.timeout.ms
    max_session_timeout_ms: int = 1800000  # group.max.session.timeout.ms
    initial_rebalance_delay_ms: int = 3000  # group.initial.rebalance.delay.ms
    max_size: int = 2**31 - 1  # group.max.size
    offsets_retention_ms: int = 7 * 24 * 3600 * 1000  # offsets.retention.minutes
    offsets_topic_partitions: int = 50  # offsets.topic.num.partitions
    max_metadata_bytes: int = 4096  # offset.metadata.max.bytes
    max_member_metadata_bytes: int = 1048576  # see the class docstring
    offsets_retention_check_interval_ms: int = 600000  # offsets.retention.check.interval.ms
    new_member_join_timeout_ms: int = 300000  # group.classic.new.member.join.timeout.ms (Kafka's 5 min)

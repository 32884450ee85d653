"""Topic metadata as the request handlers read it (topics, partitions with leader, leader
epoch, replicas and ISR, topic configs), and Kafka's rules for topic names.

A broker's `MetadataCache` (server/metadata_cache.py) holds these, fed by the
controller's UpdateMetadata and LeaderAndIsr requests.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

MAX_TOPIC_NAME = 249
_LEGAL_TOPIC = re.compile(r"^[a-zA-Z0-9._-]+$")


def topic_name_error(name: str | None) -> str | None:
    """Why a topic name is illegal (Kafka's rules), or None when it is fine."""
    if not name:
        return "topic name is empty"
    if name in (".", ".."):
        return f"topic name cannot be {name!r}"
    if len(name) > MAX_TOPIC_NAME:
        return f"topic name is longer than {MAX_TOPIC_NAME} characters"
    if not _LEGAL_TOPIC.match(name):
        return f"topic name {name!r} has characters other than ASCII alphanumerics, '.', '_', '-'"
    return None


@dataclass
class PartitionState:
    leader: int
    leader_epoch: int
    replicas: list[int]
    isr: list[int]


@dataclass
class TopicState:
    name: str
    topic_id: uuid.UUID
    partitions: dict[int, PartitionState] = field(default_factory=dict)
    configs: dict[str, str] = field(default_factory=dict)

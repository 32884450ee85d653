"""Cluster metadata for a broker running alone, with no ZooKeeper.

Holds what ZooKeeper holds in a cluster (cluster id, topics, their ids, partition
assignments, leaders and leader epochs, ISR, topic configs) and persists it as one JSON
file in the first log dir, written atomically (tmp + fsync + rename).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

METADATA_FILE = "moldau-metadata.json"
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


class EmbeddedMetadataStore:
    def __init__(self, log_dir: Path) -> None:
        self.path = log_dir / METADATA_FILE
        self.cluster_id = ""
        self.topics: dict[str, TopicState] = {}
        self.topics_by_id: dict[uuid.UUID, TopicState] = {}
        self.broker_configs: dict[str, str] = {}  # dynamic broker configs (cluster default)

    def load(self, new_cluster_id: str) -> None:
        if not self.path.exists():
            self.cluster_id = new_cluster_id
            self.save()
            return
        data = json.loads(self.path.read_text(encoding="utf-8"))
        self.cluster_id = data["cluster_id"]
        self.broker_configs = dict(data.get("broker_configs", {}))
        for name, t in data["topics"].items():
            topic = TopicState(
                name,
                uuid.UUID(t["topic_id"]),
                {
                    int(p): PartitionState(s["leader"], s["leader_epoch"], s["replicas"], s["isr"])
                    for p, s in t["partitions"].items()
                },
                dict(t.get("configs", {})),
            )
            self.topics[name] = topic
            self.topics_by_id[topic.topic_id] = topic

    def save(self) -> None:
        data = {
            "version": 1,
            "cluster_id": self.cluster_id,
            "broker_configs": self.broker_configs,
            "topics": {
                name: {
                    "topic_id": str(t.topic_id),
                    "configs": t.configs,
                    "partitions": {
                        str(p): {
                            "leader": s.leader,
                            "leader_epoch": s.leader_epoch,
                            "replicas": s.replicas,
                            "isr": s.isr,
                        }
                        for p, s in t.partitions.items()
                    },
                }
                for name, t in self.topics.items()
            },
        }
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def create_topic(
        self, name: str, partitions: int, configs: dict[str, str], broker_id: int
    ) -> TopicState:
        topic = TopicState(name, uuid.uuid4(), {}, dict(configs))
        for p in range(partitions):
            topic.partitions[p] = PartitionState(broker_id, 0, [broker_id], [broker_id])
        self.topics[name] = topic
        self.topics_by_id[topic.topic_id] = topic
        self.save()
        return topic

    def delete_topic(self, name: str) -> TopicState:
        topic = self.topics.pop(name)
        self.topics_by_id.pop(topic.topic_id, None)
        self.save()
        return topic

    def add_partitions(self, name: str, total: int, broker_id: int) -> list[int]:
        topic = self.topics[name]
        new = list(range(len(topic.partitions), total))
        for p in new:
            topic.partitions[p] = PartitionState(broker_id, 0, [broker_id], [broker_id])
        self.save()
        return new

    def set_topic_configs(self, name: str, configs: dict[str, str]) -> None:
        self.topics[name].configs = dict(configs)
        self.save()

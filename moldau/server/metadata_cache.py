"""What the controller last told this broker (UpdateMetadata), in the shape the request
handlers read (Kafka's MetadataCache)."""

from __future__ import annotations

import uuid
from typing import Any

from moldau.controller.coordination import CoordinationError
from moldau.controller.embedded import PartitionState, TopicState
from moldau.protocol.errors import ErrorCode
from moldau.server.errors import TopicError

LEADER_DURING_DELETE = -2  # an UpdateMetadata partition state of a deleted topic (Kafka's)


class MetadataCache:
    """What the controller last told this broker (UpdateMetadata), in the shape the
    request handlers read: topics, topic ids, cluster id, and every live broker's endpoint
    per listener (a client is told the endpoints of the listener it connected to)."""

    def __init__(self, inter_broker_listener: str = "PLAINTEXT") -> None:
        self.cluster_id = ""
        self.topics: dict[str, TopicState] = {}
        self.topics_by_id: dict[uuid.UUID, TopicState] = {}
        self.inter_broker_listener = inter_broker_listener
        # broker id -> (host, port, rack) on the inter-broker listener: where this broker
        # reaches the others.
        self.brokers: dict[int, tuple[str, int, str | None]] = {}
        self.endpoints: dict[int, dict[str, tuple[str, int]]] = {}  # broker id -> listener -> (host, port)
        self.racks: dict[int, str | None] = {}
        self.controller_id = -1
        self.controller_epoch_applied = -1
        # Bumped by every UpdateMetadata: what is cached from the metadata is cached per version.
        self.version = 0
        # Each topic's version: the `version` at its last change (Metadata's encoded
        # topics are cached per topic version and API version).
        self.topic_versions: dict[str, int] = {}
        self.encoded_topics: dict[tuple[int, str], tuple[int, bytes]] = {}
        self.broker_configs: dict[str, str] = {}
        self.on_save: Any = None

    def save(self, broker_configs: dict[str, str]) -> None:
        """Store dynamic broker configs through `on_save` (the coordination service);
        TopicError if it cannot."""
        if self.on_save is not None:
            try:
                self.on_save(dict(broker_configs))
            except CoordinationError as exc:
                raise TopicError(ErrorCode.unknown_server_error, f"ZooKeeper unavailable: {exc}") from None

    def apply(self, request: Any) -> list[str]:
        """Merge an UpdateMetadata in (Kafka's MetadataCache.updateMetadata): its
        partitions replace ours, those with leader -2 (LeaderDuringDelete) are removed,
        the brokers are replaced. The first request of a controller epoch replaces
        everything: a new controller sends every partition first, and a deletion the old
        one never announced is then forgotten. Returns the topics new to the cache."""
        self.version += 1
        if request.controller_epoch != self.controller_epoch_applied:
            self.controller_epoch_applied = request.controller_epoch
            self.topics = {}
            self.topics_by_id = {}
            self.topic_versions = {}
            self.encoded_topics = {}
        new_topics: list[str] = []
        for ts in request.topic_states:
            self.topic_versions[ts.topic_name] = self.version
            topic = self.topics.get(ts.topic_name)
            if topic is None:
                topic = TopicState(ts.topic_name, ts.topic_id or uuid.UUID(int=0), {}, {})
                new_topics.append(topic.name)
            for ps in ts.partition_states:
                if ps.leader == LEADER_DURING_DELETE:
                    topic.partitions.pop(ps.partition_index, None)
                else:
                    topic.partitions[ps.partition_index] = PartitionState(
                        ps.leader, ps.leader_epoch, list(ps.replicas), list(ps.isr))
            if topic.partitions:
                if self.topics.get(topic.name) is not topic:
                    self.topics[topic.name] = topic
                    self.topics_by_id[topic.topic_id] = topic
            elif topic.name in self.topics:
                del self.topics[topic.name]
                self.topics_by_id.pop(topic.topic_id, None)
            if topic.name not in self.topics:
                self.topic_versions.pop(topic.name, None)
                for key in [k for k in self.encoded_topics if k[1] == topic.name]:
                    del self.encoded_topics[key]
        self.endpoints = {b.id: {e.listener: (e.host, e.port) for e in b.endpoints} for b in request.live_brokers}
        self.racks = {b.id: b.rack for b in request.live_brokers}
        listener = self.inter_broker_listener
        self.brokers = {b: (*eps[listener], self.racks[b]) for b, eps in self.endpoints.items() if listener in eps}
        self.controller_id = request.controller_id
        return [name for name in new_topics if name in self.topics]

    def encoded_topic(self, api_version: int, name: str, encode: Any) -> bytes:
        """The topic's Metadata entry in this API version, encoded by ``encode()`` once
        per change of the topic (Kafka's MetadataCache idea)."""
        version = self.topic_versions.get(name, -1)
        cached = self.encoded_topics.get((api_version, name))
        if cached is not None and cached[0] == version:
            return cached[1]
        data: bytes = encode()
        self.encoded_topics[(api_version, name)] = (version, data)
        return data

    def partition_exists(self, topic: str, partition: int) -> bool:
        state = self.topics.get(topic)
        return state is not None and partition in state.partitions

    def listener_brokers(self, listener: str) -> list[tuple[int, str, int, str | None]]:
        """(id, host, port, rack) of the live brokers that have `listener`, as Kafka's
        Metadata answers a client connected to that listener."""
        return [(b, *eps[listener], self.racks.get(b)) for b, eps in sorted(self.endpoints.items())
                if listener in eps]

"""What the controller last told this broker (UpdateMetadata), in the shape the request
handlers read (Kafka's MetadataCache)."""

from __future__ import annotations

import uuid
from typing import Any

from moldau.controller.coordination import CoordinationError
from moldau.controller.embedded import PartitionState, TopicState
from moldau.protocol.errors import ErrorCode
from moldau.server.errors import TopicError


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

    def apply(self, request: Any) -> None:
        topics: dict[str, TopicState] = {}
        for ts in request.topic_states:
            topic = TopicState(ts.topic_name, ts.topic_id or uuid.UUID(int=0), {}, {})
            for ps in ts.partition_states:
                topic.partitions[ps.partition_index] = PartitionState(
                    ps.leader, ps.leader_epoch, list(ps.replicas), list(ps.isr))
            topics[topic.name] = topic
        self.topics = topics
        self.topics_by_id = {t.topic_id: t for t in topics.values()}
        self.endpoints = {b.id: {e.listener: (e.host, e.port) for e in b.endpoints} for b in request.live_brokers}
        self.racks = {b.id: b.rack for b in request.live_brokers}
        listener = self.inter_broker_listener
        self.brokers = {b: (*eps[listener], self.racks[b]) for b, eps in self.endpoints.items() if listener in eps}
        self.controller_id = request.controller_id

    def partition_exists(self, topic: str, partition: int) -> bool:
        state = self.topics.get(topic)
        return state is not None and partition in state.partitions

    def listener_brokers(self, listener: str) -> list[tuple[int, str, int, str | None]]:
        """(id, host, port, rack) of the live brokers that have `listener`, as Kafka's
        Metadata answers a client connected to that listener."""
        return [(b, *eps[listener], self.racks.get(b)) for b, eps in sorted(self.endpoints.items())
                if listener in eps]

"""The broker's implementations of what `moldau/replication/` needs from the outside
(`replication/seams.py`): leaders reached over the Kafka protocol (Fetch v12,
OffsetForLeaderEpoch v4 with replica_id = this broker), the controller reached for
AlterPartition (in process when this broker is the controller), the metadata cache's
view of partition leaders, and the leadership lease.
"""

from __future__ import annotations

import asyncio
import datetime
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.replication.seams import (
    AlterPartitionResult,
    EpochEndOffset,
    FetchedPartition,
    FetchPosition,
    TopicPartition,
)
from moldau.server.broker_client import BrokerConnection

if TYPE_CHECKING:
    from moldau.controller.controller import Controller
    from moldau.server.metadata_cache import MetadataCache
    from moldau.server.security.listener import InterBrokerSecurity

FETCH_VERSION = 12
EPOCH_VERSION = 4
ALTER_PARTITION_VERSION = 2
FOLLOWER_MAX_WAIT = datetime.timedelta(milliseconds=500)


class InterBrokerChannels:
    """`controller.channel.BrokerChannels` over the inter-broker listener."""

    def __init__(self, security: InterBrokerSecurity) -> None:
        self.security = security

    @property
    def listener(self) -> str | None:
        return self.security.listener

    def connect(self, host: str, port: int, client_id: str) -> BrokerConnection:
        return BrokerConnection(host, port, client_id, self.security)


class RemoteLeaderEndPoint:
    """A leader broker over one inter-broker connection."""

    def __init__(self, local_id: int, conn: BrokerConnection) -> None:
        self.local_id = local_id
        self.conn = conn

    async def fetch(self, partitions: dict[TopicPartition, FetchPosition]) -> dict[TopicPartition, FetchedPartition]:
        from kio.schema.fetch.v12 import request as req

        by_topic: dict[str, list[Any]] = {}
        for (topic, p), pos in partitions.items():
            by_topic.setdefault(topic, []).append(req.FetchPartition(
                partition=p, current_leader_epoch=pos.current_leader_epoch, fetch_offset=pos.fetch_offset,
                last_fetched_epoch=-1, log_start_offset=pos.log_start_offset, partition_max_bytes=pos.max_bytes))
        request = req.FetchRequest(
            cluster_id=None, replica_id=self.local_id, max_wait=FOLLOWER_MAX_WAIT,
            min_bytes=1, max_bytes=8 << 20, isolation_level=0, session_id=0, session_epoch=-1,
            topics=tuple(req.FetchTopic(topic=t, partitions=tuple(ps)) for t, ps in by_topic.items()),
            forgotten_topics_data=(), rack_id="")
        response = await self.conn.request(ApiKey.FETCH, FETCH_VERSION, request, timeout=10.0)
        if response.error_code != ErrorCode.none:
            await asyncio.sleep(0.2)
            return {}
        return {(topic.topic, part.partition_index): FetchedPartition(
                    ErrorCode(part.error_code), part.high_watermark, part.log_start_offset,
                    bytes(part.records or b""))
                for topic in response.responses for part in topic.partitions}

    async def end_offsets_for_epochs(
            self, partitions: dict[TopicPartition, tuple[int, int]]) -> dict[TopicPartition, EpochEndOffset]:
        from kio.schema.offset_for_leader_epoch.v4 import request as req

        by_topic: dict[str, list[Any]] = {}
        for (topic, p), (current, epoch) in partitions.items():
            by_topic.setdefault(topic, []).append(req.OffsetForLeaderPartition(
                partition=p, current_leader_epoch=current, leader_epoch=epoch))
        request = req.OffsetForLeaderEpochRequest(
            replica_id=self.local_id,
            topics=tuple(req.OffsetForLeaderTopic(topic=t, partitions=tuple(ps)) for t, ps in by_topic.items()))
        response = await self.conn.request(ApiKey.OFFSET_FOR_LEADER_EPOCH, EPOCH_VERSION, request, timeout=10.0)
        return {(topic.topic, part.partition): EpochEndOffset(ErrorCode(part.error_code), part.leader_epoch,
                                                              part.end_offset)
                for topic in response.topics for part in topic.partitions}

    def close(self) -> None:
        self.conn.close()


class BrokerLeaderEndPoints:
    """Leaders found in the metadata cache, reached over the inter-broker listener."""

    def __init__(self, local_id: int, metadata: MetadataCache, security: InterBrokerSecurity) -> None:
        self.local_id = local_id
        self.metadata = metadata
        self.security = security

    def address(self, broker_id: int) -> tuple[str, int] | None:
        found = self.metadata.brokers.get(broker_id)
        return (found[0], found[1]) if found is not None else None

    def connect(self, broker_id: int, address: tuple[str, int]) -> RemoteLeaderEndPoint:
        conn = BrokerConnection(address[0], address[1], f"replica-fetcher-{self.local_id}-{broker_id}",
                                self.security)
        return RemoteLeaderEndPoint(self.local_id, conn)


class ControllerLink:
    """AlterPartition to the active controller: in process when this broker is it,
    else over one inter-broker connection to the broker the metadata names."""

    def __init__(self, local_id: int, metadata: MetadataCache, security: InterBrokerSecurity,
                 local_controller: Callable[[], Controller | None]) -> None:
        self.local_id = local_id
        self.metadata = metadata
        self.security = security
        self._local_controller = local_controller
        self._conn: BrokerConnection | None = None
        self._addr: tuple[str, int] | None = None

    async def alter_partition(self, tp: TopicPartition, leader_epoch: int, new_isr: tuple[int, ...],
                              partition_epoch: int) -> AlterPartitionResult | None:
        from kio.schema.alter_partition.v2 import request as req

        topic = self.metadata.topics.get(tp[0])
        if topic is None:
            return None
        request = req.AlterPartitionRequest(
            broker_id=self.local_id, broker_epoch=-1,
            topics=(req.TopicData(topic_id=topic.topic_id or uuid.UUID(int=0), partitions=(req.PartitionData(
                partition_index=tp[1], leader_epoch=leader_epoch, new_isr=new_isr,
                leader_recovery_state=0, partition_epoch=partition_epoch),)),))
        controller = self._local_controller()
        if controller is not None and controller.active:
            response = await controller.submit_alter_partition(request)
        else:
            response = await self._remote(request)
        if response is None:
            return None
        if response.error_code != ErrorCode.none:
            return AlterPartitionResult(ErrorCode(response.error_code))
        for t in response.topics:
            for p in t.partitions:
                if p.partition_index == tp[1]:
                    return AlterPartitionResult(ErrorCode(p.error_code), tuple(p.isr), p.leader_epoch,
                                                p.partition_epoch)
        return None

    async def _remote(self, request: Any) -> Any:
        controller = self.metadata.brokers.get(self.metadata.controller_id)
        if controller is None:
            return None
        addr = (controller[0], controller[1])
        if self._conn is None or self._addr != addr:
            if self._conn is not None:
                self._conn.close()
            self._conn = BrokerConnection(addr[0], addr[1], f"broker-{self.local_id}", self.security)
            self._addr = addr
        return await self._conn.request(ApiKey.ALTER_PARTITION, ALTER_PARTITION_VERSION, request, timeout=10.0)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


class MetadataLeaders:
    """The metadata cache as `replication.seams.PartitionMetadata`."""

    def __init__(self, metadata: MetadataCache) -> None:
        self.metadata = metadata

    def leader_of(self, tp: TopicPartition) -> int | None:
        topic = self.metadata.topics.get(tp[0])
        state = topic.partitions.get(tp[1]) if topic is not None else None
        return state.leader if state is not None else None


class LoopScheduler:
    """`replication.purgatory.Scheduler` on the running event loop."""

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(delay_s, callback)


class BrokerLease:
    """The leadership lease: valid until 3/4 of the ZooKeeper session timeout after the
    start of the last round trip that proved our registration's session alive."""

    def __init__(self, session_s: float) -> None:
        self.session_s = session_s
        self._until = 0.0

    def valid(self) -> bool:
        return time.monotonic() < self._until

    def renew(self, round_trip_started: float) -> None:
        self._until = round_trip_started + self.session_s * 0.75

    def revoke(self) -> None:
        self._until = 0.0

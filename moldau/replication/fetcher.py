"""Replica fetchers: a follower copies its partitions from their leaders.

One fetcher per source broker carries every partition this broker follows from it, in
one Fetch request (replica_id = our broker id) at a time. Before fetching a partition it
has just started to follow, the fetcher truncates the local log by leader epoch
(OffsetForLeaderEpoch, KIP-101/KIP-279), never to the high watermark alone.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from moldau.log.errors import LogError
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import CorruptRecordError, InvalidRecordError, validate_batches
from moldau.server.broker_client import BrokerConnection

if TYPE_CHECKING:
    from moldau.server.cluster_broker import ClusterBroker

log = logging.getLogger(__name__)

FETCH_VERSION = 12
EPOCH_VERSION = 4
TopicPartition = tuple[str, int]


@dataclass
class FollowedPartition:
    leader_epoch: int
    truncated: bool = False
    paused_until: float = 0.0


class ReplicaFetcher:
    def __init__(self, broker: ClusterBroker, leader_id: int, host: str, port: int) -> None:
        self.broker = broker
        self.leader_id = leader_id
        self.host, self.port = host, port
        self.partitions: dict[TopicPartition, FollowedPartition] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conn = BrokerConnection(host, port, f"replica-fetcher-{broker.broker_id}-{leader_id}",
                                      broker.inter_broker)
        self._failures = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run())

    def add(self, tp: TopicPartition, leader_epoch: int) -> None:
        log.info("broker %d follows %s-%d from leader %d (epoch %d)", self.broker.broker_id, tp[0], tp[1],
                 self.leader_id, leader_epoch)
        self.partitions[tp] = FollowedPartition(leader_epoch)
        self._wake.set()

    def remove(self, tp: TopicPartition) -> None:
        self.partitions.pop(tp, None)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        self._conn.close()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                if not self.partitions:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                now = loop.time()
                untruncated = [tp for tp, s in self.partitions.items() if not s.truncated and s.paused_until <= now]
                if untruncated:
                    await self._truncate(untruncated)
                    continue
                ready = {tp: s for tp, s in self.partitions.items() if s.paused_until <= now and s.truncated}
                if not ready:
                    await asyncio.sleep(0.1)
                    continue
                await self._fetch(ready)
                self._failures = 0
            except asyncio.CancelledError:
                raise
            except (OSError, ConnectionError, TimeoutError) as exc:
                log.info("fetcher %d<-%d: %s; retrying", self.broker.broker_id, self.leader_id, exc)
                self._conn.close()
                await asyncio.sleep(0.3)
            except Exception:
                log.exception("fetcher %d<-%d failed; retrying", self.broker.broker_id, self.leader_id)
                await asyncio.sleep(0.5)

    # --- truncation by leader epoch ------------------------------------------------------

    async def _truncate(self, tps: list[TopicPartition]) -> None:
        from kio.schema.offset_for_leader_epoch.v4 import request as req

        wanted: dict[TopicPartition, int] = {}
        for tp in tps:
            plog = self.broker.logs.get(*tp)
            if plog is None:
                self.partitions.pop(tp, None)
                continue
            latest = _latest_epoch(plog)
            if latest is None:
                # No epoch history: fall back to the high watermark (the pre-KIP-101 rule,
                # used only for logs written before leader epochs were recorded).
                plog.truncate_to(max(_high_watermark(plog), plog.log_start_offset))
                self.partitions[tp].truncated = True
                continue
            wanted[tp] = latest
        if not wanted:
            return
        by_topic: dict[str, list[Any]] = {}
        for (topic, p), epoch in wanted.items():
            by_topic.setdefault(topic, []).append(req.OffsetForLeaderPartition(
                partition=p, current_leader_epoch=self.partitions[(topic, p)].leader_epoch, leader_epoch=epoch))
        request = req.OffsetForLeaderEpochRequest(
            replica_id=self.broker.broker_id,
            topics=tuple(req.OffsetForLeaderTopic(topic=t, partitions=tuple(ps)) for t, ps in by_topic.items()))
        response = await self._conn.request(ApiKey.OFFSET_FOR_LEADER_EPOCH, EPOCH_VERSION, request, timeout=10.0)
        for topic in response.topics:
            for part in topic.partitions:
                tp = (topic.topic, part.partition)
                state = self.partitions.get(tp)
                plog = self.broker.logs.get(*tp)
                if state is None or plog is None:
                    continue
                if part.error_code != ErrorCode.none:
                    log.info("broker %d: OffsetForLeaderEpoch %s-%d from %d: %s", self.broker.broker_id, *tp,
                             self.leader_id, ErrorCode(part.error_code).name)
                    state.paused_until = asyncio.get_running_loop().time() + 0.2
                    continue
                target = plog.log_end_offset
                if part.end_offset >= 0:
                    target = min(target, part.end_offset)
                    if part.leader_epoch != wanted[tp] and part.leader_epoch >= 0:
                        # The leader's history diverged earlier: cut at the end of that
                        # epoch in our own log too (KIP-279).
                        own = _end_offset_for_epoch(plog, part.leader_epoch)
                        if own is not None and own >= 0:
                            target = min(target, own)
                if target < plog.log_end_offset:
                    log.info("broker %d: truncating %s-%d from %d to %d (leader epoch %d ends at %d)",
                             self.broker.broker_id, tp[0], tp[1], plog.log_end_offset, target,
                             part.leader_epoch, part.end_offset)
                    plog.truncate_to(target)
                state.truncated = True

    # --- fetching ------------------------------------------------------------------------

    async def _fetch(self, ready: dict[TopicPartition, FollowedPartition]) -> None:
        from kio.schema.fetch.v12 import request as req

        by_topic: dict[str, list[Any]] = {}
        for (topic, p), state in ready.items():
            plog = self.broker.logs.get(topic, p)
            if plog is None:
                continue
            by_topic.setdefault(topic, []).append(req.FetchPartition(
                partition=p, current_leader_epoch=state.leader_epoch, fetch_offset=plog.log_end_offset,
                last_fetched_epoch=-1, log_start_offset=plog.log_start_offset,
                partition_max_bytes=1 << 20))
        if not by_topic:
            await asyncio.sleep(0.1)
            return
        request = req.FetchRequest(
            cluster_id=None, replica_id=self.broker.broker_id, max_wait=datetime.timedelta(milliseconds=500),
            min_bytes=1, max_bytes=8 << 20, isolation_level=0, session_id=0, session_epoch=-1,
            topics=tuple(req.FetchTopic(topic=t, partitions=tuple(ps)) for t, ps in by_topic.items()),
            forgotten_topics_data=(), rack_id="")
        response = await self._conn.request(ApiKey.FETCH, FETCH_VERSION, request, timeout=10.0)
        if response.error_code != ErrorCode.none:
            await asyncio.sleep(0.2)
            return
        loop = asyncio.get_running_loop()
        for topic in response.responses:
            for part in topic.partitions:
                tp = (topic.topic, part.partition_index)
                state = self.partitions.get(tp)
                plog = self.broker.logs.get(*tp)
                if state is None or plog is None:
                    continue
                code = part.error_code
                if code == ErrorCode.none:
                    data = bytes(part.records or b"")
                    if data:
                        self._append(tp, plog, data)
                    if hasattr(plog, "update_high_watermark"):
                        plog.update_high_watermark(min(part.high_watermark, plog.log_end_offset))
                elif code == ErrorCode.offset_out_of_range:
                    # Below the leader's log start (retention or DeleteRecords moved it):
                    # start over at the leader's log start.
                    if 0 <= plog.log_end_offset < part.log_start_offset:
                        log.info("broker %d: %s-%d restarts at the leader's log start %d",
                                 self.broker.broker_id, *tp, part.log_start_offset)
                        plog.truncate_to(part.log_start_offset)
                    else:
                        state.truncated = False
                elif code in (ErrorCode.fenced_leader_epoch, ErrorCode.not_leader_or_follower,
                              ErrorCode.unknown_topic_or_partition, ErrorCode.unknown_leader_epoch):
                    state.paused_until = loop.time() + 0.2  # wait for the controller's news
                else:
                    log.info("fetch %s-%d from %d: %s", tp[0], tp[1], self.leader_id, ErrorCode(code).name)
                    state.paused_until = loop.time() + 0.5

    def _append(self, tp: TopicPartition, plog: Any, data: bytes) -> None:
        # A fetch may end in a partial batch (Kafka allows it); keep whole batches only.
        from moldau.protocol.records import iter_batches

        whole = sum(h.size for h, _ in iter_batches(data))
        data = data[:whole]
        if not data:
            return
        try:
            headers = validate_batches(data, from_producer=False)
        except (CorruptRecordError, InvalidRecordError) as exc:
            log.error("broker %d: corrupt data from leader %d for %s-%d: %s", self.broker.broker_id,
                      self.leader_id, tp[0], tp[1], exc)
            return
        leo = plog.log_end_offset
        if headers[0].base_offset < leo:
            # The leader answers with the whole batch holding our fetch offset. A batch that
            # starts below our log end but ends past it means our log ends inside one of the
            # leader's batches: cut ours back to that batch's start and take it whole.
            # (A batch starting past our log end is normal: the leader's cleaner removed
            # the batches in between.)
            straddling = next((h for h in headers if h.base_offset < leo <= h.last_offset), None)
            if straddling is not None:
                log.warning("broker %d: %s-%d ends at %d inside the leader's batch %d-%d; truncating to %d",
                            self.broker.broker_id, tp[0], tp[1], leo, straddling.base_offset,
                            straddling.last_offset, straddling.base_offset)
                plog.truncate_to(straddling.base_offset)
                leo = plog.log_end_offset
            keep = bytearray()
            kept = []
            pos = 0
            for h in headers:
                if h.base_offset >= leo:
                    keep += data[pos:pos + h.size]
                    kept.append(h)
                pos += h.size
            if not kept:
                return
            data, headers = bytes(keep), kept
        try:
            plog.append_as_follower(data, headers)
        except LogError as exc:
            log.warning("broker %d: cannot append %s-%d as follower: %s", self.broker.broker_id, *tp, exc)


def _latest_epoch(plog: Any) -> int | None:
    latest = getattr(plog, "latest_epoch", None)
    if callable(latest):
        latest = latest()
    return latest if latest is None or latest >= 0 else None


def _high_watermark(plog: Any) -> int:
    return int(getattr(plog, "high_watermark", 0))


def _end_offset_for_epoch(plog: Any, epoch: int) -> int | None:
    fn = getattr(plog, "end_offset_for_epoch", None)
    if fn is None:
        return None
    _epoch, end = fn(epoch)
    return int(end)

"""Replica fetchers: a follower copies its partitions from their leaders.

One fetcher per source broker carries every partition this broker follows from it, in
one Fetch request (replica_id = our broker id) at a time. A follower replication quota
leaves throttled partitions that are not in sync out of the fetch while this broker's
follower rate is over it (Kafka's shouldFollowerThrottle). Before fetching a partition it
has just started to follow, the fetcher truncates the local log by leader epoch
(OffsetForLeaderEpoch, KIP-101/KIP-279), never to the high watermark alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from moldau.log.errors import LogError
from moldau.log.log import Log
from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import CorruptRecordError, InvalidRecordError, iter_batches, validate_batches
from moldau.replication.seams import FetchPosition, LeaderEndPoint, NoReplicaQuota, ReplicaQuota, TopicPartition

if TYPE_CHECKING:
    from moldau.replication.partition import Partition

log = logging.getLogger(__name__)


@dataclass
class FollowedPartition:
    leader_epoch: int
    truncated: bool = False
    paused_until: float = 0.0
    in_sync: bool = False  # caught up with the leader's high watermark at the last fetch


class ReplicaFetcher:
    def __init__(self, local_id: int, leader_id: int, address: tuple[str, int], endpoint: LeaderEndPoint,
                 partition_of: Callable[[TopicPartition], Partition | None],
                 on_replicated: Callable[[int], None] | None = None,
                 on_high_watermark: Callable[[TopicPartition], None] | None = None,
                 quota: ReplicaQuota | None = None, clock: Callable[[], int] | None = None,
                 fetch_max_bytes: int = 1 << 20) -> None:
        self.local_id = local_id
        self.leader_id = leader_id
        self.address = address
        self.endpoint = endpoint
        self._partition_of = partition_of
        self._on_replicated = on_replicated  # bytes appended as follower (ReplicationBytesIn)
        # The follower's high watermark of a partition moved: consumers reading from this
        # follower (KIP-392) may be waiting for it.
        self._on_high_watermark = on_high_watermark
        self._quota: ReplicaQuota = quota if quota is not None else NoReplicaQuota()
        # The replica manager's clock (wall-clock ms): for the quota, and for the log's roll
        # by segment.ms; None in tests that need neither.
        self._clock = clock
        self.fetch_max_bytes = fetch_max_bytes  # replica.fetch.max.bytes
        self.partitions: dict[TopicPartition, FollowedPartition] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run())

    def add(self, tp: TopicPartition, leader_epoch: int) -> None:
        log.info("broker %d follows %s-%d from leader %d (epoch %d)", self.local_id, tp[0], tp[1],
                 self.leader_id, leader_epoch)
        self.partitions[tp] = FollowedPartition(leader_epoch)
        self._wake.set()

    def remove(self, tp: TopicPartition) -> None:
        self.partitions.pop(tp, None)

    async def stop(self) -> None:
        """Stop the fetch loop. A cancellation can be lost when it meets a response that
        completes at the same moment (asyncio.wait_for in Python 3.11 may swallow it), so
        the loop also checks a flag, and the task is cancelled again until it ends."""
        self._stopping = True
        self._wake.set()
        task = self._task
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.5)
        self.endpoint.close()

    def _log(self, tp: TopicPartition) -> Log | None:
        partition = self._partition_of(tp)
        return partition.log if partition is not None else None

    async def run(self) -> None:
        while not self._stopping:
            try:
                if not self.partitions:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                if not await self.do_work(asyncio.get_running_loop().time()):
                    await asyncio.sleep(0.1)
            except asyncio.CancelledError:
                raise
            except (OSError, ConnectionError, TimeoutError) as exc:
                log.info("fetcher %d<-%d: %s; retrying", self.local_id, self.leader_id, exc)
                self.endpoint.close()
                await asyncio.sleep(0.3)
            except Exception:
                log.exception("fetcher %d<-%d failed; retrying", self.local_id, self.leader_id)
                await asyncio.sleep(0.5)

    async def do_work(self, now: float) -> bool:
        """One round: truncate the partitions that need it, else fetch the ready ones.
        False if nothing was ready (the caller backs off)."""
        untruncated = [tp for tp, s in self.partitions.items() if not s.truncated and s.paused_until <= now]
        if untruncated:
            await self._truncate(untruncated, now)
            return True
        ready = {tp: s for tp, s in self.partitions.items() if s.paused_until <= now and s.truncated}
        if not ready:
            return False
        return await self._fetch(ready, now)

    # --- truncation by leader epoch ------------------------------------------------------

    async def _truncate(self, tps: list[TopicPartition], now: float) -> None:
        wanted: dict[TopicPartition, int] = {}
        for tp in tps:
            plog = self._log(tp)
            if plog is None:
                self.partitions.pop(tp, None)
                continue
            latest = plog.latest_epoch
            if latest is None or latest < 0:
                # No epoch history: fall back to the high watermark (the pre-KIP-101 rule,
                # used only for logs written before leader epochs were recorded).
                plog.truncate_to(max(plog.high_watermark, plog.log_start_offset))
                self.partitions[tp].truncated = True
                continue
            wanted[tp] = latest
        if not wanted:
            return
        answers = await self.endpoint.end_offsets_for_epochs(
            {tp: (self.partitions[tp].leader_epoch, epoch) for tp, epoch in wanted.items() if tp in self.partitions})
        for tp, part in answers.items():
            state = self.partitions.get(tp)
            plog = self._log(tp)
            if state is None or plog is None or tp not in wanted:
                continue
            if part.error != ErrorCode.none:
                log.info("broker %d: OffsetForLeaderEpoch %s-%d from %d: %s", self.local_id, *tp,
                         self.leader_id, part.error.name)
                state.paused_until = now + 0.2
                continue
            target = plog.log_end_offset
            if part.end_offset >= 0:
                target = min(target, part.end_offset)
                if part.leader_epoch != wanted[tp] and part.leader_epoch >= 0:
                    # The leader's history diverged earlier: cut at the end of that
                    # epoch in our own log too (KIP-279).
                    _epoch, own = plog.end_offset_for_epoch(part.leader_epoch)
                    if own >= 0:
                        target = min(target, own)
            if target < plog.log_end_offset:
                log.info("broker %d: truncating %s-%d from %d to %d (leader epoch %d ends at %d)",
                         self.local_id, tp[0], tp[1], plog.log_end_offset, target,
                         part.leader_epoch, part.end_offset)
                plog.truncate_to(target)
            state.truncated = True

    # --- fetching ------------------------------------------------------------------------

    async def _fetch(self, ready: dict[TopicPartition, FollowedPartition], now: float) -> bool:
        positions: dict[TopicPartition, FetchPosition] = {}
        now_ms = self._clock() if self._clock is not None else 0
        over_quota: bool | None = None  # asked once per round, and only when it matters
        for tp, state in ready.items():
            partition = self._partition_of(tp)
            if partition is None:
                continue
            if not state.in_sync and partition.follower_throttled:
                if over_quota is None:
                    over_quota = self._quota.is_quota_exceeded(now_ms)
                if over_quota:
                    continue
            plog = partition.log
            positions[tp] = FetchPosition(plog.log_end_offset, plog.log_start_offset, state.leader_epoch,
                                          self.fetch_max_bytes)
        if not positions:
            return False
        answers = await self.endpoint.fetch(positions)
        for tp, part in answers.items():
            followed = self.partitions.get(tp)
            partition = self._partition_of(tp)
            if followed is None or partition is None or tp not in positions:
                continue
            state = followed
            plog = partition.log
            code = part.error
            if code == ErrorCode.none:
                if part.records:
                    self._append(tp, plog, part.records)
                    if partition.follower_throttled:
                        self._quota.record(len(part.records), now_ms)
                state.in_sync = plog.log_end_offset >= part.high_watermark
                if partition.follower_high_watermark(part.high_watermark) and self._on_high_watermark is not None:
                    self._on_high_watermark(tp)
            elif code == ErrorCode.offset_out_of_range:
                # Below the leader's log start (retention or DeleteRecords moved it):
                # start over at the leader's log start.
                if 0 <= plog.log_end_offset < part.log_start_offset:
                    log.info("broker %d: %s-%d restarts at the leader's log start %d",
                             self.local_id, *tp, part.log_start_offset)
                    plog.truncate_to(part.log_start_offset)
                else:
                    state.truncated = False
            elif code in (ErrorCode.fenced_leader_epoch, ErrorCode.not_leader_or_follower,
                          ErrorCode.unknown_topic_or_partition, ErrorCode.unknown_leader_epoch):
                state.paused_until = now + 0.2  # wait for the controller's news
            else:
                log.info("fetch %s-%d from %d: %s", tp[0], tp[1], self.leader_id, code.name)
                state.paused_until = now + 0.5
        return True

    def _append(self, tp: TopicPartition, plog: Log, data: bytes) -> None:
        # A fetch may end in a partial batch (Kafka allows it); keep whole batches only.
        whole = sum(h.size for h, _ in iter_batches(data))
        data = data[:whole]
        if not data:
            return
        try:
            headers = validate_batches(data, from_producer=False)
        except (CorruptRecordError, InvalidRecordError) as exc:
            log.error("broker %d: corrupt data from leader %d for %s-%d: %s", self.local_id,
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
                            self.local_id, tp[0], tp[1], leo, straddling.base_offset,
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
            plog.append_as_follower(data, headers, now_ms=self._clock() if self._clock is not None else None)
        except LogError as exc:
            log.warning("broker %d: cannot append %s-%d as follower: %s", self.local_id, *tp, exc)
            return
        if self._on_replicated is not None:
            self._on_replicated(len(data))


"""The broker's replicas: which partitions it leads (with their followers' progress, high
watermark and ISR) and which it follows (through replica fetchers).

The leader proposes ISR changes to the controller with AlterPartition; the controller
writes them to ZooKeeper (compare-and-set on the state znode version, the "partition
epoch"), so the state znode keeps a single writer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.replication.fetcher import ReplicaFetcher
from moldau.replication.partition import PartitionReplication
from moldau.server.broker_client import BrokerConnection

if TYPE_CHECKING:
    from moldau.server.cluster_broker import ClusterBroker

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]
ALTER_PARTITION_VERSION = 2


class ReplicaManager:
    def __init__(self, broker: ClusterBroker) -> None:
        self.broker = broker
        self.leaders: dict[TopicPartition, PartitionReplication] = {}
        self.fetchers: dict[int, ReplicaFetcher] = {}
        self.following: dict[TopicPartition, int] = {}
        self.lag_time_max_ms = int(broker.config["replica.lag.time.max.ms"])
        self._hw_waiters: dict[TopicPartition, set[asyncio.Future[None]]] = {}
        self._controller_conn: BrokerConnection | None = None
        self._controller_addr: tuple[str, int] | None = None

    # --- roles -------------------------------------------------------------------------

    def become_leader(self, tp: TopicPartition, ps: Any, plog: Any, now_ms: int) -> None:
        self._stop_following(tp)
        current = self.leaders.get(tp)
        if current is not None and current.leader_epoch == ps.leader_epoch:
            current.isr = set(ps.isr)
            current.partition_epoch = ps.zk_version
            current.replicas = list(ps.replicas)
            return
        # Kafka's makeLeader: the new epoch starts at our log end now, so OffsetForLeaderEpoch
        # answers followers correctly even before the first append of this epoch.
        cache = getattr(plog, "leader_epoch_cache", None)
        if cache is not None and ps.leader_epoch >= 0:
            latest = cache.latest_epoch()
            if latest is None or ps.leader_epoch > latest:
                cache.assign(ps.leader_epoch, plog.log_end_offset)
        hw = int(getattr(plog, "high_watermark", plog.log_end_offset))
        state = PartitionReplication.become_leader(
            tp[0], tp[1], self.broker.broker_id, ps.leader_epoch, ps.zk_version, list(ps.replicas), list(ps.isr),
            hw, plog.log_end_offset, self.lag_time_max_ms, now_ms)
        if current is not None:  # same leader, newer epoch: keep what followers told us
            for b, f in current.followers.items():
                if b in state.followers:
                    state.followers[b] = f
        self.leaders[tp] = state
        self._set_hw(tp, plog, state)
        self.maybe_advance(tp, plog)

    def become_follower(self, tp: TopicPartition, ps: Any, now_ms: int) -> None:
        if self.leaders.pop(tp, None) is not None:
            self._wake_hw(tp)
        leader = ps.leader
        if leader < 0 or leader == self.broker.broker_id:
            self._stop_following(tp)
            return
        if self.following.get(tp) != leader:
            self._stop_following(tp)
        addr = self.broker.metadata.brokers.get(leader)
        live = {ll.broker_id: (ll.host_name, ll.port) for ll in getattr(ps, "_live_leaders", ())}
        if addr is None and leader in live:
            addr = (live[leader][0], live[leader][1], None)
        if addr is None:
            log.info("broker %d: leader %d of %s-%d has no known address yet", self.broker.broker_id, leader, *tp)
            return
        fetcher = self.fetchers.get(leader)
        if fetcher is None or (fetcher.host, fetcher.port) != (addr[0], addr[1]):
            if fetcher is not None:
                asyncio.get_running_loop().create_task(fetcher.stop())
            fetcher = ReplicaFetcher(self.broker, leader, addr[0], addr[1])
            self.fetchers[leader] = fetcher
            fetcher.start()
        self.following[tp] = leader
        fetcher.add(tp, ps.leader_epoch)

    def stop(self, tp: TopicPartition) -> None:
        self._stop_following(tp)
        if self.leaders.pop(tp, None) is not None:
            self._wake_hw(tp)

    def _stop_following(self, tp: TopicPartition) -> None:
        leader = self.following.pop(tp, None)
        if leader is not None and leader in self.fetchers:
            self.fetchers[leader].remove(tp)

    async def close(self) -> None:
        for f in self.fetchers.values():
            await f.stop()
        self.fetchers.clear()
        if self._controller_conn is not None:
            self._controller_conn.close()

    # --- the leader's side ---------------------------------------------------------------

    def high_watermark(self, tp: TopicPartition, plog: Any) -> int:
        state = self.leaders.get(tp)
        if state is None:
            return int(getattr(plog, "high_watermark", plog.log_end_offset))
        return state.high_watermark

    def isr(self, tp: TopicPartition) -> set[int]:
        state = self.leaders.get(tp)
        return set(state.isr) if state is not None else set()

    def on_follower_fetch(self, tp: TopicPartition, follower: int, fetch_offset: int, plog: Any, now_ms: int) -> None:
        state = self.leaders.get(tp)
        if state is None:
            return
        state.on_follower_fetch(follower, fetch_offset, plog.log_end_offset, now_ms)
        self.maybe_advance(tp, plog)
        if follower not in state.isr and follower in state.ready_to_join():
            self._propose_isr(tp, state, now_ms)

    def maybe_advance(self, tp: TopicPartition, plog: Any) -> None:
        state = self.leaders.get(tp)
        if state is not None and state.maybe_advance_high_watermark(plog.log_end_offset):
            self._set_hw(tp, plog, state)
            self._wake_hw(tp)
            self.broker._wake(tp)

    def _set_hw(self, tp: TopicPartition, plog: Any, state: PartitionReplication) -> None:
        if hasattr(plog, "update_high_watermark"):
            plog.update_high_watermark(state.high_watermark)

    def check_isr(self, now_ms: int) -> None:
        """Periodic: shrink the ISR of followers that fell behind."""
        for tp, state in list(self.leaders.items()):
            if state.out_of_sync(now_ms):
                self._propose_isr(tp, state, now_ms)

    def _propose_isr(self, tp: TopicPartition, state: PartitionReplication, now_ms: int) -> None:
        new = state.proposed_isr(now_ms)
        if new is None:
            return
        state.pending_isr = new
        asyncio.get_running_loop().create_task(self._alter_partition(tp, state, new))

    async def _alter_partition(self, tp: TopicPartition, state: PartitionReplication, new_isr: set[int]) -> None:
        from kio.schema.alter_partition.v2 import request as req

        topic = self.broker.metadata.topics.get(tp[0])
        try:
            if topic is None:
                return
            request = req.AlterPartitionRequest(
                broker_id=self.broker.broker_id, broker_epoch=-1,
                topics=(req.TopicData(topic_id=topic.topic_id, partitions=(req.PartitionData(
                    partition_index=tp[1], leader_epoch=state.leader_epoch, new_isr=tuple(sorted(new_isr)),
                    leader_recovery_state=0, partition_epoch=state.partition_epoch),)),))
            response = await self._send_to_controller(ApiKey.ALTER_PARTITION, ALTER_PARTITION_VERSION, request)
            if response is None:
                return
            if response.error_code != ErrorCode.none:
                log.info("AlterPartition for %s-%d refused: %s", *tp, ErrorCode(response.error_code).name)
                return
            for t in response.topics:
                for p in t.partitions:
                    if p.error_code != ErrorCode.none:
                        log.info("AlterPartition for %s-%d: %s", *tp, ErrorCode(p.error_code).name)
                        continue
                    if self.leaders.get(tp) is state and p.leader_epoch == state.leader_epoch:
                        old = state.isr
                        state.isr = set(p.isr)
                        state.partition_epoch = p.partition_epoch
                        log.info("broker %d: ISR of %s-%d %s -> %s", self.broker.broker_id, *tp,
                                 sorted(old), sorted(state.isr))
        except (OSError, ConnectionError, TimeoutError) as exc:
            log.info("AlterPartition for %s-%d failed: %s", *tp, exc)
        finally:
            if self.leaders.get(tp) is state:
                state.pending_isr = None
                plog = self.broker.logs.get(*tp)
                if plog is not None:
                    self.maybe_advance(tp, plog)
                self._wake_hw(tp)

    async def _send_to_controller(self, api_key: int, version: int, request: Any) -> Any:
        broker = self.broker
        if broker.controller is not None and broker.controller.active:
            return await broker.controller.submit_alter_partition(request)
        controller = broker.metadata.brokers.get(broker.metadata.controller_id)
        if controller is None:
            return None
        addr = (controller[0], controller[1])
        if self._controller_conn is None or self._controller_addr != addr:
            if self._controller_conn is not None:
                self._controller_conn.close()
            self._controller_conn = BrokerConnection(addr[0], addr[1], f"broker-{broker.broker_id}",
                                                     broker.inter_broker)
            self._controller_addr = addr
        return await self._controller_conn.request(api_key, version, request, timeout=10.0)

    # --- acks=all ------------------------------------------------------------------------

    def _wake_hw(self, tp: TopicPartition) -> None:
        for fut in self._hw_waiters.pop(tp, set()):
            if not fut.done():
                fut.set_result(None)

    async def wait_for_acks(self, tp: TopicPartition, required_offset: int, timeout_s: float,
                            min_isr: int) -> ErrorCode:
        """Until the high watermark passes `required_offset` (every ISR member has it)."""
        deadline = time.monotonic() + timeout_s
        while True:
            state = self.leaders.get(tp)
            if state is None:
                return ErrorCode.not_leader_or_follower
            if state.high_watermark >= required_offset:
                if len(state.isr) < min_isr:
                    return ErrorCode.not_enough_replicas_after_append
                return ErrorCode.none
            left = deadline - time.monotonic()
            if left <= 0:
                return ErrorCode.request_timed_out
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._hw_waiters.setdefault(tp, set()).add(fut)
            try:
                await asyncio.wait_for(fut, left)
            except TimeoutError:
                pass

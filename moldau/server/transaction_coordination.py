"""The transaction coordinator in the broker: the pure
:class:`~moldau.transactions.coordinator.TransactionCoordinator` wired to
``__transaction_state`` and to the partition leaders (Kafka's TransactionStateManager
and TransactionMarkerChannelManager).

- Its writes go to ``__transaction_state`` as the partition's leader with acks=all
  (:class:`CoordinatorLog`); a handler collects the acknowledgements of the writes its
  call made and answers once they are in (or with Kafka's mapping of their error). As
  for groups, the coordinator applies a write when it is appended, not when it is
  acknowledged.
- A partition of ``__transaction_state`` is loaded (its records replayed) when this
  broker becomes its leader, at the coordinator epoch = the partition's leader epoch, and
  unloaded when it stops leading it or its leadership lease lapses. Transactions found
  in PrepareCommit/PrepareAbort get their markers sent again.
- :class:`TxnMarkerSender` sends each transaction's markers as WriteTxnMarkers to the
  leaders of its partitions (over the inter-broker listener, this broker included),
  retrying with backoff until every partition has its marker, across leader changes;
  then it records CompleteCommit/CompleteAbort. It gives up only when the coordinator
  partition moved (the new coordinator sends them again) or the topic was deleted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.server.broker_client import BrokerConnection
from moldau.server.coordinator_log import CoordinatorLog, first_error, replay_coordinator_partition
from moldau.transactions.coordinator import (
    CoordinatorAppendError,
    ProducerIdAllocationError,
    TransactionConfig,
    TransactionCoordinator,
    TxnMarkers,
)
from moldau.transactions.records import TRANSACTION_STATE_TOPIC

if TYPE_CHECKING:
    from moldau.log.log import Log
    from moldau.replication.replica_manager import ReplicaManager
    from moldau.server.config import BrokerConfig
    from moldau.server.metadata_cache import MetadataCache
    from moldau.server.producer_ids import ProducerIdManager
    from moldau.server.security.listener import InterBrokerSecurity

log = logging.getLogger(__name__)

WRITE_TXN_MARKERS_VERSION = 1
VERIFY_VERSION = 4  # AddPartitionsToTxn with verify_only (KIP-890 part 1)
RETRY_BACKOFF_S = (0.02, 1.0)  # first and longest wait between rounds of marker sends
# Partition errors after which a marker is not sent again to that partition: it can
# never be written there (a newer producer epoch or coordinator has written since).
_GIVE_UP = frozenset({ErrorCode.invalid_producer_epoch, ErrorCode.producer_fenced})


def transaction_config(config: BrokerConfig) -> TransactionConfig:
    """The coordinator's settings from the broker's properties (Kafka's names)."""
    return TransactionConfig(
        transactional_id_expiration_ms=int(config["transactional.id.expiration.ms"]),
        transaction_max_timeout_ms=int(config["transaction.max.timeout.ms"]),
        transaction_log_partitions=int(config["transaction.state.log.num.partitions"]),
        abort_timed_out_transactions_interval_ms=int(
            config["transaction.abort.timed.out.transaction.cleanup.interval.ms"]),
        remove_expired_transactional_ids_interval_ms=int(
            config["transaction.remove.expired.transaction.cleanup.interval.ms"]),
        offsets_topic_partitions=int(config["offsets.topic.num.partitions"]),
        transaction_log_replication_factor=int(config["transaction.state.log.replication.factor"]),
        transaction_log_min_isr=int(config["transaction.state.log.min.isr"]),
        transaction_log_segment_bytes=int(config["transaction.state.log.segment.bytes"]),
    )


class TransactionService:
    """The coordinator, its log and its marker sender, for one broker."""

    def __init__(self, broker_id: int, config: TransactionConfig, replicas: ReplicaManager,
                 metadata: MetadataCache, producer_ids: ProducerIdManager, security: InterBrokerSecurity,
                 clock: Callable[[], int], request_timeout_ms: int) -> None:
        self.clock = clock
        self.producer_ids = producer_ids
        self.replicas = replicas
        self.log = CoordinatorLog(replicas, clock, lambda: request_timeout_ms, TRANSACTION_STATE_TOPIC,
                                  CoordinatorAppendError)
        self.coordinator = TransactionCoordinator(config, self.log.append, self._allocate_producer_id)
        self.markers = TxnMarkerSender(broker_id, self.coordinator, metadata, security, clock, request_timeout_ms)

    def _allocate_producer_id(self) -> int:
        try:
            return self.producer_ids.take()
        except LookupError:
            raise ProducerIdAllocationError(ErrorCode.coordinator_load_in_progress) from None

    def load_partition(self, partition: int, coordinator_epoch: int, plog: Log) -> None:
        records, _ = replay_coordinator_partition(plog)
        markers = self.coordinator.load_partition(partition, coordinator_epoch, records, self.clock())
        log.info("coordinating the transactions of %s-%d (epoch %d): %d records replayed, %d to complete",
                 TRANSACTION_STATE_TOPIC, partition, coordinator_epoch,
                 sum(1 for _ in records), len(markers))
        for m in markers:
            self.markers.send(m)

    def unload_partition(self, partition: int) -> None:
        if partition in self.coordinator.loaded_partitions:
            log.info("no longer coordinating the transactions of %s-%d", TRANSACTION_STATE_TOPIC, partition)
            self.coordinator.unload_partition(partition)

    async def verify(self, transactional_id: str, producer_id: int, producer_epoch: int,
                     partitions: list[tuple[str, int]]) -> dict[tuple[str, int], ErrorCode]:
        """KIP-890 part 1, asked by a partition leader before a producer's first batch of a
        transaction there: NONE for each partition in the producer's ongoing transaction,
        else the coordinator's error. Answered here when this broker coordinates the id,
        else by AddPartitionsToTxn v4 (verify_only) to the coordinator; a coordinator that
        cannot be reached is NETWORK_EXCEPTION (retriable)."""
        if self.coordinator.is_loaded(transactional_id):
            return self.coordinator.verify_partitions_in_transaction(
                transactional_id, producer_id, producer_epoch, partitions)
        return await self.markers.verify_remotely(transactional_id, producer_id, producer_epoch, partitions)

    def tick(self) -> None:
        """Abort timed-out transactions (and expire transactional ids) when due."""
        with self.log.collect() as acks:
            markers = self.coordinator.tick(self.clock())
        for m in markers:
            self.send_when_written(m, acks)

    def send_when_written(self, markers: TxnMarkers, acks: list[asyncio.Future[ErrorCode]]) -> None:
        """Send the markers once the PrepareCommit/PrepareAbort record is acknowledged,
        as Kafka does: a marker must never be written for a decision a new coordinator
        might not find in the log."""
        partition = self.coordinator.partition_for(markers.transactional_id)
        tp = (TRANSACTION_STATE_TOPIC, partition)
        leader = self.replicas.partitions.get(tp)
        written_before = leader.log.log_end_offset if leader is not None else 0

        async def wait_then_send() -> None:
            error = await first_error(acks)
            if error == ErrorCode.none:
                self.markers.send(markers)
                return
            # Not acknowledged in time (the ISR was below min.insync.replicas, or the
            # leader is gone). The record is in this leader's log: once the high watermark
            # passes it, still at this coordinator epoch, the decision is safe after all and
            # the markers go; if the partition moves first, the next coordinator finds the
            # decision (or not) in its log and acts on it.
            log.warning("transactional id %s: the %s decision was not acknowledged (%s); waiting for it to "
                        "be replicated", markers.transactional_id, markers.result.name, error.name)
            backoff = RETRY_BACKOFF_S[0]
            while self.markers.still_ours(markers):
                current = self.replicas.partitions.get(tp)
                if current is not None and current.is_leader and current.log.high_watermark >= written_before:
                    self.markers.send(markers)
                    return
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RETRY_BACKOFF_S[1])

        if not acks:
            self.markers.send(markers)
        else:
            self.markers.track(asyncio.ensure_future(wait_then_send()))

    async def stop(self) -> None:
        await self.markers.stop()


class TxnMarkerSender:
    """Writes each transaction's markers to its partitions, then completes it; over the
    same cached connection per broker it also asks another broker's coordinator to
    verify a transactional produce (KIP-890 part 1, :meth:`verify_remotely`)."""

    def __init__(self, broker_id: int, coordinator: TransactionCoordinator, metadata: MetadataCache,
                 security: InterBrokerSecurity, clock: Callable[[], int], request_timeout_ms: int) -> None:
        self.broker_id = broker_id
        self.coordinator = coordinator
        self.metadata = metadata
        self.security = security
        self.clock = clock
        self.request_timeout_s = request_timeout_ms / 1000
        self._connections: dict[int, BrokerConnection] = {}
        self._tasks: set[asyncio.Future[None]] = set()

    def send(self, markers: TxnMarkers) -> None:
        self.track(asyncio.ensure_future(self._run(markers)))

    def track(self, task: asyncio.Future[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        for conn in self._connections.values():
            conn.close()
        self._connections.clear()

    def still_ours(self, markers: TxnMarkers) -> bool:
        partition = self.coordinator.partition_for(markers.transactional_id)
        return self.coordinator.coordinator_epoch(partition) == markers.coordinator_epoch

    async def _run(self, markers: TxnMarkers) -> None:
        remaining = set(markers.partitions)
        backoff = RETRY_BACKOFF_S[0]
        while True:
            if not self.still_ours(markers):
                log.info("transactional id %s: its coordinator partition moved; the new coordinator "
                         "completes the transaction", markers.transactional_id)
                return
            if remaining:
                try:
                    await self._send_round(markers, remaining)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("transactional id %s: sending markers failed", markers.transactional_id)
            if not remaining:
                error = self.coordinator.complete_markers(markers, self.clock())
                if error is ErrorCode.none:
                    log.debug("transactional id %s: %s complete", markers.transactional_id, markers.result.name)
                    return
                if error is not ErrorCode.coordinator_not_available:
                    log.info("transactional id %s: not completed: %s", markers.transactional_id, error.name)
                    return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RETRY_BACKOFF_S[1])

    async def _send_round(self, markers: TxnMarkers, remaining: set[tuple[str, int]]) -> None:
        by_leader: dict[int, list[tuple[str, int]]] = {}
        for topic, partition in sorted(remaining):
            state = self.metadata.topics.get(topic)
            if state is None or partition not in state.partitions:
                log.info("transactional id %s: %s-%d is gone; no marker for it", markers.transactional_id,
                         topic, partition)
                remaining.discard((topic, partition))
                continue
            leader = state.partitions[partition].leader
            if leader >= 0:
                by_leader.setdefault(leader, []).append((topic, partition))
        sends = [self._send_to(leader, markers, tps) for leader, tps in by_leader.items()]
        for written in await asyncio.gather(*sends, return_exceptions=True):
            if isinstance(written, BaseException):
                if isinstance(written, asyncio.CancelledError):
                    raise written
                continue
            for tp, error in written.items():
                if error is ErrorCode.none:
                    remaining.discard(tp)
                elif error in _GIVE_UP:
                    log.warning("transactional id %s: marker refused by %s-%d (%s); not sent again",
                                markers.transactional_id, *tp, error.name)
                    remaining.discard(tp)
                elif error is ErrorCode.transaction_coordinator_fenced:
                    remaining.clear()  # a newer coordinator took over: _run sees it moved
                else:
                    log.debug("transactional id %s: marker for %s-%d: %s, retrying",
                              markers.transactional_id, *tp, error.name)

    async def verify_remotely(self, transactional_id: str, producer_id: int, producer_epoch: int,
                              partitions: list[tuple[str, int]]) -> dict[tuple[str, int], ErrorCode]:
        from kio.schema.add_partitions_to_txn.v4 import request as req

        state = self.metadata.topics.get(TRANSACTION_STATE_TOPIC)
        part = state.partitions.get(self.coordinator.partition_for(transactional_id)) if state is not None else None
        if part is None or part.leader < 0:
            return dict.fromkeys(partitions, ErrorCode.coordinator_not_available)
        by_topic: dict[str, list[int]] = {}
        for topic, partition in partitions:
            by_topic.setdefault(topic, []).append(partition)
        request = req.AddPartitionsToTxnRequest(transactions=(req.AddPartitionsToTxnTransaction(
            transactional_id=transactional_id, producer_id=producer_id, producer_epoch=producer_epoch,
            verify_only=True,
            topics=tuple(req.AddPartitionsToTxnTopic(name=t, partitions=tuple(ps)) for t, ps in by_topic.items())),))
        try:
            response: Any = await self._request(part.leader, ApiKey.ADD_PARTITIONS_TO_TXN, VERIFY_VERSION, request)
        except (OSError, TimeoutError, ConnectionError, EOFError, LookupError):
            return dict.fromkeys(partitions, ErrorCode.network_exception)
        if response.error_code != ErrorCode.none:
            return dict.fromkeys(partitions, ErrorCode(response.error_code))
        out = dict.fromkeys(partitions, ErrorCode.none)
        for result in response.results_by_transaction:
            for topic in result.topic_results:
                for p in topic.results_by_partition:
                    out[(topic.name, p.partition_index)] = ErrorCode(p.partition_error_code)
        return out

    async def _request(self, broker_id: int, api_key: int, version: int, request: Any) -> Any:
        """One request to a broker over its inter-broker listener, on a cached connection;
        LookupError when the metadata has no address for it."""
        endpoint = self.metadata.endpoints.get(broker_id, {}).get(self.security.listener or "")
        if endpoint is None:
            raise LookupError(f"no address for broker {broker_id}")
        conn = self._connections.get(broker_id)
        if conn is None or (conn.host, conn.port) != tuple(endpoint):
            if conn is not None:
                conn.close()
            conn = self._connections[broker_id] = BrokerConnection(
                endpoint[0], endpoint[1], f"txn-coordination-{self.broker_id}", self.security)
        try:
            return await conn.request(api_key, version, request, timeout=self.request_timeout_s + 5)
        except (OSError, TimeoutError, ConnectionError, EOFError) as exc:
            log.info("%s to broker %d failed: %r", ApiKey(api_key).name, broker_id, exc)
            conn.close()
            self._connections.pop(broker_id, None)
            raise

    async def _send_to(self, leader: int, markers: TxnMarkers,
                       partitions: list[tuple[str, int]]) -> dict[tuple[str, int], ErrorCode]:
        from kio.schema.write_txn_markers.v1 import request as req

        by_topic: dict[str, list[int]] = {}
        for topic, partition in partitions:
            by_topic.setdefault(topic, []).append(partition)
        request = req.WriteTxnMarkersRequest(markers=(req.WritableTxnMarker(
            producer_id=markers.producer_id, producer_epoch=markers.producer_epoch,
            transaction_result=markers.result.value == 1,
            topics=tuple(req.WritableTxnMarkerTopic(name=t, partition_indexes=tuple(ps)) for t, ps in by_topic.items()),
            coordinator_epoch=markers.coordinator_epoch),))
        try:
            response: Any = await self._request(leader, ApiKey.WRITE_TXN_MARKERS, WRITE_TXN_MARKERS_VERSION, request)
        except LookupError:
            return {}
        out: dict[tuple[str, int], ErrorCode] = {}
        for result in response.markers:
            for topic in result.topics:
                for p in topic.partitions:
                    out[(topic.name, p.partition_index)] = ErrorCode(p.error_code)
        return out

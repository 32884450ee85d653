"""The group coordinator's writes to `__consumer_offsets`, acknowledged as Kafka's are:
with acks=all. A write is appended by the partition's leader at once (so the pure
coordinator, which applies what it appended, can go on), and a request that must not be
answered before the write is safe (OffsetCommit) collects its writes' acknowledgements
and awaits them: they complete when the high watermark passes the write, or fail at
``offsets.commit.timeout.ms`` or when the ISR is below ``min.insync.replicas``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from moldau.groups.coordinator import CoordinatorAppendError
from moldau.log.log import Log
from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import (
    CONTROL_TYPE_COMMIT,
    InvalidRecordError,
    RecordInput,
    build_batch,
    control_batch_type,
    iter_batches,
    iter_records,
)
from moldau.replication.replica_manager import ProduceResults, ReplicaManager

OFFSETS_TOPIC = "__consumer_offsets"


class CoordinatorLog:
    """The writes of one coordinator to its internal topic (``__consumer_offsets`` for
    groups, ``__transaction_state`` for transactions); a refused append raises
    ``append_error(code, message)``, the exception the coordinator maps."""

    def __init__(self, replicas: ReplicaManager, clock: Callable[[], int], timeout_ms: Callable[[], int],
                 topic: str = OFFSETS_TOPIC,
                 append_error: Callable[[ErrorCode, str], Exception] = CoordinatorAppendError) -> None:
        self.replicas = replicas
        self.clock = clock
        self.timeout_ms = timeout_ms
        self.topic = topic
        self._append_error = append_error
        self._collector: list[asyncio.Future[ErrorCode]] | None = None
        self._pending: dict[int, list[asyncio.Future[ErrorCode]]] = {}  # partition -> unacknowledged writes

    def append(self, partition: int, records: list[tuple[bytes, bytes | None]]) -> None:
        """The coordinator's append: raises CoordinatorAppendError if the leader refused
        it (not leader, ISR below min.insync.replicas, too large); otherwise the write is
        in the leader's log and its acknowledgement goes to the collecting request."""
        self._append(partition, build_batch([RecordInput(value, key) for key, value in records],
                                            timestamp=self.clock()))

    def append_transactional(self, partition: int, records: list[tuple[bytes, bytes | None]], producer_id: int,
                             producer_epoch: int) -> None:
        """TxnOffsetCommit's append: one transactional batch in the producer's name (no
        sequence: the leader checks only its epoch), settled by the transaction's marker."""
        self._append(partition, build_batch([RecordInput(value, key) for key, value in records],
                                            timestamp=self.clock(), producer_id=producer_id,
                                            producer_epoch=producer_epoch, base_sequence=-1, transactional=True),
                     from_coordinator=True)

    def _append(self, partition: int, batch: bytes, *, from_coordinator: bool = False) -> None:
        tp = (self.topic, partition)
        acked: asyncio.Future[ErrorCode] = asyncio.get_running_loop().create_future()
        messages: list[str | None] = []

        def done(results: ProduceResults) -> None:
            messages.append(results[tp].message)
            if not acked.done():
                acked.set_result(results[tp].error)

        self.replicas.append_records(-1, self.timeout_ms(), [(tp, batch)], done, from_coordinator=from_coordinator)
        if acked.done() and acked.result() != ErrorCode.none:
            raise self._append_error(acked.result(), messages[0] or "")
        if self._collector is not None:
            self._collector.append(acked)
        if not acked.done():
            pending = self._pending.setdefault(partition, [])
            pending.append(acked)
            acked.add_done_callback(lambda fut: self._forget(partition, fut))

    def _forget(self, partition: int, fut: asyncio.Future[ErrorCode]) -> None:
        pending = self._pending.get(partition)
        if pending is not None and fut in pending:
            pending.remove(fut)
            if not pending:
                del self._pending[partition]

    async def settled(self, partition: int) -> ErrorCode:
        """Once every write made so far to `partition` is acknowledged: NONE, or the
        first failed write's error (group metadata answers wait on this)."""
        return await first_error(list(self._pending.get(partition, ())))

    @contextmanager
    def collect(self) -> Iterator[list[asyncio.Future[ErrorCode]]]:
        """The acknowledgements of the writes made inside the block (the coordinator is
        synchronous: nothing else runs in between)."""
        collected: list[asyncio.Future[ErrorCode]] = []
        self._collector = collected
        try:
            yield collected
        finally:
            self._collector = None


async def first_error(acks: list[asyncio.Future[ErrorCode]]) -> ErrorCode:
    """NONE once every write is acknowledged, else the first write's error."""
    for code in await asyncio.gather(*acks):
        if code != ErrorCode.none:
            return code
    return ErrorCode.none


Record = tuple[bytes, bytes | None]


def replay_coordinator_partition(plog: Log) -> tuple[list[Record], list[tuple[int, list[Record]]]]:
    """A coordinator partition's (key, value) records in the order they take effect, and
    the records of transactions still open, by producer id. A transaction's records
    (TxnOffsetCommit) take effect where its COMMIT marker is; an aborted one's never."""
    records: list[Record] = []
    open_txns: dict[int, list[Record]] = {}
    offset = plog.log_start_offset
    while offset < plog.log_end_offset:
        data = plog.read(offset, 1 << 20)
        if not data:
            break
        for header, batch in iter_batches(data):
            if header.base_offset < offset:
                continue
            offset = header.next_offset
            if header.is_control:
                try:
                    committed = control_batch_type(batch) == CONTROL_TYPE_COMMIT
                except InvalidRecordError:
                    continue
                txn = open_txns.pop(header.producer_id, [])
                if committed:
                    records.extend(txn)
                continue
            target = open_txns.setdefault(header.producer_id, []) if header.is_transactional else records
            target.extend((r.key, r.value) for r in iter_records(batch) if r.key is not None)
    return records, list(open_txns.items())

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
from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import RecordInput, build_batch
from moldau.replication.replica_manager import ProduceResults, ReplicaManager

OFFSETS_TOPIC = "__consumer_offsets"


class CoordinatorLog:
    def __init__(self, replicas: ReplicaManager, clock: Callable[[], int], timeout_ms: Callable[[], int]) -> None:
        self.replicas = replicas
        self.clock = clock
        self.timeout_ms = timeout_ms
        self._collector: list[asyncio.Future[ErrorCode]] | None = None
        self._pending: dict[int, list[asyncio.Future[ErrorCode]]] = {}  # partition -> unacknowledged writes

    def append(self, partition: int, records: list[tuple[bytes, bytes | None]]) -> None:
        """The coordinator's append: raises CoordinatorAppendError if the leader refused
        it (not leader, ISR below min.insync.replicas, too large); otherwise the write is
        in the leader's log and its acknowledgement goes to the collecting request."""
        tp = (OFFSETS_TOPIC, partition)
        batch = build_batch([RecordInput(value, key) for key, value in records], timestamp=self.clock())
        acked: asyncio.Future[ErrorCode] = asyncio.get_running_loop().create_future()
        messages: list[str | None] = []

        def done(results: ProduceResults) -> None:
            messages.append(results[tp].message)
            if not acked.done():
                acked.set_result(results[tp].error)

        self.replicas.append_records(-1, self.timeout_ms(), [(tp, batch)], done)
        if acked.done() and acked.result() != ErrorCode.none:
            raise CoordinatorAppendError(acked.result(), messages[0] or "")
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

"""Producer ids for idempotent producers (Kafka's ProducerIdManager).

Each broker claims blocks of ids from the coordination service (ZooKeeper's
``/latest_producer_id_block``, or the embedded coordinator's file) and hands them out
one by one, so ids are unique across the cluster and across restarts without a round
trip per producer. A claimed block that a broker did not use up is simply skipped after
its restart, as in Kafka.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

BLOCK_SIZE = 1000  # Kafka's ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE


class ProducerIdManager:
    def __init__(self, broker_id: int, allocate: Callable[[int, int], tuple[int, int]],
                 block_size: int = BLOCK_SIZE) -> None:
        self.broker_id = broker_id
        self._allocate = allocate  # blocking (a coordination round trip): run in a thread
        self.block_size = block_size
        self._next = 0
        self._last = -1
        self._lock = asyncio.Lock()

    async def next_id(self) -> int:
        """A producer id never handed out before; CoordinationError when no block can be claimed."""
        await self.reserve()
        return self.take()

    async def reserve(self) -> None:
        """Make sure :meth:`take` has an id to give (claims a block if needed);
        CoordinationError when no block can be claimed."""
        async with self._lock:
            if self._next > self._last:
                first, last = await asyncio.to_thread(self._allocate, self.broker_id, self.block_size)
                self._next, self._last = first, last

    def take(self) -> int:
        """The next id of the claimed block, without waiting (the transaction coordinator
        is synchronous: its handler reserves first); LookupError when the block is used up."""
        if self._next > self._last:
            raise LookupError("no producer id block claimed")
        pid = self._next
        self._next += 1
        return pid

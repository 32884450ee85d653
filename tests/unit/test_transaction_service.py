"""The server's transaction service with in-memory seams: markers go out only once the
PrepareCommit/PrepareAbort decision is safe, also when its acknowledgement failed but the
record was replicated later at the same coordinator epoch."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from moldau.protocol.errors import ErrorCode
from moldau.replication.replica_manager import ProducePartitionResult, ProduceResults
from moldau.server.transaction_coordination import TransactionService
from moldau.transactions.config import TransactionConfig
from moldau.transactions.coordinator import TxnMarkers
from moldau.transactions.records import TRANSACTION_STATE_TOPIC


@dataclass
class FakeLog:
    log_end_offset: int = 0
    high_watermark: int = 0


@dataclass
class FakePartition:
    log: FakeLog = field(default_factory=FakeLog)
    is_leader: bool = True


class FakeReplicas:
    """The leader of __transaction_state-0: appends move the log end; acknowledgements
    are given by the test."""

    def __init__(self) -> None:
        self.partitions = {(TRANSACTION_STATE_TOPIC, 0): FakePartition()}
        self.waiting: list[tuple[tuple[str, int], Callable[[ProduceResults], None]]] = []

    def append_records(self, acks: int, timeout_ms: int, entries: Any, callback: Callable[[ProduceResults], None],
                       *, from_coordinator: bool = False) -> None:
        for tp, _ in entries:
            self.partitions[tp].log.log_end_offset += 1
            self.waiting.append((tp, callback))

    def acknowledge(self, error: ErrorCode) -> None:
        waiting, self.waiting = self.waiting, []
        for tp, callback in waiting:
            callback({tp: ProducePartitionResult(error)})


class FakeProducerIds:
    def __init__(self) -> None:
        self.next = 1000

    def take(self) -> int:
        self.next += 1
        return self.next


def make() -> tuple[TransactionService, FakeReplicas, list[TxnMarkers]]:
    replicas = FakeReplicas()
    service = TransactionService(0, TransactionConfig(transaction_log_partitions=1), replicas,  # type: ignore[arg-type]
                                 None, FakeProducerIds(), None, lambda: 1000, 30_000)  # type: ignore[arg-type]
    sent: list[TxnMarkers] = []
    service.markers.send = sent.append  # type: ignore[method-assign]
    service.coordinator.load_partition(0, 7, [], 0)
    return service, replicas, sent


async def open_transaction(service: TransactionService, replicas: FakeReplicas) -> tuple[int, int]:
    result = service.coordinator.init_producer_id("tx", 60_000, 1000)
    assert result.error == ErrorCode.none
    assert service.coordinator.add_partitions_to_txn("tx", result.producer_id, result.producer_epoch,
                                                     [("t", 0)], 1000) == ErrorCode.none
    replicas.acknowledge(ErrorCode.none)
    return result.producer_id, result.producer_epoch


def end(service: TransactionService, pid: int, epoch: int) -> TxnMarkers:
    with service.log.collect() as acks:
        result = service.coordinator.end_txn("tx", pid, epoch, True, 1000)
    assert result.error == ErrorCode.none and result.markers is not None
    service.send_when_written(result.markers, acks)
    return result.markers


def test_markers_wait_for_the_decision_to_be_acknowledged() -> None:
    async def scenario() -> None:
        service, replicas, sent = make()
        pid, epoch = await open_transaction(service, replicas)
        markers = end(service, pid, epoch)
        await asyncio.sleep(0.01)
        assert sent == []
        replicas.acknowledge(ErrorCode.none)
        await asyncio.sleep(0.01)
        assert sent == [markers]
        await service.stop()

    asyncio.run(scenario())


def test_a_decision_acknowledged_late_still_gets_its_markers_and_a_moved_one_does_not() -> None:
    async def scenario() -> None:
        service, replicas, sent = make()
        pid, epoch = await open_transaction(service, replicas)
        markers = end(service, pid, epoch)
        replicas.acknowledge(ErrorCode.not_enough_replicas_after_append)
        await asyncio.sleep(0.1)
        assert sent == []  # not replicated: the decision may still be lost
        log = replicas.partitions[(TRANSACTION_STATE_TOPIC, 0)].log
        log.high_watermark = log.log_end_offset  # the ISR recovered: now it is safe
        await asyncio.sleep(0.3)
        assert sent == [markers]
        await service.stop()

        service, replicas, sent = make()
        pid, epoch = await open_transaction(service, replicas)
        end(service, pid, epoch)
        replicas.acknowledge(ErrorCode.not_enough_replicas_after_append)
        service.unload_partition(0)  # leadership moved: the next coordinator decides
        log = replicas.partitions[(TRANSACTION_STATE_TOPIC, 0)].log
        log.high_watermark = log.log_end_offset
        await asyncio.sleep(0.3)
        assert sent == []
        await service.stop()

    asyncio.run(scenario())

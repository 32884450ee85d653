"""WriteTxnMarkers (v1): a transaction coordinator asks this broker, as the partitions'
leader, to end a producer's transaction in them with a COMMIT or ABORT control batch.

Each marker is appended as the leader with the coordinator's origin (control batches
are refused from clients) and acknowledged as Kafka does, once replicated: acks=all,
bounded by ``request.timeout.ms``. A marker written to a ``__consumer_offsets`` partition
also settles the producer's pending transactional offset commits in the group
coordinator (committed, or dropped).
"""
from __future__ import annotations

import asyncio
from typing import Any

from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.replication.replica_manager import ProduceResults
from moldau.server.context import HandlerContext
from moldau.server.coordinator_log import OFFSETS_TOPIC
from moldau.server.handlers._common import response_types
from moldau.server.network import Deferred
from moldau.transactions.control import ControlRecordType, EndTransactionMarker, build_end_txn_marker

DEFAULT_TIMEOUT_MS = 30_000


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.WRITE_TXN_MARKERS, header.api_version)
    timeout_ms = int(ctx.config.values.get("request.timeout.ms", DEFAULT_TIMEOUT_MS))
    loop = asyncio.get_running_loop()
    pending: list[tuple[Any, dict[tuple[str, int], ErrorCode], asyncio.Future[ProduceResults] | None]] = []
    for marker in request.markers or ():  # null arrays (v0 may carry them) are empty
        codes: dict[tuple[str, int], ErrorCode] = {}
        entries: list[tuple[tuple[str, int], bytes]] = []
        control = ControlRecordType.COMMIT if marker.transaction_result else ControlRecordType.ABORT
        valid = marker.producer_id >= 0 and marker.producer_epoch >= 0
        batch = build_end_txn_marker(
            EndTransactionMarker(marker.producer_id, marker.producer_epoch, control, marker.coordinator_epoch),
            ctx.clock()) if valid else b""
        for topic in marker.topics or ():
            for index in topic.partition_indexes or ():
                if not valid:
                    codes[(topic.name, index)] = ErrorCode.invalid_request  # no producer to end a transaction of
                elif not ctx.metadata.partition_exists(topic.name, index):
                    codes[(topic.name, index)] = ErrorCode.unknown_topic_or_partition
                else:
                    entries.append(((topic.name, index), batch))
        written: asyncio.Future[ProduceResults] | None = None
        if entries:
            future: asyncio.Future[ProduceResults] = loop.create_future()

            def done(results: ProduceResults, future: asyncio.Future[ProduceResults] = future) -> None:
                if not future.done():
                    future.set_result(results)

            ctx.replicas.append_records(-1, timeout_ms, entries, done, from_coordinator=True)
            written = future
        pending.append((marker, codes, written))

    async def answer() -> Any:
        results = []
        for marker, codes, written in pending:
            if written is not None:
                appended = await written
                for tp, result in appended.items():
                    codes[tp] = result.error
                    if tp[0] == OFFSETS_TOPIC and result.error == ErrorCode.none:
                        ctx.groups.complete_transaction(tp[1], marker.producer_id, marker.transaction_result)
            results.append(build(
                t.WritableTxnMarkerResult, producer_id=marker.producer_id,
                topics=tuple(build(t.WritableTxnMarkerTopicResult, name=topic.name, partitions=tuple(
                    build(t.WritableTxnMarkerPartitionResult, partition_index=index,
                          error_code=codes.get((topic.name, index), ErrorCode.unknown_server_error))
                    for index in topic.partition_indexes or ())) for topic in marker.topics or ())))
        return build(t.WriteTxnMarkersResponse, markers=tuple(results))

    if all(written is None or written.done() for _, _, written in pending):
        return await answer()
    return Deferred(answer())

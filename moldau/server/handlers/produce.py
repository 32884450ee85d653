"""Produce: append each partition's record batches through the replica manager.

acks=0 gets no response at all; acks=1 is answered after the leader's append; acks=all
(-1) after every in-sync replica has the batch, i.e. when the high watermark passes it,
bounded by the request's timeout (`ReplicaManager.append_records`, a delayed produce).
`min.insync.replicas` is checked before the append (NOT_ENOUGH_REPLICAS) and when the
acknowledgement is due (NOT_ENOUGH_REPLICAS_AFTER_APPEND). A batch refused record by
record (a keyless record in a compacted topic) names each record in `record_errors`.
"""
from __future__ import annotations

import asyncio
from typing import Any

from moldau.protocol.apis import ApiKey
from moldau.protocol.framing import RequestHeader, build
from moldau.replication.replica_manager import ProducePartitionResult, ProduceResults
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE, response_types, timestamp_field
from moldau.server.network import Deferred


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    acks = request.acks
    entries = [((topic.name, pd.index), pd.records) for topic in request.topic_data for pd in topic.partition_data]
    timeout_ms = max(int(request.timeout.total_seconds() * 1000), 0)
    answer: asyncio.Future[ProduceResults] = asyncio.get_running_loop().create_future()

    def done(results: ProduceResults) -> None:
        if not answer.done():
            answer.set_result(results)

    ctx.replicas.append_records(acks, timeout_ms, entries, done)
    if acks == 0:
        return None
    if answer.done():
        return _response(header, request, answer.result())

    # acks=all: the batches are in the logs; only the followers are awaited. Later
    # requests on this connection are served meanwhile (responses still go out in order).
    async def complete() -> Any:
        return _response(header, request, await answer)

    return Deferred(complete())


def _response(header: RequestHeader, request: Any, results: ProduceResults) -> Any:
    t = response_types(ApiKey.PRODUCE, header.api_version)

    def partition(name: str, index: int) -> Any:
        r = results[(name, index)]
        return build(
            t.PartitionProduceResponse,
            index=index,
            error_code=r.error,
            base_offset=r.base_offset,
            log_append_time=timestamp_field(r.log_append_time),
            log_start_offset=r.log_start_offset,
            record_errors=_record_errors(t, r),
            error_message=r.message,
        )

    return build(
        t.ProduceResponse,
        responses=tuple(
            build(t.TopicProduceResponse, name=topic.name,
                  partition_responses=tuple(partition(topic.name, pd.index) for pd in topic.partition_data))
            for topic in request.topic_data
        ),
        throttle_time=NO_THROTTLE,
    )


def _record_errors(t: Any, r: ProducePartitionResult) -> tuple[Any, ...]:
    """Per-record errors (Produce v8+; older versions carry only the message)."""
    if not r.record_errors or not hasattr(t, "BatchIndexAndErrorMessage"):
        return ()
    return tuple(build(t.BatchIndexAndErrorMessage, batch_index=e.batch_index, batch_index_error_message=e.message)
                 for e in r.record_errors)

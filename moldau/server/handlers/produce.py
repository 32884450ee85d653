"""Produce: append each partition's record batches through the replica manager.

acks=0 gets no response at all; acks=1 is answered after the leader's append; acks=all
(-1) after every in-sync replica has the batch, i.e. when the high watermark passes it,
bounded by the request's timeout (`ReplicaManager.append_records`, a delayed produce).
`min.insync.replicas` is checked before the append (NOT_ENOUGH_REPLICAS) and when the
acknowledgement is due (NOT_ENOUGH_REPLICAS_AFTER_APPEND). A batch refused record by
record (a keyless record in a compacted topic) names each record in `record_errors`.

With an authorizer, each topic needs Write (else TOPIC_AUTHORIZATION_FAILED for its
partitions, the others are appended), and a transactional produce Write on its
transactional id (else TRANSACTIONAL_ID_AUTHORIZATION_FAILED for every partition).
"""
from __future__ import annotations

import asyncio
from typing import Any

from moldau.authorizer.acl import AclOperation, ResourceType
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.replication.replica_manager import ProducePartitionResult, ProduceResults, TopicPartition
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE, response_types, timestamp_field
from moldau.server.network import Deferred


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    acks = request.acks
    entries = [((topic.name, pd.index), pd.records) for topic in request.topic_data for pd in topic.partition_data]
    denied: ProduceResults = {}
    if ctx.acls.enabled:
        entries, denied = _authorize(ctx, header, request, entries)
    timeout_ms = max(int(request.timeout.total_seconds() * 1000), 0)
    answer: asyncio.Future[ProduceResults] = asyncio.get_running_loop().create_future()

    def done(results: ProduceResults) -> None:
        if not answer.done():
            answer.set_result(results | denied if denied else results)

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


def _authorize(ctx: HandlerContext, header: RequestHeader, request: Any, entries: list[tuple[TopicPartition, Any]]
               ) -> tuple[list[tuple[TopicPartition, Any]], ProduceResults]:
    """The entries the principal may append, and the results of the others."""
    transactional_id = getattr(request, "transactional_id", None)
    if transactional_id is not None and not ctx.acls.allowed(
            header, AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id):
        refused = ProducePartitionResult(ErrorCode.transactional_id_authorization_failed)
        return [], {tp: refused for tp, _ in entries}
    writable = ctx.acls.topics_allowed(header, AclOperation.WRITE, {tp[0] for tp, _ in entries})
    refused = ProducePartitionResult(ErrorCode.topic_authorization_failed)
    return ([e for e in entries if e[0][0] in writable],
            {tp: refused for tp, _ in entries if tp[0] not in writable})


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

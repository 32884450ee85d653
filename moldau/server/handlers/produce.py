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
from moldau.protocol.records import HEADER_SIZE, read_header
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
    refused: ProduceResults = {}
    if getattr(request, "transactional_id", None):
        refused = await verify_transactional_batches(ctx, request.transactional_id, entries)
        entries = [(tp, records) for tp, records in entries if tp not in refused]

    def done(results: ProduceResults) -> None:
        if not answer.done():
            answer.set_result({**results, **refused, **denied})

    if not entries:
        done({})

    else:
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


# What a failed verification tells the producer (Kafka's ReplicaManager): a partition not
# in the transaction is INVALID_TXN_STATE, a fenced producer INVALID_PRODUCER_EPOCH, and a
# coordinator that cannot answer now NOT_ENOUGH_REPLICAS, which every client retries.
_VERIFICATION_ERRORS = {
    ErrorCode.transaction_abortable: ErrorCode.invalid_txn_state,
    ErrorCode.producer_fenced: ErrorCode.invalid_producer_epoch,
    ErrorCode.concurrent_transactions: ErrorCode.not_enough_replicas,
    ErrorCode.network_exception: ErrorCode.not_enough_replicas,
    ErrorCode.coordinator_load_in_progress: ErrorCode.not_enough_replicas,
    ErrorCode.coordinator_not_available: ErrorCode.not_enough_replicas,
    ErrorCode.not_coordinator: ErrorCode.not_enough_replicas,
}


async def verify_transactional_batches(ctx: HandlerContext, transactional_id: str,
                                       entries: list[tuple[tuple[str, int], bytes | None]]) -> ProduceResults:
    """KIP-890 part 1: before a producer's first transactional batch in a partition this
    broker leads, ask its transaction coordinator whether the partition is in the
    producer's ongoing transaction. A late produce of an aborted (or timed-out) transaction
    would otherwise open a transaction no marker will ever end, and hold every
    read_committed reader back. Returns the refused partitions' results."""
    if ctx.transactions is None:
        return {}
    to_verify: dict[tuple[str, int], tuple[Any, object]] = {}
    producer: tuple[int, int] | None = None
    for tp, records in entries:
        if not records or len(records) < HEADER_SIZE:
            continue
        first = read_header(records)
        if not first.is_transactional or first.is_control or first.producer_id < 0:
            continue
        partition = ctx.replicas.leader_partition_or_none(tp)
        if partition is None:
            continue  # the append answers NOT_LEADER_OR_FOLLOWER
        state = partition.log.producer_state
        if producer is None:
            producer = (first.producer_id, first.producer_epoch)
        if state.needs_verification(first.producer_id, first.producer_epoch):
            to_verify[tp] = (state, state.start_verification(first.producer_id))
    if not to_verify or producer is None:
        return {}
    codes = await ctx.transactions.verify(transactional_id, producer[0], producer[1], list(to_verify))
    refused: ProduceResults = {}
    for tp, (state, token) in to_verify.items():
        code = codes.get(tp, ErrorCode.unknown_server_error)
        if code == ErrorCode.none and not state.verification_holds(producer[0], token):
            code = ErrorCode.invalid_txn_state  # its transaction ended while we asked
        if code != ErrorCode.none:
            code = _VERIFICATION_ERRORS.get(code, code)
            message = "Partition was not added to the transaction" if code == ErrorCode.invalid_txn_state else None
            refused[tp] = ProducePartitionResult(code, message=message)
    return refused


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

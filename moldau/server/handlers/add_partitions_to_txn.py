"""AddPartitionsToTxn: partitions join the producer's transaction before it produces to
them (v0-v3, from clients, one transaction per request). A partition that does not exist
gets UNKNOWN_TOPIC_OR_PARTITION and the others OPERATION_NOT_ATTEMPTED, as in Kafka;
else every partition gets the coordinator's one answer. v4 (from brokers, batched):
with ``verify_only`` a partition leader asks whether partitions are in an ongoing
transaction before it appends a producer's first transactional batch (KIP-890 part 1)."""
from __future__ import annotations

from typing import Any

from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE, response_types
from moldau.server.handlers._transactions import after_writes, service
from moldau.transactions.coordinator import fenced_error_for_version


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.ADD_PARTITIONS_TO_TXN, header.api_version)
    txn = service(ctx)
    if header.api_version >= 4:
        return _batched(ctx, t, request)
    topics = request.v3_and_below_topics or ()
    wanted = [(topic.name, p) for topic in topics for p in topic.partitions or ()]
    missing = {tp for tp in wanted if not ctx.metadata.partition_exists(*tp)}
    acks: list[Any] = []
    if missing:
        error = ErrorCode.operation_not_attempted
    else:
        with txn.log.collect() as acks:
            error = txn.coordinator.add_partitions_to_txn(
                request.v3_and_below_transactional_id, request.v3_and_below_producer_id,
                request.v3_and_below_producer_epoch, wanted, ctx.clock())
        error = fenced_error_for_version(error, ApiKey.ADD_PARTITIONS_TO_TXN, header.api_version)

    def answer(code: ErrorCode) -> Any:
        return build(t.AddPartitionsToTxnResponse, throttle_time=NO_THROTTLE, results_by_topic_v3_and_below=tuple(
            build(t.AddPartitionsToTxnTopicResult, name=topic.name, results_by_partition=tuple(
                build(t.AddPartitionsToTxnPartitionResult, partition_index=p,
                      partition_error_code=ErrorCode.unknown_topic_or_partition if (topic.name, p) in missing
                      else code)
                for p in topic.partitions or ()))
            for topic in topics))

    return after_writes(acks, error, answer)


def _batched(ctx: HandlerContext, t: Any, request: Any) -> Any:
    """v4: each transaction verified (verify_only) or added, partition by partition."""
    coordinator = service(ctx).coordinator
    results = []
    acks: list[Any] = []
    for txn in request.transactions or ():
        wanted = [(topic.name, p) for topic in txn.topics or () for p in topic.partitions or ()]
        if txn.verify_only:
            codes = coordinator.verify_partitions_in_transaction(
                txn.transactional_id, txn.producer_id, txn.producer_epoch, wanted)
        else:
            with service(ctx).log.collect() as written:
                error = coordinator.add_partitions_to_txn(
                    txn.transactional_id, txn.producer_id, txn.producer_epoch, wanted, ctx.clock())
            acks += written
            codes = dict.fromkeys(wanted, error)
        results.append(build(t.AddPartitionsToTxnResult, transactional_id=txn.transactional_id, topic_results=tuple(
            build(t.AddPartitionsToTxnTopicResult, name=topic.name, results_by_partition=tuple(
                build(t.AddPartitionsToTxnPartitionResult, partition_index=p,
                      partition_error_code=codes[(topic.name, p)])
                for p in topic.partitions or ()))
            for topic in txn.topics or ())))
    return after_writes(acks, ErrorCode.none, lambda code: build(
        t.AddPartitionsToTxnResponse, throttle_time=NO_THROTTLE, error_code=code,
        results_by_transaction=tuple(results)))

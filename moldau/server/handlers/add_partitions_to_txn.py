"""AddPartitionsToTxn (v0-v3, one transaction per request): partitions join the
producer's transaction before it produces to them. A partition that does not exist gets
UNKNOWN_TOPIC_OR_PARTITION and the others OPERATION_NOT_ATTEMPTED, as in Kafka; else
every partition gets the coordinator's one answer."""
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

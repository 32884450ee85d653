"""InitProducerId: a producer id and epoch for an idempotent producer (v0-v5).

Without a transactional id Kafka hands out a fresh producer id with epoch 0 on every
call, whatever id and epoch the request carries (a KIP-360 client asking to bump its
epoch simply gets a new id). With one, the transaction coordinator answers
(moldau/transactions/coordinator.py): the id's producer id and its next epoch, fencing
older instances; an open transaction is aborted first (CONCURRENT_TRANSACTIONS until
its markers are written, and the client retries).

With an authorizer: Write on the transactional id when one is given
(TRANSACTIONAL_ID_AUTHORIZATION_FAILED), else IdempotentWrite on the cluster or Write on
at least one topic (Kafka 3.x; CLUSTER_AUTHORIZATION_FAILED).
"""
from __future__ import annotations

from typing import Any

from moldau.authorizer.acl import AclOperation, ResourceType
from moldau.controller.coordination import CoordinationError
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE, response_types
from moldau.server.handlers._transactions import after_writes, service
from moldau.transactions.coordinator import fenced_error_for_version


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.INIT_PRODUCER_ID, header.api_version)

    def answer(code: ErrorCode, producer_id: int = -1, epoch: int = -1) -> Any:
        return build(t.InitProducerIdResponse, throttle_time=NO_THROTTLE, error_code=code,
                     producer_id=producer_id, producer_epoch=epoch)

    if ctx.acls.enabled:
        if request.transactional_id is not None:
            if not ctx.acls.allowed(header, AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID,
                                    request.transactional_id):
                return answer(ErrorCode.transactional_id_authorization_failed)
        elif not (ctx.acls.cluster_allowed(header, AclOperation.IDEMPOTENT_WRITE)
                  or ctx.acls.any_topic_allowed(header, AclOperation.WRITE)):
            return answer(ErrorCode.cluster_authorization_failed)
    if request.transactional_id is not None:
        txn = service(ctx)
        try:
            await ctx.producer_ids.reserve()
        except CoordinationError:
            return answer(ErrorCode.coordinator_not_available)
        timeout_ms = int(request.transaction_timeout.total_seconds() * 1000)
        with txn.log.collect() as acks:
            result = txn.coordinator.init_producer_id(
                request.transactional_id, timeout_ms, ctx.clock(),
                getattr(request, "producer_id", -1), getattr(request, "producer_epoch", -1))
        if result.markers is not None:
            txn.send_when_written(result.markers, acks)
        error = fenced_error_for_version(result.error, ApiKey.INIT_PRODUCER_ID, header.api_version)
        return after_writes(acks, error, lambda code: answer(
            code, result.producer_id if code == ErrorCode.none else -1,
            result.producer_epoch if code == ErrorCode.none else -1))
    manager = ctx.producer_ids
    try:
        producer_id = await manager.next_id()
    except CoordinationError:
        return answer(ErrorCode.coordinator_not_available)
    return answer(ErrorCode.none, producer_id, 0)

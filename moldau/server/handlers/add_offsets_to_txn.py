"""AddOffsetsToTxn (v0-v3): the group's ``__consumer_offsets`` partition joins the
transaction, so that the TxnOffsetCommit that follows gets the transaction's marker."""
from __future__ import annotations

from typing import Any

from moldau.protocol.apis import ApiKey
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE, response_types
from moldau.server.handlers._transactions import after_writes, service
from moldau.transactions.coordinator import fenced_error_for_version


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.ADD_OFFSETS_TO_TXN, header.api_version)
    txn = service(ctx)
    with txn.log.collect() as acks:
        error = txn.coordinator.add_offsets_to_txn(request.transactional_id, request.producer_id,
                                                   request.producer_epoch, request.group_id, ctx.clock())
    error = fenced_error_for_version(error, ApiKey.ADD_OFFSETS_TO_TXN, header.api_version)
    return after_writes(acks, error, lambda code: build(t.AddOffsetsToTxnResponse, throttle_time=NO_THROTTLE,
                                                       error_code=code))

"""EndTxn (v0-v4): commit or abort the producer's ongoing transaction. The coordinator
writes PrepareCommit/PrepareAbort and answers once it is acknowledged; the markers are
then written to every partition of the transaction in the background
(server/transaction_coordination.py), which completes it."""
from __future__ import annotations

from typing import Any

from moldau.protocol.apis import ApiKey
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE, response_types
from moldau.server.handlers._transactions import after_writes, service
from moldau.transactions.coordinator import fenced_error_for_version


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.END_TXN, header.api_version)
    txn = service(ctx)
    with txn.log.collect() as acks:
        result = txn.coordinator.end_txn(request.transactional_id, request.producer_id, request.producer_epoch,
                                         request.committed, ctx.clock())
    if result.markers is not None:
        txn.send_when_written(result.markers, acks)
    error = fenced_error_for_version(result.error, ApiKey.END_TXN, header.api_version)
    return after_writes(acks, error, lambda code: build(t.EndTxnResponse, throttle_time=NO_THROTTLE,
                                                       error_code=code))

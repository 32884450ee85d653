"""ListTransactions (v0-v1): the transactional ids this broker coordinates, filtered by
state, producer id and (v1, KIP-994) how long their transaction has been open
(``kafka-transactions.sh list`` asks every broker)."""
from __future__ import annotations

from typing import Any

from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE, response_types
from moldau.server.handlers._transactions import service


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.LIST_TRANSACTIONS, header.api_version)
    listed, unknown = service(ctx).coordinator.list_transactions(
        request.state_filters or (), request.producer_id_filters or (),
        getattr(request, "duration_filter", -1), ctx.clock())
    return build(t.ListTransactionsResponse, throttle_time=NO_THROTTLE, error_code=ErrorCode.none,
                 unknown_state_filters=tuple(unknown),
                 transaction_states=tuple(build(t.TransactionState, transactional_id=tid, producer_id=pid,
                                                transaction_state=state) for tid, pid, state in sorted(listed)))

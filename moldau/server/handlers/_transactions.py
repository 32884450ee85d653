"""What the transaction coordinator's handlers share: the service (or NOT_COORDINATOR
when the broker has none), and answers given once the coordinator's writes to
``__transaction_state`` are acknowledged."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moldau.protocol.errors import ErrorCode
from moldau.server.context import HandlerContext
from moldau.server.coordinator_log import first_error
from moldau.server.network import Deferred
from moldau.server.transaction_coordination import TransactionService
from moldau.transactions.coordinator import transaction_append_error


def service(ctx: HandlerContext) -> TransactionService:
    if ctx.transactions is None:
        raise RuntimeError("this broker runs no transaction coordinator")
    return ctx.transactions


def after_writes(acks: list[Any], error: ErrorCode, answer: Callable[[ErrorCode], Any]) -> Any:
    """``answer(error)`` once every write is acknowledged; a write that fails turns a
    NONE into Kafka's mapping of its error (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE)."""
    if not acks:
        return answer(error)

    async def acknowledged() -> Any:
        failed = await first_error(acks)
        if failed != ErrorCode.none and error == ErrorCode.none:
            return answer(transaction_append_error(failed))
        return answer(error)

    return Deferred(acknowledged())

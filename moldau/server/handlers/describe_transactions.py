"""DescribeTransactions (v0): the state of transactional ids this broker coordinates
(``kafka-transactions.sh describe``); an id coordinated elsewhere gets NOT_COORDINATOR,
an unknown one TRANSACTIONAL_ID_NOT_FOUND."""
from __future__ import annotations

import datetime
from typing import Any

from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE, response_types
from moldau.server.handlers._transactions import service

EPOCH = datetime.datetime.fromtimestamp(0, tz=datetime.UTC)


def _timestamp(ms: int) -> datetime.datetime:
    """kio's non-nullable int64 timestamp: -1 (no transaction) is the epoch minus 1 ms."""
    return EPOCH + datetime.timedelta(milliseconds=ms)


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.DESCRIBE_TRANSACTIONS, header.api_version)
    coordinator = service(ctx).coordinator
    states = []
    for transactional_id in request.transactional_ids or ():
        d = coordinator.describe_transaction(transactional_id)
        by_topic: dict[str, list[int]] = {}
        for topic, partition in sorted(d.partitions):
            by_topic.setdefault(topic, []).append(partition)
        states.append(build(
            t.TransactionState, error_code=d.error, transactional_id=transactional_id, transaction_state=d.state,
            transaction_timeout=datetime.timedelta(milliseconds=d.transaction_timeout_ms),
            # An error answers Kafka's field default, 0; a state without a transaction -1.
            transaction_start_time=_timestamp(d.transaction_start_time_ms if d.error == ErrorCode.none else 0),
            producer_id=d.producer_id, producer_epoch=d.producer_epoch,
            topics=tuple(build(t.TopicData, topic=topic, partitions=tuple(ps)) for topic, ps in by_topic.items())))
    return build(t.DescribeTransactionsResponse, throttle_time=NO_THROTTLE, transaction_states=tuple(states))

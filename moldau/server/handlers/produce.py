"""Produce: append each partition's record batches to its log.

acks=0 gets no response at all; on a single broker acks=1 and acks=all are both answered
after the append (the leader is the whole ISR).
"""
from __future__ import annotations

from typing import Any

from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.broker import AppendResult, Broker
from moldau.server.handlers._common import NO_THROTTLE, response_types, timestamp_field


async def handle(broker: Broker, header: RequestHeader, request: Any) -> Any:
    acks = request.acks
    now = broker.clock()
    results: list[tuple[str, list[tuple[int, AppendResult]]]] = []
    for topic in request.topic_data:
        parts = []
        for pd in topic.partition_data:
            if acks not in (0, 1, -1):
                parts.append((pd.index, AppendResult(ErrorCode.invalid_required_acks)))
            else:
                parts.append((pd.index, broker.append(topic.name, pd.index, pd.records, now)))
        results.append((topic.name, parts))
    if acks == 0:
        return None
    t = response_types(ApiKey.PRODUCE, header.api_version)
    return build(
        t.ProduceResponse,
        responses=tuple(
            build(
                t.TopicProduceResponse,
                name=name,
                partition_responses=tuple(
                    build(
                        t.PartitionProduceResponse,
                        index=index,
                        error_code=r.error,
                        base_offset=r.base_offset,
                        log_append_time=timestamp_field(r.log_append_time),
                        log_start_offset=r.log_start_offset,
                        record_errors=(),
                        error_message=r.message,
                    )
                    for index, r in parts
                ),
            )
            for name, parts in results
        ),
        throttle_time=NO_THROTTLE,
    )

"""Produce: append each partition's record batches to its log.

acks=0 gets no response at all; acks=1 is answered after the leader's append; acks=all
(-1) after every in-sync replica has the batch, i.e. when the high watermark passes it,
bounded by the request's timeout. `min.insync.replicas` is checked before the append
(NOT_ENOUGH_REPLICAS) and when the acknowledgement is due (NOT_ENOUGH_REPLICAS_AFTER_APPEND).
"""
from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.broker import AppendResult, Broker
from moldau.server.handlers._common import NO_THROTTLE, response_types, timestamp_field
from moldau.server.network import Deferred


async def _await_replicas(broker: Broker, topic: str, partition: int, result: AppendResult,
                          timeout_s: float) -> AppendResult:
    plog = broker.partition_log(topic, partition)
    min_isr = plog.config.min_insync_replicas if plog is not None else 1
    code = await broker.wait_for_acks(topic, partition, result.last_offset + 1, timeout_s, min_isr)
    return result if code == ErrorCode.none else dataclasses.replace(result, error=code, base_offset=-1)


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
                parts.append((pd.index, broker.append(topic.name, pd.index, pd.records, now, acks)))
        results.append((topic.name, parts))
    if acks == 0:
        return None
    if acks == -1:
        timeout_s = max(request.timeout.total_seconds(), 0.0)
        waits = [
            (ti, pi, _await_replicas(broker, name, index, r, timeout_s))
            for ti, (name, parts) in enumerate(results)
            for pi, (index, r) in enumerate(parts)
            if r.error == ErrorCode.none
        ]
        if waits:
            # The batches are in the logs; only the followers are awaited. Later requests
            # on this connection are served meanwhile (responses still go out in order).
            async def complete() -> Any:
                done = await asyncio.gather(*(w for _, _, w in waits))
                for (ti, pi, _), r in zip(waits, done, strict=True):
                    results[ti][1][pi] = (results[ti][1][pi][0], r)
                return _response(header, results)

            return Deferred(complete())
    return _response(header, results)


def _response(header: RequestHeader, results: list[tuple[str, list[tuple[int, AppendResult]]]]) -> Any:
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

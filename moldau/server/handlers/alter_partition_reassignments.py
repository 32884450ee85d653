"""AlterPartitionReassignments (v0-1, KIP-455): move partitions to other brokers, change
their replication factor, or cancel a move (replicas null). Answered by the controller
once the reassignments are started (their data moves in the background; see
ListPartitionReassignments); another broker answers NOT_CONTROLLER, as Kafka does."""
from __future__ import annotations

import asyncio
from typing import Any

from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE, response_types, timeout_seconds


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.ALTER_PARTITION_REASSIGNMENTS, header.api_version)

    def answer(code: ErrorCode, message: str | None, results: dict[tuple[str, int], tuple[ErrorCode, str | None]]
               ) -> Any:
        topics = tuple(
            build(t.ReassignableTopicResponse, name=topic.name, partitions=tuple(
                build(t.ReassignablePartitionResponse, partition_index=p.partition_index,
                      error_code=results.get((topic.name, p.partition_index), (code, message))[0],
                      error_message=results.get((topic.name, p.partition_index), (code, message))[1])
                for p in topic.partitions))
            for topic in request.topics)
        return build(t.AlterPartitionReassignmentsResponse, throttle_time=NO_THROTTLE, error_code=code,
                     error_message=message, responses=topics)

    controller = ctx.active_controller()
    if controller is None:
        return answer(ErrorCode.not_controller, "This broker is not the controller.", {})
    wanted: dict[tuple[str, int], list[int] | None] = {}
    refused: dict[tuple[str, int], tuple[ErrorCode, str | None]] = {}
    allow_rf_change = getattr(request, "allow_replication_factor_change", True)
    for topic in request.topics:
        for p in topic.partitions:
            tp = (topic.name, p.partition_index)
            target = list(p.replicas) if p.replicas is not None else None
            if tp in wanted or tp in refused:
                refused[tp] = (ErrorCode.invalid_request, "The partition is listed twice.")
                wanted.pop(tp, None)
                continue
            state = ctx.metadata.topics.get(topic.name)
            part = state.partitions.get(p.partition_index) if state is not None else None
            if not allow_rf_change and target is not None and part is not None and len(target) != len(
                    part.replicas):
                refused[tp] = (ErrorCode.invalid_replication_factor,
                               "The replication factor is changed but allow_replication_factor_change is false.")
                continue
            wanted[tp] = target
    try:
        results = await asyncio.wait_for(controller.submit_reassignment(wanted), timeout_seconds(request.timeout))
    except TimeoutError:
        return answer(ErrorCode.request_timed_out, "The controller did not answer in time.", refused)
    return answer(ErrorCode.none, None, {**results, **refused})

"""ListPartitionReassignments (v0): the reassignments in progress, from the controller
(replicas, and which of them are being added or removed); topics null means all."""
from __future__ import annotations

import asyncio
from typing import Any

from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE, response_types, timeout_seconds


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.LIST_PARTITION_REASSIGNMENTS, header.api_version)
    controller = ctx.active_controller()
    if controller is None:
        return build(t.ListPartitionReassignmentsResponse, throttle_time=NO_THROTTLE,
                     error_code=ErrorCode.not_controller, error_message="This broker is not the controller.",
                     topics=())
    partitions = None
    if request.topics is not None:
        partitions = [(topic.name, p) for topic in request.topics for p in topic.partition_indexes]
    try:
        ongoing = await asyncio.wait_for(controller.list_reassignments(partitions), timeout_seconds(request.timeout))
    except TimeoutError:
        return build(t.ListPartitionReassignmentsResponse, throttle_time=NO_THROTTLE,
                     error_code=ErrorCode.request_timed_out, error_message="The controller did not answer in time.",
                     topics=())
    by_topic: dict[str, list[Any]] = {}
    for (name, p), ra in sorted(ongoing.items()):
        by_topic.setdefault(name, []).append(build(
            t.OngoingPartitionReassignment, partition_index=p, replicas=tuple(ra.replicas),
            adding_replicas=tuple(ra.adding), removing_replicas=tuple(ra.removing)))
    return build(t.ListPartitionReassignmentsResponse, throttle_time=NO_THROTTLE, error_code=ErrorCode.none,
                 error_message=None, topics=tuple(build(t.OngoingTopicReassignment, name=name, partitions=tuple(ps))
                                                  for name, ps in by_topic.items()))

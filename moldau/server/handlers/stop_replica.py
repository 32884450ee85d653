"""StopReplica (controller → broker): stop serving partitions, deleting them if asked."""
from __future__ import annotations

from typing import Any

from moldau.protocol import interbroker as ib
from moldau.protocol.framing import RequestHeader
from moldau.server.context import HandlerContext


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    code, errors = ctx.cluster.on_stop_replica(request)
    return ib.StopReplicaResponse(error_code=code, partition_errors=tuple(
        ib.StopReplicaPartitionError(topic_name=t, partition_index=p, error_code=e) for t, p, e in errors))

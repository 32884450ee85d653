"""ControlledShutdown (broker → controller): move my leaderships away before I stop."""
from __future__ import annotations

from typing import Any

from moldau.protocol import interbroker as ib
from moldau.protocol.framing import RequestHeader
from moldau.server.context import HandlerContext


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    code, remaining = await ctx.cluster.handle_controlled_shutdown(request.broker_id)
    return ib.ControlledShutdownResponse(error_code=code, remaining_partitions=tuple(
        ib.RemainingPartition(topic_name=t, partition_index=p) for t, p in remaining))

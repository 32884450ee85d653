"""LeaderAndIsr (controller → broker): become leader or follower of partitions."""
from __future__ import annotations

from typing import Any

from moldau.protocol import interbroker as ib
from moldau.protocol.framing import RequestHeader
from moldau.server.context import HandlerContext


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    configs = await ctx.admin.load_topic_configs([ts.topic_name for ts in request.topic_states])
    code, errors = ctx.cluster.on_leader_and_isr(request, configs)
    return ib.LeaderAndIsrResponse(error_code=code, partition_errors=tuple(
        ib.LeaderAndIsrPartitionError(topic_name=t, partition_index=p, error_code=e) for t, p, e in errors))

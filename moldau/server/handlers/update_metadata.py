"""UpdateMetadata (controller → broker): the cluster's brokers and partition states."""
from __future__ import annotations

from typing import Any

from moldau.protocol import interbroker as ib
from moldau.protocol.framing import RequestHeader
from moldau.server.context import HandlerContext


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    new = [ts.topic_name for ts in request.topic_states if ts.topic_name not in ctx.metadata.topics]
    configs = await ctx.admin.load_topic_configs(new)  # off the event loop
    return ib.UpdateMetadataResponse(error_code=ctx.cluster.on_update_metadata(request, configs))

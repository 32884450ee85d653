"""UpdateMetadata (controller → broker): the cluster's brokers and partition states."""
from __future__ import annotations

from typing import Any

from moldau.protocol import interbroker as ib
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader


async def handle(broker: Any, header: RequestHeader, request: Any) -> Any:
    if not hasattr(broker, "on_update_metadata"):
        return ib.UpdateMetadataResponse(error_code=ErrorCode.not_controller)
    new = [ts.topic_name for ts in request.topic_states if ts.topic_name not in broker.metadata.topics]
    configs = await broker.load_topic_configs(new)  # off the event loop
    return ib.UpdateMetadataResponse(error_code=broker.on_update_metadata(request, configs))

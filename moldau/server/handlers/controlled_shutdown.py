"""ControlledShutdown (broker → controller): move my leaderships away before I stop."""
from __future__ import annotations

from typing import Any

from moldau.protocol import interbroker as ib
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader


async def handle(broker: Any, header: RequestHeader, request: Any) -> Any:
    if not hasattr(broker, "handle_controlled_shutdown"):
        return ib.ControlledShutdownResponse(error_code=ErrorCode.not_controller, remaining_partitions=())
    code, remaining = await broker.handle_controlled_shutdown(request.broker_id)
    return ib.ControlledShutdownResponse(error_code=code, remaining_partitions=tuple(
        ib.RemainingPartition(topic_name=t, partition_index=p) for t, p in remaining))

"""LeaderAndIsr (controller → broker): become leader or follower of partitions."""
from __future__ import annotations

from typing import Any

from moldau.protocol import interbroker as ib
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader


async def handle(broker: Any, header: RequestHeader, request: Any) -> Any:
    if not hasattr(broker, "on_leader_and_isr"):  # a broker running alone has no controller
        return ib.LeaderAndIsrResponse(error_code=ErrorCode.not_controller, partition_errors=())
    configs = await broker.load_topic_configs([ts.topic_name for ts in request.topic_states])
    code, errors = broker.on_leader_and_isr(request, configs)
    return ib.LeaderAndIsrResponse(error_code=code, partition_errors=tuple(
        ib.LeaderAndIsrPartitionError(topic_name=t, partition_index=p, error_code=e) for t, p, e in errors))

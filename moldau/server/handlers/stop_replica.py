"""StopReplica (controller → broker): stop serving partitions, deleting them if asked."""
from __future__ import annotations

from typing import Any

from moldau.protocol import interbroker as ib
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader


async def handle(broker: Any, header: RequestHeader, request: Any) -> Any:
    if not hasattr(broker, "on_stop_replica"):
        return ib.StopReplicaResponse(error_code=ErrorCode.not_controller, partition_errors=())
    code, errors = broker.on_stop_replica(request)
    return ib.StopReplicaResponse(error_code=code, partition_errors=tuple(
        ib.StopReplicaPartitionError(topic_name=t, partition_index=p, error_code=e) for t, p, e in errors))

"""AlterPartition (leader → controller): the leader asks for a new ISR; the controller
checks the leader epoch and partition epoch and writes ZooKeeper (one writer per znode)."""
from __future__ import annotations

from typing import Any

from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE, response_types


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.ALTER_PARTITION, header.api_version)
    controller = ctx.active_controller()
    if controller is None:
        return build(t.AlterPartitionResponse, throttle_time=NO_THROTTLE, error_code=ErrorCode.not_controller,
                     topics=())
    return await controller.submit_alter_partition(request)

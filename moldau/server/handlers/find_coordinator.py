"""FindCoordinator: the broker that coordinates a group or a transactional id (v0-v3
one key, v4+ batched).

The coordinator of a group is the leader of `__consumer_offsets` partition
`partition_for(group_id)`, that of a transactional id the leader of `__transaction_state`
partition `partition_for(transactional_id)`; each topic is created on first use, as
Kafka does. With an authorizer, a key needs Describe on the group
(GROUP_AUTHORIZATION_FAILED) or on the transactional id (TRANSACTIONAL_ID_AUTHORIZATION_FAILED).
"""
from __future__ import annotations

from typing import Any

from moldau.authorizer.acl import AclOperation, ResourceType, authorization_error
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE, response_types

GROUP = 0
TRANSACTION = 1


async def _find(ctx: HandlerContext, header: RequestHeader, key: str, key_type: int,
                listener: str) -> tuple[ErrorCode, str | None, int, str, int]:
    if ctx.acls.enabled:
        resource_type = ResourceType.GROUP if key_type == GROUP else ResourceType.TRANSACTIONAL_ID
        if not ctx.acls.allowed(header, AclOperation.DESCRIBE, resource_type, key):
            return authorization_error(resource_type), None, -1, "", -1
    if key_type == TRANSACTION:
        if not key:
            return ErrorCode.invalid_request, "Transactional id is empty.", -1, "", -1
        node = await ctx.cluster.transaction_coordinator_node(key, listener)
    elif key_type != GROUP:
        return ErrorCode.invalid_request, f"Unknown coordinator type {key_type}.", -1, "", -1
    elif not key:
        return ErrorCode.invalid_request, "Group id is empty.", -1, "", -1
    else:
        node = await ctx.cluster.group_coordinator_node(key, listener)
    if node is None:
        return ErrorCode.coordinator_not_available, None, -1, "", -1
    node_id, host, port = node
    return ErrorCode.none, None, node_id, host, port


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.FIND_COORDINATOR, header.api_version)
    key_type = getattr(request, "key_type", GROUP)
    if header.api_version >= 4:
        coordinators = []
        for key in request.coordinator_keys:
            code, msg, node_id, host, port = await _find(ctx, header, key, key_type, header.listener)
            coordinators.append(build(t.Coordinator, key=key, node_id=node_id, host=host, port=port,
                                      error_code=code, error_message=msg))
        return build(t.FindCoordinatorResponse, throttle_time=NO_THROTTLE, coordinators=tuple(coordinators))
    code, msg, node_id, host, port = await _find(ctx, header, request.key, key_type, header.listener)
    return build(t.FindCoordinatorResponse, throttle_time=NO_THROTTLE, error_code=code, error_message=msg,
                 node_id=node_id, host=host, port=port)

"""DescribeCluster: cluster id, controller and brokers (the AdminClient's view)."""
from __future__ import annotations

from typing import Any

from moldau.authorizer.acl import CLUSTER_NAME, ResourceType
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE, response_types


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.DESCRIBE_CLUSTER, header.api_version)
    endpoint_type = getattr(request, "endpoint_type", 1)
    if endpoint_type != 1:  # 1 = brokers; 2 = controllers (KRaft only)
        return build(t.DescribeClusterResponse, throttle_time=NO_THROTTLE,
                     error_code=ErrorCode.unsupported_endpoint_type,
                     error_message="Only the broker endpoint type is supported.",
                     endpoint_type=endpoint_type, cluster_id=ctx.metadata.cluster_id,
                     controller_id=-1, brokers=(), cluster_authorized_operations=-2147483648)
    brokers = tuple(
        build(t.DescribeClusterBroker, broker_id=node_id, host=host, port=port, rack=rack)
        for node_id, host, port, rack in ctx.cluster.live_brokers(header.listener)
    )
    return build(t.DescribeClusterResponse, throttle_time=NO_THROTTLE, error_code=ErrorCode.none,
                 error_message=None, endpoint_type=1, cluster_id=ctx.metadata.cluster_id,
                 controller_id=ctx.cluster.controller_id(), brokers=brokers,
                 cluster_authorized_operations=(
                     ctx.acls.authorized_operations(header, ResourceType.CLUSTER, CLUSTER_NAME)
                     if request.include_cluster_authorized_operations else -2147483648))

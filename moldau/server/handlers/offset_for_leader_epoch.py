"""OffsetForLeaderEpoch (KIP-101/KIP-279/KIP-320): where a leader epoch ends in the leader's
log, so a follower (or a consumer) can cut a history that diverged. With an authorizer,
Describe on each topic, unless the sender has ClusterAction (a follower)."""
from __future__ import annotations

from typing import Any

from moldau.authorizer.acl import AclOperation
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.replication.partition import PartitionError
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE, response_types


def end_offset(ctx: HandlerContext, topic: str, partition: int, current: int, epoch: int) -> tuple[ErrorCode, int, int]:
    try:
        leader = ctx.replicas.leader_partition((topic, partition))
        leader.check_leader_epoch(current)
    except PartitionError as exc:
        return exc.code, -1, -1
    found_epoch, found_end = leader.log.end_offset_for_epoch(epoch)
    return ErrorCode.none, found_epoch, found_end


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.OFFSET_FOR_LEADER_EPOCH, header.api_version)
    topics = []
    describable = None
    if ctx.acls.enabled and not ctx.acls.cluster_allowed(header, AclOperation.CLUSTER_ACTION):
        describable = ctx.acls.topics_allowed(header, AclOperation.DESCRIBE, {topic.topic for topic in request.topics})
    for topic in request.topics:
        parts = []
        for p in topic.partitions:
            if describable is not None and topic.topic not in describable:
                code, epoch, end = ErrorCode.topic_authorization_failed, -1, -1
            else:
                code, epoch, end = end_offset(ctx, topic.topic, p.partition, getattr(p, "current_leader_epoch", -1),
                                              p.leader_epoch)
            parts.append(build(t.EpochEndOffset, error_code=code, partition=p.partition, leader_epoch=epoch,
                               end_offset=end))
        topics.append(build(t.OffsetForLeaderTopicResult, topic=topic.topic, partitions=tuple(parts)))
    return build(t.OffsetForLeaderEpochResponse, throttle_time=NO_THROTTLE, topics=tuple(topics))

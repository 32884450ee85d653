"""OffsetForLeaderEpoch (KIP-101/KIP-279/KIP-320): where a leader epoch ends in the leader's
log, so a follower (or a consumer) can cut a history that diverged."""
from __future__ import annotations

from typing import Any

from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.broker import Broker
from moldau.server.handlers._common import NO_THROTTLE, response_types
from moldau.server.handlers.fetch import epoch_error


def end_offset(broker: Broker, topic: str, partition: int, current: int, epoch: int) -> tuple[ErrorCode, int, int]:
    plog = broker.partition_log(topic, partition)
    if plog is None:
        return broker.partition_error(topic, partition), -1, -1
    fenced = epoch_error(broker, topic, partition, current)
    if fenced is not None:
        return fenced, -1, -1
    fn = getattr(plog, "end_offset_for_epoch", None)
    if fn is None:  # logs without an epoch cache: only the current epoch is known
        ours = broker.leader_epoch(topic, partition)
        return (ErrorCode.none, ours, plog.log_end_offset) if epoch == ours else (ErrorCode.none, -1, -1)
    found_epoch, found_end = fn(epoch)
    return ErrorCode.none, found_epoch, found_end


async def handle(broker: Broker, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.OFFSET_FOR_LEADER_EPOCH, header.api_version)
    topics = []
    for topic in request.topics:
        parts = []
        for p in topic.partitions:
            code, epoch, end = end_offset(broker, topic.topic, p.partition, getattr(p, "current_leader_epoch", -1),
                                          p.leader_epoch)
            parts.append(build(t.EpochEndOffset, error_code=code, partition=p.partition, leader_epoch=epoch,
                               end_offset=end))
        topics.append(build(t.OffsetForLeaderTopicResult, topic=topic.topic, partitions=tuple(parts)))
    return build(t.OffsetForLeaderEpochResponse, throttle_time=NO_THROTTLE, topics=tuple(topics))

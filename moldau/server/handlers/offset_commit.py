"""OffsetCommit: store a group's consumed positions in __consumer_offsets.

A commit is acknowledged only once its write is safe, as Kafka's: acks=all on the
offsets partition (server/coordinator_log.py). The answer is deferred meanwhile, so
the member's heartbeats on the same connection are still served.

With an authorizer: Read on the group (denied: every partition gets
GROUP_AUTHORIZATION_FAILED) and Read on each topic (TOPIC_AUTHORIZATION_FAILED)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moldau.authorizer.acl import AclOperation, ResourceType
from moldau.groups.coordinator import offset_append_error
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.coordinator_log import first_error
from moldau.server.handlers._common import NO_THROTTLE, response_types
from moldau.server.network import Deferred


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.OFFSET_COMMIT, header.api_version)
    generation = getattr(request, "generation_id_or_member_epoch", None)
    if generation is None:
        generation = request.generation_id
    retention = getattr(request, "retention_time", None)
    retention_ms = -1
    if retention is not None:
        retention_ms = int(retention.total_seconds() * 1000) if hasattr(retention, "total_seconds") else int(retention)
    readable: set[str] | None = None
    if ctx.acls.enabled:
        if not ctx.acls.allowed(header, AclOperation.READ, ResourceType.GROUP, request.group_id):
            return _response(t, request, {(topic.name, p.partition_index): ErrorCode.group_authorization_failed
                                          for topic in request.topics for p in topic.partitions})
        readable = ctx.acls.topics_allowed(header, AclOperation.READ, {topic.name for topic in request.topics})
    codes, valid = requested_offsets(ctx, request, readable)
    acks: list[Any] = []
    if valid:
        with ctx.coordinator_log.collect() as acks:
            codes.update(ctx.groups.commit_offsets(
                request.group_id, generation, request.member_id, getattr(request, "group_instance_id", None),
                valid, ctx.clock(), retention_ms))
    return answer_when_written(acks, valid, codes, lambda: _response(t, request, codes))


def requested_offsets(ctx: HandlerContext, request: Any, readable: set[str] | None = None
                      ) -> tuple[dict[tuple[str, int], ErrorCode], list[tuple[str, int, int, int, str | None]]]:
    """The offsets of an OffsetCommit or TxnOffsetCommit request: TOPIC_AUTHORIZATION_FAILED
    for topics outside ``readable`` (when given), UNKNOWN_TOPIC_OR_PARTITION for partitions
    that do not exist, (topic, partition, offset, leader epoch, metadata) for the others."""
    codes: dict[tuple[str, int], ErrorCode] = {}
    valid: list[tuple[str, int, int, int, str | None]] = []
    for topic in request.topics or ():
        for p in topic.partitions or ():
            if readable is not None and topic.name not in readable:
                codes[(topic.name, p.partition_index)] = ErrorCode.topic_authorization_failed
            elif not ctx.metadata.partition_exists(topic.name, p.partition_index):
                codes[(topic.name, p.partition_index)] = ErrorCode.unknown_topic_or_partition
            else:
                valid.append((topic.name, p.partition_index, p.committed_offset,
                              getattr(p, "committed_leader_epoch", -1), p.committed_metadata))
    return codes, valid


def answer_when_written(acks: list[Any], valid: list[tuple[str, int, int, int, str | None]],
                        codes: dict[tuple[str, int], ErrorCode], respond: Callable[[], Any]) -> Any:
    """``respond()`` once the commit's writes are acknowledged; a failed write turns the
    accepted partitions' NONE into Kafka's mapping of its error."""
    if not acks:
        return respond()

    async def acknowledged() -> Any:
        error = await first_error(acks)
        if error != ErrorCode.none:
            mapped = offset_append_error(error)
            for name, index, *_ in valid:
                if codes.get((name, index), ErrorCode.none) == ErrorCode.none:
                    codes[(name, index)] = mapped
        return respond()

    return Deferred(acknowledged())


def _response(t: Any, request: Any, codes: dict[tuple[str, int], ErrorCode]) -> Any:
    return build(
        t.OffsetCommitResponse,
        throttle_time=NO_THROTTLE,
        topics=tuple(
            build(t.OffsetCommitResponseTopic, name=topic.name, partitions=tuple(
                build(t.OffsetCommitResponsePartition, partition_index=p.partition_index,
                      error_code=codes.get((topic.name, p.partition_index), ErrorCode.none))
                for p in topic.partitions or ()))
            for topic in request.topics or ()
        ),
    )

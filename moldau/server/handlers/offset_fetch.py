"""OffsetFetch: a group's committed offsets; one group (v1-v7) or several (v8+)."""
from __future__ import annotations

from typing import Any

from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE, response_types


def _fetch(ctx: HandlerContext, group_id: str, topics: Any,
           require_stable: bool) -> tuple[ErrorCode, dict[str, list[Any]]]:
    wanted = None if topics is None else [(tp.name, p) for tp in topics for p in tp.partition_indexes]
    code, found = ctx.groups.fetch_offsets(group_id, wanted, require_stable)
    by_topic: dict[str, list[Any]] = {}
    if wanted is not None:
        for tp in topics:
            by_topic.setdefault(tp.name, [])
    for (topic, partition), (offset, epoch, metadata, err) in sorted(found.items()):
        by_topic.setdefault(topic, []).append((partition, offset, epoch, metadata, err))
    return code, by_topic


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    v = header.api_version
    t = response_types(ApiKey.OFFSET_FETCH, v)
    require_stable = getattr(request, "require_stable", False)
    if v >= 8:
        groups = []
        for g in request.groups:
            code, by_topic = _fetch(ctx, g.group_id, g.topics, require_stable)
            groups.append(build(t.OffsetFetchResponseGroup, group_id=g.group_id, error_code=code, topics=tuple(
                build(t.OffsetFetchResponseTopics, name=name, partitions=tuple(
                    build(t.OffsetFetchResponsePartitions, partition_index=p, committed_offset=o,
                          committed_leader_epoch=e, metadata=m, error_code=err)
                    for p, o, e, m, err in parts))
                for name, parts in by_topic.items())))
        return build(t.OffsetFetchResponse, throttle_time=NO_THROTTLE, groups=tuple(groups))
    code, by_topic = _fetch(ctx, request.group_id, request.topics, require_stable)
    topics = tuple(
        build(t.OffsetFetchResponseTopic, name=name, partitions=tuple(
            build(t.OffsetFetchResponsePartition, partition_index=p, committed_offset=o,
                  committed_leader_epoch=e, metadata=m, error_code=err if v >= 2 or code == 0 else code)
            for p, o, e, m, err in parts))
        for name, parts in by_topic.items()
    )
    return build(t.OffsetFetchResponse, throttle_time=NO_THROTTLE, topics=topics, error_code=code)

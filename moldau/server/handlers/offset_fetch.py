"""OffsetFetch: a group's committed offsets; one group (v1-v7) or several (v8+).

With an authorizer: Describe on the group (denied: GROUP_AUTHORIZATION_FAILED for the
group, no offsets) and on each topic (a named topic's partitions get
TOPIC_AUTHORIZATION_FAILED; an all-topics fetch leaves the others out)."""
from __future__ import annotations

from typing import Any

from moldau.authorizer.acl import AclOperation, ResourceType
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE, response_types


def _fetch(ctx: HandlerContext, header: RequestHeader, group_id: str, topics: Any,
           require_stable: bool) -> tuple[ErrorCode, dict[str, list[Any]]]:
    wanted = None if topics is None else [(tp.name, p) for tp in topics for p in tp.partition_indexes]
    describable: set[str] | None = None
    if ctx.acls.enabled:
        if not ctx.acls.allowed(header, AclOperation.DESCRIBE, ResourceType.GROUP, group_id):
            code = ErrorCode.group_authorization_failed
            return code, {} if wanted is None else {
                tp.name: [(p, -1, -1, "", code) for p in tp.partition_indexes] for tp in topics}
        describable = ctx.acls.topics_allowed(
            header, AclOperation.DESCRIBE, ctx.metadata.topics if wanted is None else {n for n, _ in wanted})
    denied = [] if wanted is None or describable is None else [tp for tp in wanted if tp[0] not in describable]
    if denied:
        wanted = [tp for tp in wanted if tp[0] in describable]  # type: ignore[union-attr, operator]
    code, found = ctx.groups.fetch_offsets(group_id, wanted, require_stable)
    by_topic: dict[str, list[Any]] = {}
    if wanted is not None:
        for tp in topics:
            by_topic.setdefault(tp.name, [])
    for (topic, partition), (offset, epoch, metadata, err) in sorted(found.items()):
        if describable is None or topic in describable:
            by_topic.setdefault(topic, []).append((partition, offset, epoch, metadata, err))
    for topic, partition in denied:
        by_topic[topic].append((partition, -1, -1, "", ErrorCode.topic_authorization_failed))
    return code, by_topic


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    v = header.api_version
    t = response_types(ApiKey.OFFSET_FETCH, v)
    require_stable = getattr(request, "require_stable", False)
    if v >= 8:
        groups = []
        for g in request.groups:
            code, by_topic = _fetch(ctx, header, g.group_id, g.topics, require_stable)
            groups.append(build(t.OffsetFetchResponseGroup, group_id=g.group_id, error_code=code, topics=tuple(
                build(t.OffsetFetchResponseTopics, name=name, partitions=tuple(
                    build(t.OffsetFetchResponsePartitions, partition_index=p, committed_offset=o,
                          committed_leader_epoch=e, metadata=m, error_code=err)
                    for p, o, e, m, err in parts))
                for name, parts in by_topic.items())))
        return build(t.OffsetFetchResponse, throttle_time=NO_THROTTLE, groups=tuple(groups))
    code, by_topic = _fetch(ctx, header, request.group_id, request.topics, require_stable)
    topics = tuple(
        build(t.OffsetFetchResponseTopic, name=name, partitions=tuple(
            build(t.OffsetFetchResponsePartition, partition_index=p, committed_offset=o,
                  committed_leader_epoch=e, metadata=m, error_code=err if v >= 2 or code == 0 else code)
            for p, o, e, m, err in parts))
        for name, parts in by_topic.items()
    )
    return build(t.OffsetFetchResponse, throttle_time=NO_THROTTLE, topics=topics, error_code=code)

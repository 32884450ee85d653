"""DeleteTopics, by name (v1-v5) or by name or topic id (v6). With an authorizer, each
topic needs Delete (TOPIC_AUTHORIZATION_FAILED); one named by id only needs Describe
first (else UNKNOWN_TOPIC_ID, so that its existence is not revealed)."""
from __future__ import annotations

import asyncio
from typing import Any

from moldau.authorizer.acl import AclOperation, ResourceType
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.errors import TopicError
from moldau.server.handlers._common import NO_THROTTLE, response_types


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.DELETE_TOPICS, header.api_version)
    if hasattr(request, "topic_names"):
        wanted = [(name, None) for name in request.topic_names]
    else:
        wanted = [(s.name, s.topic_id) for s in request.topics]
    results = []
    for name, topic_id in wanted:
        code, message = ErrorCode.none, None
        if name is None and topic_id is not None:
            state = ctx.metadata.topics_by_id.get(topic_id)
            if state is None or not ctx.acls.allowed(header, AclOperation.DESCRIBE, ResourceType.TOPIC, state.name):
                results.append(build(t.DeletableTopicResult, name=None, topic_id=topic_id,
                                     error_code=ErrorCode.unknown_topic_id, error_message=None))
                continue
            name = state.name
        state = ctx.metadata.topics.get(name) if name else None
        try:
            if not ctx.acls.allowed(header, AclOperation.DELETE, ResourceType.TOPIC, name or ""):
                raise TopicError(ErrorCode.topic_authorization_failed, "Authorization failed.")
            if not ctx.config["delete.topic.enable"]:
                raise TopicError(ErrorCode.topic_deletion_disabled, "Topic deletion is disabled.")
            await asyncio.to_thread(ctx.admin.delete_topic, name or "")
        except TopicError as exc:
            code, message = exc.code, exc.message
        results.append(build(t.DeletableTopicResult, name=name,
                             topic_id=state.topic_id if state else topic_id,
                             error_code=code, error_message=message))
    deleted = [r.name for r in results if r.error_code == ErrorCode.none and r.name]
    await ctx.admin.wait_for_topics(deleted, False, min(request.timeout.total_seconds(), 30.0))
    return build(t.DeleteTopicsResponse, throttle_time=NO_THROTTLE, responses=tuple(results))

"""CreatePartitions: grow a topic's partition count (never shrink). With an authorizer,
each topic needs Alter (TOPIC_AUTHORIZATION_FAILED)."""
from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from moldau.authorizer.acl import AclOperation, ResourceType
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.errors import TopicError
from moldau.server.handlers._common import NO_THROTTLE, response_types


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.CREATE_PARTITIONS, header.api_version)
    names = Counter(topic.name for topic in request.topics)
    results = []
    for topic in request.topics:
        code, message = ErrorCode.none, None
        try:
            if not ctx.acls.allowed(header, AclOperation.ALTER, ResourceType.TOPIC, topic.name):
                raise TopicError(ErrorCode.topic_authorization_failed, "The topic authorization is failed.")
            if names[topic.name] > 1:
                raise TopicError(ErrorCode.invalid_request, f"Duplicate topic {topic.name} in request.")
            assignments = None
            if topic.assignments is not None:
                assignments = [list(a.broker_ids) for a in topic.assignments]
            await asyncio.to_thread(ctx.admin.create_partitions, topic.name, topic.count,
                                    validate_only=request.validate_only, assignments=assignments)
        except TopicError as exc:
            code, message = exc.code, exc.message
        if code == ErrorCode.none and not request.validate_only:
            await ctx.admin.wait_for_partition_count(topic.name, topic.count,
                                                     min(request.timeout.total_seconds(), 30.0))
        results.append(build(t.CreatePartitionsTopicResult, name=topic.name, error_code=code,
                             error_message=message))
    return build(t.CreatePartitionsResponse, throttle_time=NO_THROTTLE, results=tuple(results))

"""CreateTopics, including validate-only and explicit replica assignments. With an
authorizer, each topic needs Create on the cluster or on the topic
(TOPIC_AUTHORIZATION_FAILED, "Authorization failed.")."""
from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from moldau.authorizer.acl import AclOperation
from moldau.controller import assignment as assign
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.configs_view import topic_entries
from moldau.server.context import HandlerContext
from moldau.server.errors import TopicError
from moldau.server.handlers._common import NO_THROTTLE, response_types


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.CREATE_TOPICS, header.api_version)
    names = Counter(topic.name for topic in request.topics)
    # Kafka fails the whole request when its topics together would create more partitions
    # than one operation may (KAFKA-17870), before placing any of them.
    default_partitions = int(ctx.config["num.partitions"])
    total = sum(len(topic.assignments) if topic.assignments
                else default_partitions if topic.num_partitions == -1 else max(topic.num_partitions, 0)
                for topic in request.topics)
    try:
        assign.check_partitions_per_request(total)
        too_many = None
    except assign.PolicyViolation as exc:
        too_many = TopicError(exc.error_code, str(exc))
    results = []
    creatable: set[str] | None = None
    if ctx.acls.enabled and not ctx.acls.cluster_allowed(header, AclOperation.CREATE):
        creatable = ctx.acls.topics_allowed(header, AclOperation.CREATE, names)
    for topic in request.topics:
        code, message = ErrorCode.none, None
        created = None
        partitions, rf = topic.num_partitions, topic.replication_factor
        try:
            if too_many is not None:
                raise too_many
            if creatable is not None and topic.name not in creatable:
                raise TopicError(ErrorCode.topic_authorization_failed, "Authorization failed.")
            if names[topic.name] > 1:
                raise TopicError(ErrorCode.invalid_request,
                                 f"Create topics request from client contains duplicate topic {topic.name}")
            configs: dict[str, str] = {}
            for c in topic.configs:
                if c.value is None:
                    raise TopicError(ErrorCode.invalid_config, f"Null value not supported for topic config {c.name}")
                configs[c.name] = c.value
            assignment = None
            if topic.assignments:
                if partitions != -1 or rf != -1:
                    raise TopicError(ErrorCode.invalid_request,
                                     "Both numPartitions or replicationFactor and replicasAssignments were set.")
                assignment = {a.partition_index: list(a.broker_ids) for a in topic.assignments}
                partitions, rf = len(assignment), len(next(iter(assignment.values())))
            # ZooKeeper reads and writes: off the event loop.
            created = await asyncio.to_thread(ctx.admin.create_topic, topic.name, partitions, rf, configs,
                                              validate_only=request.validate_only, assignment=assignment)
        except TopicError as exc:
            code, message = exc.code, exc.message
        state = created or ctx.metadata.topics.get(topic.name) if code == ErrorCode.none else None
        if partitions == -1:
            partitions = int(ctx.config["num.partitions"])
        if rf == -1:
            rf = int(ctx.config["default.replication.factor"])
        configs_out = None
        if state is not None and hasattr(t, "CreatableTopicConfigs"):
            configs_out = tuple(
                build(t.CreatableTopicConfigs, name=e.name, value=e.value, read_only=e.read_only,
                      config_source=e.source, is_sensitive=False)
                for e in topic_entries(ctx, state)
            )
        results.append(
            build(
                t.CreatableTopicResult,
                name=topic.name,
                topic_id=state.topic_id if state is not None else None,
                error_code=code,
                error_message=message,
                topic_config_error_code=0,
                num_partitions=partitions if code == ErrorCode.none else -1,
                replication_factor=rf if code == ErrorCode.none else -1,
                configs=configs_out,
            )
        )
    if not request.validate_only:
        created = [r.name for r in results if r.error_code == ErrorCode.none]
        await ctx.admin.wait_for_topics(created, True, min(request.timeout.total_seconds(), 30.0))
    return build(t.CreateTopicsResponse, throttle_time=NO_THROTTLE, topics=tuple(results))

"""Metadata: brokers, controller, and each topic's partitions with leader, replicas, ISR.

Each topic is encoded once per change and per version (`MetadataCache.encoded_topic`);
a response is its envelope with those bytes spliced in (protocol/metadata_response.py).

Topics a client names that do not exist are created when `auto.create.topics.enable`
is on and the request allows it (v4+), as Kafka does.

With an authorizer, a topic the principal may not Describe is left out of an
all-topics answer and answered TOPIC_AUTHORIZATION_FAILED when named (whether it exists
or not, so that its existence is not revealed); auto-creation needs Create on the
cluster or on the topic.
"""
from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from moldau.authorizer.acl import CLUSTER_NAME, AclOperation, ResourceType
from moldau.controller.embedded import TopicState, topic_name_error
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.protocol.metadata_response import response_frame, topic_bytes
from moldau.server.context import HandlerContext
from moldau.server.errors import TopicError
from moldau.server.handlers._common import NO_THROTTLE, response_types

INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})


NOT_REQUESTED = -2147483648  # an *_authorized_operations field nobody asked for


def _topic(t: Any, topic: TopicState) -> Any:
    partitions = tuple(
        build(
            t.MetadataResponsePartition,
            error_code=ErrorCode.none,
            partition_index=p,
            leader_id=s.leader,
            leader_epoch=s.leader_epoch,
            replica_nodes=tuple(s.replicas),
            isr_nodes=tuple(s.isr),
            offline_replicas=(),
        )
        for p, s in sorted(topic.partitions.items())
    )
    return build(
        t.MetadataResponseTopic,
        error_code=ErrorCode.none,
        name=topic.name,
        topic_id=topic.topic_id,
        is_internal=topic.name in INTERNAL_TOPICS,
        partitions=partitions,
        topic_authorized_operations=NOT_REQUESTED,
    )


def _error_topic(t: Any, name: str | None, topic_id: Any, code: ErrorCode) -> Any:
    return build(
        t.MetadataResponseTopic,
        error_code=code,
        name=name,
        topic_id=topic_id,
        is_internal=False,
        partitions=(),
        topic_authorized_operations=NOT_REQUESTED,
    )


def _cached_topic(ctx: HandlerContext, version: int, t: Any, topic: TopicState) -> bytes:
    """The topic's entry, encoded once per change of the topic and per version."""
    return ctx.metadata.encoded_topic(version, topic.name, lambda: topic_bytes(version, _topic(t, topic)))


def _described(ctx: HandlerContext, header: RequestHeader, request: Any, t: Any, topic: TopicState) -> bytes:
    """A found topic's entry: the cached encoding, or (when the request asks for the
    principal's authorized operations, v8+) one made for this request."""
    version = header.api_version
    if not getattr(request, "include_topic_authorized_operations", False):
        return _cached_topic(ctx, version, t, topic)
    operations = ctx.acls.authorized_operations(header, ResourceType.TOPIC, topic.name)
    return topic_bytes(version, dataclasses.replace(_topic(t, topic), topic_authorized_operations=operations))


def _topic_exists(ctx: HandlerContext, name: str) -> bool:
    """Whether the coordination service holds the topic (a validate-only creation says so)."""
    try:
        ctx.admin.create_topic(name, -1, -1, {}, validate_only=True)
    except TopicError as exc:
        return exc.code == ErrorCode.topic_already_exists
    return False


# How long a Metadata request waits for a broker that has just started to hear from the
# controller, before it is answered with nothing known (see `_nothing_known`).
FIRST_METADATA_WAIT_S = 3.0


def _nothing_known(t: Any, version: int, correlation_id: int) -> Any:
    """The answer of a broker the controller has not told about the cluster yet (just
    started, before its first UpdateMetadata): no brokers and no topics, which clients
    take as "ask again" (librdkafka: "No brokers or topics in metadata: should retry";
    kafka-python: an empty broker list is ignored). Not "only this broker": librdkafka
    decommissions every broker missing from a Metadata response, and answering a topic
    with no brokers would do the same."""
    envelope = build(t.MetadataResponse, throttle_time=NO_THROTTLE, brokers=(), cluster_id=None,
                     controller_id=-1, topics=(), cluster_authorized_operations=NOT_REQUESTED)
    return response_frame(version, correlation_id, envelope, [])


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    t = response_types(ApiKey.METADATA, version)
    store = ctx.metadata
    if not await ctx.cluster.metadata_known(FIRST_METADATA_WAIT_S):
        return _nothing_known(t, version, header.correlation_id)
    topics: list[bytes] = []
    requested = request.topics
    if version == 0 and not requested:
        requested = None  # v0: an empty list means every topic
    acls = ctx.acls if ctx.acls.enabled else None
    if requested is None:
        visible = store.topics.values()
        if acls is not None:
            describable = acls.topics_allowed(header, AclOperation.DESCRIBE, store.topics)
            visible = [topic for topic in visible if topic.name in describable]
        topics = [_described(ctx, header, request, t, topic) for topic in visible]
    else:
        allow_create = getattr(request, "allow_auto_topic_creation", True)
        for req in requested:
            name = getattr(req, "name", None)
            topic_id = getattr(req, "topic_id", None)
            if name is None and (version < 12 or topic_id is None or topic_id.int == 0):
                # Kafka: "Topic name can not be null" before v12 (an INVALID_REQUEST); a
                # topic named by neither a name nor an id is as meaningless from v12 on.
                topics.append(topic_bytes(version, _error_topic(t, "" if version < 12 else None, topic_id,
                                                                ErrorCode.invalid_request)))
                continue
            if name is None and topic_id is not None:
                state = store.topics_by_id.get(topic_id)
                if state is not None and acls is not None and not acls.allowed(
                        header, AclOperation.DESCRIBE, ResourceType.TOPIC, state.name):
                    topics.append(topic_bytes(version, _error_topic(t, None, topic_id,
                                                                    ErrorCode.topic_authorization_failed)))
                elif state is None:
                    topics.append(topic_bytes(version, _error_topic(t, None, topic_id, ErrorCode.unknown_topic_id)))
                else:
                    topics.append(_described(ctx, header, request, t, state))
                continue
            if acls is not None and not acls.allowed(header, AclOperation.DESCRIBE, ResourceType.TOPIC, name):
                topics.append(topic_bytes(version, _error_topic(t, name, None, ErrorCode.topic_authorization_failed)))
                continue
            state = store.topics.get(name) if name is not None else None
            if state is None:
                if topic_name_error(name):
                    topics.append(topic_bytes(version, _error_topic(t, name, None, ErrorCode.invalid_topic_exception)))
                    continue
                if allow_create and ctx.config["auto.create.topics.enable"]:
                    if acls is not None and not (acls.cluster_allowed(header, AclOperation.CREATE) or acls.allowed(
                            header, AclOperation.CREATE, ResourceType.TOPIC, name)):
                        # Not in this broker's metadata yet may still exist (a broker that just
                        # started): then it is not for the principal to create, only to wait for.
                        exists = await asyncio.to_thread(_topic_exists, ctx, name)
                        code = ErrorCode.leader_not_available if exists else ErrorCode.topic_authorization_failed
                        topics.append(topic_bytes(version, _error_topic(t, name, None, code)))
                        continue
                    try:
                        await asyncio.to_thread(ctx.admin.create_topic, name, -1, -1, {})
                    except TopicError as exc:
                        if exc.code != ErrorCode.topic_already_exists:
                            topics.append(topic_bytes(version, _error_topic(t, name, None, exc.code)))
                            continue
                    state = store.topics.get(name)
                    if state is None:  # a cluster: the controller has not elected its leaders yet
                        topics.append(topic_bytes(version, _error_topic(t, name, None, ErrorCode.leader_not_available)))
                        continue
                else:
                    topics.append(topic_bytes(version, _error_topic(t, name, None,
                                                                    ErrorCode.unknown_topic_or_partition)))
                    continue
            assert state is not None
            topics.append(_described(ctx, header, request, t, state))
    brokers = tuple(
        build(t.MetadataResponseBroker, node_id=node_id, host=host, port=port, rack=rack)
        for node_id, host, port, rack in ctx.cluster.live_brokers(header.listener)
    )
    envelope = build(
        t.MetadataResponse,
        throttle_time=NO_THROTTLE,
        brokers=brokers,
        cluster_id=store.cluster_id,
        controller_id=ctx.cluster.controller_id(),
        topics=(),
        cluster_authorized_operations=(
            ctx.acls.authorized_operations(header, ResourceType.CLUSTER, CLUSTER_NAME)
            if getattr(request, "include_cluster_authorized_operations", False) else NOT_REQUESTED),
    )
    return response_frame(version, header.correlation_id, envelope, topics)

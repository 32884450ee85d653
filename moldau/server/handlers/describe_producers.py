"""DescribeProducers (v0): the idempotent producers a partition's leader tracks, with
each one's epoch, last sequence, last timestamp, the coordinator epoch of its last
marker and the first offset of its open transaction (-1 without one): Kafka's producer
state, what ``kafka-transactions.sh find-hanging`` reads. Sent to the partition's leader;
other brokers answer NOT_LEADER_OR_FOLLOWER, as for produce. With an authorizer, each topic
needs Read (TOPIC_AUTHORIZATION_FAILED)."""
from __future__ import annotations

from typing import Any

from moldau.authorizer.acl import AclOperation, ResourceType
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.replication.partition import PartitionError
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE, response_types


def _partition(ctx: HandlerContext, header: RequestHeader, t: Any, topic: str, index: int) -> Any:
    try:
        if not ctx.acls.allowed(header, AclOperation.READ, ResourceType.TOPIC, topic):
            raise PartitionError(ErrorCode.topic_authorization_failed)
        plog = ctx.replicas.leader_partition((topic, index)).log
    except PartitionError as exc:
        return build(t.PartitionResponse, partition_index=index, error_code=exc.code, error_message=None,
                     active_producers=())
    producers = tuple(
        build(t.ProducerState, producer_id=pid, producer_epoch=entry.producer_epoch,
              last_sequence=entry.last_sequence, last_timestamp=entry.last_timestamp,
              coordinator_epoch=entry.coordinator_epoch,
              current_txn_start_offset=-1 if entry.current_txn_first_offset is None
              else entry.current_txn_first_offset)
        for pid, entry in sorted(plog.producer_state.producers.items()))
    return build(t.PartitionResponse, partition_index=index, error_code=ErrorCode.none, error_message=None,
                 active_producers=producers)


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.DESCRIBE_PRODUCERS, header.api_version)
    topics = tuple(
        build(t.TopicResponse, name=topic.name,
              partitions=tuple(_partition(ctx, header, t, topic.name, i) for i in topic.partition_indexes))
        for topic in request.topics)
    return build(t.DescribeProducersResponse, throttle_time=NO_THROTTLE, topics=topics)

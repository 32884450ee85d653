"""DeleteRecords: move a partition's log start offset forward (-1 = the high watermark).
With an authorizer, each topic needs Delete (TOPIC_AUTHORIZATION_FAILED)."""
from __future__ import annotations

from typing import Any

from moldau.authorizer.acl import AclOperation, ResourceType
from moldau.log.errors import OffsetOutOfRangeError
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.replication.partition import PartitionError
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE, response_types


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.DELETE_RECORDS, header.api_version)
    topics = []
    for topic in request.topics:
        parts = []
        for p in topic.partitions:
            code, low = ErrorCode.none, -1
            try:
                if not ctx.acls.allowed(header, AclOperation.DELETE, ResourceType.TOPIC, topic.name):
                    raise PartitionError(ErrorCode.topic_authorization_failed)
                leader = ctx.replicas.leader_partition((topic.name, p.partition_index))
            except PartitionError as exc:
                code = exc.code
            else:
                plog, hw = leader.log, leader.high_watermark
                offset = hw if p.offset == -1 else p.offset
                if offset < 0 or offset > hw:
                    code = ErrorCode.offset_out_of_range
                else:
                    try:
                        low = plog.delete_records_before(offset)
                    except OffsetOutOfRangeError:
                        code = ErrorCode.offset_out_of_range
            parts.append(build(t.DeleteRecordsPartitionResult, partition_index=p.partition_index,
                               low_watermark=low, error_code=code))
        topics.append(build(t.DeleteRecordsTopicResult, name=topic.name, partitions=tuple(parts)))
    return build(t.DeleteRecordsResponse, throttle_time=NO_THROTTLE, topics=tuple(topics))

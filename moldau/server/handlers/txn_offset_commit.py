"""TxnOffsetCommit (v0-v3): offsets committed in a transaction (consume-transform-produce,
``send_offsets_to_transaction``), sent by the producer to the group's coordinator after
AddOffsetsToTxn. They are written to ``__consumer_offsets`` as a transactional batch of
the producer and take effect when the transaction's COMMIT marker reaches that partition
(moldau/groups/coordinator.py); KIP-447's generation and member checks fence zombies.
Answered once the write is acknowledged, as OffsetCommit is."""
from __future__ import annotations

from typing import Any

from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE, response_types
from moldau.server.handlers.offset_commit import answer_when_written, requested_offsets


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.TXN_OFFSET_COMMIT, header.api_version)
    codes, valid = requested_offsets(ctx, request)
    acks: list[Any] = []
    if valid:
        with ctx.coordinator_log.collect() as acks:
            codes.update(ctx.groups.commit_transactional_offsets(
                request.group_id, request.producer_id, request.producer_epoch,
                getattr(request, "generation_id", -1), getattr(request, "member_id", ""),
                getattr(request, "group_instance_id", None), valid, ctx.clock()))
    return answer_when_written(acks, valid, codes, lambda: _response(t, request, codes))


def _response(t: Any, request: Any, codes: dict[tuple[str, int], ErrorCode]) -> Any:
    return build(
        t.TxnOffsetCommitResponse,
        throttle_time=NO_THROTTLE,
        topics=tuple(
            build(t.TxnOffsetCommitResponseTopic, name=topic.name, partitions=tuple(
                build(t.TxnOffsetCommitResponsePartition, partition_index=p.partition_index,
                      error_code=codes.get((topic.name, p.partition_index), ErrorCode.none))
                for p in topic.partitions or ()))
            for topic in request.topics or ()
        ),
    )

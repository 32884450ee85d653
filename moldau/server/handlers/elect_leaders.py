"""ElectLeaders (KIP-460): preferred (0) or unclean (1) leader election, run by the controller."""
from __future__ import annotations

from typing import Any

from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.errors import TopicError
from moldau.server.handlers._common import NO_THROTTLE, response_types

PREFERRED = 0


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.ELECT_LEADERS, header.api_version)
    wanted = None
    if request.topic_partitions is not None:
        wanted = [(tp.topic, p) for tp in request.topic_partitions for p in tp.partitions]
    election_type = getattr(request, "election_type", PREFERRED)
    top = ErrorCode.none
    results: dict[tuple[str, int], tuple[ErrorCode, str | None]] = {}
    if election_type != PREFERRED:
        top = ErrorCode.invalid_request
    else:
        try:
            outcome = await ctx.cluster.elect_preferred(wanted)
        except TopicError as exc:
            top = exc.code
            outcome = {}
        for tp, err in outcome.items():
            results[tp] = (ErrorCode[err.lower()] if err else ErrorCode.none, None)
    by_topic: dict[str, list[Any]] = {}
    for (topic, p), (code, msg) in sorted(results.items()):
        by_topic.setdefault(topic, []).append(build(t.PartitionResult, partition_id=p, error_code=code,
                                                    error_message=msg))
    return build(t.ElectLeadersResponse, throttle_time=NO_THROTTLE, error_code=top,
                 replica_election_results=tuple(
                     build(t.ReplicaElectionResult, topic=name, partition_result=tuple(parts))
                     for name, parts in by_topic.items()))

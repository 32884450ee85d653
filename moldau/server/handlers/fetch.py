"""Fetch: serve log bytes from each partition's fetch offset up to its high watermark.

Delayed fetch: when less than `min_bytes` is available the request waits, up to
`max_wait`, for an append to one of its partitions. Fetch sessions (KIP-227, v7+; see
moldau/server/fetch_session.py): a consumer that asks for one gets its id, then sends only
the partitions that changed and is answered only the partitions with something new.
Followers fetch without sessions.

Racks (KIP-392): a consumer's Fetch v11+ carries its rack (`client.rack`); it may then read
from a follower (up to that follower's high watermark), and a leader with
`replica.selector.class` answers a partition better served by a follower in the consumer's
rack with that follower's id in `preferred_read_replica` and no records.

With an authorizer, a follower's fetch needs ClusterAction on the cluster and a
consumer's Read on each topic; a denied partition is answered TOPIC_AUTHORIZATION_FAILED
(for a follower, every partition), the others are served.
"""
from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Any

from moldau.authorizer.acl import AclOperation
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.replication.replica_manager import FetchParams, FetchPartitionRequest, FetchResults
from moldau.server.broker_metrics import FETCH_WAIT_S
from moldau.server.context import HandlerContext
from moldau.server.fetch_session import (
    FINAL_EPOCH,
    INITIAL_EPOCH,
    FetchSession,
    SessionError,
    SessionPartition,
)
from moldau.server.handlers._common import NO_THROTTLE, response_types

# topic, [(partition, offset, max bytes, current leader epoch, log start offset)]
Wanted = list[tuple[str, list[tuple[int, int, int, int, int]]]]


def _wanted(topics: Any) -> Wanted:
    return [(tp.topic, [(fp.partition, fp.fetch_offset, fp.partition_max_bytes,
                         getattr(fp, "current_leader_epoch", -1), getattr(fp, "log_start_offset", -1))
                        for fp in tp.partitions]) for tp in topics]


def _session_wanted(session: FetchSession) -> Wanted:
    out: dict[str, list[tuple[int, int, int, int, int]]] = {}
    for (topic, p), e in session.partitions.items():
        out.setdefault(topic, []).append((p, e.fetch_offset, e.max_bytes, e.current_leader_epoch, -1))
    return list(out.items())


def _session_request(request: Any) -> tuple[dict[tuple[str, int], SessionPartition], list[tuple[str, int]]]:
    changed = {(tp.topic, fp.partition): SessionPartition(fp.fetch_offset, fp.partition_max_bytes,
                                                           getattr(fp, "current_leader_epoch", -1))
               for tp in request.topics for fp in tp.partitions}
    forgotten = [(ft.topic, p) for ft in (getattr(request, "forgotten_topics_data", None) or ()) for p in ft.partitions]
    return changed, forgotten


def _authorize(ctx: HandlerContext, header: RequestHeader, follower: bool, wanted: Wanted
               ) -> tuple[Wanted, list[tuple[str, list[tuple[Any, ...]]]]]:
    """The partitions the fetcher may read, and the answers for the others."""
    if follower:
        readable = ({topic for topic, _ in wanted} if ctx.acls.cluster_allowed(header, AclOperation.CLUSTER_ACTION)
                    else set())
    else:
        readable = ctx.acls.topics_allowed(header, AclOperation.READ, {topic for topic, _ in wanted})
    denied = [(topic, [(p, ErrorCode.topic_authorization_failed, -1, -1, -1, None, None, -1) for p, *_ in parts])
              for topic, parts in wanted if topic not in readable]
    return [(topic, parts) for topic, parts in wanted if topic in readable], denied


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    t = response_types(ApiKey.FETCH, version)
    replica_id = getattr(request, "replica_id", -1)
    follower = replica_id >= 0
    session_id = getattr(request, "session_id", 0)
    epoch = getattr(request, "session_epoch", FINAL_EPOCH)
    session: FetchSession | None = None
    want_session = False
    if session_id != 0 or epoch != FINAL_EPOCH:
        cache = ctx.fetch_sessions
        if epoch in (FINAL_EPOCH, INITIAL_EPOCH):
            if session_id != 0:
                cache.close(session_id)
            want_session = epoch == INITIAL_EPOCH and not follower
        else:
            try:
                session = cache.incremental(session_id, epoch, time.monotonic())
            except SessionError as exc:
                return build(t.FetchResponse, throttle_time=NO_THROTTLE, error_code=ErrorCode(exc.code),
                             session_id=0, responses=())
            session.update(*_session_request(request))
    wanted = _session_wanted(session) if session is not None else _wanted(request.topics)
    denied: list[tuple[str, list[tuple[Any, ...]]]] = []
    if ctx.acls.enabled:
        wanted, denied = _authorize(ctx, header, follower, wanted)
    params = FetchParams(
        replica_id=replica_id, max_wait_ms=max(int(request.max_wait.total_seconds() * 1000), 0),
        min_bytes=request.min_bytes, max_bytes=request.max_bytes,
        isolation_level=getattr(request, "isolation_level", 0),
        client_rack=(getattr(request, "rack_id", None) or "") if version >= 11 and not follower else None,
        partitions=tuple(((topic, p), FetchPartitionRequest(offset, max_bytes, epoch, log_start))
                         for topic, partitions in wanted for p, offset, max_bytes, epoch, log_start in partitions))
    answer: asyncio.Future[FetchResults] = asyncio.get_running_loop().create_future()

    def done(fetched: FetchResults) -> None:
        if not answer.done():
            answer.set_result(fetched)

    ctx.replicas.fetch_records(params, done)
    if answer.done():
        fetched = answer.result()
    else:  # a delayed fetch: its wait is Kafka's remote time, not the handler's
        waiting = time.perf_counter()
        fetched = await answer
        FETCH_WAIT_S.set(time.perf_counter() - waiting)
    results: list[tuple[str, list[tuple[Any, ...]]]] = []
    for (topic, p), r in fetched:
        if not results or results[-1][0] != topic:
            results.append((topic, []))
        results[-1][1].append((p, r.error, r.high_watermark, r.last_stable_offset, r.log_start_offset, r.records,
                               r.aborted_transactions, r.preferred_read_replica))
    results.extend(denied)
    response_session_id = 0
    if want_session:
        changed, _ = _session_request(request)
        for topic, parts in results:
            for p, _code, hw, _lso, lstart, _data, _aborted, _preferred in parts:
                entry = changed.get((topic, p))
                if entry is not None:
                    entry.sent_high_watermark, entry.sent_log_start_offset = hw, lstart
        created = ctx.fetch_sessions.create(OrderedDict(changed), time.monotonic())
        response_session_id = created.id if created is not None else 0
    elif session is not None:
        # Incremental: only the partitions with something new (a preferred read replica
        # must reach the consumer, as an error does).
        results = [(topic, [part for part in parts
                            if session.must_respond((topic, part[0]), part[1] != ErrorCode.none or part[7] >= 0,
                                                    bool(part[5]), part[2], part[4])])
                   for topic, parts in results]
        results = [(topic, parts) for topic, parts in results if parts]
        response_session_id = session.id
    return build(
        t.FetchResponse,
        throttle_time=NO_THROTTLE,
        error_code=ErrorCode.none,
        session_id=response_session_id,
        responses=tuple(
            build(
                t.FetchableTopicResponse,
                topic=name,
                partitions=tuple(
                    build(
                        t.PartitionData,
                        partition_index=p,
                        error_code=code,
                        high_watermark=hw,
                        last_stable_offset=lso,
                        log_start_offset=lstart,
                        aborted_transactions=None if aborted is None else tuple(
                            t.AbortedTransaction(producer_id=pid, first_offset=first) for pid, first in aborted),
                        preferred_read_replica=preferred,
                        records=data,
                    )
                    for p, code, hw, lso, lstart, data, aborted, preferred in parts
                ),
            )
            for name, parts in results
        ),
    )

"""Fetch: serve log bytes from each partition's fetch offset up to its high watermark.

Delayed fetch: when less than `min_bytes` is available the request waits, up to
`max_wait`, for an append to one of its partitions. Fetch sessions (KIP-227) are
declined the way Kafka allows: every response carries session id 0, so clients keep
sending full fetch requests.
"""
from __future__ import annotations

import time
from typing import Any

from moldau.log.errors import OffsetOutOfRangeError
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.broker import Broker
from moldau.server.handlers._common import NO_THROTTLE, response_types

EMPTY = b""


def epoch_error(broker: Broker, topic: str, partition: int, current_leader_epoch: int) -> ErrorCode | None:
    """KIP-320: a client or follower that knows another leader epoch than ours."""
    if current_leader_epoch < 0:
        return None
    ours = broker.leader_epoch(topic, partition)
    if current_leader_epoch < ours:
        return ErrorCode.fenced_leader_epoch
    if current_leader_epoch > ours:
        return ErrorCode.unknown_leader_epoch
    return None


def _read(broker: Broker, request: Any) -> tuple[list[tuple[str, list[tuple[Any, ...]]]], int, bool]:
    """One pass over the requested partitions: (per-topic results, bytes, any error)."""
    remaining = request.max_bytes if request.max_bytes > 0 else 0x7FFFFFFF
    follower = getattr(request, "replica_id", -1) >= 0
    total = 0
    errors = False
    out: list[tuple[str, list[tuple[Any, ...]]]] = []
    for topic in request.topics:
        parts: list[tuple[Any, ...]] = []
        for fp in topic.partitions:
            plog = broker.partition_log(topic.topic, fp.partition)
            if plog is None:
                parts.append((fp.partition, broker.partition_error(topic.topic, fp.partition), -1, -1, -1, EMPTY))
                errors = True
                continue
            fenced = epoch_error(broker, topic.topic, fp.partition, getattr(fp, "current_leader_epoch", -1))
            if fenced is not None:
                parts.append((fp.partition, fenced, -1, -1, -1, EMPTY))
                errors = True
                continue
            hw = broker.high_watermark(plog)
            data = EMPTY
            code = ErrorCode.none
            if remaining > 0 or total == 0:
                try:
                    limit = min(fp.partition_max_bytes, remaining) if total else fp.partition_max_bytes
                    # Followers copy the whole log; consumers see only what is committed.
                    data = plog.read(fp.fetch_offset, max(limit, 1), max_offset=None if follower else hw)
                except OffsetOutOfRangeError:
                    code = ErrorCode.offset_out_of_range
                    errors = True
            total += len(data)
            remaining -= len(data)
            parts.append((fp.partition, code, hw, hw, plog.log_start_offset, data))
        out.append((topic.topic, parts))
    return out, total, errors


async def handle(broker: Broker, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    t = response_types(ApiKey.FETCH, version)
    session_id = getattr(request, "session_id", 0)
    if session_id != 0:
        return build(t.FetchResponse, throttle_time=NO_THROTTLE,
                     error_code=ErrorCode.fetch_session_id_not_found, session_id=0, responses=())
    replica_id = getattr(request, "replica_id", -1)
    if replica_id >= 0:
        for tp in request.topics:
            for fp in tp.partitions:
                plog = broker.partition_log(tp.topic, fp.partition)
                if plog is not None:
                    broker.on_replica_fetch(tp.topic, fp.partition, replica_id, fp.fetch_offset, plog)
    results, total, errors = _read(broker, request)
    max_wait_s = request.max_wait.total_seconds()
    if total < max(request.min_bytes, 1) and not errors and max_wait_s > 0:
        deadline = time.monotonic() + max_wait_s
        keys = [(tp.topic, fp.partition) for tp in request.topics for fp in tp.partitions]
        while total < max(request.min_bytes, 1) and not errors:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            await broker.wait_for_data(keys, left)
            results, total, errors = _read(broker, request)
    return build(
        t.FetchResponse,
        throttle_time=NO_THROTTLE,
        error_code=ErrorCode.none,
        session_id=0,
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
                        aborted_transactions=None,
                        preferred_read_replica=-1,
                        records=data,
                    )
                    for p, code, hw, lso, lstart, data in parts
                ),
            )
            for name, parts in results
        ),
    )

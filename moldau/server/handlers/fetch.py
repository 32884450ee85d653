"""Fetch: serve log bytes from each partition's fetch offset up to its high watermark.

Delayed fetch: when less than `min_bytes` is available the request waits, up to
`max_wait`, for an append to one of its partitions. Fetch sessions (KIP-227, v7+; see
moldau/server/fetch_session.py): a consumer that asks for one gets its id, then sends only
the partitions that changed and is answered only the partitions with something new.
Followers fetch without sessions.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from moldau.log.errors import OffsetOutOfRangeError
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.broker import Broker
from moldau.server.fetch_session import (
    FINAL_EPOCH,
    INITIAL_EPOCH,
    FetchSession,
    FetchSessionCache,
    SessionError,
    SessionPartition,
)
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


Wanted = list[tuple[str, list[tuple[int, int, int, int]]]]  # topic, [(partition, offset, max bytes, epoch)]


def _wanted(topics: Any) -> Wanted:
    return [(tp.topic, [(fp.partition, fp.fetch_offset, fp.partition_max_bytes,
                         getattr(fp, "current_leader_epoch", -1)) for fp in tp.partitions]) for tp in topics]


def _session_wanted(session: FetchSession) -> Wanted:
    out: dict[str, list[tuple[int, int, int, int]]] = {}
    for (topic, p), e in session.partitions.items():
        out.setdefault(topic, []).append((p, e.fetch_offset, e.max_bytes, e.current_leader_epoch))
    return list(out.items())


def _read(broker: Broker, wanted: Wanted, max_bytes: int, follower: bool
          ) -> tuple[list[tuple[str, list[tuple[Any, ...]]]], int, bool]:
    """One pass over the requested partitions: (per-topic results, bytes, any error)."""
    remaining = max_bytes if max_bytes > 0 else 0x7FFFFFFF
    total = 0
    errors = False
    out: list[tuple[str, list[tuple[Any, ...]]]] = []
    for topic, partitions in wanted:
        parts: list[tuple[Any, ...]] = []
        for partition, fetch_offset, partition_max_bytes, current_leader_epoch in partitions:
            plog = broker.partition_log(topic, partition)
            if plog is None:
                parts.append((partition, broker.partition_error(topic, partition), -1, -1, -1, EMPTY))
                errors = True
                continue
            fenced = epoch_error(broker, topic, partition, current_leader_epoch)
            if fenced is not None:
                parts.append((partition, fenced, -1, -1, -1, EMPTY))
                errors = True
                continue
            hw = broker.high_watermark(plog)
            data = EMPTY
            code = ErrorCode.none
            if remaining > 0 or total == 0:
                try:
                    limit = min(partition_max_bytes, remaining) if total else partition_max_bytes
                    # Followers copy the whole log; consumers see only what is committed.
                    data = plog.read(fetch_offset, max(limit, 1), max_offset=None if follower else hw)
                except OffsetOutOfRangeError:
                    code = ErrorCode.offset_out_of_range
                    errors = True
            total += len(data)
            remaining -= len(data)
            parts.append((partition, code, hw, hw, plog.log_start_offset, data))
        out.append((topic, parts))
    return out, total, errors


def _session_request(request: Any) -> tuple[dict[tuple[str, int], SessionPartition], list[tuple[str, int]]]:
    changed = {(tp.topic, fp.partition): SessionPartition(fp.fetch_offset, fp.partition_max_bytes,
                                                           getattr(fp, "current_leader_epoch", -1))
               for tp in request.topics for fp in tp.partitions}
    forgotten = [(ft.topic, p) for ft in (getattr(request, "forgotten_topics_data", None) or ()) for p in ft.partitions]
    return changed, forgotten


def _cache(broker: Broker) -> FetchSessionCache:
    cache: FetchSessionCache | None = getattr(broker, "fetch_sessions", None)
    if cache is None:
        cache = FetchSessionCache(int(broker.config["max.incremental.fetch.session.cache.slots"]),
                                  int(broker.config["min.incremental.fetch.session.eviction.ms"]) / 1000)
        broker.fetch_sessions = cache  # type: ignore[attr-defined]
    return cache


async def handle(broker: Broker, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    t = response_types(ApiKey.FETCH, version)
    replica_id = getattr(request, "replica_id", -1)
    follower = replica_id >= 0
    session_id = getattr(request, "session_id", 0)
    epoch = getattr(request, "session_epoch", FINAL_EPOCH)
    session: FetchSession | None = None
    want_session = False
    if session_id != 0 or epoch != FINAL_EPOCH:
        cache = _cache(broker)
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
    if follower:
        for topic, partitions in wanted:
            for partition, fetch_offset, _, _ in partitions:
                plog = broker.partition_log(topic, partition)
                if plog is not None:
                    broker.on_replica_fetch(topic, partition, replica_id, fetch_offset, plog)
    results, total, errors = _read(broker, wanted, request.max_bytes, follower)
    max_wait_s = request.max_wait.total_seconds()
    if total < max(request.min_bytes, 1) and not errors and max_wait_s > 0:
        deadline = time.monotonic() + max_wait_s
        keys = [(topic, p[0]) for topic, partitions in wanted for p in partitions]
        while total < max(request.min_bytes, 1) and not errors:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            await broker.wait_for_data(keys, left)
            results, total, errors = _read(broker, wanted, request.max_bytes, follower)
    response_session_id = 0
    if want_session:
        changed, _ = _session_request(request)
        for topic, parts in results:
            for p, _code, hw, _lso, lstart, _data in parts:
                entry = changed.get((topic, p))
                if entry is not None:
                    entry.sent_high_watermark, entry.sent_log_start_offset = hw, lstart
        created = _cache(broker).create(OrderedDict(changed), time.monotonic())
        response_session_id = created.id if created is not None else 0
    elif session is not None:
        # Incremental: only the partitions with something new.
        results = [(topic, [part for part in parts
                            if session.must_respond((topic, part[0]), part[1] != ErrorCode.none, bool(part[5]),
                                                    part[2], part[4])])
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

"""The broker's Prometheus metrics (`moldau.metrics`) wired in.

Events are counted where they happen: the replica manager reports appends, fetches,
replication and ISR changes through its `ReplicaStats` seam (the broker hands it the
`BrokerMetrics`), and the dispatcher reports each answered request to `RequestMetrics`.
Levels (partitions, under-replicated, offsets, group lag...) are read from the broker at
scrape time (`broker_snapshot`): an idle partition costs nothing between scrapes.
`MetricsEndpoint` serves /metrics on `metrics.port` or `metrics.listener` (off by default).
"""

from __future__ import annotations

import dataclasses
import logging
import time
import types
import typing
from collections.abc import Callable
from contextvars import ContextVar
from time import perf_counter
from typing import TYPE_CHECKING, Any

from moldau.metrics.http import METRICS_PATH, start_metrics_server
from moldau.metrics.kafka import BrokerMetrics, BrokerSnapshot, GroupState, ReplicaState, RequestStats
from moldau.metrics.registry import exposition
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode

if TYPE_CHECKING:
    import asyncio

    from moldau.server.broker import Broker

log = logging.getLogger(__name__)


# --- requests ------------------------------------------------------------------------------


ErrorPath = tuple[str, ...]  # field names from a response down to an `error_code`


def error_code_paths(cls: type) -> tuple[ErrorPath, ...]:
    """Where a kio response type holds error codes: its own `error_code` and those of the
    entities it nests (a Produce response: one per partition)."""
    paths: list[ErrorPath] = []
    for f in dataclasses.fields(cls):
        if f.name == "error_code":
            paths.append((f.name,))
            continue
        inner: Any = f.type
        if typing.get_origin(inner) is tuple:  # tuple[Entity, ...]
            inner = typing.get_args(inner)[0]
        elif isinstance(inner, types.UnionType) or typing.get_origin(inner) is typing.Union:  # Entity | None
            inner = next((a for a in typing.get_args(inner) if a is not type(None)), None)
        if isinstance(inner, type) and dataclasses.is_dataclass(inner):
            paths.extend((f.name, *sub) for sub in error_code_paths(inner))
    return tuple(paths)


CodeCounts = dict[int, int]  # error code -> how many times seen
CodeReader = Callable[[Any, CodeCounts], None]


def code_reader(path: ErrorPath) -> CodeReader:
    """A function counting every error code at `path` in a response: nested closures,
    built once per response type (a generator walk cost about four times more)."""
    name = path[0]
    if len(path) == 1:
        def leaf(value: Any, counts: CodeCounts) -> None:
            code = getattr(value, name)
            counts[code] = counts.get(code, 0) + 1
        return leaf
    rest = code_reader(path[1:])

    def inner(value: Any, counts: CodeCounts) -> None:
        child = getattr(value, name)
        if type(child) is tuple:
            for item in child:
                rest(item, counts)
        elif child is not None:
            rest(child, counts)
    return inner


_FETCH = int(ApiKey.FETCH)

# How long the fetch being handled waited in purgatory (set by the fetch handler, read
# and cleared by `RequestMetrics.answered`; both run in the connection's task).
FETCH_WAIT_S: ContextVar[float] = ContextVar("fetch_wait_s", default=0.0)


class RequestMetrics:
    """The dispatcher's hook: per API and version, requests, the error codes in responses
    (Kafka's ErrorsPerSec) and where the time went (RequestQueueTimeMs: read but behind
    the connection's earlier requests; LocalTimeMs: in the handler; RemoteTimeMs: an
    acks=all produce waiting for the followers, a delayed fetch waiting for data)."""

    def __init__(self, metrics: BrokerMetrics) -> None:
        self._metrics = metrics
        self._stats: dict[int, RequestStats] = {}
        self._readers: dict[type, tuple[CodeReader, ...]] = {}

    def answered(self, key: int, version: int, request: Any, response: Any, received_s: float, started_s: float,
                 local_done_s: float | None = None) -> None:
        """`response` was made (a kio message, framed bytes, or None for acks=0);
        times are `time.perf_counter()` seconds."""
        now = perf_counter()
        # One int per request kind (API key, version, a follower's fetch or not): no tuple
        # to build and hash on every request.
        kind = key << 17 | version << 1
        if key == _FETCH and getattr(request, "replica_id", -1) >= 0:
            kind |= 1
        stats = self._stats.get(kind)
        if stats is None:
            # Kafka's request names: PRODUCE -> Produce, LEADER_AND_ISR -> LeaderAndIsr
            name = ApiKey(key).name.title().replace("_", "")
            stats = self._stats[kind] = self._metrics.request(name, version, bool(kind & 1) if key == _FETCH else None)
        if local_done_s is None and key == _FETCH:
            waited = FETCH_WAIT_S.get()
            if waited:
                FETCH_WAIT_S.set(0.0)
                local_done_s = now - waited
        if local_done_s is None:
            stats.completed((started_s - received_s) * 1000, (now - started_s) * 1000)
        else:
            stats.completed((started_s - received_s) * 1000, (local_done_s - started_s) * 1000,
                            (now - local_done_s) * 1000)
        if response is None or type(response) is bytes:
            return  # acks=0, or a hand-framed answer (cached Metadata) without errors to count
        readers = self._readers.get(type(response))
        if readers is None:
            readers = self._readers[type(response)] = tuple(map(code_reader, error_code_paths(type(response))))
        errors = stats.errors
        for read in readers:
            read(response, errors)


# --- levels, read at scrape time -----------------------------------------------------------


def broker_snapshot(broker: Broker) -> BrokerSnapshot:
    """Every level the gauges show, from the broker's state now (on its event loop)."""
    replicas: list[ReplicaState] = []
    follower_high_watermarks: dict[tuple[str, int], int] = {}
    for (topic, index), p in list(broker.replicas.partitions.items()):
        plog = p.log
        if plog.closed:
            continue
        state = p.leader_state
        replicas.append(ReplicaState(
            topic, index, p.leader_id, tuple(p.replicas),
            tuple(sorted(state.isr)) if state is not None else tuple(p.isr), state is not None,
            plog.log_start_offset, plog.log_end_offset, plog.high_watermark, plog.size_in_bytes,
            len(plog.segment_base_offsets()), plog.config.min_insync_replicas))
        if state is None:
            # A follower's high watermark trails its leader's by at most a fetch: the lag of
            # a group coordinated here on a partition led elsewhere is read from it.
            follower_high_watermarks[(topic, index)] = plog.high_watermark
    controller = broker.controller
    active = controller is not None and controller.active
    offline = global_partitions = global_topics = 0
    if controller is not None and active:
        cs = controller.state
        offline = sum(1 for lai, _version in cs.states.values() if lai.leader < 0 or lai.leader not in cs.live)
        global_partitions, global_topics = len(cs.states), len(cs.topics)
    groups: list[GroupState] = []
    coordinator = broker.groups
    for group_id, _protocol_type, _state in coordinator.list_groups():
        error, offsets = coordinator.fetch_offsets(group_id, None)
        if error != ErrorCode.none:
            continue
        members = len(coordinator.describe_group(group_id).members)
        groups.append(GroupState(group_id, members, {tp: o[0] for tp, o in offsets.items()}))
    return BrokerSnapshot(
        replicas=replicas,
        is_active_controller=active,
        offline_partitions=offline,
        global_partitions=global_partitions,
        global_topics=global_topics,
        live_brokers=max(1, len(broker.metadata.brokers)),
        request_queue_size=sum(c.queued_requests for c in list(broker.connections)),
        groups=groups,
        remote_high_watermarks=follower_high_watermarks,
        handler_busy_s=time.thread_time(),  # the event loop's thread: all request handling runs there
    )


# --- the endpoint --------------------------------------------------------------------------


class MetricsEndpoint:
    """/metrics for Prometheus, on `metrics.port` (the first listener's host) or
    `metrics.listener` (http://HOST:PORT); nothing is bound when neither is set."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._server: asyncio.Server | None = None
        self.url: str | None = None

    def render(self) -> str:
        broker = self._broker
        return exposition(broker.metrics.collect(broker_snapshot(broker), time.monotonic()))

    async def start(self) -> None:
        address = self._broker.config.metrics_address()
        if address is None:
            return
        host, port = address
        try:
            self._server = await start_metrics_server(host, port, self.render)
        except OSError as exc:
            setting = "metrics.listener" if self._broker.config["metrics.listener"] else "metrics.port"
            raise RuntimeError(f"{setting}: cannot serve metrics on {host or '*'}:{port}: {exc}") from None
        bound = self._server.sockets[0].getsockname()[1]
        self.url = f"http://{host if host not in ('', '0.0.0.0', '::') else 'localhost'}:{bound}{METRICS_PATH}"
        log.info("metrics on %s", self.url)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

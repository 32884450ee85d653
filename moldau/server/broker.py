"""One Moldau broker: its logs, its metadata, its listeners and its background tasks.

Handlers (moldau/server/handlers/) decide what a request means; the Broker owns the
state they read and change: the log manager, the topic metadata, and the waiters of
delayed fetches.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from moldau.controller.embedded import EmbeddedMetadataStore, TopicState
from moldau.groups.config import GroupConfig
from moldau.groups.coordinator import CoordinatorAppendError, GroupCoordinator
from moldau.log.config import TOPIC_CONFIGS, LogConfig
from moldau.log.errors import RecordTooLargeError
from moldau.log.log import Log
from moldau.log.manager import LogManager
from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import (
    CorruptRecordError,
    InvalidRecordError,
    RecordInput,
    build_batch,
    iter_batches,
    iter_records,
    validate_batches,
)
from moldau.server.config import BrokerConfig, Listener

log = logging.getLogger(__name__)

OFFSETS_TOPIC = "__consumer_offsets"


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class AppendResult:
    error: ErrorCode
    base_offset: int = -1
    log_append_time: int = -1
    log_start_offset: int = -1
    message: str | None = None
    last_offset: int = -1


class TopicError(Exception):
    """A topic operation refused with a Kafka error code and a message."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Broker:
    def __init__(self, config: BrokerConfig, clock: Callable[[], int] = wall_clock_ms) -> None:
        self.config = config
        self.clock = clock
        self.broker_id = config.broker_id
        self.log_dirs = config.log_dirs
        self.logs = LogManager(self.log_dirs, config.log_config())
        self.metadata = EmbeddedMetadataStore(self.log_dirs[0])
        self.servers: list[asyncio.Server] = []
        self.bound: list[Listener] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._data_waiters: dict[tuple[str, int], set[asyncio.Future[None]]] = {}
        self._stopped = asyncio.Event()
        self._dispatcher: object | None = None
        v = config.values
        self.groups = GroupCoordinator(
            GroupConfig(
                min_session_timeout_ms=v["group.min.session.timeout.ms"],
                max_session_timeout_ms=v["group.max.session.timeout.ms"],
                initial_rebalance_delay_ms=v["group.initial.rebalance.delay.ms"],
                max_size=v["group.max.size"],
                offsets_retention_ms=v["offsets.retention.minutes"] * 60_000,
                offsets_topic_partitions=v["offsets.topic.num.partitions"],
                max_metadata_bytes=v["offset.metadata.max.bytes"],
                offsets_retention_check_interval_ms=v["offsets.retention.check.interval.ms"],
            ),
            self._append_group_records,
        )

    # --- lifecycle --------------------------------------------------------------

    async def start(self) -> None:
        from moldau.server.dispatcher import RequestDispatcher

        for d in self.log_dirs:
            d.mkdir(parents=True, exist_ok=True)
        self._check_meta_properties()
        self.logs.load(self.clock())
        self.metadata.load(self._cluster_id)
        for name, value in self.metadata.broker_configs.items():
            self.config.set_dynamic(name, value)
        self._reconcile_logs()
        self.refresh_log_configs()
        self._load_group_partitions()
        dispatcher = RequestDispatcher(self)
        self._dispatcher = dispatcher
        loop = asyncio.get_running_loop()
        from moldau.server.network import KafkaConnection

        max_frame = int(self.config["socket.request.max.bytes"])
        advertised = self.config.advertised_listeners()
        for i, listener in enumerate(self.config.listeners()):
            server = await loop.create_server(
                lambda: KafkaConnection(dispatcher.handle, max_frame),
                host=listener.host or None,
                port=listener.port,
                reuse_address=True,
            )
            port = server.sockets[0].getsockname()[1]
            self.servers.append(server)
            adv = advertised[i] if i < len(advertised) else listener
            host = adv.host if adv.host not in ("", "0.0.0.0", "::") else "localhost"
            self.bound.append(Listener(adv.name, host, adv.port or port))
            log.info("listening on %s:%d (advertised as %s:%d)", listener.host or "*", port,
                     host, adv.port or port)
        self._tasks.append(loop.create_task(self._every(
            int(self.config["log.retention.check.interval.ms"]), self._retention)))
        self._tasks.append(loop.create_task(self._every(
            int(self.config["log.flush.offset.checkpoint.interval.ms"]) or 60000,
            self.logs.checkpoint)))
        self._tasks.append(loop.create_task(self._every(1000, self._flush)))
        self._tasks.append(loop.create_task(self._every(100, self._tick_groups)))

    def _tick_groups(self) -> None:
        self.groups.tick(self.clock())

    def _retention(self) -> None:
        deleted = self.logs.run_retention(self.clock())
        if deleted:
            log.info("retention deleted %d segment(s)", deleted)

    def _flush(self) -> None:
        self.logs.flush_due(self.clock())

    async def _every(self, interval_ms: int, fn: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(interval_ms / 1000)
            try:
                fn()
            except Exception:
                log.exception("background task %s failed", getattr(fn, "__name__", fn))

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        for server in self.servers:
            try:
                await asyncio.wait_for(server.wait_closed(), 1.0)
            except TimeoutError:
                pass
        self.logs.shutdown()
        self._stopped.set()
        log.info("broker %d shut down cleanly", self.broker_id)

    @property
    def port(self) -> int:
        return self.bound[0].port

    def _check_meta_properties(self, cluster_id: str | None = None) -> None:
        """Kafka's meta.properties: one cluster id and broker id per log dir."""
        found: dict[str, str] = {}
        for d in self.log_dirs:
            path = d / "meta.properties"
            if path.exists():
                props = dict(
                    line.split("=", 1)
                    for line in path.read_text().splitlines()
                    if "=" in line and not line.startswith("#")
                )
                if int(props.get("broker.id", self.broker_id)) != self.broker_id:
                    raise RuntimeError(
                        f"log dir {d} belongs to broker {props['broker.id']}, "
                        f"not broker {self.broker_id}"
                    )
                found[str(d)] = props.get("cluster.id", "")
        ids = {v for v in found.values() if v}
        if len(ids) > 1:
            raise RuntimeError(f"log dirs belong to different clusters: {sorted(ids)}")
        if cluster_id is not None and ids and ids != {cluster_id}:
            raise RuntimeError(f"log dirs belong to cluster {sorted(ids)[0]}, not {cluster_id}")
        self._cluster_id = cluster_id or (ids.pop() if ids else _new_cluster_id())
        for d in self.log_dirs:
            path = d / "meta.properties"
            if not path.exists():
                tmp = path.with_suffix(".tmp")
                tmp.write_text(
                    "#Written by Moldau\nversion=0\n"
                    f"broker.id={self.broker_id}\ncluster.id={self._cluster_id}\n"
                )
                os.replace(tmp, path)

    def _reconcile_logs(self) -> None:
        """Create logs the metadata names but the disk lacks; drop logs of deleted topics."""
        now = self.clock()
        for (topic, partition), _ in list(self.logs.all_logs().items()):
            state = self.metadata.topics.get(topic)
            if state is None or partition not in state.partitions:
                log.info("deleting log %s-%d: its topic is gone", topic, partition)
                self.logs.delete(topic, partition)
        for topic in self.metadata.topics.values():
            config = self.log_config_for(topic)
            for p in topic.partitions:
                if self.logs.get(topic.name, p) is None:
                    self.logs.create(topic.name, p, config, now)

    # --- consumer groups ------------------------------------------------------------

    def _append_group_records(self, partition: int, records: list[tuple[bytes, bytes | None]]) -> None:
        """Write group records to __consumer_offsets (the coordinator's durable state)."""
        now = self.clock()
        batch = build_batch([RecordInput(value, key) for key, value in records], timestamp=now)
        result = self.append(OFFSETS_TOPIC, partition, batch, now)
        if result.error != ErrorCode.none:
            raise CoordinatorAppendError(result.error, result.message or "")

    def _load_group_partitions(self) -> None:
        """Single broker: this broker leads every __consumer_offsets partition."""
        topic = self.metadata.topics.get(OFFSETS_TOPIC)
        if topic is None:
            return
        now = self.clock()
        for p in sorted(topic.partitions):
            plog = self.logs.get(OFFSETS_TOPIC, p)
            if plog is not None and p not in self.groups.loaded_partitions:
                self.groups.load_partition(p, _replay(plog), now)

    def ensure_offsets_topic(self) -> bool:
        """Create __consumer_offsets on first use (Kafka does so on FindCoordinator)."""
        if OFFSETS_TOPIC not in self.metadata.topics:
            partitions = int(self.config["offsets.topic.num.partitions"])
            topic = self.metadata.create_topic(
                OFFSETS_TOPIC, partitions, {"cleanup.policy": "compact", "segment.bytes": "104857600"},
                self.broker_id,
            )
            config = self.log_config_for(topic)
            now = self.clock()
            for p in topic.partitions:
                self.logs.create(OFFSETS_TOPIC, p, config, now)
            log.info("created %s with %d partitions", OFFSETS_TOPIC, partitions)
        self._load_group_partitions()
        return True

    def group_coordinator_node(self, group_id: str) -> tuple[int, str, int] | None:
        self.ensure_offsets_topic()
        listener = self.bound[0]
        return self.broker_id, listener.host, listener.port

    # --- topics -----------------------------------------------------------------

    def log_config_for(self, topic: TopicState) -> LogConfig:
        return self.config.log_config().with_overrides(topic.configs)

    def validate_topic_configs(self, configs: dict[str, str | None]) -> None:
        for name, value in configs.items():
            spec = TOPIC_CONFIGS.get(name)
            if spec is None:
                raise TopicError(ErrorCode.invalid_config, f"Unknown topic config name: {name}")
            if value is None:
                continue
            try:
                spec.parse(value)
            except ValueError as exc:
                raise TopicError(ErrorCode.invalid_config, f"Invalid value {value} for configuration {exc}") from None

    def create_topic(
        self,
        name: str,
        partitions: int,
        replication_factor: int,
        configs: dict[str, str],
        *,
        validate_only: bool = False,
        assignment: dict[int, list[int]] | None = None,
    ) -> TopicState | None:
        from moldau.controller import assignment as assign
        from moldau.controller.embedded import topic_name_error

        if assignment is not None:
            try:
                assign.validate_assignment(assignment, {self.broker_id})
            except assign.AssignmentError as exc:
                raise TopicError(exc.error_code, str(exc)) from None
            partitions, replication_factor = len(assignment), len(next(iter(assignment.values())))

        error = topic_name_error(name)
        if error:
            raise TopicError(ErrorCode.invalid_topic_exception, error)
        if name in self.metadata.topics:
            raise TopicError(ErrorCode.topic_already_exists, f"Topic '{name}' already exists.")
        if partitions == -1:
            partitions = int(self.config["num.partitions"])
        if replication_factor == -1:
            replication_factor = int(self.config["default.replication.factor"])
        if partitions <= 0:
            raise TopicError(ErrorCode.invalid_partitions, "Number of partitions must be larger than 0.")
        if partitions > 100_000:
            raise TopicError(ErrorCode.invalid_partitions, f"Number of partitions {partitions} is too large.")
        if replication_factor <= 0:
            raise TopicError(ErrorCode.invalid_replication_factor, "Replication factor must be larger than 0.")
        if replication_factor > 1:
            raise TopicError(
                ErrorCode.invalid_replication_factor,
                f"Replication factor: {replication_factor} larger than available brokers: 1.",
            )
        self.validate_topic_configs(dict(configs))
        if validate_only:
            return None
        topic = self.metadata.create_topic(name, partitions, configs, self.broker_id)
        config = self.log_config_for(topic)
        now = self.clock()
        for p in topic.partitions:
            self.logs.create(name, p, config, now)
        log.info("created topic %s with %d partition(s)", name, partitions)
        return topic

    def delete_topic(self, name: str) -> TopicState:
        if name not in self.metadata.topics:
            raise TopicError(ErrorCode.unknown_topic_or_partition, "This server does not host this topic-partition.")
        topic = self.metadata.delete_topic(name)
        for p in topic.partitions:
            self.logs.delete(name, p)
            self._wake((name, p))
        log.info("deleted topic %s", name)
        return topic

    def create_partitions(
        self, name: str, total: int, *, validate_only: bool = False, assignments: list[list[int]] | None = None
    ) -> None:
        for replicas in assignments or []:
            if replicas != [self.broker_id]:
                raise TopicError(ErrorCode.invalid_replica_assignment,
                                 f"Unknown broker or replica list {replicas}.")
        topic = self.metadata.topics.get(name)
        if topic is None:
            raise TopicError(ErrorCode.unknown_topic_or_partition, f"The topic '{name}' does not exist.")
        current = len(topic.partitions)
        if total <= current:
            raise TopicError(
                ErrorCode.invalid_partitions,
                f"Topic currently has {current} partitions, which is higher than the requested {total}."
                if total < current
                else f"Topic already has {current} partitions.",
            )
        if total > 100_000:
            raise TopicError(ErrorCode.invalid_partitions, f"Number of partitions {total} is too large.")
        if validate_only:
            return
        config = self.log_config_for(topic)
        now = self.clock()
        for p in self.metadata.add_partitions(name, total, self.broker_id):
            self.logs.create(name, p, config, now)

    def set_topic_configs(self, name: str, configs: dict[str, str]) -> None:
        self.metadata.set_topic_configs(name, configs)
        self.logs.update_config(name, self.log_config_for(self.metadata.topics[name]))

    def refresh_log_configs(self) -> None:
        for topic in self.metadata.topics.values():
            self.logs.update_config(topic.name, self.log_config_for(topic))

    # --- the data path ------------------------------------------------------------

    def partition_log(self, topic: str, partition: int) -> Log | None:
        state = self.metadata.topics.get(topic)
        if state is None or partition not in state.partitions:
            return None
        return self.logs.get(topic, partition)

    def partition_exists(self, topic: str, partition: int) -> bool:
        state = self.metadata.topics.get(topic)
        return state is not None and partition in state.partitions

    def partition_error(self, topic: str, partition: int) -> ErrorCode:
        """Why partition_log gave nothing: unknown here; in a cluster, maybe not the leader."""
        return ErrorCode.unknown_topic_or_partition

    def live_brokers(self) -> list[tuple[int, str, int, str | None]]:
        """(id, host, port, rack) of every live broker, for Metadata and DescribeCluster."""
        return [(self.broker_id, lst.host, lst.port, self.config["broker.rack"]) for lst in self.bound[:1]]

    def controller_id(self) -> int:
        return self.broker_id

    async def wait_for_topics(self, names: list[str], present: bool, timeout_s: float) -> None:
        """In a cluster, let topic changes reach this broker's metadata; alone, they already have."""

    async def wait_for_partition_count(self, name: str, count: int, timeout_s: float) -> None:
        """Likewise for partitions added by CreatePartitions."""

    def append(self, topic: str, partition: int, records: bytes | None, now_ms: int) -> AppendResult:
        plog = self.partition_log(topic, partition)
        if plog is None:
            return AppendResult(self.partition_error(topic, partition))
        if not records:
            return AppendResult(ErrorCode.invalid_record, message="produce request without records")
        buf = bytearray(records)
        try:
            headers = validate_batches(buf)
        except CorruptRecordError as exc:
            return AppendResult(ErrorCode.corrupt_message, message=str(exc))
        except InvalidRecordError as exc:
            return AppendResult(ErrorCode.invalid_record, message=str(exc))
        config = plog.config
        for h in headers:
            if h.size > config.max_message_bytes:
                return AppendResult(
                    ErrorCode.message_too_large,
                    message=f"batch of {h.size} bytes exceeds max.message.bytes {config.max_message_bytes}",
                )
        if len(buf) > config.segment_bytes:
            return AppendResult(
                ErrorCode.record_list_too_large,
                message=f"{len(buf)} bytes exceed segment.bytes {config.segment_bytes}",
            )
        try:
            info = plog.append(buf, headers, leader_epoch=self.leader_epoch(topic, partition), now_ms=now_ms)
        except RecordTooLargeError as exc:
            return AppendResult(ErrorCode.message_too_large, message=str(exc))
        self.after_leader_append(topic, partition, plog)
        self._wake((topic, partition))
        return AppendResult(ErrorCode.none, info.first_offset, info.log_append_time, info.log_start_offset,
                            last_offset=info.last_offset)

    def high_watermark(self, plog: Log) -> int:
        """A single replica is its own ISR: everything appended is committed."""
        return plog.log_end_offset

    def leader_epoch(self, topic: str, partition: int) -> int:
        state = self.metadata.topics.get(topic)
        if state is None or partition not in state.partitions:
            return -1
        return state.partitions[partition].leader_epoch

    def in_sync_replicas(self, topic: str, partition: int) -> int:
        return 1

    async def wait_for_acks(self, topic: str, partition: int, required_offset: int, timeout_s: float,
                            min_isr: int) -> ErrorCode:
        """acks=all: alone, the append itself is the whole ISR's."""
        return ErrorCode.none

    def on_replica_fetch(self, topic: str, partition: int, replica_id: int, fetch_offset: int, plog: Log) -> None:
        """A follower fetched (clusters only)."""

    def after_leader_append(self, topic: str, partition: int, plog: Log) -> None:
        """Let the high watermark move (clusters only)."""

    # --- delayed fetch --------------------------------------------------------------

    def _wake(self, key: tuple[str, int]) -> None:
        waiters = self._data_waiters.pop(key, None)
        if waiters:
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)

    async def wait_for_data(self, keys: list[tuple[str, int]], timeout_s: float) -> None:
        """Return when any of these partitions gets an append, or after the timeout."""
        if timeout_s <= 0 or not keys:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for key in keys:
            self._data_waiters.setdefault(key, set()).add(fut)
        try:
            await asyncio.wait_for(fut, timeout_s)
        except TimeoutError:
            pass
        finally:
            for key in keys:
                waiters = self._data_waiters.get(key)
                if waiters is not None:
                    waiters.discard(fut)
                    if not waiters:
                        self._data_waiters.pop(key, None)


def _replay(plog: Log) -> list[tuple[bytes, bytes | None]]:
    """Every (key, value) of a __consumer_offsets partition, in offset order."""
    out: list[tuple[bytes, bytes | None]] = []
    offset = plog.log_start_offset
    while offset < plog.log_end_offset:
        data = plog.read(offset, 1 << 20)
        if not data:
            break
        for header, batch in iter_batches(data):
            for record in iter_records(batch):
                if record.offset >= offset and record.key is not None:
                    out.append((record.key, record.value))
            offset = header.next_offset
    return out


def _new_cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")

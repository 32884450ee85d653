"""What every Moldau broker has: its logs, the append path, the group coordinator, the
waiters of delayed fetches and its background tasks; and the interface the request
handlers (moldau/server/handlers/) call. `ClusterBroker` (cluster_broker.py) implements
it, alone on the embedded coordinator or in a ZooKeeper cluster.
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
from typing import Any

from moldau.controller.embedded import TopicState
from moldau.groups.config import GroupConfig
from moldau.groups.coordinator import CoordinatorAppendError, GroupCoordinator
from moldau.log.cleaner import CleaningRound, offset_map_capacity
from moldau.log.config import TOPIC_CONFIGS, LogConfig
from moldau.log.errors import LogError, RecordTooLargeError
from moldau.log.log import Log
from moldau.log.manager import LogManager
from moldau.log.producer_state import ProducerStateError
from moldau.log.throttler import Throttler
from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import (
    BatchHeader,
    CorruptRecordError,
    InvalidRecordError,
    RecordInput,
    build_batch,
    has_keyless_record,
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
        self.metadata: Any = None  # the subclass's metadata view: topics, topics_by_id, cluster_id
        self.servers: list[asyncio.Server] = []
        self.bound: list[Listener] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._log_cleaner: asyncio.Task[None] | None = None
        self._uncleanable: dict[tuple[str, int], Log] = {}  # logs the cleaner failed on
        self._cleaner_throttler: Throttler | None = None
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

    def _tick_groups(self) -> None:
        self.groups.tick(self.clock())

    def _retention(self) -> None:
        deleted = self.logs.run_retention(self.clock())
        if deleted:
            log.info("retention deleted %d segment(s)", deleted)

    def _flush(self) -> None:
        self.logs.flush_due(self.clock())

    def _start_log_cleaner(self) -> None:
        """Start the cleaner (with log.cleaner.enable) on the running loop, as one of the
        background tasks cancelled at shutdown."""
        if self._log_cleaner is None and self.config["log.cleaner.enable"]:
            self._log_cleaner = asyncio.get_running_loop().create_task(self._run_log_cleaner())
            self._tasks.append(self._log_cleaner)

    async def _run_log_cleaner(self) -> None:
        """Kafka's cleaner thread: clean the filthiest compacted log; look again at once
        when that made progress, else after ``log.cleaner.backoff.ms``."""
        while True:
            try:
                progressed = await self._clean_filthiest_log()
            except Exception:
                log.exception("log cleaner failed")
                progressed = False
            if not progressed:
                await asyncio.sleep(int(self.config["log.cleaner.backoff.ms"]) / 1000)

    async def _clean_filthiest_log(self) -> bool:
        """One cleaning round (see moldau/log/cleaner.py): the offset map and the cleaned
        segments are built in a worker thread while this loop keeps serving the log; each
        swap runs here. Returns whether the log's first dirty offset moved."""
        skip = {key for key, plog in self._uncleanable.items() if self.logs.get(*key) is plog}
        todo = self.logs.filthiest_log(self.clock(), skip)
        if todo is None:
            return False
        plog, key = todo.log, (todo.log.topic, todo.log.partition)
        v = self.config.values
        capacity = offset_map_capacity(v["log.cleaner.dedupe.buffer.size"], v["log.cleaner.io.buffer.load.factor"])
        rate = float(v["log.cleaner.io.max.bytes.per.second"])
        if self._cleaner_throttler is None or self._cleaner_throttler.max_bytes_per_s != rate:
            self._cleaner_throttler = Throttler(rate)
        cleaning = CleaningRound(plog, todo.first_dirty_offset, todo.first_uncleanable_offset, capacity,
                                 self._cleaner_throttler)
        started, size_before = time.monotonic(), plog.size_in_bytes
        try:
            offset_map = await asyncio.to_thread(cleaning.build_offset_map)
            for group in cleaning.groups(offset_map):
                cleaned = await asyncio.to_thread(cleaning.clean_group, group, offset_map)
                if not cleaning.swap(cleaned, group):
                    log.info("log cleaner: %s-%d changed while it was cleaned; will retry", *key)
                    return False
        except asyncio.CancelledError:
            cleaning.abort()
            raise
        except LogError as exc:
            if cleaning.log_changed():
                # A truncation or deletion under the reader explains a torn batch: retry.
                log.warning("log cleaner: %s-%d changed while it was read; will retry: %s", key[0], key[1], exc)
                return False
            # Kafka marks such a partition uncleanable rather than failing on it forever.
            self._uncleanable[key] = plog
            log.error("log cleaner: %s-%d is not cleanable: %s", key[0], key[1], exc)
            return False
        except OSError as exc:
            # Most likely a segment deleted by retention, or the log deleted, meanwhile.
            log.warning("log cleaner: cleaning %s-%d failed, will retry: %s", key[0], key[1], exc)
            return False
        plog.first_dirty_offset = offset_map.end_offset
        self.logs.checkpoint_cleaner_offsets(plog)
        log.info("log cleaner: cleaned %s-%d up to offset %d (dirty from %d) in %.3f s: %d -> %d bytes, "
                 "%d segment(s)", key[0], key[1], offset_map.end_offset, todo.first_dirty_offset,
                 time.monotonic() - started, size_before, plog.size_in_bytes, len(plog.segment_base_offsets()))
        return offset_map.end_offset > todo.first_dirty_offset

    async def _every(self, interval_ms: int, fn: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(interval_ms / 1000)
            try:
                fn()
            except Exception:
                log.exception("background task %s failed", getattr(fn, "__name__", fn))

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

    # --- consumer groups ------------------------------------------------------------

    def _append_group_records(self, partition: int, records: list[tuple[bytes, bytes | None]]) -> None:
        """Write group records to __consumer_offsets (the coordinator's durable state)."""
        now = self.clock()
        batch = build_batch([RecordInput(value, key) for key, value in records], timestamp=now)
        result = self.append(OFFSETS_TOPIC, partition, batch, now)
        if result.error != ErrorCode.none:
            raise CoordinatorAppendError(result.error, result.message or "")

    # --- topics (implemented by ClusterBroker, alone or in a cluster) ----------------

    def create_topic(self, name: str, partitions: int, replication_factor: int, configs: dict[str, str], *,
                     validate_only: bool = False, assignment: dict[int, list[int]] | None = None) -> TopicState | None:
        raise NotImplementedError

    def delete_topic(self, name: str) -> TopicState:
        raise NotImplementedError

    def create_partitions(self, name: str, total: int, *, validate_only: bool = False,
                          assignments: list[list[int]] | None = None) -> None:
        raise NotImplementedError

    async def set_topic_configs(self, name: str, configs: dict[str, str]) -> None:
        raise NotImplementedError

    async def group_coordinator_node(self, group_id: str, listener: str = "") -> tuple[int, str, int] | None:
        """(broker id, host, port) of the coordinator of a group on `listener` (default:
        the inter-broker listener), or None while unknown."""
        raise NotImplementedError

    # --- SCRAM credentials (blocking: handlers call these in a thread) ----------------

    def scram_users(self) -> dict[str, dict[str, str]]:
        """user -> {mechanism: Kafka's credential string}; TopicError if unavailable."""
        raise NotImplementedError

    def scram_credentials(self, user: str) -> dict[str, str]:
        raise NotImplementedError

    def set_scram_credentials(self, user: str, credentials: dict[str, str]) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

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

    def refresh_log_configs(self) -> None:
        for topic in self.metadata.topics.values():
            self.logs.update_config(topic.name, self.log_config_for(topic))

    # --- the data path ------------------------------------------------------------

    def partition_log(self, topic: str, partition: int) -> Log | None:
        """The log of a partition this broker leads now, or None."""
        raise NotImplementedError

    def partition_exists(self, topic: str, partition: int) -> bool:
        state = self.metadata.topics.get(topic)
        return state is not None and partition in state.partitions

    def partition_error(self, topic: str, partition: int) -> ErrorCode:
        """Why partition_log gave nothing: unknown partition, no leader, or not the leader."""
        raise NotImplementedError

    def live_brokers(self, listener: str = "") -> list[tuple[int, str, int, str | None]]:
        """(id, host, port, rack) of every live broker on `listener` (the one the client
        connected to; default: the inter-broker listener), for Metadata and DescribeCluster."""
        raise NotImplementedError

    def controller_id(self) -> int:
        raise NotImplementedError

    async def wait_for_topics(self, names: list[str], present: bool, timeout_s: float) -> None:
        """Let topic creations/deletions reach this broker's metadata."""
        raise NotImplementedError

    async def wait_for_partition_count(self, name: str, count: int, timeout_s: float) -> None:
        """Likewise for partitions added by CreatePartitions."""
        raise NotImplementedError

    def append(self, topic: str, partition: int, records: bytes | None, now_ms: int, acks: int = 1) -> AppendResult:
        plog = self.partition_log(topic, partition)
        if plog is None:
            return AppendResult(self.partition_error(topic, partition))
        if acks == -1:  # min.insync.replicas is checked before the append (Kafka's NOT_ENOUGH_REPLICAS)
            min_isr = plog.config.min_insync_replicas
            isr = self.in_sync_replicas(topic, partition)
            if isr < min_isr:
                return AppendResult(
                    ErrorCode.not_enough_replicas,
                    message=f"The size of the current ISR {isr} is insufficient to satisfy the min.isr "
                    f"requirement of {min_isr} for partition {topic}-{partition}",
                )
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
        if config.compact:  # only compacted topics pay for decoding records (Kafka's LogValidator)
            try:
                keyless = _has_keyless_record(buf, headers)
            except CorruptRecordError as exc:
                return AppendResult(ErrorCode.corrupt_message, message=str(exc))
            if keyless:
                return AppendResult(
                    ErrorCode.invalid_record,
                    message=f"Compacted topic cannot accept message without key in topic partition "
                    f"{topic}-{partition}.",
                )
        try:
            info = plog.append(buf, headers, leader_epoch=self.leader_epoch(topic, partition), now_ms=now_ms)
        except RecordTooLargeError as exc:
            return AppendResult(ErrorCode.message_too_large, message=str(exc))
        except ProducerStateError as exc:  # OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH
            return AppendResult(ErrorCode(exc.error_code), message=str(exc))
        except LogError as exc:
            return AppendResult(ErrorCode.invalid_record, message=str(exc))
        if info.duplicate:  # an idempotent producer's retry: answered with the first write's offsets
            return AppendResult(ErrorCode.none, info.first_offset, info.log_append_time, info.log_start_offset,
                                last_offset=info.last_offset)
        self.after_leader_append(topic, partition, plog)
        self._wake((topic, partition))
        return AppendResult(ErrorCode.none, info.first_offset, info.log_append_time, info.log_start_offset,
                            last_offset=info.last_offset)

    def high_watermark(self, plog: Log) -> int:
        raise NotImplementedError

    def leader_epoch(self, topic: str, partition: int) -> int:
        raise NotImplementedError

    def in_sync_replicas(self, topic: str, partition: int) -> int:
        raise NotImplementedError

    async def wait_for_acks(self, topic: str, partition: int, required_offset: int, timeout_s: float,
                            min_isr: int) -> ErrorCode:
        """acks=all: until every in-sync replica has `required_offset`."""
        raise NotImplementedError

    def on_replica_fetch(self, topic: str, partition: int, replica_id: int, fetch_offset: int, plog: Log) -> None:
        """A follower fetched from this leader."""
        raise NotImplementedError

    def after_leader_append(self, topic: str, partition: int, plog: Log) -> None:
        """Let the high watermark move after an append."""
        raise NotImplementedError

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


def _has_keyless_record(buf: bytearray, headers: list[BatchHeader]) -> bool:
    position = 0
    for header in headers:
        if has_keyless_record(memoryview(buf)[position : position + header.size]):
            return True
        position += header.size
    return False


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

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
from typing import Any

from moldau.controller.embedded import TopicState
from moldau.groups.config import GroupConfig
from moldau.groups.coordinator import CoordinatorAppendError, GroupCoordinator
from moldau.log.cleaner import CleaningRound, offset_map_capacity
from moldau.log.config import TOPIC_CONFIGS, LogConfig
from moldau.log.errors import LogError
from moldau.log.log import Log
from moldau.log.manager import LogManager
from moldau.log.throttler import Throttler
from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import (
    RecordInput,
    build_batch,
    iter_batches,
    iter_records,
)
from moldau.replication.replica_manager import ProducePartitionResult, ReplicaManager
from moldau.server.config import BrokerConfig, Listener
from moldau.server.errors import TopicError

log = logging.getLogger(__name__)

OFFSETS_TOPIC = "__consumer_offsets"


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class Broker:
    def __init__(self, config: BrokerConfig, clock: Callable[[], int] = wall_clock_ms) -> None:
        self.config = config
        self.clock = clock
        self.broker_id = config.broker_id
        self.log_dirs = config.log_dirs
        self.logs = LogManager(self.log_dirs, config.log_config())
        self.metadata: Any = None  # the subclass's metadata view: topics, topics_by_id, cluster_id
        self.replicas: ReplicaManager  # built by the subclass, which has what it needs
        self.servers: list[asyncio.Server] = []
        self.bound: list[Listener] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._log_cleaner: asyncio.Task[None] | None = None
        self._uncleanable: dict[tuple[str, int], Log] = {}  # logs the cleaner failed on
        self._cleaner_throttler: Throttler | None = None
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
        done: list[ProducePartitionResult] = []
        self.replicas.append_records(1, 0, [((OFFSETS_TOPIC, partition), batch)],
                                     lambda results: done.extend(results.values()))
        result = done[0]
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

    def partition_exists(self, topic: str, partition: int) -> bool:
        state = self.metadata.topics.get(topic)
        return state is not None and partition in state.partitions

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

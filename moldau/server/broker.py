"""A Moldau broker (Kafka's KafkaServer), alone on the embedded coordinator or in a
cluster coordinated by ZooKeeper (`zookeeper.connect` is set).

It registers itself, competes for the controller role, learns partition roles from the
controller (LeaderAndIsr), keeps a metadata cache fed by UpdateMetadata, and serves a
partition's data only while it leads it. Admin requests write the coordination service
(as Kafka's ZooKeeper-mode brokers do) and the controller reacts to its watches.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
import os
import time
import uuid
import weakref
from collections.abc import Callable
from typing import Any

from moldau.authorizer.principal import distinguished_name, ssl_principal
from moldau.authorizer.ssl_principal_mapper import SslPrincipalMapper
from moldau.controller import assignment as assign
from moldau.controller.controller import ControlledShutdown, Controller, PreferredElection
from moldau.controller.coordination import (
    BrokerIdInUseError,
    BrokerInfo,
    Coordination,
    CoordinationError,
    Endpoint,
    TopicAssignment,
    TopicExistsError,
)
from moldau.controller.embedded import PartitionState, TopicState, topic_name_error
from moldau.groups.config import GroupConfig
from moldau.groups.coordinator import GroupCoordinator
from moldau.log.config import TOPIC_CONFIGS, LogConfig
from moldau.log.log import Log
from moldau.log.manager import LogManager
from moldau.metrics.kafka import BrokerMetrics
from moldau.protocol import interbroker as ib
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.quotas.replication import ReplicationQuotaManager
from moldau.replication.replica_manager import ReplicaManager, ReplicaManagerConfig
from moldau.replication.seams import LeaderAndIsrState
from moldau.server.acl_manager import AclManager
from moldau.server.broker_client import BrokerConnection
from moldau.server.broker_metrics import MetricsEndpoint, RequestMetrics
from moldau.server.client_quotas import ClientQuotas
from moldau.server.config import BrokerConfig, Listener
from moldau.server.context import HandlerContext
from moldau.server.coordinator_log import CoordinatorLog, replay_coordinator_partition
from moldau.server.errors import TopicError
from moldau.server.fetch_session import FetchSessionCache
from moldau.server.log_cleaning import LogCleanerTask
from moldau.server.metadata_cache import MetadataCache
from moldau.server.network import Handler, KafkaConnection
from moldau.server.producer_ids import ProducerIdManager
from moldau.server.replication_links import (
    BrokerLeaderEndPoints,
    BrokerLease,
    ControllerLink,
    InterBrokerChannels,
    LoopScheduler,
    MetadataLeaders,
)
from moldau.server.security.authenticator import SaslServerAuthenticator
from moldau.server.security.listener import ListenerSecurity
from moldau.server.security.scram import ScramCredential
from moldau.server.transaction_coordination import TransactionService, transaction_config
from moldau.transactions.records import TRANSACTION_STATE_TOPIC

log = logging.getLogger(__name__)

OFFSETS_TOPIC_WAIT_S = 5.0

OFFSETS_TOPIC = "__consumer_offsets"


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000



def _coordination_errors_as_topic_errors(method: Callable[..., Any]) -> Callable[..., Any]:
    """An admin request whose ZooKeeper work fails gets a Kafka error with the reason
    (UNKNOWN_SERVER_ERROR), not a closed connection."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except CoordinationError as exc:
            raise TopicError(ErrorCode.unknown_server_error, f"ZooKeeper unavailable: {exc}") from None

    return functools.wraps(method)(wrapper)


class Broker:
    def __init__(self, config: BrokerConfig, coordination: Coordination | None = None,
                 clock: Callable[[], int] = wall_clock_ms) -> None:
        self.config = config
        self.clock = clock
        self.broker_id = config.broker_id
        self.log_dirs = config.log_dirs
        self.logs = LogManager(self.log_dirs, config.log_config(),
                               recovery_threads_per_dir=int(config["num.recovery.threads.per.data.dir"]))
        self.servers: list[asyncio.Server] = []
        self.bound: list[Listener] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.log_cleaner = LogCleanerTask(self.logs, config, clock)
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
            lambda *args: self.coordinator_log.append_transactional(*args),
        )
        if coordination is None:
            from moldau.controller.zookeeper import ZooKeeperCoordination

            coordination = ZooKeeperCoordination(
                config["zookeeper.connect"],
                session_timeout_ms=int(config["zookeeper.session.timeout.ms"]),
                connection_timeout_ms=config["zookeeper.connection.timeout.ms"],
            )
        self.coordination = coordination
        self.inter_broker = config.security.inter_broker  # how we connect to other brokers
        self.metadata = MetadataCache(self.inter_broker.listener)
        self.controller: Controller | None = None
        self.controller_epoch_seen = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._registered = False
        self._stopping = False
        # Leadership lease: a leader serves only while a recent round trip to ZooKeeper,
        # in the session it registered with, proves the session cannot have expired.
        self._session_s = int(config["zookeeper.session.timeout.ms"]) / 1000
        self.lease = BrokerLease(self._session_s)
        self._registered_session: int | None = None
        # The session our partition roles were granted in: roles outlive a disconnection
        # (Kafka gives up nothing until ZooKeeper says the session expired), never the session.
        self._roles_session: int | None = None
        self.controller_link = ControllerLink(self.broker_id, self.metadata, self.inter_broker,
                                              lambda: self.controller)
        self.metrics = BrokerMetrics()  # counted always; served on metrics.port (server/broker_metrics.py)
        self.metrics_endpoint = MetricsEndpoint(self)
        self.connections: weakref.WeakSet[KafkaConnection] = weakref.WeakSet()
        self.replicas = ReplicaManager(
            ReplicaManagerConfig(self.broker_id, int(config["replica.lag.time.max.ms"]),
                                 config["replica.selector.class"], max(int(config["replica.fetch.max.bytes"]), 1)),
            self.logs, self.clock, LoopScheduler(), self.lease, self.controller_link,
            BrokerLeaderEndPoints(self.broker_id, self.metadata, self.inter_broker), MetadataLeaders(self.metadata),
            self._on_leadership_change, stats=self.metrics, live_racks=lambda: self.metadata.racks,
            leader_quota=self._replication_quota("leader.replication.throttled.rate"),
            follower_quota=self._replication_quota("follower.replication.throttled.rate"))
        self.producer_ids = ProducerIdManager(self.broker_id, self.coordination.allocate_producer_ids)
        self.coordinator_log = CoordinatorLog(self.replicas, self.clock,
                                              lambda: int(self.config["offsets.commit.timeout.ms"]))
        self.transactions = TransactionService(
            self.broker_id, transaction_config(config), self.replicas, self.metadata, self.producer_ids,
            self.inter_broker, self.clock, int(config["request.timeout.ms"]))
        self._transaction_state_creation: asyncio.Future[None] | None = None
        self.acls = AclManager(config.authorizer_config(), self.coordination, self.clock)
        self.quotas = ClientQuotas(self.coordination, self.clock, int(config["quota.window.num"]),
                                   int(config["quota.window.size.seconds"]) * 1000)
        self.context = HandlerContext(
            self.broker_id, config, self.clock, self.replicas, self.groups, self.metadata, self.logs,
            self.producer_ids,
            FetchSessionCache(int(config["max.incremental.fetch.session.cache.slots"]),
                              int(config["min.incremental.fetch.session.eviction.ms"]) / 1000),
            admin=self, cluster=self, coordinator_log=self.coordinator_log, acls=self.acls, quotas=self.quotas,
            transactions=self.transactions)
        self._stray_logs_checked = False
        self._metadata_waiters: list[asyncio.Future[None]] = []  # woken by every UpdateMetadata
        self._configs_loaded: set[str] = set()
        self._offsets_topic_creation: asyncio.Future[None] | None = None
        self._election: asyncio.Task[None] | None = None
        # How many times this broker wrote each topic's configs: a reload skips a topic
        # written while it read.
        self._config_writes: dict[str, int] = {}
        self._election_again = False
        self._groups_unloaded_for_lease: set[int] = set()
        self._transactions_unloaded_for_lease: set[int] = set()

    # --- lifecycle ----------------------------------------------------------------

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
        """Write group records to __consumer_offsets (the coordinator's durable state),
        acks=all (server/coordinator_log.py)."""
        self.coordinator_log.append(partition, records)

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

    async def start(self) -> None:
        from moldau.server.dispatcher import RequestDispatcher

        self._loop = asyncio.get_running_loop()
        for d in self.log_dirs:
            d.mkdir(parents=True, exist_ok=True)
        local_id = self._local_cluster_id()
        await asyncio.to_thread(self.coordination.start)
        cluster_id = await asyncio.to_thread(self.coordination.get_or_create_cluster_id, local_id or _new_cluster_id())
        if local_id and local_id != cluster_id:
            raise RuntimeError(
                f"the log dirs belong to cluster {local_id}, but ZooKeeper holds cluster {cluster_id}; "
                "refusing to start (wrong zookeeper.connect or log.dirs?)")
        self.metadata.cluster_id = cluster_id
        self.metadata.on_save = self.coordination.set_broker_configs
        self._apply_broker_configs(await asyncio.to_thread(self.coordination.broker_configs))
        self._check_meta_properties(cluster_id)
        await self.acls.start()
        await self.quotas.load()
        self.logs.load(self.clock())
        await self.metrics_endpoint.start()
        for jwks in self.config.security.jwks_sources:  # signed OAUTHBEARER tokens' keys, before any login
            await jwks.start()
        dispatcher = RequestDispatcher(self.context, RequestMetrics(self.metrics))
        max_frame = int(self.config["socket.request.max.bytes"])
        advertised = {lst.name: lst for lst in self.config.advertised_listeners()}
        for listener in self.config.listeners():
            security = self.config.security.listeners[listener.name]
            server = await self._loop.create_server(
                self._connection_factory(dispatcher.handle, security, max_frame),
                host=listener.host or None, port=listener.port, reuse_address=True, ssl=security.ssl_context)
            port = server.sockets[0].getsockname()[1]
            self.servers.append(server)
            adv = advertised.get(listener.name, listener)
            host = adv.host if adv.host not in ("", "0.0.0.0", "::") else "localhost"
            self.bound.append(Listener(adv.name, host, adv.port or port))
            log.info("listener %s (%s) on %s:%d", listener.name, security.protocol, listener.host or "*", port)
        self.coordination.on_session_lost(lambda: self._threadsafe(self._on_session_lost))
        self.coordination.watch_controller(lambda: self._threadsafe(self._on_controller_change))
        self.coordination.watch_brokers(lambda: self._threadsafe(self._forward, "brokers"))
        self.coordination.watch_topics(lambda: self._threadsafe(self._forward, "topics"))
        self.coordination.watch_topic_deletions(lambda: self._threadsafe(self._forward, "deletions"))
        self.coordination.watch_config_changes(lambda: self._threadsafe(self._on_config_change))
        await self._register()
        self._on_controller_change()
        loop = self._loop
        self._tasks.append(loop.create_task(self._every(
            int(self.config["log.retention.check.interval.ms"]), self._retention)))
        self._tasks.append(loop.create_task(self._every(
            int(self.config["log.flush.offset.checkpoint.interval.ms"]) or 60000, self.logs.checkpoint)))
        self._tasks.append(loop.create_task(self._every(1000, self._flush)))
        if self.config["log.cleaner.enable"]:
            self._tasks.append(loop.create_task(self.log_cleaner.run()))
        self._tasks.append(loop.create_task(self._every(100, self._tick_groups)))
        self._tasks.append(loop.create_task(self._every(100, self.transactions.tick)))
        self._tasks.append(loop.create_task(self._every(
            int(self.config["producer.id.expiration.check.interval.ms"]), self._expire_producers)))
        self._tasks.append(loop.create_task(self._renew_lease()))
        self._tasks.append(loop.create_task(self._every(
            max(100, int(self.config["replica.lag.time.max.ms"]) // 4), self._check_isr)))
        if self.config["auto.leader.rebalance.enable"]:
            self._tasks.append(loop.create_task(self._every(
                int(self.config["leader.imbalance.check.interval.seconds"]) * 1000, self._auto_rebalance)))
        log.info("broker %d joined cluster %s", self.broker_id, cluster_id)

    def _connection_factory(self, dispatch: Handler, security: ListenerSecurity,
                            max_frame: int) -> Callable[[], KafkaConnection]:
        """PLAINTEXT and SSL connections go straight to the dispatcher (TLS is the
        transport's business); SASL ones first to an authenticator of their own."""
        name = security.name
        if not security.sasl and security.ssl_context is not None:
            mapper = self.config.ssl_principal_mapper()
            return lambda: KafkaConnection(dispatch, max_frame, name, lambda t: _tls_principal(mapper, t))
        if not security.sasl:
            return lambda: self._tracked(KafkaConnection(dispatch, max_frame, name))
        delay_s = int(self.config["connection.failed.authentication.delay.ms"]) / 1000

        def sasl_connection() -> KafkaConnection:
            authenticator = SaslServerAuthenticator(security, dispatch, self._scram_credential, delay_s,
                                                    int(self.config["connections.max.reauth.ms"]))
            return self._tracked(KafkaConnection(authenticator.handle, max_frame, name))

        return sasl_connection

    def _tracked(self, connection: KafkaConnection) -> KafkaConnection:
        self.connections.add(connection)  # weakly: for the request queue size at scrape time
        return connection

    async def _scram_credential(self, mechanism: str, user: str) -> ScramCredential | None:
        credentials = await asyncio.to_thread(self.coordination.user_scram_credentials, user)
        text = credentials.get(mechanism)
        return ScramCredential.from_kafka(text) if text is not None else None

    @_coordination_errors_as_topic_errors
    def scram_users(self) -> dict[str, dict[str, str]]:
        return self.coordination.scram_users()

    @_coordination_errors_as_topic_errors
    def scram_credentials(self, user: str) -> dict[str, str]:
        return self.coordination.user_scram_credentials(user)

    @_coordination_errors_as_topic_errors
    def set_scram_credentials(self, user: str, credentials: dict[str, str]) -> None:
        self.coordination.set_user_scram_credentials(user, credentials)

    def _local_cluster_id(self) -> str | None:
        for d in self.log_dirs:
            path = d / "meta.properties"
            if path.exists():
                for line in path.read_text().splitlines():
                    if line.startswith("cluster.id="):
                        return line.split("=", 1)[1].strip()
        return None

    def _broker_info(self) -> BrokerInfo:
        return BrokerInfo(
            self.broker_id,
            tuple(Endpoint(lst.name, lst.host, lst.port, self.config.security_protocol(lst.name))
                  for lst in self.bound),
            self.config["broker.rack"],
        )

    async def _register(self) -> None:
        # A broker restarted right after a crash finds its previous registration still
        # there until that session expires: wait that long before calling it a duplicate.
        give_up = time.monotonic() + self._session_s + 1.0
        while True:
            started = time.monotonic()
            self._give_up_roles_of_an_ended_session()
            try:
                await asyncio.to_thread(self.coordination.register_broker, self._broker_info())
                break
            except BrokerIdInUseError:
                if time.monotonic() >= give_up:
                    raise RuntimeError(
                        f"broker id {self.broker_id} is already registered in ZooKeeper by a live broker; "
                        "refusing to start with a duplicate broker.id") from None
                await asyncio.sleep(0.25)
        self._give_up_roles_of_an_ended_session()
        self._registered = True
        self._registered_session = self.coordination.session_id
        self.lease.renew(started)

    def _give_up_roles_of_an_ended_session(self) -> None:
        """Leadership belongs to the session it was granted in. Registering in a new one,
        after ours expired, the controller has seen us leave and moved our partitions on
        (its LeaderAndIsr will say what we lead now): give them all up first. Back in the
        same session (we only presumed it lost), nothing moved, and we keep them: the
        controller, which never saw us leave, would never send them again (reliability
        anomaly #8)."""
        session = self.coordination.session_id
        if session is None:
            return
        if self._roles_session is not None and session != self._roles_session:
            log.warning("broker %d: in a new ZooKeeper session (0x%x, was 0x%x): giving up the partitions "
                        "led in the old one", self.broker_id, session, self._roles_session)
            self.replicas.resign_leadership()
        elif self._roles_session is not None and not self._registered:
            log.info("broker %d: ZooKeeper session 0x%x survived; keeping the partitions it leads",
                     self.broker_id, session)
        self._roles_session = session

    async def _renew_lease(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self._session_s / 5)
            if not self._registered:
                continue
            started = time.monotonic()
            try:
                await asyncio.to_thread(self.coordination.ping)
            except CoordinationError:
                continue
            if self.coordination.session_id == self._registered_session and self._registered:
                self.lease.renew(started)

    def _check_isr(self) -> None:
        if self.lease_valid():
            self.replicas.check_isr(self.clock())
            self._reload_groups_after_lease()
        else:
            self._unload_groups_without_lease()

    def _unload_groups_without_lease(self) -> None:
        """A coordinator serves only within the leadership lease, as a partition leader
        does: past it another broker may coordinate these groups, and answering from our
        cache (OffsetFetch) would hand out stale offsets (docs/reliability.md #1)."""
        for p in list(self.groups.loaded_partitions):
            self.groups.unload_partition(p)
            self._groups_unloaded_for_lease.add(p)
            log.warning("broker %d: no recent ZooKeeper round trip; not coordinating the groups of %s-%d",
                        self.broker_id, OFFSETS_TOPIC, p)
        for p in list(self.transactions.coordinator.loaded_partitions):  # the same for transactions
            self.transactions.unload_partition(p)
            self._transactions_unloaded_for_lease.add(p)

    def _reload_groups_after_lease(self) -> None:
        """The lease is back: reload the group partitions this broker still leads."""
        for p in list(self._transactions_unloaded_for_lease):
            self._transactions_unloaded_for_lease.discard(p)
            txn = self.replicas.partitions.get((TRANSACTION_STATE_TOPIC, p))
            if txn is not None and txn.is_leader and p not in self.transactions.coordinator.loaded_partitions:
                self.transactions.load_partition(p, txn.leader_epoch, txn.log)
        for p in list(self._groups_unloaded_for_lease):
            self._groups_unloaded_for_lease.discard(p)
            partition = self.replicas.partitions.get((OFFSETS_TOPIC, p))
            if partition is not None and partition.is_leader and p not in self.groups.loaded_partitions:
                log.info("broker %d: lease renewed; coordinating the groups of %s-%d again", self.broker_id,
                         OFFSETS_TOPIC, p)
                self._load_group_partition(p, partition.log)

    def lease_valid(self) -> bool:
        return self.lease.valid()

    def _threadsafe(self, fn: Any, *args: Any) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn, *args)

    def _forward(self, event: str) -> None:
        if self.controller is not None and self.controller.active:
            self.controller.enqueue(event)

    def _on_controller_change(self) -> None:
        """/controller changed (or we just registered): run an election off the event
        loop; changes that arrive meanwhile coalesce into one more round."""
        if self._stopping or not self._registered:
            return
        if self._election is not None and not self._election.done():
            self._election_again = True
            return
        self._election = self._loop.create_task(self._controller_election())  # type: ignore[union-attr]

    async def _controller_election(self) -> None:
        self._election_again = True
        while self._election_again:
            self._election_again = False
            try:
                await self._elect_once()
            except CoordinationError as exc:
                log.warning("controller election failed: %s", exc)

    async def _elect_once(self) -> None:
        if self._stopping or not self._registered:
            return
        if self.controller is not None and not self.controller.active:
            self._loop.create_task(self.controller.stop())  # type: ignore[union-attr]
            self.controller = None
        if self.controller is not None:
            current = await asyncio.to_thread(self.coordination.controller_id)
            if current != self.broker_id and self.controller is not None:
                log.warning("broker %d: lost the controller role", self.broker_id)
                self._loop.create_task(self.controller.stop())  # type: ignore[union-attr]
                self.controller = None
            return
        epoch = await asyncio.to_thread(self.coordination.try_become_controller, self.broker_id)
        if epoch is None:
            return
        if self._stopping or not self._registered or self.controller is not None:
            # The session ended or we began shutting down while winning: whatever we won
            # goes with the session (or the resignation on close); act on none of it.
            return
        log.info("broker %d is the controller (epoch %d)", self.broker_id, epoch)
        self.controller = Controller(
            self.broker_id, epoch, self.coordination,
            unclean_leader_election=self._unclean_allowed,
            imbalance_percentage=int(self.config["leader.imbalance.per.broker.percentage"]),
            channels=InterBrokerChannels(self.inter_broker))
        self.controller.start()

    def _unclean_allowed(self, topic: str) -> bool:
        try:
            value = self.coordination.topic_configs(topic).get("unclean.leader.election.enable")
        except CoordinationError:
            value = None
        if value is not None:
            return value.strip().lower() == "true"
        return bool(self.config["unclean.leader.election.enable"])

    def _on_session_lost(self) -> None:
        """Our ZooKeeper session expired, or we were cut off long enough to presume so:
        acknowledge nothing more (the lease is revoked), stop being the controller, and
        register again. Partition roles are given up there, if the session turns out to
        have ended (`_give_up_roles_of_an_ended_session`)."""
        log.warning("broker %d: ZooKeeper session lost; not leading until registered again", self.broker_id)
        self.lease.revoke()
        if self.controller is not None:
            self._loop.create_task(self.controller.stop())  # type: ignore[union-attr]
            self.controller = None
        self._registered = False
        if not self._stopping:
            self._loop.create_task(self._reregister())  # type: ignore[union-attr]

    async def _reregister(self) -> None:
        while not self._stopping and not self._registered:
            try:
                await self._register()
                log.info("broker %d: re-registered after session loss", self.broker_id)
                self._on_controller_change()
                return
            except (CoordinationError, RuntimeError) as exc:
                log.info("broker %d: re-registration pending (%s)", self.broker_id, exc)
                await asyncio.sleep(0.5)

    def _replication_quota(self, rate_config: str) -> ReplicationQuotaManager:
        """A replication quota whose rate is the (dynamic) broker config `rate_config`."""
        return ReplicationQuotaManager(lambda: self.config[rate_config],
                                       int(self.config["replication.quota.window.num"]),
                                       int(self.config["replication.quota.window.size.seconds"]) * 1000)

    def _apply_broker_configs(self, configs: dict[str, str]) -> None:
        """Dynamic broker configs (IncrementalAlterConfigs on the broker resource)."""
        old = self.metadata.broker_configs
        for name in set(old) - set(configs):
            self.config.set_dynamic(name, None)
        for name, value in configs.items():
            try:
                self.config.set_dynamic(name, value)
            except Exception as exc:
                log.warning("ignoring dynamic broker config %s=%s: %s", name, value, exc)
        self.metadata.broker_configs = dict(configs)

    def _on_config_change(self) -> None:
        self._configs_loaded.clear()
        if self._loop is not None:
            self._loop.create_task(self.quotas.load())
        # unclean.leader.election.enable may have been turned on: offline partitions may
        # now elect a leader (Kafka's controller does the same on that config change).
        self._forward("configs")
        if self._loop is not None:
            self._loop.create_task(self._reload_configs())

    async def _reload_configs(self) -> None:
        """Read the changed configs off the event loop, then apply them."""
        try:
            broker_configs = await asyncio.to_thread(self.coordination.broker_configs)
        except CoordinationError:
            broker_configs = self.metadata.broker_configs
        if broker_configs != self.metadata.broker_configs:
            self._apply_broker_configs(broker_configs)
            self.refresh_log_configs()
        local = {t for t, _ in self.logs.all_logs()}
        names = [n for n in self.metadata.topics if n in local]
        # A topic whose configs this broker changed itself while we read may have been read
        # before that write: applying it would undo the write (read-your-writes for
        # IncrementalAlterConfigs then DescribeConfigs); that write's own notification
        # brings the next reload.
        writes = dict(self._config_writes)
        for name, configs in (await self.load_topic_configs(names)).items():
            if self._config_writes.get(name) != writes.get(name):
                continue
            if name in self.metadata.topics:
                self.metadata.topics[name].configs = configs
                self.logs.update_config(name, self.config.log_config().with_overrides(configs))

    def _expire_producers(self) -> None:
        """Forget idempotent producers silent for producer.id.expiration.ms (Kafka's
        expiry); their next batch may start at any sequence."""
        now, expiration = self.clock(), int(self.config["producer.id.expiration.ms"])
        for plog in self.logs.all_logs().values():
            plog.remove_expired_producers(now, expiration)

    def _auto_rebalance(self) -> None:
        if self.controller is not None and self.controller.active:
            self.controller.enqueue("auto_rebalance")

    async def stop(self) -> None:
        self._stopping = True
        if self.config["controlled.shutdown.enable"] and self._registered:
            await self._controlled_shutdown()
        for server in self.servers:
            server.close()
        self.metrics_endpoint.close()
        try:
            await self.transactions.stop()
            await self.replicas.shutdown()
            self.controller_link.close()
            if self._election is not None:
                try:
                    await self._election  # a round in flight finishes (it sees _stopping after)
                except Exception:
                    pass
            if self.controller is not None:
                await self.controller.stop()
                self.controller = None
            self.acls.stop()
            for jwks in self.config.security.jwks_sources:
                await jwks.stop()
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        finally:
            # Whatever failed above, the session ends and the logs are closed cleanly: a
            # broker that stops without closing its ZooKeeper client can hang at exit on
            # executor threads still waiting on it.
            await asyncio.to_thread(self.coordination.close)
            self.logs.shutdown()
        log.info("broker %d shut down cleanly", self.broker_id)

    async def _controlled_shutdown(self, timeout_s: float = 10.0) -> None:
        """Ask the controller to move our leaderships away before we go (Kafka's
        controlled shutdown), retrying while partitions remain."""
        deadline = time.monotonic() + timeout_s
        previous: list[Any] | None = None
        while time.monotonic() < deadline:
            if self.controller is not None and self.controller.active:
                fut: asyncio.Future[list[tuple[str, int]]] = asyncio.get_running_loop().create_future()
                self.controller.enqueue(ControlledShutdown(self.broker_id, fut))
                try:
                    remaining = await asyncio.wait_for(fut, deadline - time.monotonic())
                except TimeoutError:
                    break
                if not remaining or remaining == previous:  # done, or what is left has nowhere to go
                    log.info("broker %d: controlled shutdown complete%s", self.broker_id,
                             f" ({len(remaining)} partition(s) have no other replica to lead)" if remaining else "")
                    return
                previous = remaining
            else:  # ask the controller over the network
                controller = self.metadata.brokers.get(self.metadata.controller_id)
                if controller is None:
                    await asyncio.sleep(0.2)
                    continue
                conn = BrokerConnection(controller[0], controller[1], f"broker-{self.broker_id}", self.inter_broker)
                try:
                    response = await conn.request(
                        ApiKey.CONTROLLED_SHUTDOWN, 3,
                        ib.ControlledShutdownRequest(broker_id=self.broker_id, broker_epoch=-1),
                        timeout=max(0.1, deadline - time.monotonic()))
                    remaining = sorted((r.topic_name, r.partition_index) for r in response.remaining_partitions)
                    if response.error_code == 0 and (not remaining or remaining == previous):
                        log.info("broker %d: controlled shutdown complete%s", self.broker_id,
                                 f" ({len(remaining)} partition(s) have no other replica to lead)" if remaining else "")
                        return
                    previous = remaining
                except (OSError, ConnectionError, TimeoutError) as exc:
                    log.info("controlled shutdown request failed: %s", exc)
                finally:
                    conn.close()
            await asyncio.sleep(0.2)
        log.warning("broker %d: controlled shutdown did not complete; shutting down anyway", self.broker_id)

    async def handle_controlled_shutdown(self, broker_id: int) -> tuple[ErrorCode, list[tuple[str, int]]]:
        if self.controller is None or not self.controller.active:
            return ErrorCode.not_controller, []
        fut: asyncio.Future[list[tuple[str, int]]] = asyncio.get_running_loop().create_future()
        self.controller.enqueue(ControlledShutdown(broker_id, fut))
        return ErrorCode.none, await fut

    async def elect_preferred(self, partitions: list[tuple[str, int]] | None) -> dict[tuple[str, int], str | None]:
        if self.controller is not None and self.controller.active:
            fut: asyncio.Future[dict[tuple[str, int], str | None]] = asyncio.get_running_loop().create_future()
            self.controller.enqueue(PreferredElection(partitions, fut))
            return await fut
        raise TopicError(ErrorCode.not_controller, "This broker is not the controller.")

    # --- metadata views --------------------------------------------------------------

    def live_brokers(self, listener: str = "") -> list[tuple[int, str, int, str | None]]:
        listener = listener or self.inter_broker.listener
        if not self.metadata.endpoints:  # no UpdateMetadata yet: only ourselves
            return [(self.broker_id, lst.host, lst.port, self.config["broker.rack"])
                    for lst in self.bound if lst.name == listener]
        return self.metadata.listener_brokers(listener)

    async def metadata_known(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not self.metadata.endpoints and time.monotonic() < deadline:
            await self._next_metadata_change(deadline)
        return bool(self.metadata.endpoints)

    def controller_id(self) -> int:
        return self.metadata.controller_id

    async def _next_metadata_change(self, deadline: float) -> None:
        """Until the next UpdateMetadata is applied (or the deadline)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._metadata_waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), max(deadline - time.monotonic(), 0))
        except TimeoutError:
            pass
        finally:
            if waiter in self._metadata_waiters:
                self._metadata_waiters.remove(waiter)

    async def wait_for_topics(self, names: list[str], present: bool, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(
                (n in self.metadata.topics and all(s.leader >= 0 for s in self.metadata.topics[n].partitions.values()))
                if present else (n not in self.metadata.topics)
                for n in names
            ):
                return
            await self._next_metadata_change(deadline)

    async def wait_for_partition_count(self, name: str, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            topic = self.metadata.topics.get(name)
            if topic is not None and len(topic.partitions) >= count and all(
                    s.leader >= 0 for s in topic.partitions.values()):
                return
            await self._next_metadata_change(deadline)

    # --- controller requests -----------------------------------------------------------

    def _stale(self, controller_epoch: int) -> bool:
        if controller_epoch < self.controller_epoch_seen:
            return True
        self.controller_epoch_seen = controller_epoch
        return False

    def on_update_metadata(self, request: Any, new_topic_configs: dict[str, dict[str, str]]) -> ErrorCode:
        """Apply the controller's view; ``new_topic_configs`` holds the configs of topics
        new to this broker (read beforehand, off the event loop)."""
        if self._stale(request.controller_epoch):
            return ErrorCode.stale_controller_epoch
        configs = {name: t.configs for name, t in self.metadata.topics.items()}
        new_topics = self.metadata.apply(request)
        if not self._stray_logs_checked and self._loop is not None:
            self._stray_logs_checked = True
            self._tasks.append(self._loop.create_task(self._delete_stray_logs()))
        for name in new_topics:  # a topic new to the cache (or to this controller's first request)
            self.metadata.topics[name].configs = configs[name] if name in configs else new_topic_configs.get(name, {})
        self.replicas.follow_unreached_leaders()
        waiters, self._metadata_waiters = self._metadata_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        return ErrorCode.none

    async def _delete_stray_logs(self) -> None:
        """Logs of topics the cluster no longer has (deleted while this broker was down),
        once the controller has talked to us. Which topics exist is read from the
        coordination service, never from the metadata cache: the first UpdateMetadata a
        restarted broker gets may carry only some partitions (the controller sends what
        changed), and every log of the others would go (seen: a restarted broker deleted
        the logs of topics it followed)."""
        try:
            existing = set(await asyncio.to_thread(self.coordination.topics))
        except CoordinationError as exc:
            log.warning("broker %d: stray logs not checked (%s)", self.broker_id, exc)
            self._stray_logs_checked = False  # the next UpdateMetadata tries again
            return
        for topic, partition in list(self.logs.all_logs()):
            if topic not in existing and (topic, partition) not in self.replicas.partitions:
                log.info("broker %d: deleting stray log %s-%d (its topic is gone)", self.broker_id, topic, partition)
                self.logs.delete(topic, partition)

    async def load_topic_configs(self, names: list[str]) -> dict[str, dict[str, str]]:
        """Topic configs, from the metadata cache or else read off the event loop."""
        out: dict[str, dict[str, str]] = {}
        for name in names:
            cached = self.metadata.topics.get(name)
            if cached is not None and cached.configs is not None and name in self._configs_loaded:
                out[name] = cached.configs
                continue
            try:
                out[name] = await asyncio.to_thread(self.coordination.topic_configs, name)
                self._configs_loaded.add(name)
            except CoordinationError:
                out[name] = {}
        return out

    def on_leader_and_isr(
        self, request: Any, topic_configs: dict[str, dict[str, str]] | None = None
    ) -> tuple[ErrorCode, list[tuple[str, int, ErrorCode]]]:
        if self._stale(request.controller_epoch):
            return ErrorCode.stale_controller_epoch, []
        now = self.clock()
        states: list[tuple[tuple[str, int], LeaderAndIsrState, LogConfig]] = []
        for ts in request.topic_states:
            if topic_configs is not None and ts.topic_name in topic_configs:
                configs = topic_configs[ts.topic_name]
            else:
                try:
                    configs = self.coordination.topic_configs(ts.topic_name)
                except CoordinationError:
                    configs = {}
            log_config = self.config.log_config().with_overrides(configs)
            # The metadata cache is UpdateMetadata's alone (as in Kafka): a topic half
            # known from this broker's own partitions would be answered as complete.
            for ps in ts.partition_states:
                tp = (ts.topic_name, ps.partition_index)
                states.append((tp, LeaderAndIsrState(ps.leader, ps.leader_epoch, tuple(ps.isr), tuple(ps.replicas),
                                                     ps.zk_version), log_config))
        results = self.replicas.become_leader_or_follower(states, now)
        return ErrorCode.none, [(tp[0], tp[1], code) for tp, code in results]

    def on_stop_replica(self, request: Any) -> tuple[ErrorCode, list[tuple[str, int, ErrorCode]]]:
        if self._stale(request.controller_epoch):
            return ErrorCode.stale_controller_epoch, []
        errors = []
        for ts in request.topic_states:
            for ps in ts.partition_states:
                self.replicas.stop_replica((ts.topic_name, ps.partition_index), bool(ps.delete_partition))
                errors.append((ts.topic_name, ps.partition_index, ErrorCode.none))
            if not any(tp[0] == ts.topic_name for tp in self.replicas.partitions):
                self.metrics.topic_deleted(ts.topic_name)  # its per-topic series go with its last replica here
        return ErrorCode.none, errors

    def _load_group_partition(self, partition: int, plog: Log) -> None:
        records, pending = replay_coordinator_partition(plog)
        self.groups.load_partition(partition, records, self.clock(), pending)

    def _on_leadership_change(self, tp: tuple[str, int], leader: bool) -> None:
        """__consumer_offsets partitions carry the groups they coordinate, and
        __transaction_state partitions the transactions: loaded when this broker becomes
        their leader, unloaded when it stops."""
        if tp[0] == TRANSACTION_STATE_TOPIC:
            partition = self.replicas.partitions.get(tp)
            if leader and partition is not None:
                self.transactions.load_partition(tp[1], partition.leader_epoch, partition.log)
            else:
                self.transactions.unload_partition(tp[1])
            return
        if tp[0] != OFFSETS_TOPIC:
            return
        if leader:
            plog = self.logs.get(*tp)
            if plog is not None and tp[1] not in self.groups.loaded_partitions:
                self._load_group_partition(tp[1], plog)
        elif tp[1] in self.groups.loaded_partitions:
            self.groups.unload_partition(tp[1])

    # --- topics across the cluster ------------------------------------------------------

    def _live_racks(self) -> dict[int, str | None]:
        return {b.broker_id: b.rack for b in self.coordination.live_brokers().values()}

    @_coordination_errors_as_topic_errors
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
        error = topic_name_error(name)
        if error:
            raise TopicError(ErrorCode.invalid_topic_exception, error)
        if self.coordination.topic_exists(name):
            raise TopicError(ErrorCode.topic_already_exists, f"Topic '{name}' already exists.")
        self.validate_topic_configs(dict(configs))
        brokers = self._live_racks()
        if assignment is None:
            if partitions == -1:
                partitions = int(self.config["num.partitions"])
            if replication_factor == -1:
                replication_factor = int(self.config["default.replication.factor"])
            if partitions <= 0:
                raise TopicError(ErrorCode.invalid_partitions, "Number of partitions must be larger than 0.")
            if replication_factor <= 0:
                raise TopicError(ErrorCode.invalid_replication_factor, "Replication factor must be larger than 0.")
            if replication_factor > len(brokers):
                raise TopicError(
                    ErrorCode.invalid_replication_factor,
                    f"Replication factor: {replication_factor} larger than available brokers: {len(brokers)}.")
            try:
                assign.check_partitions_per_request(partitions)  # before anything per partition
                assignment = assign.assign_replicas(partitions, replication_factor, brokers)
            except assign.AssignmentError as exc:
                raise TopicError(exc.error_code, str(exc)) from None
        else:
            try:
                assign.validate_assignment(assignment, set(brokers))
            except assign.AssignmentError as exc:
                raise TopicError(exc.error_code, str(exc)) from None
        if validate_only:
            return None
        topic_id = uuid.uuid4()
        try:
            self.coordination.create_topic(TopicAssignment(name, topic_id, dict(assignment)), dict(configs))
        except TopicExistsError:
            raise TopicError(ErrorCode.topic_already_exists, f"Topic '{name}' already exists.") from None
        log.info("created topic %s: %s", name, assignment)
        return TopicState(name, topic_id, {p: PartitionState(-1, 0, r, []) for p, r in assignment.items()},
                          dict(configs))

    @_coordination_errors_as_topic_errors
    def delete_topic(self, name: str) -> TopicState:
        topics = self.coordination.topics()
        if name not in topics:
            raise TopicError(ErrorCode.unknown_topic_or_partition, "This server does not host this topic-partition.")
        self.coordination.request_topic_deletion(name)
        t = topics[name]
        return TopicState(name, t.topic_id, {}, {})

    @_coordination_errors_as_topic_errors
    def create_partitions(
        self, name: str, total: int, *, validate_only: bool = False, assignments: list[list[int]] | None = None
    ) -> None:
        topics = self.coordination.topics()
        topic = topics.get(name)
        if topic is None:
            raise TopicError(ErrorCode.unknown_topic_or_partition, f"The topic '{name}' does not exist.")
        current = len(topic.partitions)
        if total <= current:
            raise TopicError(
                ErrorCode.invalid_partitions,
                f"Topic currently has {current} partitions, which is higher than the requested {total}."
                if total < current else f"Topic already has {current} partitions.")
        try:
            assign.check_partitions_per_request(total - current)  # before anything per partition
            new = assign.add_partitions_assignment(topic.partitions, total, self._live_racks(),
                                                   assignments=assignments)
        except assign.AssignmentError as exc:
            raise TopicError(exc.error_code, str(exc)) from None
        if validate_only:
            return
        merged = dict(topic.partitions)
        merged.update(new)
        self.coordination.set_assignment(TopicAssignment(name, topic.topic_id, merged))

    async def set_topic_configs(self, name: str, configs: dict[str, str]) -> None:
        try:
            await asyncio.to_thread(self.coordination.set_topic_configs, name, configs)
        except CoordinationError as exc:
            raise TopicError(ErrorCode.unknown_server_error, f"ZooKeeper unavailable: {exc}") from None
        self._config_writes[name] = self._config_writes.get(name, 0) + 1
        if name in self.metadata.topics:
            self.metadata.topics[name].configs = dict(configs)
        self.logs.update_config(name, self.config.log_config().with_overrides(configs))

    def topic_configs(self, name: str) -> dict[str, str]:
        try:
            return self.coordination.topic_configs(name)
        except CoordinationError:
            return {}

    # --- groups ----------------------------------------------------------------------------

    async def ensure_offsets_topic(self) -> bool:
        """Whether __consumer_offsets exists; if not, create it (once, off the event
        loop, however many FindCoordinator requests ask meanwhile) and say False."""
        if OFFSETS_TOPIC in self.metadata.topics:
            return True
        if self._offsets_topic_creation is None or self._offsets_topic_creation.done():
            self._offsets_topic_creation = asyncio.ensure_future(asyncio.to_thread(self._create_offsets_topic))
        await asyncio.shield(self._offsets_topic_creation)
        return False

    def _create_offsets_topic(self) -> None:
        live = len(self._live_racks())
        rf = max(1, min(int(self.config["offsets.topic.replication.factor"]), live))
        try:
            self.create_topic(OFFSETS_TOPIC, int(self.config["offsets.topic.num.partitions"]), rf,
                              {"cleanup.policy": "compact",
                               "segment.bytes": str(self.config["offsets.topic.segment.bytes"])})
        except TopicError as exc:
            if exc.code != ErrorCode.topic_already_exists:
                log.warning("cannot create %s: %s", OFFSETS_TOPIC, exc.message)
        except CoordinationError as exc:
            log.warning("cannot create %s: %s", OFFSETS_TOPIC, exc)

    async def group_coordinator_node(self, group_id: str, listener: str = "") -> tuple[int, str, int] | None:
        if not await self.ensure_offsets_topic():
            # Just created: wait (briefly) for its leaders rather than answer
            # COORDINATOR_NOT_AVAILABLE at once. Kafka answers at once, but librdkafka
            # 2.16's admin client gives up after two retries and then never completes
            # a DescribeConsumerGroups started before __consumer_offsets existed.
            await self.wait_for_topics([OFFSETS_TOPIC], True, OFFSETS_TOPIC_WAIT_S)
        state = self.metadata.topics.get(OFFSETS_TOPIC)
        if state is None:
            return None
        p = self.groups.partition_for(group_id)
        part = state.partitions.get(p)
        endpoint = self.metadata.endpoints.get(part.leader, {}).get(listener or self.inter_broker.listener) \
            if part is not None else None
        if part is None or part.leader < 0 or endpoint is None:
            return None
        return part.leader, endpoint[0], endpoint[1]

    async def transaction_coordinator_node(self, transactional_id: str,
                                           listener: str = "") -> tuple[int, str, int] | None:
        """The leader of the transactional id's __transaction_state partition; the topic
        is created on first use (rf and min.isr capped by the live brokers, as for
        __consumer_offsets, so that one broker can run transactions)."""
        if TRANSACTION_STATE_TOPIC not in self.metadata.topics:
            if self._transaction_state_creation is None or self._transaction_state_creation.done():
                self._transaction_state_creation = asyncio.ensure_future(
                    asyncio.to_thread(self._create_transaction_state_topic))
            await asyncio.shield(self._transaction_state_creation)
            await self.wait_for_topics([TRANSACTION_STATE_TOPIC], True, OFFSETS_TOPIC_WAIT_S)
        state = self.metadata.topics.get(TRANSACTION_STATE_TOPIC)
        if state is None:
            return None
        part = state.partitions.get(self.transactions.coordinator.partition_for(transactional_id))
        endpoint = self.metadata.endpoints.get(part.leader, {}).get(listener or self.inter_broker.listener) \
            if part is not None else None
        if part is None or part.leader < 0 or endpoint is None:
            return None
        return part.leader, endpoint[0], endpoint[1]

    def _create_transaction_state_topic(self) -> None:
        config = self.transactions.coordinator.config
        rf = max(1, min(config.transaction_log_replication_factor, len(self._live_racks())))
        configs = config.topic_configs()
        configs["min.insync.replicas"] = str(min(config.transaction_log_min_isr, rf))
        try:
            self.create_topic(TRANSACTION_STATE_TOPIC, config.transaction_log_partitions, rf, configs)
        except TopicError as exc:
            if exc.code != ErrorCode.topic_already_exists:
                log.warning("cannot create %s: %s", TRANSACTION_STATE_TOPIC, exc.message)
        except CoordinationError as exc:
            log.warning("cannot create %s: %s", TRANSACTION_STATE_TOPIC, exc)

    def _load_group_partitions(self) -> None:
        """Group partitions are loaded when LeaderAndIsr makes us their leader."""


def _tls_principal(mapper: SslPrincipalMapper, transport: asyncio.Transport) -> str:
    """An SSL connection's principal: its client certificate's subject as mapped by
    `ssl.principal.mapping.rules`, or User:ANONYMOUS without a certificate."""
    cert = transport.get_extra_info("peercert")
    subject = distinguished_name(cert["subject"]) if cert and cert.get("subject") else None
    return str(ssl_principal(mapper, subject))


def _new_cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")

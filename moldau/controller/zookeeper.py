"""The ZooKeeper backend of `Coordination`, through kazoo, with Kafka's znodes byte for byte.

Owns one kazoo session: the znode codecs (Kafka's JSON, see `coordination.py` and
apache/kafka `ZkData.scala`), the controller's fencing token, and the adapters that turn
kazoo watches into bare `EventCallback` calls.

Fencing (Kafka's `checkControllerAndUpdate`): `try_become_controller` creates /controller
and bumps /controller_epoch in one multi-op, and remembers the znode version of
/controller_epoch it wrote. Every controller-only write is a multi-op that first checks
/controller_epoch still has that version: a controller that lost its seat (another broker
won, so the epoch znode moved) gets NotControllerError and writes nothing.

Sessions: kazoo reports LOST only when a server says the session expired, which needs a
reachable server. Like Curator, we also presume the session lost once we have been
disconnected for a whole session timeout: by then a live server has expired it, and a
broker cut off from ZooKeeper must stop acting as controller or leader. `on_session_lost`
fires once per session for either cause, and the fencing token is dropped, so a stale
controller is refused locally as well as by ZooKeeper.

Threads: kazoo runs watch callbacks on its own threads. The adapters here only decide
whether a change is worth reporting and call the registered callback, which hands an event
to the controller's queue; they never touch controller state.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, unquote

from kazoo.client import KazooClient, TransactionRequest
from kazoo.exceptions import (
    BadVersionError as ZkBadVersionError,
)
from kazoo.exceptions import (
    ConnectionLoss,
    KazooException,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    RuntimeInconsistency,
    SessionExpiredError,
)
from kazoo.protocol.states import KazooState, ZnodeStat
from kazoo.recipe.watchers import ChildrenWatch, DataWatch
from kazoo.retry import KazooRetry

from moldau.controller.coordination import (
    BadVersionError,
    BrokerIdInUseError,
    BrokerInfo,
    CoordinationError,
    Endpoint,
    EventCallback,
    LeaderAndIsr,
    NotControllerError,
    TopicAssignment,
    TopicExistsError,
)

log = logging.getLogger(__name__)

# --- znode paths (Kafka's ZkData) --------------------------------------------------------
CLUSTER_ID = "/cluster/id"
CONTROLLER = "/controller"
CONTROLLER_EPOCH = "/controller_epoch"
BROKER_IDS = "/brokers/ids"
TOPICS = "/brokers/topics"
CONFIG_TOPICS = "/config/topics"
CONFIG_CHANGES = "/config/changes"
CONFIG_BROKER_DEFAULT = "/config/brokers/<default>"
CONFIG_USERS = "/config/users"
CONFIG_CLIENTS = "/config/clients"
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
# Partition states created per multi-op: three small creates each, well inside
# ZooKeeper's 1 MB request limit (jute.maxbuffer).
PARTITION_STATES_PER_MULTI = 500
CONFIG_CHANGE_PREFIX = "config_change_"
DELETE_TOPICS = "/admin/delete_topics"
PRODUCER_ID_BLOCK = "/latest_producer_id_block"
# Created at start, as Kafka's `KafkaZkClient.createTopLevelPaths` does, so children
# watches always have a parent to watch (kazoo's ChildrenWatch stops for good on NoNode).
PERSISTENT_PATHS = (BROKER_IDS, TOPICS, CONFIG_TOPICS, CONFIG_CHANGES, DELETE_TOPICS)
# Config change notifications are only a doorbell here (readers re-read /config/topics),
# so old ones can go; Kafka purges them after 15 minutes instead.
MAX_CONFIG_CHANGES = 200
KEEP_CONFIG_CHANGES = 100


def broker_path(broker_id: int) -> str:
    return f"{BROKER_IDS}/{broker_id}"


def topic_path(topic: str) -> str:
    return f"{TOPICS}/{topic}"


def partitions_path(topic: str) -> str:
    return f"{TOPICS}/{topic}/partitions"


def partition_path(topic: str, partition: int) -> str:
    return f"{TOPICS}/{topic}/partitions/{partition}"


def partition_state_path(topic: str, partition: int) -> str:
    return f"{TOPICS}/{topic}/partitions/{partition}/state"


def topic_config_path(topic: str) -> str:
    return f"{CONFIG_TOPICS}/{topic}"


def delete_topic_path(topic: str) -> str:
    return f"{DELETE_TOPICS}/{topic}"


# --- codecs: Kafka's znode JSON (Jackson writes it compact, so do we) ----------------------


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _loads(data: bytes | None) -> Any:
    if not data:
        return None
    return json.loads(data)


def encode_topic_id(topic_id: uuid.UUID) -> str:
    """Kafka's `Uuid.toString`: the 16 bytes in URL-safe base64 without padding (22 chars)."""
    return base64.urlsafe_b64encode(topic_id.bytes).rstrip(b"=").decode()


def decode_topic_id(text: str) -> uuid.UUID:
    return uuid.UUID(bytes=base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


def encode_cluster_id(cluster_id: str) -> bytes:
    # Kafka writes this version as a string ("1"), unlike every other znode.
    return _dumps({"version": "1", "id": cluster_id})


def encode_controller(broker_id: int, timestamp_ms: int) -> bytes:
    return _dumps({"version": 1, "brokerid": broker_id, "timestamp": str(timestamp_ms)})


def _format_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host  # IPv6, as Kafka's Utils.formatAddress


def endpoint_string(endpoint: Endpoint) -> str:
    return f"{endpoint.listener}://{_format_host(endpoint.host)}:{endpoint.port}"


_ENDPOINT = re.compile(r"^(.*)://\[?([0-9a-zA-Z\-%._:]*)\]?:(-?[0-9]+)$")  # Kafka's EndPoint regex


def parse_endpoint(text: str, protocol_map: dict[str, str]) -> Endpoint:
    m = _ENDPOINT.match(text)
    if m is None:
        raise CoordinationError(f"unparsable endpoint {text!r}")
    listener = m.group(1)
    return Endpoint(listener, m.group(2), int(m.group(3)), protocol_map.get(listener, listener))


def encode_broker(info: BrokerInfo, timestamp_ms: int) -> bytes:
    """Version 5 broker registration. "host"/"port" are the first PLAINTEXT endpoint (null
    and -1 when there is none), for old clients; "rack" is absent when unset, like Kafka."""
    plaintext = next((e for e in info.endpoints if e.security_protocol == "PLAINTEXT"), None)
    body: dict[str, object] = {
        "version": 5,
        "host": plaintext.host if plaintext else None,
        "port": plaintext.port if plaintext else -1,
        "endpoints": [endpoint_string(e) for e in info.endpoints],
        "listener_security_protocol_map": {e.listener: e.security_protocol for e in info.endpoints},
        "jmx_port": -1,
        "timestamp": str(timestamp_ms),
        "features": {},
    }
    if info.rack is not None:
        body["rack"] = info.rack
    return _dumps(body)


def decode_broker(broker_id: int, data: bytes, epoch: int = -1) -> BrokerInfo:
    js = _loads(data) or {}
    protocol_map: dict[str, str] = js.get("listener_security_protocol_map") or {}
    endpoints = tuple(parse_endpoint(e, protocol_map) for e in js.get("endpoints") or [])
    if not endpoints and js.get("host") is not None:  # version 1 registrations
        endpoints = (Endpoint("PLAINTEXT", js["host"], int(js["port"])),)
    return BrokerInfo(broker_id, endpoints, js.get("rack"), epoch)


def encode_topic(assignment: TopicAssignment) -> bytes:
    return _dumps(
        {
            "version": 3,
            "topic_id": encode_topic_id(assignment.topic_id),
            "partitions": {str(p): list(r) for p, r in sorted(assignment.partitions.items())},
            "adding_replicas": {str(p): list(r) for p, r in sorted(assignment.adding.items()) if r},
            "removing_replicas": {str(p): list(r) for p, r in sorted(assignment.removing.items()) if r},
        }
    )


def decode_topic(name: str, data: bytes | None) -> TopicAssignment | None:
    js = _loads(data)
    if not js:
        return None
    topic_id = decode_topic_id(js["topic_id"]) if js.get("topic_id") else uuid.UUID(int=0)
    partitions = {int(p): [int(r) for r in replicas] for p, replicas in (js.get("partitions") or {}).items()}
    adding = {int(p): [int(r) for r in rs] for p, rs in (js.get("adding_replicas") or {}).items() if rs}
    removing = {int(p): [int(r) for r in rs] for p, rs in (js.get("removing_replicas") or {}).items() if rs}
    return TopicAssignment(name, topic_id, dict(sorted(partitions.items())), adding, removing)


def encode_partition_state(state: LeaderAndIsr) -> bytes:
    return _dumps(
        {
            "version": 1,
            "leader": state.leader,
            "leader_epoch": state.leader_epoch,
            "controller_epoch": state.controller_epoch,
            "isr": list(state.isr),
        }
    )


def decode_partition_state(data: bytes) -> LeaderAndIsr:
    js = _loads(data)
    return LeaderAndIsr(int(js["leader"]), int(js["leader_epoch"]), tuple(js["isr"]), int(js["controller_epoch"]))


def encode_topic_config(configs: dict[str, str]) -> bytes:
    return _dumps({"version": 1, "config": dict(configs)})


def decode_topic_config(data: bytes | None) -> dict[str, str]:
    js = _loads(data) or {}
    return {str(k): str(v) for k, v in (js.get("config") or {}).items()}


def sanitize_user(user: str) -> str:
    """Kafka's `Sanitizer.sanitize`: URL-encoding (as Java's URLEncoder, which leaves only
    letters, digits and `.-_*` alone), with `*` as %2A and a space as %20."""
    return quote(user, safe="").replace("~", "%7E").replace("*", "%2A")


def user_config_path(user: str) -> str:
    return f"{CONFIG_USERS}/{sanitize_user(user)}"


def split_chroot(connect: str) -> tuple[str, str]:
    """`host1:2181,host2:2181/kafka` -> ("host1:2181,host2:2181", "/kafka"); no chroot -> ""."""
    slash = connect.find("/")
    if slash < 0:
        return connect, ""
    chroot = connect[slash:].rstrip("/")
    return connect[:slash], chroot


def _now_ms() -> int:
    return int(time.time() * 1000)


class ZooKeeperCoordination:
    """`Coordination` on a ZooKeeper ensemble (`zookeeper.connect`, optional chroot)."""

    def __init__(
        self, connect: str, session_timeout_ms: int = 18000, connection_timeout_ms: int | None = None
    ) -> None:
        self.connect = connect
        self._hosts, self._chroot = split_chroot(connect)
        self._session_timeout_s = session_timeout_ms / 1000
        self._connection_timeout_s = (connection_timeout_ms or session_timeout_ms) / 1000
        # How long one request may wait for its answer (kazoo queues requests while it
        # reconnects): past this the caller gets CoordinationError and can retry.
        self._request_timeout_s = max(self._session_timeout_s, self._connection_timeout_s)
        self._client = self._new_client(connect)
        self._lock = threading.Lock()
        self._closing = False
        self._session_lost_callbacks: list[EventCallback] = []
        self._session_id: int | None = None  # the session kazoo last connected with
        self._reported_lost: int | None = None  # the session we already called lost
        self._expiry_timer: threading.Timer | None = None
        # The fencing token: the /controller_epoch we won and that znode's version.
        self._epoch: int | None = None
        self._epoch_zk_version: int | None = None

    def _new_client(self, hosts: str) -> KazooClient:
        # kazoo's default retry policies back off up to an hour between attempts; a broker
        # must find ZooKeeper again within a fraction of its session timeout.
        max_delay = max(0.1, min(1.0, self._session_timeout_s / 4))
        return KazooClient(
            hosts=hosts,
            timeout=self._session_timeout_s,
            connection_retry=KazooRetry(max_tries=-1, delay=0.05, backoff=2, max_jitter=0.1, max_delay=max_delay),
            command_retry=KazooRetry(max_tries=-1, delay=0.05, backoff=2, max_jitter=0.1, max_delay=max_delay),
        )

    # --- plumbing --------------------------------------------------------------------------

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Anything kazoo raises that the method did not handle becomes CoordinationError."""
        try:
            yield
        except CoordinationError:
            raise
        except self._client.handler.timeout_exception as e:
            raise CoordinationError(f"{what}: ZooKeeper at {self.connect} did not answer in time") from e
        except (ConnectionLoss, SessionExpiredError) as e:
            raise CoordinationError(f"{what}: lost the connection to ZooKeeper at {self.connect}") from e
        except KazooException as e:
            raise CoordinationError(f"{what}: {type(e).__name__} {e}") from e

    def _wait(self, async_result: Any) -> Any:
        return async_result.get(timeout=self._request_timeout_s)

    def _get(self, path: str) -> tuple[bytes, ZnodeStat] | None:
        try:
            data, stat = self._wait(self._client.get_async(path))
        except NoNodeError:
            return None
        return data, stat

    def _get_many(self, paths: list[str]) -> list[tuple[bytes, ZnodeStat] | None]:
        """Pipelined reads: send every request, then collect; None for vanished znodes."""
        pending = [self._client.get_async(p) for p in paths]
        results: list[tuple[bytes, ZnodeStat] | None] = []
        for result in pending:
            try:
                data, stat = self._wait(result)
                results.append((data, stat))
            except NoNodeError:
                results.append(None)
        return results

    def _children(self, path: str) -> list[str]:
        try:
            return sorted(self._wait(self._client.get_children_async(path)))
        except NoNodeError:
            return []

    def _exists(self, path: str) -> bool:
        return self._wait(self._client.exists_async(path)) is not None

    def _commit(self, tx: TransactionRequest) -> list[Any]:
        return list(self._wait(tx.commit_async()))

    @staticmethod
    def _first_error(results: list[Any]) -> Exception | None:
        """The operation that failed a multi-op (the others say RolledBack/RuntimeInconsistency)."""
        for r in results:
            if isinstance(r, Exception) and not isinstance(r, RolledBackError | RuntimeInconsistency):
                return r
        return None

    def _require_controller(self, what: str) -> tuple[int, int]:
        """Our fencing token (epoch znode version, epoch); checked before any read a
        controller-only write does, so a deposed controller fails fast and uniformly."""
        with self._lock:
            zk_version, epoch = self._epoch_zk_version, self._epoch
        if zk_version is None or epoch is None:
            raise NotControllerError(f"{what}: this broker is not the controller")
        return zk_version, epoch

    def _fenced(self, what: str, build: Callable[[TransactionRequest], None]) -> list[Any]:
        """Run `build`'s operations in one multi-op guarded by our /controller_epoch version.

        Returns the results of `build`'s operations; NotControllerError when the epoch moved
        (or we never won it); otherwise the failing operation's kazoo exception."""
        zk_version, epoch = self._require_controller(what)
        tx = self._client.transaction()
        tx.check(CONTROLLER_EPOCH, zk_version)
        build(tx)
        results = self._commit(tx)
        error = self._first_error(results)
        if error is None:
            return results[1:]
        if results[0] is error:  # the check itself failed: someone else bumped the epoch
            with self._lock:
                if self._epoch_zk_version == zk_version:
                    self._epoch, self._epoch_zk_version = None, None
            raise NotControllerError(f"{what}: controller epoch {epoch} is stale, another controller was elected")
        raise error

    # --- session ---------------------------------------------------------------------------

    def start(self) -> None:
        with self._errors("start"):
            if self._chroot:
                self._ensure_chroot()
            self._client.add_listener(self._on_state_change)
            self._start_client(self._client)
            self._session_id = self._client.client_id[0] if self._client.client_id else None
            for path in PERSISTENT_PATHS:
                self._client.ensure_path(path)

    def _start_client(self, client: KazooClient) -> None:
        try:
            client.start(timeout=self._connection_timeout_s)
        except client.handler.timeout_exception as e:
            client.stop()  # or kazoo keeps reconnecting in the background forever
            client.close()
            raise CoordinationError(
                f"could not connect to ZooKeeper at {self._hosts} within {self._connection_timeout_s:g}s"
            ) from e

    def _ensure_chroot(self) -> None:
        # kazoo resolves every path under the chroot but never creates the chroot itself
        # (nor does ZooKeeper); Kafka creates it with a client that has no chroot.
        root = self._new_client(self._hosts)
        self._start_client(root)
        try:
            root.ensure_path(self._chroot)
        finally:
            root.stop()
            root.close()

    def close(self) -> None:
        with self._lock:
            self._closing = True
            self._cancel_expiry_timer()
            self._epoch, self._epoch_zk_version = None, None
        try:
            self._client.stop()
            self._client.close()
        except KazooException:
            log.exception("closing the ZooKeeper client")

    def on_session_lost(self, callback: EventCallback) -> None:
        with self._lock:
            self._session_lost_callbacks.append(callback)

    @property
    def session_id(self) -> int | None:
        """The current ZooKeeper session id (for logs, and tests that expire sessions)."""
        cid = self._client.client_id
        return int(cid[0]) if cid else None

    def _on_state_change(self, state: str) -> None:
        # Runs on kazoo's connection thread: bookkeeping only, must not block.
        if state == KazooState.SUSPENDED:
            with self._lock:
                self._cancel_expiry_timer()
                timer = threading.Timer(self._session_timeout_s, self._session_presumed_lost, (self._session_id,))
                timer.daemon = True
                self._expiry_timer = timer
            timer.start()
        elif state == KazooState.CONNECTED:
            cid = self._client.client_id
            with self._lock:
                self._cancel_expiry_timer()
                self._session_id = int(cid[0]) if cid else None
                self._reported_lost = None
        elif state == KazooState.LOST:
            with self._lock:
                self._cancel_expiry_timer()
                closing = self._closing
                session_id = self._session_id
            if not closing:
                self._report_session_lost(session_id)

    def _cancel_expiry_timer(self) -> None:
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
            self._expiry_timer = None

    def _session_presumed_lost(self, session_id: int | None) -> None:
        with self._lock:
            still_disconnected = self._expiry_timer is not None and self._session_id == session_id
            self._expiry_timer = None
            closing = self._closing
        if still_disconnected and not closing:
            log.warning("disconnected from ZooKeeper for a whole session timeout: session presumed expired")
            self._report_session_lost(session_id)

    def _report_session_lost(self, session_id: int | None) -> None:
        with self._lock:
            if self._reported_lost is not None and self._reported_lost == session_id:
                return
            self._reported_lost = session_id
            self._epoch, self._epoch_zk_version = None, None
            callbacks = list(self._session_lost_callbacks)
        for callback in callbacks:
            _call(callback)

    # --- cluster and brokers ---------------------------------------------------------------

    def ping(self) -> None:
        """One round trip to ZooKeeper in this session (raises CoordinationError if the
        session is gone or the server unreachable). Brokers use it as a leadership lease."""
        with self._errors("ping"):
            self._wait(self._client.exists_async("/"))

    def get_or_create_cluster_id(self, proposed: str) -> str:
        with self._errors("cluster id"):
            try:
                self._wait(self._client.create_async(CLUSTER_ID, encode_cluster_id(proposed), makepath=True))
                return proposed
            except NodeExistsError:
                pass
            got = self._get(CLUSTER_ID)
            if got is None:
                raise CoordinationError("/cluster/id vanished right after it existed")
            return str(_loads(got[0])["id"])

    def register_broker(self, info: BrokerInfo) -> None:
        path = broker_path(info.broker_id)
        data = encode_broker(info, _now_ms())
        with self._errors(f"register broker {info.broker_id}"):
            try:
                self._wait(self._client.create_async(path, data, ephemeral=True))
                return
            except NodeExistsError:
                pass
            got = self._get(path)
            if got is not None and got[1].ephemeralOwner == self.session_id:
                # Our own registration (a session that came back after we presumed it lost).
                self._wait(self._client.set_async(path, data))
                return
            owner = f"session 0x{got[1].ephemeralOwner:x}" if got else "a session that just ended"
            raise BrokerIdInUseError(
                f"broker id {info.broker_id} is already registered at {path} by another live broker "
                f"({owner}); pick another broker.id or stop that broker"
            )

    def live_brokers(self) -> dict[int, BrokerInfo]:
        with self._errors("live brokers"):
            ids = [int(c) for c in self._children(BROKER_IDS)]
            found = self._get_many([broker_path(i) for i in ids])
            return {i: decode_broker(i, got[0], got[1].czxid)
                    for i, got in zip(ids, found, strict=True) if got is not None}

    def watch_brokers(self, callback: EventCallback) -> None:
        self._watch_children(BROKER_IDS, callback)

    # --- controller --------------------------------------------------------------------

    def try_become_controller(self, broker_id: int) -> int | None:
        """Kafka's `registerControllerAndIncrementControllerEpoch`: create /controller and
        bump /controller_epoch in one multi-op. If this session already holds /controller
        (it came back after we presumed it lost), the epoch is bumped again: a fresh term."""
        with self._errors("controller election"):
            while True:
                epoch, zk_version = self._read_or_create_epoch()
                tx = self._client.transaction()
                tx.create(CONTROLLER, encode_controller(broker_id, _now_ms()), ephemeral=True)
                tx.set_data(CONTROLLER_EPOCH, str(epoch + 1).encode(), version=zk_version)
                results = self._commit(tx)
                error = self._first_error(results)
                if error is None:
                    return self._won(epoch + 1, results[1].version)
                if isinstance(error, ZkBadVersionError):
                    continue  # the epoch moved under us; whoever moved it is gone or holds /controller
                if not isinstance(error, NodeExistsError):
                    raise error
                held = self._get(CONTROLLER)
                if held is None:
                    continue  # the holder just went away: try again
                if held[1].ephemeralOwner != self.session_id or int(_loads(held[0])["brokerid"]) != broker_id:
                    return None
                tx = self._client.transaction()
                tx.check(CONTROLLER, held[1].version)
                tx.set_data(CONTROLLER_EPOCH, str(epoch + 1).encode(), version=zk_version)
                results = self._commit(tx)
                if self._first_error(results) is None:
                    return self._won(epoch + 1, results[1].version)

    def _won(self, epoch: int, zk_version: int) -> int:
        with self._lock:
            self._epoch, self._epoch_zk_version = epoch, zk_version
        return epoch

    def _read_or_create_epoch(self) -> tuple[int, int]:
        got = self._get(CONTROLLER_EPOCH)
        if got is None:
            try:
                self._wait(self._client.create_async(CONTROLLER_EPOCH, b"0"))
            except NodeExistsError:
                pass
            got = self._get(CONTROLLER_EPOCH)
            if got is None:
                raise CoordinationError("/controller_epoch vanished")
        return int(got[0].decode()), got[1].version

    def controller_id(self) -> int | None:
        with self._errors("controller id"):
            got = self._get(CONTROLLER)
            return None if got is None else int(_loads(got[0])["brokerid"])

    def controller_epoch(self) -> int:
        with self._errors("controller epoch"):
            got = self._get(CONTROLLER_EPOCH)
            return 0 if got is None else int(got[0].decode())

    def watch_controller(self, callback: EventCallback) -> None:
        self._watch_data(CONTROLLER, callback)

    # --- topics ----------------------------------------------------------------------------

    def topics(self) -> dict[str, TopicAssignment]:
        with self._errors("topics"):
            names = self._children(TOPICS)
            found = self._get_many([topic_path(t) for t in names])
            out: dict[str, TopicAssignment] = {}
            for name, got in zip(names, found, strict=True):
                assignment = decode_topic(name, got[0]) if got else None
                if assignment is not None:
                    out[name] = assignment
            return out

    def topic_exists(self, topic: str) -> bool:
        with self._errors(f"exists {topic}"):
            return self._exists(topic_path(topic))

    def watch_topics(self, callback: EventCallback) -> None:
        _TopicsWatch(self._client, callback).start()

    def create_topic(self, assignment: TopicAssignment, configs: dict[str, str]) -> None:
        name = assignment.name
        with self._errors(f"create topic {name}"):
            if self._exists(topic_path(name)):
                raise TopicExistsError(f"topic {name!r} already exists")
            # One multi-op (Kafka does two writes): no orphaned config when the topic loses a race.
            tx = self._client.transaction()
            if self._exists(topic_config_path(name)):
                tx.set_data(topic_config_path(name), encode_topic_config(configs))
            else:
                tx.create(topic_config_path(name), encode_topic_config(configs))
            tx.create(topic_path(name), encode_topic(assignment))
            error = self._first_error(self._commit(tx))
            if isinstance(error, NodeExistsError):
                if self._exists(topic_path(name)):
                    raise TopicExistsError(f"topic {name!r} already exists")
                raise CoordinationError(f"create topic {name}: its config appeared concurrently, retry")
            if error is not None:
                raise error

    def set_assignment(self, assignment: TopicAssignment) -> None:
        what = f"set assignment of {assignment.name}"
        with self._errors(what):
            try:
                self._fenced(what, lambda tx: tx.set_data(topic_path(assignment.name), encode_topic(assignment)))
            except NoNodeError as e:
                raise CoordinationError(f"{what}: no such topic") from e

    def topic_configs(self, topic: str) -> dict[str, str]:
        with self._errors(f"configs of {topic}"):
            got = self._get(topic_config_path(topic))
            return {} if got is None else decode_topic_config(got[0])

    def set_topic_configs(self, topic: str, configs: dict[str, str]) -> None:
        with self._errors(f"set configs of {topic}"):
            self._write_entity_config(f"set configs of {topic}", topic_config_path(topic), f"topics/{topic}",
                                      lambda _current: configs)

    def allocate_producer_ids(self, broker_id: int, count: int) -> tuple[int, int]:
        """Kafka's ProducerIdBlockZNode: {"version":1,"broker":b,"block_start":"s",
        "block_end":"e"}, advanced by compare-and-set."""
        with self._errors("producer id block"):
            for _ in range(20):
                got = self._get(PRODUCER_ID_BLOCK)
                last = _loads(got[0]) if got is not None else None
                first = int(last["block_end"]) + 1 if last else 0
                block = _dumps({"version": 1, "broker": broker_id, "block_start": str(first),
                                "block_end": str(first + count - 1)})
                try:
                    if got is None:
                        self._wait(self._client.create_async(PRODUCER_ID_BLOCK, block))
                    else:
                        self._wait(self._client.set_async(PRODUCER_ID_BLOCK, block, version=got[1].version))
                except (NodeExistsError, ZkBadVersionError):
                    continue  # another broker took a block meanwhile
                return first, first + count - 1
            raise CoordinationError("producer id block: kept racing with other brokers")

    def broker_configs(self) -> dict[str, str]:
        with self._errors("broker configs"):
            got = self._get(CONFIG_BROKER_DEFAULT)
            return {} if got is None else decode_topic_config(got[0])

    def set_broker_configs(self, configs: dict[str, str]) -> None:
        with self._errors("set broker configs"):
            self._client.ensure_path("/config/brokers")
            self._write_entity_config("set broker configs", CONFIG_BROKER_DEFAULT, "brokers/<default>",
                                      lambda _current: configs)

    def user_scram_credentials(self, user: str) -> dict[str, str]:
        with self._errors(f"credentials of {user}"):
            got = self._get(user_config_path(user))
            configs = {} if got is None else decode_topic_config(got[0])
            return {k: v for k, v in configs.items() if k in SCRAM_MECHANISMS}

    def set_user_scram_credentials(self, user: str, credentials: dict[str, str]) -> None:
        with self._errors(f"set credentials of {user}"):
            self._client.ensure_path(CONFIG_USERS)
            self._write_entity_config(
                f"set credentials of {user}", user_config_path(user), f"users/{sanitize_user(user)}",
                lambda current: {k: v for k, v in current.items() if k not in SCRAM_MECHANISMS} | credentials)

    def _write_entity_config(self, what: str, path: str, entity_path: str,
                             update: Callable[[dict[str, str]], dict[str, str]]) -> None:
        """Kafka's entity config write: the config znode (compare-and-set on what was read)
        and a /config/changes notification in one multi-op, so every broker's watch sees it."""
        for _ in range(5):
            got = self._get(path)
            configs = update({} if got is None else decode_topic_config(got[0]))
            tx = self._client.transaction()
            if got is None:
                tx.create(path, encode_topic_config(configs))
            else:
                tx.set_data(path, encode_topic_config(configs), version=got[1].version)
            tx.create(f"{CONFIG_CHANGES}/{CONFIG_CHANGE_PREFIX}",
                      _dumps({"version": 2, "entity_path": entity_path}), sequence=True)
            error = self._first_error(self._commit(tx))
            if error is None:
                break
            if not isinstance(error, NodeExistsError | NoNodeError | ZkBadVersionError):
                raise error
        else:
            raise CoordinationError(f"{what}: kept racing with another writer")
        self._purge_config_changes()

    def scram_users(self) -> dict[str, dict[str, str]]:
        with self._errors("SCRAM users"):
            names = self._children(CONFIG_USERS)
            found = self._get_many([f"{CONFIG_USERS}/{n}" for n in names])
            out: dict[str, dict[str, str]] = {}
            for name, got in zip(names, found, strict=True):
                configs = {} if got is None else decode_topic_config(got[0])
                credentials = {k: v for k, v in configs.items() if k in SCRAM_MECHANISMS}
                if credentials:
                    out[unquote(name)] = credentials
            return out

    def _purge_config_changes(self) -> None:
        changes = self._children(CONFIG_CHANGES)
        if len(changes) <= MAX_CONFIG_CHANGES:
            return
        for name in changes[: len(changes) - KEEP_CONFIG_CHANGES]:  # zero-padded sequence: sorts by age
            try:
                self._wait(self._client.delete_async(f"{CONFIG_CHANGES}/{name}"))
            except NoNodeError:
                pass

    def watch_config_changes(self, callback: EventCallback) -> None:
        self._watch_children(CONFIG_CHANGES, callback)

    # --- client quotas -----------------------------------------------------------------------

    def client_quota_configs(self) -> dict[str, dict[str, str]]:
        with self._errors("read client quotas"):
            paths = []
            for user in self._children(CONFIG_USERS):
                paths.append(f"users/{user}")
                paths.extend(f"users/{user}/clients/{c}" for c in self._children(f"{CONFIG_USERS}/{user}/clients"))
            paths.extend(f"clients/{c}" for c in self._children(CONFIG_CLIENTS))
            found = self._get_many([f"/config/{p}" for p in paths])
            out: dict[str, dict[str, str]] = {}
            for path, got in zip(paths, found, strict=True):
                configs = {} if got is None else decode_topic_config(got[0])
                configs = {k: v for k, v in configs.items() if k not in SCRAM_MECHANISMS}
                if configs:
                    out[path] = configs
            return out

    def set_client_quota_configs(self, entity_path: str, changes: dict[str, str | None]) -> None:
        what = f"set quotas of {entity_path}"
        with self._errors(what):
            path = f"/config/{entity_path}"
            self._client.ensure_path(path.rsplit("/", 1)[0])
            self._write_entity_config(
                what, path, entity_path,
                lambda current: {k: v for k, v in ({**current, **changes}).items() if v is not None})

    # --- ACLs ------------------------------------------------------------------------------

    def acl_znodes(self, roots: tuple[str, ...]) -> list[tuple[str, str, str, bytes]]:
        with self._errors("read ACLs"):
            found: list[tuple[str, str, str, bytes]] = []
            for root in roots:
                for resource_type in self._children(root):
                    names = self._children(f"{root}/{resource_type}")
                    values = self._get_many([f"{root}/{resource_type}/{name}" for name in names])
                    found.extend((root, resource_type, name, got[0])
                                 for name, got in zip(names, values, strict=True) if got is not None)
            return found

    def acl_znode(self, path: str) -> tuple[bytes, int] | None:
        with self._errors(f"read {path}"):
            _check_znode_path(path)
            got = self._get(path)
            return None if got is None else (got[0], got[1].version)

    def write_acl_znode(self, path: str, data: bytes | None, version: int | None,
                        change_prefix: str, change_data: bytes) -> bool:
        with self._errors(f"write {path}"):
            _check_znode_path(path)
            parent = path.rsplit("/", 1)[0]
            self._client.ensure_path(parent)
            self._client.ensure_path(change_prefix.rsplit("/", 1)[0])
            tx = self._client.transaction()
            if data is None:
                if version is None:
                    return True
                tx.delete(path, version=version)
            elif version is None:
                tx.create(path, data)
            else:
                tx.set_data(path, data, version=version)
            tx.create(change_prefix, change_data, sequence=True)
            error = self._first_error(self._commit(tx))
            if error is None:
                return True
            if isinstance(error, NodeExistsError | NoNodeError | ZkBadVersionError):
                return False
            raise error

    def acl_changes(self, root: str) -> list[tuple[str, bytes, int]]:
        with self._errors(f"read {root}"):
            names = self._children(root)
            values = self._get_many([f"{root}/{name}" for name in names])
            return [(name, got[0], got[1].ctime) for name, got in zip(names, values, strict=True)
                    if got is not None]

    def delete_acl_changes(self, root: str, names: list[str]) -> None:
        with self._errors(f"purge {root}"):
            for name in names:
                try:
                    self._wait(self._client.delete_async(f"{root}/{name}"))
                except NoNodeError:
                    pass

    def watch_acl_changes(self, roots: tuple[str, ...], callback: EventCallback) -> None:
        with self._errors("watch ACL changes"):
            for root in roots:
                self._client.ensure_path(root)
                self._watch_children(root, callback)

    # --- partition state ---------------------------------------------------------------

    def partition_state(self, topic: str, partition: int) -> tuple[LeaderAndIsr, int] | None:
        with self._errors(f"state of {topic}-{partition}"):
            got = self._get(partition_state_path(topic, partition))
            return None if got is None else (decode_partition_state(got[0]), got[1].version)

    def partition_states(
        self, partitions: list[tuple[str, int]]
    ) -> dict[tuple[str, int], tuple[LeaderAndIsr, int]]:
        with self._errors(f"state of {len(partitions)} partition(s)"):
            got = self._get_many([partition_state_path(t, p) for t, p in partitions])
            return {tp: (decode_partition_state(g[0]), g[1].version)
                    for tp, g in zip(partitions, got, strict=True) if g is not None}

    def create_partition_state(self, topic: str, partition: int, state: LeaderAndIsr) -> int:
        what = f"create state of {topic}-{partition}"
        with self._errors(what):
            self._require_controller(what)
            # The parents go in the same multi-op, never ensure_path: that would resurrect
            # /brokers/topics/<t> as an empty znode if the topic was just deleted.
            need_partitions = not self._exists(partitions_path(topic))
            need_partition = need_partitions or not self._exists(partition_path(topic, partition))

            def build(tx: TransactionRequest) -> None:
                if need_partitions:
                    tx.create(partitions_path(topic))
                if need_partition:
                    tx.create(partition_path(topic, partition))
                tx.create(partition_state_path(topic, partition), encode_partition_state(state))

            try:
                self._fenced(what, build)
            except NodeExistsError as e:
                raise BadVersionError(f"{what}: it already exists") from e
            except NoNodeError as e:
                raise CoordinationError(f"{what}: no such topic") from e
            return 0

    def update_partition_state(
        self, topic: str, partition: int, state: LeaderAndIsr, expected_version: int
    ) -> int:
        what = f"update state of {topic}-{partition}"
        path = partition_state_path(topic, partition)
        with self._errors(what):
            try:
                results = self._fenced(
                    what, lambda tx: tx.set_data(path, encode_partition_state(state), version=expected_version)
                )
            except ZkBadVersionError as e:
                raise BadVersionError(f"{what}: znode version is not {expected_version} any more") from e
            except NoNodeError as e:
                raise BadVersionError(f"{what}: it does not exist") from e
            return int(results[0].version)

    def _fenced_pipelined(
        self, what: str, builds: list[Callable[[TransactionRequest], None]]
    ) -> list[list[Any] | Exception]:
        """`_fenced` for many multi-ops sent at once and then collected (ZooKeeper answers
        a session's requests in order): each one's results, or its failing operation's
        exception. NotControllerError if any found the epoch moved."""
        zk_version, epoch = self._require_controller(what)
        pending = []
        for build in builds:
            tx = self._client.transaction()
            tx.check(CONTROLLER_EPOCH, zk_version)
            build(tx)
            pending.append(tx.commit_async())
        out: list[list[Any] | Exception] = []
        fenced = False
        for result in pending:
            results = list(self._wait(result))
            error = self._first_error(results)
            if error is None:
                out.append(results[1:])
            else:
                fenced = fenced or results[0] is error
                out.append(error)
        if fenced:
            with self._lock:
                if self._epoch_zk_version == zk_version:
                    self._epoch, self._epoch_zk_version = None, None
            raise NotControllerError(f"{what}: controller epoch {epoch} is stale, another controller was elected")
        return out

    def create_partition_states(
        self, states: Mapping[tuple[str, int], LeaderAndIsr]
    ) -> dict[tuple[str, int], int | None]:
        what = f"create {len(states)} partition state(s)"
        versions: dict[tuple[str, int], int | None] = {}
        with self._errors(what):
            self._require_controller(what)
            by_topic: dict[str, list[tuple[int, LeaderAndIsr]]] = {}
            for (topic, partition), state in states.items():
                by_topic.setdefault(topic, []).append((partition, state))
            topics = list(by_topic)
            tps = [(t, p) for t in topics for p, _ in by_topic[t]]
            # Which parents exist, asked all at once (never ensure_path: see create_partition_state).
            exists = [r is not None for r in self._wait_all(
                [self._client.exists_async(partitions_path(t)) for t in topics]
                + [self._client.exists_async(partition_path(t, p)) for t, p in tps])]
            has_partitions = dict(zip(topics, exists[: len(topics)], strict=True))
            has_partition = dict(zip(tps, exists[len(topics):], strict=True))
            chunks: list[tuple[str, bool, list[tuple[int, LeaderAndIsr]]]] = []
            for topic, parts in by_topic.items():
                for i in range(0, len(parts), PARTITION_STATES_PER_MULTI):
                    chunk = parts[i:i + PARTITION_STATES_PER_MULTI]
                    chunks.append((topic, i == 0 and not has_partitions[topic], chunk))

            def build(topic: str, need_parent: bool, parts: list[tuple[int, LeaderAndIsr]]) -> Callable[
                    [TransactionRequest], None]:
                def ops(tx: TransactionRequest) -> None:
                    if need_parent:
                        tx.create(partitions_path(topic))
                    for partition, state in parts:
                        if not has_partition[(topic, partition)]:
                            tx.create(partition_path(topic, partition))
                        tx.create(partition_state_path(topic, partition), encode_partition_state(state))
                return ops

            results = self._fenced_pipelined(what, [build(*chunk) for chunk in chunks])
            for (topic, _, parts), result in zip(chunks, results, strict=True):
                if not isinstance(result, Exception):
                    versions.update(((topic, p), 0) for p, _ in parts)
                    continue
                # One of them exists already (or the topic went): one at a time, as before.
                for partition, state in parts:
                    try:
                        versions[(topic, partition)] = self.create_partition_state(topic, partition, state)
                    except BadVersionError:
                        versions[(topic, partition)] = None
                    except NotControllerError:
                        raise
                    except CoordinationError as exc:
                        if "no such topic" not in str(exc):
                            raise
                        versions[(topic, partition)] = None
        return versions

    def update_partition_states(
        self, updates: Mapping[tuple[str, int], tuple[LeaderAndIsr, int]]
    ) -> dict[tuple[str, int], int | None]:
        what = f"update {len(updates)} partition state(s)"
        items = list(updates.items())
        versions: dict[tuple[str, int], int | None] = {}
        with self._errors(what):
            def build(tp: tuple[str, int], state: LeaderAndIsr, expected: int) -> Callable[
                    [TransactionRequest], None]:
                data = encode_partition_state(state)
                return lambda tx: tx.set_data(partition_state_path(*tp), data, version=expected)

            results = self._fenced_pipelined(what, [build(tp, st, v) for tp, (st, v) in items])
            for (tp, _), result in zip(items, results, strict=True):
                if isinstance(result, ZkBadVersionError | NoNodeError):
                    versions[tp] = None
                elif isinstance(result, Exception):
                    raise result
                else:
                    versions[tp] = int(result[0].version)
        return versions

    def _wait_all(self, pending: list[Any]) -> list[Any]:
        return [self._wait(p) for p in pending]

    # --- topic deletion ------------------------------------------------------------------

    def request_topic_deletion(self, topic: str) -> None:
        with self._errors(f"request deletion of {topic}"):
            try:
                self._wait(self._client.create_async(delete_topic_path(topic)))
            except NodeExistsError:
                pass  # already requested

    def pending_topic_deletions(self) -> list[str]:
        with self._errors("pending topic deletions"):
            return self._children(DELETE_TOPICS)

    def watch_topic_deletions(self, callback: EventCallback) -> None:
        self._watch_children(DELETE_TOPICS, callback)

    def complete_topic_deletion(self, topic: str) -> None:
        """One fenced multi-op: the topic's znodes (deepest first), its config, its request."""
        what = f"complete deletion of {topic}"
        with self._errors(what):
            self._require_controller(what)
            for _ in range(5):
                paths = self._subtree(topic_path(topic))
                for extra in (topic_config_path(topic), delete_topic_path(topic)):
                    if self._exists(extra):
                        paths.append(extra)

                def build(tx: TransactionRequest, paths: list[str] = paths) -> None:
                    for p in paths:
                        tx.delete(p)

                try:
                    self._fenced(what, build)
                    return
                except (NoNodeError, NotEmptyError):
                    continue  # the tree changed while we listed it
            raise CoordinationError(f"{what}: the topic's znodes kept changing")

    def _subtree(self, root: str) -> list[str]:
        """`root` and every descendant, children before parents; [] if `root` is absent."""
        stack = [root]
        seen: list[str] = []
        while stack:
            path = stack.pop()
            try:
                children = self._wait(self._client.get_children_async(path))
            except NoNodeError:
                continue
            seen.append(path)
            stack.extend(f"{path}/{c}" for c in children)
        # Parents were visited before their children; reversing puts children first.
        return list(reversed(seen))

    # --- watch adapters ------------------------------------------------------------------

    def _watch_children(self, path: str, callback: EventCallback) -> None:
        with self._errors(f"watch {path}"):
            ChildrenWatch(self._client, path, _SkipFirst(callback).children)

    def _watch_data(self, path: str, callback: EventCallback) -> None:
        with self._errors(f"watch {path}"):
            DataWatch(self._client, path, _SkipFirst(callback).data)


def _check_znode_path(path: str) -> None:
    """CoordinationError for a path ZooKeeper refuses (a resource named ``, `.` or `..`, or
    holding a NUL): kazoo raises ValueError, which is no KazooException."""
    if any(part in ("", ".", "..") for part in path.split("/")[1:]) or "\x00" in path:
        raise CoordinationError(f"invalid znode path {path!r}")


def _call(callback: EventCallback) -> None:
    try:
        callback()
    except Exception:
        log.exception("coordination callback %r failed", callback)


class _SkipFirst:
    """kazoo calls a watch function once when it is registered, with the current state; the
    caller reads that state itself, so only later calls are changes to report.

    kazoo re-arms its watches after every event and after reconnects (also into a new
    session); after a reconnect it calls again only if the children or the data version
    differ from what it last saw, so changes made while we were away are reported too."""

    def __init__(self, callback: EventCallback) -> None:
        self._callback = callback
        self._initial = True

    def _fire(self) -> None:
        if self._initial:  # kazoo serializes one watch's calls, so no lock is needed
            self._initial = False
            return
        _call(self._callback)

    def children(self, children: list[str]) -> None:
        self._fire()

    def data(self, data: bytes | None, stat: ZnodeStat | None, event: object = None) -> None:
        # The `event` parameter matters: kazoo calls func(data, stat, event) and, on
        # TypeError, calls again with two arguments, so a two-argument function that
        # raised TypeError inside would run twice.
        self._fire()


class _TopicsWatch:
    """Topics added or removed (children of /brokers/topics) and assignments changed (the
    data of each /brokers/topics/<t>, one kazoo DataWatch per topic, as Kafka's
    PartitionModificationsHandler). Its own bookkeeping is which topics have a DataWatch."""

    def __init__(self, client: KazooClient, callback: EventCallback) -> None:
        self._client = client
        self._callback = callback
        self._lock = threading.Lock()
        self._watched: set[str] = set()
        self._initial = True

    def start(self) -> None:
        ChildrenWatch(self._client, TOPICS, self._on_children)

    def _on_children(self, children: list[str]) -> None:
        with self._lock:
            new = [t for t in children if t not in self._watched]
            self._watched.update(new)
        for topic in new:
            # Registering does one blocking read; fine on kazoo's threading handler.
            DataWatch(self._client, topic_path(topic), self._data_watcher(topic))
        # Report after the new DataWatches are armed: a reader then sees every later change.
        if self._initial:
            self._initial = False
            return
        _call(self._callback)

    def _data_watcher(self, topic: str) -> Callable[[bytes | None, ZnodeStat | None, object], bool | None]:
        initial = True

        def on_data(data: bytes | None, stat: ZnodeStat | None, event: object = None) -> bool | None:
            nonlocal initial
            if stat is None:  # deleted: the children watch reports it; stop this DataWatch
                with self._lock:
                    self._watched.discard(topic)
                return False
            if initial:
                initial = False
                return None
            _call(self._callback)
            return None

        return on_data

"""The embedded backend of `Coordination`: one broker, no ZooKeeper, state in its log dir.

What ZooKeeper keeps in persistent znodes (cluster id, topics and their assignments, topic
configs, partition states with their versions, the controller epoch, pending topic
deletions) is kept as ZooKeeper itself keeps it: a snapshot and a transaction log.
`<log_dir>/moldau-coordination.json` is the snapshot, one JSON document written
atomically (tmp + fsync + rename + fsync of the dir); `moldau-coordination.log` holds the
changes made since, one JSON line per write (a single change, or every partition state
of a batch: `create_partition_states` / `update_partition_states`), appended and fsynced
before the write returns. A write therefore costs what it changes, not the size of the
whole state (rewriting the document per partition state made creating N partitions
O(N^2): reliability anomaly #9). When the log outgrows the snapshot (and 1 MiB) it is
folded into a new snapshot; `start()` folds it too, so a torn last line (a crash during
an append, never acknowledged) is dropped once. What ZooKeeper keeps in ephemeral znodes
(broker registrations, /controller) lives in memory: this object is the one "session",
and `close()` (or `expire_session()`) ends it.

Semantics follow the ZooKeeper backend: compare-and-set versions count like znode
versions (0 on create, +1 per write), controller-only writes need the epoch won by
`try_become_controller` to still be current (NotControllerError otherwise), and
registering the same broker id again in the same session updates it (as a ZooKeeper
session re-registering its own ephemeral znode).

Watches are plain lists of callbacks, called on the mutating thread after the change is
made and persisted and after the lock is released, so a callback may call back in.

Snapshot format (version 1; ``journal_seq``: the last log line it includes)::

    {"version": 1, "cluster_id": "<id>" | null, "controller_epoch": 3,
     "topics": {"<t>": {"topic_id": "<uuid>", "partitions": {"0": [1]}}},
     "topic_configs": {"<t>": {"k": "v"}},
     "partition_states": {"<t>": {"0": {"leader": 1, "leader_epoch": 0, "isr": [1],
                                        "controller_epoch": 3, "version": 0}}},
     "pending_deletions": ["<t>"],
     "user_configs": {"<user>": {"SCRAM-SHA-256": "salt=..,stored_key=..,server_key=..,iterations=4096"}},
     "client_quotas": {"users/alice": {"producer_byte_rate": "1024"}},
     "acls": {"/kafka-acl/Topic/orders": {"data": "{\"version\":1,\"acls\":[..]}", "version": 0}},
     "journal_seq": 12}

Log lines: ``{"seq": 13, "changes": [[kind, ...], ...]}``, each change one of
``["cluster_id", id]``, ``["controller_epoch", n]``, ``["topic", name, {topic} | null]``
(null: the topic, its configs and partition states are gone), ``["topic_configs", name,
{..}]``, ``["broker_configs", {..}]``, ``["user", name, {..} | null]``,
``["next_producer_id", n]``, ``["partition_state", topic, partition, {state}]``,
``["pending_deletions", [..]]``, ``["client_quotas", entity path, {..} | null]``,
``["acl", znode path, [data, version] | null]``; each sets a value whole, so replaying is
plain. ACL change notifications are not kept: the one broker applies its own ACL writes.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from moldau.controller.coordination import (
    BadVersionError,
    BrokerInfo,
    CoordinationError,
    EventCallback,
    LeaderAndIsr,
    NotControllerError,
    TopicAssignment,
    TopicExistsError,
)
from moldau.log.checkpoint import fsync_directory

log = logging.getLogger(__name__)

COORDINATION_FILE = "moldau-coordination.json"
JOURNAL_FILE = "moldau-coordination.log"
FORMAT_VERSION = 1
# The log is folded into a new snapshot when it is larger than this and the snapshot.
JOURNAL_MIN_COMPACT_BYTES = 1 << 20

TopicPartition = tuple[str, int]
Change = list[Any]


class EmbeddedCoordination:
    """`Coordination` for a broker running alone, persisted in `log_dir`."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = Path(log_dir)
        self.path = self.log_dir / COORDINATION_FILE
        self.journal_path = self.log_dir / JOURNAL_FILE
        self._journal_fd: int | None = None
        self._journal_seq = 0
        self._journal_bytes = 0
        self._snapshot_bytes = 0
        self._lock = threading.RLock()
        self._open = False
        # durable
        self._cluster_id: str | None = None
        self._controller_epoch = 0
        self._topics: dict[str, TopicAssignment] = {}
        self._topic_configs: dict[str, dict[str, str]] = {}
        self._broker_configs: dict[str, str] = {}
        self._user_configs: dict[str, dict[str, str]] = {}  # SCRAM credentials by user
        self._acls: dict[str, tuple[bytes, int]] = {}  # ACL znode path -> (value, version)
        self._client_quotas: dict[str, dict[str, str]] = {}  # quota entity path -> configs
        self._next_producer_id = 0
        self._partition_states: dict[str, dict[int, tuple[LeaderAndIsr, int]]] = {}
        self._pending_deletions: list[str] = []
        # ephemeral: this session's
        self._session = 1  # bumped by expire_session
        self._brokers: dict[int, BrokerInfo] = {}
        self._controller: int | None = None
        self._fencing_epoch: int | None = None  # the epoch this session won
        # watches
        self._session_lost: list[EventCallback] = []
        self._broker_watches: list[EventCallback] = []
        self._controller_watches: list[EventCallback] = []
        self._topic_watches: list[EventCallback] = []
        self._config_watches: list[EventCallback] = []
        self._deletion_watches: list[EventCallback] = []

    # --- persistence -------------------------------------------------------------------

    def _load(self) -> None:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            raw = None
        except (OSError, ValueError) as e:
            raise CoordinationError(f"cannot read {self.path}: {e}") from e
        if raw is not None:
            self._load_snapshot(raw)
        self._replay_journal()

    def _load_snapshot(self, raw: dict[str, Any]) -> None:
        if raw.get("version") != FORMAT_VERSION:
            raise CoordinationError(f"{self.path}: unknown format version {raw.get('version')!r}")
        self._cluster_id = raw.get("cluster_id")
        self._controller_epoch = int(raw.get("controller_epoch", 0))
        self._topics = {name: _topic_from_doc(name, t) for name, t in raw.get("topics", {}).items()}
        self._topic_configs = {name: dict(c) for name, c in raw.get("topic_configs", {}).items()}
        self._broker_configs = dict(raw.get("broker_configs", {}))
        self._user_configs = {name: dict(c) for name, c in raw.get("user_configs", {}).items()}
        self._acls = {path: (str(a["data"]).encode(), int(a["version"])) for path, a in raw.get("acls", {}).items()}
        self._client_quotas = {path: dict(c) for path, c in raw.get("client_quotas", {}).items()}
        self._next_producer_id = int(raw.get("next_producer_id", 0))
        self._partition_states = {
            name: {int(p): _state_from_doc(s) for p, s in states.items()}
            for name, states in raw.get("partition_states", {}).items()
        }
        self._pending_deletions = list(raw.get("pending_deletions", []))
        self._journal_seq = int(raw.get("journal_seq", 0))

    def _replay_journal(self) -> None:
        """Apply the log lines the snapshot does not include. A last line that does not
        parse is a torn append (its write never returned): dropped; any other bad line
        is an error."""
        try:
            data = self.journal_path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as e:
            raise CoordinationError(f"cannot read {self.journal_path}: {e}") from e
        lines = data.split(b"\n")
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                seq, changes = int(entry["seq"]), entry["changes"]
            except (ValueError, KeyError, TypeError) as e:
                if i == len(lines) - 1:
                    log.warning("%s: dropping a torn last line (%d bytes)", self.journal_path, len(line))
                    break
                raise CoordinationError(f"cannot read {self.journal_path}: line {i + 1}: {e}") from e
            if seq <= self._journal_seq:
                continue  # already in the snapshot (a crash between snapshot and truncation)
            for change in changes:
                self._apply(change)
            self._journal_seq = seq

    def _apply(self, change: Change) -> None:
        kind = change[0]
        if kind == "cluster_id":
            self._cluster_id = change[1]
        elif kind == "controller_epoch":
            self._controller_epoch = int(change[1])
        elif kind == "topic":
            name, doc = change[1], change[2]
            if doc is None:
                self._topics.pop(name, None)
                self._topic_configs.pop(name, None)
                self._partition_states.pop(name, None)
            else:
                self._topics[name] = _topic_from_doc(name, doc)
        elif kind == "topic_configs":
            self._topic_configs[change[1]] = dict(change[2])
        elif kind == "broker_configs":
            self._broker_configs = dict(change[1])
        elif kind == "user":
            if change[2] is None:
                self._user_configs.pop(change[1], None)
            else:
                self._user_configs[change[1]] = dict(change[2])
        elif kind == "next_producer_id":
            self._next_producer_id = int(change[1])
        elif kind == "partition_state":
            self._partition_states.setdefault(change[1], {})[int(change[2])] = _state_from_doc(change[3])
        elif kind == "pending_deletions":
            self._pending_deletions = list(change[1])
        elif kind == "client_quotas":
            if change[2] is None:
                self._client_quotas.pop(change[1], None)
            else:
                self._client_quotas[change[1]] = dict(change[2])
        elif kind == "acl":
            if change[2] is None:
                self._acls.pop(change[1], None)
            else:
                self._acls[change[1]] = (str(change[2][0]).encode(), int(change[2][1]))
        else:
            raise CoordinationError(f"{self.journal_path}: unknown change {kind!r}")

    def _document(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "cluster_id": self._cluster_id,
            "controller_epoch": self._controller_epoch,
            "topics": {name: _topic_doc(t) for name, t in sorted(self._topics.items())},
            "topic_configs": {name: dict(c) for name, c in sorted(self._topic_configs.items())},
            "broker_configs": dict(sorted(self._broker_configs.items())),
            "user_configs": {name: dict(c) for name, c in sorted(self._user_configs.items())},
            "client_quotas": {path: dict(c) for path, c in sorted(self._client_quotas.items())},
            "acls": {path: {"data": data.decode(), "version": version}
                     for path, (data, version) in sorted(self._acls.items())},
            "partition_states": {
                name: {str(p): _state_doc(s, version) for p, (s, version) in sorted(states.items())}
                for name, states in sorted(self._partition_states.items())
            },
            "pending_deletions": list(self._pending_deletions),
            "next_producer_id": self._next_producer_id,
            "journal_seq": self._journal_seq,
        }

    def _write_snapshot(self) -> None:
        """The whole state as a new snapshot (atomically), then an empty log."""
        data = json.dumps(self._document(), indent=1, sort_keys=False).encode()
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            fsync_directory(self.log_dir)
            # The snapshot holds every line of the log now (journal_seq): emptied after
            # it is durable, so a crash in between only replays lines it skips.
            self._close_journal()
            fd = os.open(self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
            os.fsync(fd)
            self._journal_fd = fd
            fsync_directory(self.log_dir)
        except OSError as e:
            raise CoordinationError(f"cannot write {self.path}: {e}") from e
        self._snapshot_bytes = len(data)
        self._journal_bytes = 0

    def _commit(self, changes: list[Change]) -> None:
        """Make ``changes`` (already applied in memory) durable: one appended, fsynced
        log line, or a new snapshot when the log has grown past it."""
        if not changes:
            return
        self._journal_seq += 1
        if self._journal_bytes > max(self._snapshot_bytes, JOURNAL_MIN_COMPACT_BYTES) or self._journal_fd is None:
            self._write_snapshot()
            return
        line = json.dumps({"seq": self._journal_seq, "changes": changes}, separators=(",", ":")).encode() + b"\n"
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(self._journal_fd, view):]
            os.fsync(self._journal_fd)
        except OSError as e:
            raise CoordinationError(f"cannot write {self.journal_path}: {e}") from e
        self._journal_bytes += len(line)

    def _close_journal(self) -> None:
        if self._journal_fd is not None:
            os.close(self._journal_fd)
            self._journal_fd = None

    # --- plumbing ----------------------------------------------------------------------

    def _require_open(self) -> None:
        if not self._open:
            raise CoordinationError("embedded coordination is not started (or closed)")

    def _require_controller(self, what: str) -> None:
        if self._fencing_epoch is None or self._fencing_epoch != self._controller_epoch:
            raise NotControllerError(f"{what}: this broker is not the controller")

    @staticmethod
    def _notify(callbacks: list[EventCallback]) -> None:
        for callback in list(callbacks):
            try:
                callback()
            except Exception:
                log.exception("coordination callback %r failed", callback)

    # --- session -----------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            try:
                self.log_dir.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise CoordinationError(f"cannot create {self.log_dir}: {e}") from e
            self._load()
            if self._journal_fd is None and (self.path.exists() or self.journal_path.exists()):
                self._write_snapshot()  # fold the log in (and drop a torn last line) once
            self._open = True

    def close(self) -> None:
        with self._lock:
            self._end_session()
            self._close_journal()
            self._open = False

    def _end_session(self) -> None:
        self._brokers.clear()
        self._controller = None
        self._fencing_epoch = None

    def expire_session(self) -> None:
        """What a ZooKeeper session expiry does (for tests of the layers above): the
        registrations and /controller vanish, watches fire, `on_session_lost` is called.
        Not part of `Coordination`."""
        with self._lock:
            self._require_open()
            had_brokers = bool(self._brokers)
            had_controller = self._controller is not None
            self._end_session()
            self._session += 1
        if had_brokers:
            self._notify(self._broker_watches)
        if had_controller:
            self._notify(self._controller_watches)
        self._notify(self._session_lost)

    @property
    def session_id(self) -> int | None:
        return self._session if self._open else None

    def ping(self) -> None:
        """Always alive: the embedded service lives in this process."""

    def on_session_lost(self, callback: EventCallback) -> None:
        with self._lock:
            self._session_lost.append(callback)

    # --- cluster and brokers -----------------------------------------------------------

    def get_or_create_cluster_id(self, proposed: str) -> str:
        with self._lock:
            self._require_open()
            if self._cluster_id is None:
                self._cluster_id = proposed
                self._commit([["cluster_id", proposed]])
            return self._cluster_id

    def register_broker(self, info: BrokerInfo) -> None:
        with self._lock:
            self._require_open()
            self._brokers[info.broker_id] = info
        self._notify(self._broker_watches)

    def live_brokers(self) -> dict[int, BrokerInfo]:
        with self._lock:
            self._require_open()
            return dict(sorted(self._brokers.items()))

    def watch_brokers(self, callback: EventCallback) -> None:
        with self._lock:
            self._broker_watches.append(callback)

    # --- controller --------------------------------------------------------------------

    def try_become_controller(self, broker_id: int) -> int | None:
        with self._lock:
            self._require_open()
            if self._controller is not None and self._controller != broker_id:
                return None
            self._controller = broker_id
            self._controller_epoch += 1
            self._fencing_epoch = self._controller_epoch
            self._commit([["controller_epoch", self._controller_epoch]])
            epoch = self._controller_epoch
        self._notify(self._controller_watches)
        return epoch

    def controller_id(self) -> int | None:
        with self._lock:
            self._require_open()
            return self._controller

    def controller_epoch(self) -> int:
        with self._lock:
            self._require_open()
            return self._controller_epoch

    def watch_controller(self, callback: EventCallback) -> None:
        with self._lock:
            self._controller_watches.append(callback)

    # --- topics ------------------------------------------------------------------------

    def topics(self) -> dict[str, TopicAssignment]:
        with self._lock:
            self._require_open()
            return {name: _copy(t) for name, t in sorted(self._topics.items())}

    def topic_exists(self, topic: str) -> bool:
        with self._lock:
            self._require_open()
            return topic in self._topics

    def watch_topics(self, callback: EventCallback) -> None:
        with self._lock:
            self._topic_watches.append(callback)

    def create_topic(self, assignment: TopicAssignment, configs: dict[str, str]) -> None:
        with self._lock:
            self._require_open()
            if assignment.name in self._topics:
                raise TopicExistsError(f"topic {assignment.name!r} already exists")
            self._topics[assignment.name] = _copy(assignment)
            self._topic_configs[assignment.name] = dict(configs)
            self._commit([["topic", assignment.name, _topic_doc(assignment)],
                          ["topic_configs", assignment.name, dict(configs)]])
        self._notify(self._topic_watches)

    def set_assignment(self, assignment: TopicAssignment) -> None:
        what = f"set assignment of {assignment.name}"
        with self._lock:
            self._require_open()
            self._require_controller(what)
            if assignment.name not in self._topics:
                raise CoordinationError(f"{what}: no such topic")
            self._topics[assignment.name] = _copy(assignment)
            self._commit([["topic", assignment.name, _topic_doc(assignment)]])
        self._notify(self._topic_watches)

    def topic_configs(self, topic: str) -> dict[str, str]:
        with self._lock:
            self._require_open()
            return dict(self._topic_configs.get(topic, {}))

    def set_topic_configs(self, topic: str, configs: dict[str, str]) -> None:
        with self._lock:
            self._require_open()
            self._topic_configs[topic] = dict(configs)
            self._commit([["topic_configs", topic, dict(configs)]])
        self._notify(self._config_watches)

    def allocate_producer_ids(self, broker_id: int, count: int) -> tuple[int, int]:
        with self._lock:
            self._require_open()
            first = self._next_producer_id
            self._next_producer_id += count
            self._commit([["next_producer_id", self._next_producer_id]])
            return first, first + count - 1

    def broker_configs(self) -> dict[str, str]:
        with self._lock:
            self._require_open()
            return dict(self._broker_configs)

    def set_broker_configs(self, configs: dict[str, str]) -> None:
        with self._lock:
            self._require_open()
            self._broker_configs = dict(configs)
            self._commit([["broker_configs", dict(configs)]])
        self._notify(self._config_watches)

    def user_scram_credentials(self, user: str) -> dict[str, str]:
        with self._lock:
            self._require_open()
            return dict(self._user_configs.get(user, {}))

    def set_user_scram_credentials(self, user: str, credentials: dict[str, str]) -> None:
        with self._lock:
            self._require_open()
            if credentials:
                self._user_configs[user] = dict(credentials)
            else:
                self._user_configs.pop(user, None)
            self._commit([["user", user, dict(credentials) if credentials else None]])
        self._notify(self._config_watches)

    def scram_users(self) -> dict[str, dict[str, str]]:
        with self._lock:
            self._require_open()
            return {name: dict(c) for name, c in self._user_configs.items() if c}

    def client_quota_configs(self) -> dict[str, dict[str, str]]:
        with self._lock:
            return {path: dict(c) for path, c in self._client_quotas.items()}

    def set_client_quota_configs(self, entity_path: str, changes: dict[str, str | None]) -> None:
        with self._lock:
            self._require_open()
            configs = self._client_quotas.get(entity_path, {})
            configs = {k: v for k, v in ({**configs, **changes}).items() if v is not None}
            if configs:
                self._client_quotas[entity_path] = configs
            else:
                self._client_quotas.pop(entity_path, None)
            self._commit([["client_quotas", entity_path, dict(configs) if configs else None]])
        self._notify(self._config_watches)

    def acl_znodes(self, roots: tuple[str, ...]) -> list[tuple[str, str, str, bytes]]:
        with self._lock:
            found = []
            for root in roots:
                for path, (data, _) in sorted(self._acls.items()):
                    if path.startswith(root + "/"):
                        resource_type, _, name = path[len(root) + 1:].partition("/")
                        if name and "/" not in name:
                            found.append((root, resource_type, name, data))
            return found

    def acl_znode(self, path: str) -> tuple[bytes, int] | None:
        with self._lock:
            return self._acls.get(path)

    def write_acl_znode(self, path: str, data: bytes | None, version: int | None,
                        change_prefix: str, change_data: bytes) -> bool:
        with self._lock:
            self._require_open()
            current = self._acls.get(path)
            if (current is None) != (version is None) or (current is not None and current[1] != version):
                return False
            if data is None:
                self._acls.pop(path, None)
            else:
                self._acls[path] = (data, 0 if current is None else current[1] + 1)
            acl = self._acls.get(path)
            self._commit([["acl", path, None if acl is None else [acl[0].decode(), acl[1]]]])
            return True

    def acl_changes(self, root: str) -> list[tuple[str, bytes, int]]:
        return []

    def delete_acl_changes(self, root: str, names: list[str]) -> None:
        pass

    def watch_acl_changes(self, roots: tuple[str, ...], callback: EventCallback) -> None:
        pass

    def watch_config_changes(self, callback: EventCallback) -> None:
        with self._lock:
            self._config_watches.append(callback)

    # --- partition state ---------------------------------------------------------------

    def partition_state(self, topic: str, partition: int) -> tuple[LeaderAndIsr, int] | None:
        with self._lock:
            self._require_open()
            return self._partition_states.get(topic, {}).get(partition)

    def partition_states(self, partitions: list[TopicPartition]) -> dict[TopicPartition, tuple[LeaderAndIsr, int]]:
        with self._lock:
            self._require_open()
            found = ((tp, self._partition_states.get(tp[0], {}).get(tp[1])) for tp in partitions)
            return {tp: state for tp, state in found if state is not None}

    def create_partition_state(self, topic: str, partition: int, state: LeaderAndIsr) -> int:
        what = f"create state of {topic}-{partition}"
        with self._lock:
            self._require_open()
            self._require_controller(what)
            if topic not in self._topics:
                raise CoordinationError(f"{what}: no such topic")
            states = self._partition_states.setdefault(topic, {})
            if partition in states:
                raise BadVersionError(f"{what}: it already exists")
            states[partition] = (state, 0)
            self._commit([["partition_state", topic, partition, _state_doc(state, 0)]])
            return 0

    def update_partition_state(
        self, topic: str, partition: int, state: LeaderAndIsr, expected_version: int
    ) -> int:
        what = f"update state of {topic}-{partition}"
        with self._lock:
            self._require_open()
            self._require_controller(what)
            current = self._partition_states.get(topic, {}).get(partition)
            if current is None:
                raise BadVersionError(f"{what}: it does not exist")
            if current[1] != expected_version:
                raise BadVersionError(f"{what}: version is {current[1]}, not {expected_version}")
            self._partition_states[topic][partition] = (state, expected_version + 1)
            self._commit([["partition_state", topic, partition, _state_doc(state, expected_version + 1)]])
            return expected_version + 1

    def create_partition_states(
        self, states: Mapping[TopicPartition, LeaderAndIsr]
    ) -> dict[TopicPartition, int | None]:
        """Create many partition states with one durable write."""
        with self._lock:
            self._require_open()
            self._require_controller(f"create {len(states)} partition state(s)")
            versions: dict[TopicPartition, int | None] = {}
            changes: list[Change] = []
            for (topic, partition), state in states.items():
                existing = self._partition_states.get(topic, {})
                if topic not in self._topics or partition in existing:
                    versions[(topic, partition)] = None
                    continue
                self._partition_states.setdefault(topic, {})[partition] = (state, 0)
                changes.append(["partition_state", topic, partition, _state_doc(state, 0)])
                versions[(topic, partition)] = 0
            self._commit(changes)
            return versions

    def update_partition_states(
        self, updates: Mapping[TopicPartition, tuple[LeaderAndIsr, int]]
    ) -> dict[TopicPartition, int | None]:
        """Compare-and-set many partition states with one durable write."""
        with self._lock:
            self._require_open()
            self._require_controller(f"update {len(updates)} partition state(s)")
            versions: dict[TopicPartition, int | None] = {}
            changes: list[Change] = []
            for (topic, partition), (state, expected_version) in updates.items():
                current = self._partition_states.get(topic, {}).get(partition)
                if current is None or current[1] != expected_version:
                    versions[(topic, partition)] = None
                    continue
                self._partition_states[topic][partition] = (state, expected_version + 1)
                changes.append(["partition_state", topic, partition, _state_doc(state, expected_version + 1)])
                versions[(topic, partition)] = expected_version + 1
            self._commit(changes)
            return versions

    # --- topic deletion ----------------------------------------------------------------

    def request_topic_deletion(self, topic: str) -> None:
        with self._lock:
            self._require_open()
            if topic in self._pending_deletions:
                return
            self._pending_deletions.append(topic)
            self._commit([["pending_deletions", list(self._pending_deletions)]])
        self._notify(self._deletion_watches)

    def pending_topic_deletions(self) -> list[str]:
        with self._lock:
            self._require_open()
            return sorted(self._pending_deletions)

    def watch_topic_deletions(self, callback: EventCallback) -> None:
        with self._lock:
            self._deletion_watches.append(callback)

    def complete_topic_deletion(self, topic: str) -> None:
        with self._lock:
            self._require_open()
            self._require_controller(f"complete deletion of {topic}")
            had_topic = self._topics.pop(topic, None) is not None
            self._topic_configs.pop(topic, None)
            self._partition_states.pop(topic, None)
            was_pending = topic in self._pending_deletions
            if was_pending:
                self._pending_deletions.remove(topic)
            self._commit([["topic", topic, None], ["pending_deletions", list(self._pending_deletions)]])
        if had_topic:
            self._notify(self._topic_watches)
        if was_pending:
            self._notify(self._deletion_watches)


def _copy(assignment: TopicAssignment) -> TopicAssignment:
    """A copy callers may mutate: the dataclass is frozen but its dict and lists are not."""
    return TopicAssignment(
        assignment.name, assignment.topic_id, {p: list(r) for p, r in sorted(assignment.partitions.items())}
    )


def _topic_doc(t: TopicAssignment) -> dict[str, Any]:
    return {
        "topic_id": str(t.topic_id),
        "partitions": {str(p): list(r) for p, r in sorted(t.partitions.items())},
        "adding": {str(p): list(r) for p, r in sorted(t.adding.items()) if r},
        "removing": {str(p): list(r) for p, r in sorted(t.removing.items()) if r},
    }


def _topic_from_doc(name: str, t: dict[str, Any]) -> TopicAssignment:
    return TopicAssignment(
        name,
        uuid.UUID(t["topic_id"]),
        {int(p): [int(r) for r in replicas] for p, replicas in t["partitions"].items()},
        {int(p): [int(r) for r in rs] for p, rs in t.get("adding", {}).items()},
        {int(p): [int(r) for r in rs] for p, rs in t.get("removing", {}).items()},
    )


def _state_doc(s: LeaderAndIsr, version: int) -> dict[str, Any]:
    return {"leader": s.leader, "leader_epoch": s.leader_epoch, "isr": list(s.isr),
            "controller_epoch": s.controller_epoch, "version": version}


def _state_from_doc(s: dict[str, Any]) -> tuple[LeaderAndIsr, int]:
    return LeaderAndIsr(s["leader"], s["leader_epoch"], tuple(s["isr"]), s["controller_epoch"]), int(s["version"])

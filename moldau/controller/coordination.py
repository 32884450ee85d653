"""The coordination service the controller and brokers share: what ZooKeeper holds.

One small interface, two backends: ZooKeeper through kazoo (clusters, `zookeeper.py`)
and an in-process store persisted in the log dir (one broker, `embedded_coordination.py`).
The controller code only sees this interface.

Kafka's znode layout, which the ZooKeeper backend follows exactly::

    /cluster/id                                   {"version":"1","id":"<cluster id>"}
    /controller                (ephemeral)        {"version":1,"brokerid":N,"timestamp":"<ms>"}
    /controller_epoch                             "<epoch>"
    /brokers/ids/<id>          (ephemeral)        {"version":5,"host":..,"port":..,"endpoints":[..],
                                                   "listener_security_protocol_map":{..},"rack":..,
                                                   "jmx_port":-1,"timestamp":"<ms>"}
    /brokers/topics/<topic>                       {"version":3,"topic_id":"<base64 uuid>",
                                                   "partitions":{"0":[1,2,3],..},
                                                   "adding_replicas":{},"removing_replicas":{}}
    /brokers/topics/<topic>/partitions/<p>/state  {"version":1,"leader":N,"leader_epoch":E,
                                                   "controller_epoch":C,"isr":[..]}
    /config/topics/<topic>                        {"version":1,"config":{"k":"v"}}
    /config/brokers/<default>                     {"version":1,"config":{"k":"v"}}
    /config/users/<user, URL-encoded>             {"version":1,"config":{"SCRAM-SHA-256":
                                                   "salt=..,stored_key=..,server_key=..,iterations=4096"}}
    /config/clients/<client id>                   {"version":1,"config":{"producer_byte_rate":"1024"}}
    /config/users/<user>/clients/<client id>      (the same; <default> for a default entity)
    /config/changes/config_change_<seq>           (sequential) {"version":2,"entity_path":"topics/<t>"}
    /admin/delete_topics/<topic>                  (empty)
    /kafka-acl/<ResourceType>/<name>              {"version":1,"acls":[{"principal":..,..}]}
    /kafka-acl-extended/prefixed/<Type>/<name>    (the same, for PREFIXED patterns)
    /kafka-acl-changes/acl_changes_<seq>          (sequential) "TOPIC:<name>"
    /kafka-acl-extended-changes/acl_changes_<seq> (sequential) {"version":1,"resourceType":..}

Watch callbacks run on the backend's own thread (kazoo's): they must only hand a small
event to the controller's queue (`loop.call_soon_threadsafe`), never touch state.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol


class CoordinationError(Exception):
    """The coordination service failed or is unreachable."""


class BrokerIdInUseError(CoordinationError):
    """Another live broker registered the same broker id."""


class ClusterIdMismatchError(CoordinationError):
    """This broker's log dir belongs to another cluster."""


class TopicExistsError(CoordinationError):
    pass


class BadVersionError(CoordinationError):
    """A compare-and-set lost: someone else wrote the znode since we read it."""


class NotControllerError(CoordinationError):
    """A controller-only write by a broker that is no longer the controller."""


@dataclass(frozen=True)
class Endpoint:
    listener: str  # e.g. PLAINTEXT
    host: str
    port: int
    security_protocol: str = "PLAINTEXT"


@dataclass(frozen=True)
class BrokerInfo:
    broker_id: int
    endpoints: tuple[Endpoint, ...]
    rack: str | None = None
    # Which incarnation registered (KIP-380's broker epoch: the czxid of its znode in
    # ZooKeeper; -1 where there is no such thing). A broker that restarts within its old
    # session's timeout is the same id with a new epoch: the controller must see it.
    epoch: int = field(default=-1, compare=False)


@dataclass(frozen=True)
class TopicAssignment:
    name: str
    topic_id: uuid.UUID
    partitions: dict[int, list[int]] = field(default_factory=dict)  # partition -> replicas
    # A reassignment in progress (KIP-455): partition -> replicas being added / removed.
    adding: dict[int, list[int]] = field(default_factory=dict)
    removing: dict[int, list[int]] = field(default_factory=dict)


@dataclass(frozen=True)
class LeaderAndIsr:
    leader: int  # -1 = no leader
    leader_epoch: int
    isr: tuple[int, ...]
    controller_epoch: int


EventCallback = Callable[[], None]


class Coordination(Protocol):
    """What a broker and its controller need from ZooKeeper (or its embedded stand-in)."""

    # --- session ---------------------------------------------------------------------
    def start(self) -> None:
        """Connect; raise CoordinationError if the service cannot be reached in time."""

    def close(self) -> None:
        """Disconnect: ephemeral nodes (registration, /controller) disappear."""

    def on_session_lost(self, callback: EventCallback) -> None:
        """Call back when the session expires (ephemeral nodes are gone), or is presumed
        expired after a whole session timeout without the service (it may yet turn out
        alive: compare `session_id` when connected again)."""

    @property
    def session_id(self) -> int | None:
        """Which session we are in (None while there is none): a new value means the
        ephemeral nodes and everything granted to the old session are gone."""

    def ping(self) -> None:
        """One round trip in the current session; CoordinationError if it is gone."""

    # --- cluster and brokers -------------------------------------------------------------
    def get_or_create_cluster_id(self, proposed: str) -> str:
        """The cluster id, created from `proposed` if there is none yet."""

    def register_broker(self, info: BrokerInfo) -> None:
        """Create /brokers/ids/<id> (ephemeral). BrokerIdInUseError if it exists."""

    def live_brokers(self) -> dict[int, BrokerInfo]:
        ...

    def watch_brokers(self, callback: EventCallback) -> None:
        """Call back (on any thread) whenever the set of live brokers changes."""

    # --- controller ------------------------------------------------------------------
    def try_become_controller(self, broker_id: int) -> int | None:
        """Create /controller; if we won, bump /controller_epoch and return the new epoch,
        else None."""

    def controller_id(self) -> int | None:
        ...

    def controller_epoch(self) -> int:
        """The current /controller_epoch (0 if none yet)."""

    def watch_controller(self, callback: EventCallback) -> None:
        """Call back whenever /controller is created, changed or deleted."""

    # --- topics ----------------------------------------------------------------------
    def topics(self) -> dict[str, TopicAssignment]:
        ...

    def topic_exists(self, topic: str) -> bool:
        """Whether /brokers/topics/<topic> exists (without reading every topic)."""

    def watch_topics(self, callback: EventCallback) -> None:
        """Call back whenever a topic is added or removed, or its assignment changes."""

    def create_topic(self, assignment: TopicAssignment, configs: dict[str, str]) -> None:
        """Write /config/topics/<t> then /brokers/topics/<t>. TopicExistsError if present."""

    def set_assignment(self, assignment: TopicAssignment) -> None:
        """Replace a topic's replica assignment (CreatePartitions adds partitions)."""

    def topic_configs(self, topic: str) -> dict[str, str]:
        ...

    def set_topic_configs(self, topic: str, configs: dict[str, str]) -> None:
        """Write /config/topics/<t> and a /config/changes notification."""

    def watch_config_changes(self, callback: EventCallback) -> None:
        ...

    def broker_configs(self) -> dict[str, str]:
        """Dynamic broker configs for every broker (Kafka's /config/brokers/<default>)."""

    def set_broker_configs(self, configs: dict[str, str]) -> None:
        """Write /config/brokers/<default> and a /config/changes notification."""

    # --- SCRAM credentials (Kafka's /config/users/<user>) -------------------------------
    def user_scram_credentials(self, user: str) -> dict[str, str]:
        """The user's SCRAM credentials: mechanism name -> Kafka's credential string."""

    def set_user_scram_credentials(self, user: str, credentials: dict[str, str]) -> None:
        """Replace the user's SCRAM credentials (other user configs, e.g. quotas, stay);
        an empty dict removes them. Writes a /config/changes notification."""

    def scram_users(self) -> dict[str, dict[str, str]]:
        """Every user with at least one SCRAM credential, with its credentials."""

    # --- client quotas (Kafka's /config/users, /config/clients, /config/users/<u>/clients) --
    def client_quota_configs(self) -> dict[str, dict[str, str]]:
        """Every quota entity's configs (SCRAM credentials left out), by entity path:
        `users/<url-encoded user>`, `clients/<id>`, `users/<user>/clients/<id>`, with
        `<default>` for a default."""

    def set_client_quota_configs(self, entity_path: str, changes: dict[str, str | None]) -> None:
        """Set (a value) or remove (None) configs of one quota entity, keeping its others
        (SCRAM credentials share /config/users/<user>), with a /config/changes notification."""

    # --- ACLs (Kafka's /kafka-acl, /kafka-acl-extended/prefixed, their notifications) -----
    # Bytes and paths only: the authorizer package owns the format (authorizer/store.py).
    def acl_znodes(self, roots: tuple[str, ...]) -> list[tuple[str, str, str, bytes]]:
        """Every znode two levels under each root: (root, resource type child, name child,
        value), e.g. ("/kafka-acl", "Topic", "orders", b'{"version":1,...}')."""

    def acl_znode(self, path: str) -> tuple[bytes, int] | None:
        """One pattern's znode: its value and version; None when absent."""

    def write_acl_znode(self, path: str, data: bytes | None, version: int | None,
                        change_prefix: str, change_data: bytes) -> bool:
        """Create (`version` None), set (compare-and-set on `version`) or delete (`data`
        None) a pattern's znode, and create the persistent sequential change notification
        `change_prefix` + sequence holding `change_data`, in one multi-op. False when the
        znode was changed by another writer meanwhile (re-read and try again)."""

    def acl_changes(self, root: str) -> list[tuple[str, bytes, int]]:
        """The change notifications under `root`: (name, value, creation time in ms)."""

    def delete_acl_changes(self, root: str, names: list[str]) -> None:
        """Delete notifications (expired ones; absent ones are ignored)."""

    def watch_acl_changes(self, roots: tuple[str, ...], callback: EventCallback) -> None:
        """Call back when a notification appears under one of `roots` (created if absent)."""

    # --- producer ids ---------------------------------------------------------------------
    def allocate_producer_ids(self, broker_id: int, count: int) -> tuple[int, int]:
        """Claim the next block of ``count`` producer ids for this broker: (first, last),
        never handed out twice in the cluster (Kafka's /latest_producer_id_block)."""

    # --- partition state (one writer: the controller; CAS by znode version) -----------
    def partition_state(self, topic: str, partition: int) -> tuple[LeaderAndIsr, int] | None:
        """The state and its znode version, or None when not created yet."""

    def partition_states(
        self, partitions: list[tuple[str, int]]
    ) -> dict[tuple[str, int], tuple[LeaderAndIsr, int]]:
        """`partition_state` of many partitions, read together (ZooKeeper: pipelined, as
        Kafka's controller reads them when elected); those without a state are left out."""

    def create_partition_state(self, topic: str, partition: int, state: LeaderAndIsr) -> int:
        """Create the state znode; returns its version. BadVersionError if it exists."""

    def update_partition_state(
        self, topic: str, partition: int, state: LeaderAndIsr, expected_version: int
    ) -> int:
        """Compare-and-set; returns the new version. BadVersionError if it moved."""

    def create_partition_states(
        self, states: Mapping[tuple[str, int], LeaderAndIsr]
    ) -> dict[tuple[str, int], int | None]:
        """Create many state znodes in one go (Kafka's controller pipelines these writes
        to ZooKeeper): each one's version, or None where it existed already or its topic
        is gone. Every returned version is durable."""

    def update_partition_states(
        self, updates: Mapping[tuple[str, int], tuple[LeaderAndIsr, int]]
    ) -> dict[tuple[str, int], int | None]:
        """Compare-and-set many states (state, expected version) in one go: each new
        version, or None where the version moved or the state is gone."""

    # --- topic deletion ------------------------------------------------------------------
    def request_topic_deletion(self, topic: str) -> None:
        """Create /admin/delete_topics/<t>."""

    def pending_topic_deletions(self) -> list[str]:
        ...

    def watch_topic_deletions(self, callback: EventCallback) -> None:
        ...

    def complete_topic_deletion(self, topic: str) -> None:
        """Remove every znode of the topic, then /admin/delete_topics/<t>."""

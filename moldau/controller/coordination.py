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
    /config/changes/config_change_<seq>           (sequential) {"version":2,"entity_path":"topics/<t>"}
    /admin/delete_topics/<topic>                  (empty)

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
        """Call back when the session expires (ephemeral nodes are gone)."""

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

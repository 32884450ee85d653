"""What a request handler may use (Kafka's KafkaApis fields), typed: the replica manager
for the data path, the group coordinator, the metadata cache, the admin operations that
go through the coordination service, and the link to the controller. Handlers never see
the broker object itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from moldau.controller.embedded import TopicState
from moldau.groups.coordinator import GroupCoordinator
from moldau.log.manager import LogManager
from moldau.protocol.errors import ErrorCode
from moldau.replication.replica_manager import ReplicaManager
from moldau.server.acl_manager import AclManager
from moldau.server.client_quotas import ClientQuotas
from moldau.server.config import BrokerConfig
from moldau.server.coordinator_log import CoordinatorLog
from moldau.server.fetch_session import FetchSessionCache
from moldau.server.metadata_cache import MetadataCache
from moldau.server.producer_ids import ProducerIdManager

if TYPE_CHECKING:
    from moldau.controller.controller import Controller
    from moldau.server.transaction_coordination import TransactionService


class Admin(Protocol):
    """Topic, config and user administration, written to the coordination service
    (Kafka's ZkAdminManager); TopicError carries the Kafka error of a refusal."""

    def create_topic(self, name: str, partitions: int, replication_factor: int, configs: dict[str, str], *,
                     validate_only: bool = False,
                     assignment: dict[int, list[int]] | None = None) -> TopicState | None: ...

    def delete_topic(self, name: str) -> TopicState: ...

    def create_partitions(self, name: str, total: int, *, validate_only: bool = False,
                          assignments: list[list[int]] | None = None) -> None: ...

    async def set_topic_configs(self, name: str, configs: dict[str, str]) -> None: ...

    def validate_topic_configs(self, configs: dict[str, str | None]) -> None: ...

    def refresh_log_configs(self) -> None: ...

    async def load_topic_configs(self, names: list[str]) -> dict[str, dict[str, str]]: ...

    async def wait_for_topics(self, names: list[str], present: bool, timeout_s: float) -> None: ...

    async def wait_for_partition_count(self, name: str, count: int, timeout_s: float) -> None: ...

    def scram_users(self) -> dict[str, dict[str, str]]: ...

    def scram_credentials(self, user: str) -> dict[str, str]: ...

    def set_scram_credentials(self, user: str, credentials: dict[str, str]) -> None: ...


class ClusterLink(Protocol):
    """The broker's place in the cluster: live brokers, the controller (and the
    requests it sends), group coordinators."""

    controller: Controller | None

    def live_brokers(self, listener: str = "") -> list[tuple[int, str, int, str | None]]: ...

    def controller_id(self) -> int: ...

    async def metadata_known(self, timeout_s: float) -> bool:
        """Whether the controller has told this broker the cluster (its first
        UpdateMetadata), waiting up to ``timeout_s`` for it."""
        ...

    async def group_coordinator_node(self, group_id: str, listener: str = "") -> tuple[int, str, int] | None: ...

    async def transaction_coordinator_node(self, transactional_id: str,
                                           listener: str = "") -> tuple[int, str, int] | None: ...

    def on_leader_and_isr(self, request: Any, topic_configs: dict[str, dict[str, str]] | None = None
                          ) -> tuple[ErrorCode, list[tuple[str, int, ErrorCode]]]: ...

    def on_update_metadata(self, request: Any, new_topic_configs: dict[str, dict[str, str]]) -> ErrorCode: ...

    def on_stop_replica(self, request: Any) -> tuple[ErrorCode, list[tuple[str, int, ErrorCode]]]: ...

    async def handle_controlled_shutdown(self, broker_id: int) -> tuple[ErrorCode, list[tuple[str, int]]]: ...

    async def elect_preferred(self, partitions: list[tuple[str, int]] | None
                              ) -> dict[tuple[str, int], str | None]: ...


@dataclass(frozen=True)
class HandlerContext:
    broker_id: int
    config: BrokerConfig
    clock: Callable[[], int]
    replicas: ReplicaManager
    groups: GroupCoordinator
    metadata: MetadataCache
    logs: LogManager
    producer_ids: ProducerIdManager
    fetch_sessions: FetchSessionCache
    admin: Admin
    cluster: ClusterLink
    coordinator_log: CoordinatorLog
    acls: AclManager  # ACLs and the per-request authorization checks
    quotas: ClientQuotas  # produce and fetch byte-rate quotas
    transactions: TransactionService | None = None

    def active_controller(self) -> Controller | None:
        """This broker's controller if it is the active one, else None (NOT_CONTROLLER)."""
        controller = self.cluster.controller
        return controller if controller is not None and controller.active else None

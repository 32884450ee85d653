"""Controller-to-broker requests, which Kafka 4 (KRaft only) and so kio no longer ship:
LeaderAndIsr (4), StopReplica (5), UpdateMetadata (6), ControlledShutdown (7).

They are declared here as kio entities, field for field after Kafka 3.x's JSON schemas
(`clients/src/main/resources/common/message/*.json`), one flexible version each: only
Moldau brokers speak them to each other, so one version is enough. kio's generic
reader and writer encode them like every other message.
"""
# No `from __future__ import annotations`: kio reads the field types at runtime.

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, dataclass_transform

from kio.schema.errors import ErrorCode
from kio.schema.request_header.v2.header import RequestHeader
from kio.static.constants import EntityType
from kio.static.primitive import i8, i16, i32, i64

_E = TypeVar("_E")


def _f(kafka_type: str) -> Any:
    """A field of a kio entity: kio's reader and writer find the wire type in its metadata.
    Typed ``Any`` as ``dataclasses.field`` is: the annotation on the left gives the type."""
    return field(metadata={"kafka_type": kafka_type})


def _meta(api_key: int, version: int, kind: EntityType) -> dict[str, object]:
    return {
        "__type__": kind,
        "__version__": i16(version),
        "__flexible__": True,
        "__api_key__": i16(api_key),
        "__header_schema__": RequestHeader,
    }


@dataclass_transform(frozen_default=True, kw_only_default=True, field_specifiers=(_f,))
def _entity(api_key: int, version: int, kind: EntityType = EntityType.nested) -> Callable[[type[_E]], type[_E]]:
    """The class as a frozen, slotted, keyword-only dataclass with kio's class attributes."""

    def wrap(cls: type[_E]) -> type[_E]:
        for k, v in _meta(api_key, version, kind).items():
            setattr(cls, k, v)
        return dataclass(frozen=True, slots=True, kw_only=True)(cls)

    return wrap


# --- LeaderAndIsr v5 -----------------------------------------------------------------

LEADER_AND_ISR = 4
STOP_REPLICA = 5
UPDATE_METADATA = 6
CONTROLLED_SHUTDOWN = 7


@_entity(LEADER_AND_ISR, 5)
class LeaderAndIsrPartitionState:
    __type__: ClassVar = EntityType.nested
    partition_index: i32 = _f("int32")
    controller_epoch: i32 = _f("int32")
    leader: i32 = _f("int32")
    leader_epoch: i32 = _f("int32")
    isr: tuple[i32, ...] = _f("int32")
    zk_version: i32 = _f("int32")
    replicas: tuple[i32, ...] = _f("int32")
    adding_replicas: tuple[i32, ...] = _f("int32")
    removing_replicas: tuple[i32, ...] = _f("int32")
    is_new: bool = _f("bool")


@_entity(LEADER_AND_ISR, 5)
class LeaderAndIsrTopicState:
    topic_name: str = _f("string")
    topic_id: uuid.UUID | None = _f("uuid")
    partition_states: tuple[LeaderAndIsrPartitionState, ...]


@_entity(LEADER_AND_ISR, 5)
class LeaderAndIsrLiveLeader:
    broker_id: i32 = _f("int32")
    host_name: str = _f("string")
    port: i32 = _f("int32")


@_entity(LEADER_AND_ISR, 5, EntityType.request)
class LeaderAndIsrRequest:
    controller_id: i32 = _f("int32")
    controller_epoch: i32 = _f("int32")
    max_broker_epoch: i64 = _f("int64")
    topic_states: tuple[LeaderAndIsrTopicState, ...]
    live_leaders: tuple[LeaderAndIsrLiveLeader, ...]


@_entity(LEADER_AND_ISR, 5)
class LeaderAndIsrPartitionError:
    topic_name: str = _f("string")
    partition_index: i32 = _f("int32")
    error_code: ErrorCode = _f("error_code")


@_entity(LEADER_AND_ISR, 5, EntityType.response)
class LeaderAndIsrResponse:
    error_code: ErrorCode = _f("error_code")
    partition_errors: tuple[LeaderAndIsrPartitionError, ...]


# --- StopReplica v3 ------------------------------------------------------------------


@_entity(STOP_REPLICA, 3)
class StopReplicaPartitionState:
    partition_index: i32 = _f("int32")
    leader_epoch: i32 = _f("int32")
    delete_partition: bool = _f("bool")


@_entity(STOP_REPLICA, 3)
class StopReplicaTopicState:
    topic_name: str = _f("string")
    partition_states: tuple[StopReplicaPartitionState, ...]


@_entity(STOP_REPLICA, 3, EntityType.request)
class StopReplicaRequest:
    controller_id: i32 = _f("int32")
    controller_epoch: i32 = _f("int32")
    broker_epoch: i64 = _f("int64")
    topic_states: tuple[StopReplicaTopicState, ...]


@_entity(STOP_REPLICA, 3)
class StopReplicaPartitionError:
    topic_name: str = _f("string")
    partition_index: i32 = _f("int32")
    error_code: ErrorCode = _f("error_code")


@_entity(STOP_REPLICA, 3, EntityType.response)
class StopReplicaResponse:
    error_code: ErrorCode = _f("error_code")
    partition_errors: tuple[StopReplicaPartitionError, ...]


# --- UpdateMetadata v7 -----------------------------------------------------------------


@_entity(UPDATE_METADATA, 7)
class UpdateMetadataPartitionState:
    partition_index: i32 = _f("int32")
    controller_epoch: i32 = _f("int32")
    leader: i32 = _f("int32")
    leader_epoch: i32 = _f("int32")
    isr: tuple[i32, ...] = _f("int32")
    zk_version: i32 = _f("int32")
    replicas: tuple[i32, ...] = _f("int32")
    offline_replicas: tuple[i32, ...] = _f("int32")


@_entity(UPDATE_METADATA, 7)
class UpdateMetadataTopicState:
    topic_name: str = _f("string")
    topic_id: uuid.UUID | None = _f("uuid")
    partition_states: tuple[UpdateMetadataPartitionState, ...]


@_entity(UPDATE_METADATA, 7)
class UpdateMetadataEndpoint:
    port: i32 = _f("int32")
    host: str = _f("string")
    listener: str = _f("string")
    security_protocol: i16 = _f("int16")


@_entity(UPDATE_METADATA, 7)
class UpdateMetadataBroker:
    id: i32 = _f("int32")
    endpoints: tuple[UpdateMetadataEndpoint, ...]
    rack: str | None = _f("string")


@_entity(UPDATE_METADATA, 7, EntityType.request)
class UpdateMetadataRequest:
    controller_id: i32 = _f("int32")
    controller_epoch: i32 = _f("int32")
    broker_epoch: i64 = _f("int64")
    topic_states: tuple[UpdateMetadataTopicState, ...]
    live_brokers: tuple[UpdateMetadataBroker, ...]


@_entity(UPDATE_METADATA, 7, EntityType.response)
class UpdateMetadataResponse:
    error_code: ErrorCode = _f("error_code")


# --- ControlledShutdown v3 ---------------------------------------------------------------


@_entity(CONTROLLED_SHUTDOWN, 3, EntityType.request)
class ControlledShutdownRequest:
    broker_id: i32 = _f("int32")
    broker_epoch: i64 = _f("int64")


@_entity(CONTROLLED_SHUTDOWN, 3)
class RemainingPartition:
    topic_name: str = _f("string")
    partition_index: i32 = _f("int32")


@_entity(CONTROLLED_SHUTDOWN, 3, EntityType.response)
class ControlledShutdownResponse:
    error_code: ErrorCode = _f("error_code")
    remaining_partitions: tuple[RemainingPartition, ...]


REQUESTS: dict[int, type] = {
    LEADER_AND_ISR: LeaderAndIsrRequest,
    STOP_REPLICA: StopReplicaRequest,
    UPDATE_METADATA: UpdateMetadataRequest,
    CONTROLLED_SHUTDOWN: ControlledShutdownRequest,
}
RESPONSES: dict[int, type] = {
    LEADER_AND_ISR: LeaderAndIsrResponse,
    STOP_REPLICA: StopReplicaResponse,
    UPDATE_METADATA: UpdateMetadataResponse,
    CONTROLLED_SHUTDOWN: ControlledShutdownResponse,
}
VERSIONS: dict[int, int] = {LEADER_AND_ISR: 5, STOP_REPLICA: 3, UPDATE_METADATA: 7, CONTROLLED_SHUTDOWN: 3}
_ = i8  # keep the primitive import list aligned with kio's generated modules

"""From a request frame to a response frame: header, version check, decode, handler, encode.

An ApiVersions request of a version we cannot read gets Kafka's answer (ApiVersions v0
with UNSUPPORTED_VERSION and our version table) so the client can retry with one we
support. Any other unknown API or version closes the connection, as Kafka does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from moldau.protocol.apis import SUPPORTED_VERSIONS, ApiKey, is_supported
from moldau.protocol.framing import (
    MalformedRequestError,
    RequestHeader,
    body_offset,
    decode_request,
    encode_response,
    parse_request_header,
)
from moldau.server.client_quotas import THROTTLED_APIS, TimedRequest
from moldau.server.handlers import (
    _authorization,
    add_offsets_to_txn,
    add_partitions_to_txn,
    alter_client_quotas,
    alter_configs,
    alter_partition,
    alter_partition_reassignments,
    alter_user_scram_credentials,
    api_versions,
    controlled_shutdown,
    create_acls,
    create_partitions,
    create_topics,
    delete_acls,
    delete_groups,
    delete_records,
    delete_topics,
    describe_acls,
    describe_client_quotas,
    describe_cluster,
    describe_configs,
    describe_groups,
    describe_log_dirs,
    describe_producers,
    describe_transactions,
    describe_user_scram_credentials,
    elect_leaders,
    end_txn,
    fetch,
    find_coordinator,
    heartbeat,
    incremental_alter_configs,
    init_producer_id,
    join_group,
    leader_and_isr,
    leave_group,
    list_groups,
    list_offsets,
    list_partition_reassignments,
    list_transactions,
    metadata,
    offset_commit,
    offset_delete,
    offset_fetch,
    offset_for_leader_epoch,
    produce,
    sasl_authenticate,
    sasl_handshake,
    stop_replica,
    sync_group,
    txn_offset_commit,
    update_metadata,
    write_txn_markers,
)
from moldau.server.network import Deferred

if TYPE_CHECKING:
    from moldau.server.broker_metrics import RequestMetrics
    from moldau.server.context import HandlerContext
    from moldau.server.network import KafkaConnection

log = logging.getLogger(__name__)

HandlerFn = Callable[["HandlerContext", RequestHeader, Any], Awaitable[Any]]

HANDLERS: dict[int, HandlerFn] = {
    ApiKey.PRODUCE: produce.handle,
    ApiKey.FETCH: fetch.handle,
    ApiKey.LIST_OFFSETS: list_offsets.handle,
    ApiKey.METADATA: metadata.handle,
    ApiKey.API_VERSIONS: api_versions.handle,
    ApiKey.CREATE_TOPICS: create_topics.handle,
    ApiKey.DELETE_TOPICS: delete_topics.handle,
    ApiKey.DELETE_RECORDS: delete_records.handle,
    ApiKey.DESCRIBE_CONFIGS: describe_configs.handle,
    ApiKey.CREATE_PARTITIONS: create_partitions.handle,
    ApiKey.INCREMENTAL_ALTER_CONFIGS: incremental_alter_configs.handle,
    ApiKey.DESCRIBE_CLUSTER: describe_cluster.handle,
    ApiKey.OFFSET_COMMIT: offset_commit.handle,
    ApiKey.OFFSET_FETCH: offset_fetch.handle,
    ApiKey.FIND_COORDINATOR: find_coordinator.handle,
    ApiKey.JOIN_GROUP: join_group.handle,
    ApiKey.HEARTBEAT: heartbeat.handle,
    ApiKey.LEAVE_GROUP: leave_group.handle,
    ApiKey.SYNC_GROUP: sync_group.handle,
    ApiKey.DESCRIBE_GROUPS: describe_groups.handle,
    ApiKey.LIST_GROUPS: list_groups.handle,
    ApiKey.DELETE_GROUPS: delete_groups.handle,
    ApiKey.OFFSET_DELETE: offset_delete.handle,
    ApiKey.LEADER_AND_ISR: leader_and_isr.handle,
    ApiKey.STOP_REPLICA: stop_replica.handle,
    ApiKey.UPDATE_METADATA: update_metadata.handle,
    ApiKey.CONTROLLED_SHUTDOWN: controlled_shutdown.handle,
    ApiKey.ELECT_LEADERS: elect_leaders.handle,
    ApiKey.OFFSET_FOR_LEADER_EPOCH: offset_for_leader_epoch.handle,
    ApiKey.ALTER_PARTITION: alter_partition.handle,
    ApiKey.INIT_PRODUCER_ID: init_producer_id.handle,
    ApiKey.ALTER_CONFIGS: alter_configs.handle,
    ApiKey.DESCRIBE_LOG_DIRS: describe_log_dirs.handle,
    ApiKey.DESCRIBE_PRODUCERS: describe_producers.handle,
    ApiKey.ALTER_PARTITION_REASSIGNMENTS: alter_partition_reassignments.handle,
    ApiKey.LIST_PARTITION_REASSIGNMENTS: list_partition_reassignments.handle,
    ApiKey.SASL_HANDSHAKE: sasl_handshake.handle,
    ApiKey.SASL_AUTHENTICATE: sasl_authenticate.handle,
    ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS: describe_user_scram_credentials.handle,
    ApiKey.ALTER_USER_SCRAM_CREDENTIALS: alter_user_scram_credentials.handle,
    ApiKey.WRITE_TXN_MARKERS: write_txn_markers.handle,
    ApiKey.ADD_PARTITIONS_TO_TXN: add_partitions_to_txn.handle,
    ApiKey.ADD_OFFSETS_TO_TXN: add_offsets_to_txn.handle,
    ApiKey.END_TXN: end_txn.handle,
    ApiKey.TXN_OFFSET_COMMIT: txn_offset_commit.handle,
    ApiKey.DESCRIBE_TRANSACTIONS: describe_transactions.handle,
    ApiKey.LIST_TRANSACTIONS: list_transactions.handle,
    ApiKey.DESCRIBE_ACLS: describe_acls.handle,
    ApiKey.CREATE_ACLS: create_acls.handle,
    ApiKey.DELETE_ACLS: delete_acls.handle,
    ApiKey.DESCRIBE_CLIENT_QUOTAS: describe_client_quotas.handle,
    ApiKey.ALTER_CLIENT_QUOTAS: alter_client_quotas.handle,
}
assert set(HANDLERS) == set(SUPPORTED_VERSIONS), "every advertised API needs a handler"


class RequestDispatcher:
    def __init__(self, context: HandlerContext, metrics: RequestMetrics | None = None) -> None:
        self.context = context
        self.metrics = metrics

    async def handle(self, frame: bytes, conn: KafkaConnection) -> bytes | Deferred | None:
        header, pos = parse_request_header(frame)
        key, version = header.api_key, header.api_version
        if not is_supported(key, version):
            if key == ApiKey.API_VERSIONS:
                return api_versions.unsupported_version_response(header.correlation_id)
            name = ApiKey(key).name if key in ApiKey._value2member_map_ else f"unknown API {key}"
            raise MalformedRequestError(f"{name} version {version} is not supported")
        header = header._replace(client_host=conn.peer_host, listener=conn.listener, principal=conn.principal)
        pos = body_offset(header, pos, frame)
        request = decode_request(key, version, frame, pos)
        if self.context.acls.enabled and (denied := _authorization.refused(self.context, header, request)) is not None:
            return encode_response(key, version, header.correlation_id, denied)
        received, started = conn.received_at, time.perf_counter()
        quotas = self.context.quotas
        request_throttle_ms = 0
        if quotas.request_enabled:  # request_percentage: the handler's own time is metered
            timed = TimedRequest(HANDLERS[key](self.context, header, request))
            response = await timed
            request_throttle_ms = quotas.request_throttle_ms(key, header, request, timed.spent_s)
        else:
            response = await HANDLERS[key](self.context, header, request)
        metrics = self.metrics
        if metrics is not None and not isinstance(response, Deferred):
            metrics.answered(key, version, request, response, received, started)
        if quotas.enabled and (key in THROTTLED_APIS or request_throttle_ms):
            # (a throttled acks=all produce is not timed by the request metrics)
            return quotas.throttle(key, version, header, request, len(frame), response, conn, request_throttle_ms)
        if response is None:
            return None
        if isinstance(response, bytes):  # a hand-encoded hot path, already framed
            return response
        if isinstance(response, Deferred):
            inner = response.awaitable
            local_done = time.perf_counter()

            async def encoded() -> bytes | None:
                done = await inner
                if metrics is not None:
                    metrics.answered(key, version, request, done, received, started, local_done)
                return None if done is None else encode_response(key, version, header.correlation_id, done)

            return Deferred(encoded())
        return encode_response(key, version, header.correlation_id, response)

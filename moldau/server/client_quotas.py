"""Client quotas on the broker (Kafka's QuotaManagers for produce and fetch): the quotas
read from the coordination service, and the throttling of a request whose client is over
its byte rate.

Produce is metered by the request's size, a consumer's Fetch by its response's size
(followers are not metered). A client over its quota gets its answer at once with
`throttle_time_ms` set, and then its connection serves nothing for that long (KIP-219:
the broker mutes the channel; clients also wait before their next request). Without any
quota set nothing is metered.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from moldau.controller.coordination import CoordinationError
from moldau.protocol.apis import ApiKey
from moldau.protocol.framing import RequestHeader, encode_response
from moldau.quotas.client_quotas import (
    CONSUMER_BYTE_RATE,
    PRODUCER_BYTE_RATE,
    FilterComponent,
    QuotaEntity,
    QuotaEntityError,
    filter_matches,
    validate_filter,
    validate_quota,
)
from moldau.quotas.manager import ClientQuotaManager
from moldau.server.network import Deferred

if TYPE_CHECKING:
    from moldau.controller.coordination import Coordination
    from moldau.server.network import KafkaConnection

log = logging.getLogger(__name__)

THROTTLED_APIS = frozenset({ApiKey.PRODUCE, ApiKey.FETCH})


def quota_user(principal: str) -> str:
    """The user a quota names: the principal's name (`User:alice` -> `alice`)."""
    return principal.split(":", 1)[1] if ":" in principal else principal


def parse_quota_configs(configs: dict[str, dict[str, str]]) -> dict[QuotaEntity, dict[str, float]]:
    """Entity path -> configs, as stored, to entity -> quota values (bad entries skipped)."""
    out: dict[QuotaEntity, dict[str, float]] = {}
    for path, values in configs.items():
        try:
            entity = QuotaEntity.from_path(path)
        except QuotaEntityError as exc:
            log.warning("ignoring client quota at %s: %s", path, exc)
            continue
        quotas = {}
        for key, value in values.items():
            try:
                quotas[key] = float(value)
                validate_quota(key, quotas[key])
            except ValueError:  # QuotaEntityError too: a key or value Kafka would not store
                quotas.pop(key, None)
                log.warning("ignoring client quota %s=%r of %s", key, value, path)
        if quotas:
            out[entity] = quotas
    return out


class ClientQuotas:
    def __init__(self, coordination: Coordination, clock: Callable[[], int], samples: int, window_ms: int) -> None:
        self._coordination = coordination
        self._clock = clock
        self.produce = ClientQuotaManager(PRODUCER_BYTE_RATE, samples, window_ms)
        self.fetch = ClientQuotaManager(CONSUMER_BYTE_RATE, samples, window_ms)
        self.entities: dict[QuotaEntity, dict[str, float]] = {}
        self.enabled = False

    async def load(self) -> None:
        """(Re)read every quota (at start and on each config change notification)."""
        try:
            configs = await asyncio.to_thread(self._coordination.client_quota_configs)
        except CoordinationError as exc:
            log.warning("client quotas not reloaded: %s", exc)
            return
        entities = parse_quota_configs(configs)
        if entities != self.entities:
            self.entities = entities
            self.produce.set_quotas(entities)
            self.fetch.set_quotas(entities)
            log.info("client quotas: %d entities", len(entities))
        self.enabled = bool(entities)

    def describe(self, components: list[FilterComponent], strict: bool) -> list[tuple[QuotaEntity, dict[str, float]]]:
        """DescribeClientQuotas: the entities the filter selects, with their quotas."""
        validate_filter(components)
        return sorted(((e, dict(q)) for e, q in self.entities.items() if filter_matches(e, components, strict)),
                      key=lambda found: found[0].path())

    async def alter(self, entity: QuotaEntity, changes: dict[str, float | None], validate_only: bool) -> None:
        """AlterClientQuotas for one entity; QuotaEntityError for a bad key or value."""
        for key, value in changes.items():
            validate_quota(key, 1.0 if value is None else value)
        if validate_only:
            return
        stored = {k: None if v is None else _kafka_number(v) for k, v in changes.items()}
        await asyncio.to_thread(self._coordination.set_client_quota_configs, entity.path(), stored)
        await self.load()

    def throttle(self, api_key: int, api_version: int, header: RequestHeader, request: Any, request_size: int,
                 response: Any, conn: KafkaConnection) -> bytes | Deferred | None:
        """The encoded response of a Produce or Fetch, its throttle time set if the client
        went over its quota (and the connection muted for it)."""
        user, client_id = quota_user(header.principal), header.client_id or ""
        if api_key == ApiKey.PRODUCE:
            throttle_ms = self.produce.record(user, client_id, request_size, self._clock())
            if throttle_ms:
                conn.mute(throttle_ms)
            return _encoded(api_key, api_version, header, response, throttle_ms)
        if response is None or isinstance(response, (bytes, Deferred)) or getattr(request, "replica_id", -1) >= 0:
            return _encoded(api_key, api_version, header, response, 0)
        data = encode_response(api_key, api_version, header.correlation_id, response)
        throttle_ms = self.fetch.record(user, client_id, len(data), self._clock())
        if not throttle_ms:
            return data
        conn.mute(throttle_ms)
        return _encoded(api_key, api_version, header, response, throttle_ms)


def _kafka_number(value: float) -> str:
    """As Kafka stores a quota: a Java double's text (`1024.0`)."""
    return repr(float(value))


def _with_throttle(response: Any, throttle_ms: int) -> Any:
    if not throttle_ms:
        return response
    return dataclasses.replace(response, throttle_time=datetime.timedelta(milliseconds=throttle_ms))


def _encoded(api_key: int, api_version: int, header: RequestHeader, response: Any,
             throttle_ms: int) -> bytes | Deferred | None:
    if response is None or isinstance(response, bytes):
        return response
    if isinstance(response, Deferred):
        inner = response.awaitable

        async def encoded() -> bytes | None:
            done = await inner
            return None if done is None else encode_response(
                api_key, api_version, header.correlation_id, _with_throttle(done, throttle_ms))

        return Deferred(encoded())
    return encode_response(api_key, api_version, header.correlation_id, _with_throttle(response, throttle_ms))

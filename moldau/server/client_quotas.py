"""Client quotas on the broker (Kafka's QuotaManagers for produce, fetch and request time):
the quotas read from the coordination service, and the throttling of a request whose
client is over its byte rate or its share of the broker's time.

Produce is metered by the request's size, a consumer's Fetch by its response's size
(followers are not metered); `request_percentage` by the time each request's handler ran,
as a percentage of one thread (Kafka's request thread time: `TimedRequest` adds up the
handler's own steps, not its waits; ApiVersions, SASL and inter-broker requests are exempt,
and the throttle is at most one quota window, as in Kafka). A client over its quota gets
its answer at once with `throttle_time_ms` set, and then its connection serves nothing for
that long (KIP-219:
the broker mutes the channel; clients also wait before their next request); a consumer fetch
over its quota is answered without data, its bytes unrecorded, as Kafka does. Without any
quota set nothing is metered.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import time
from collections.abc import Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any

from moldau.controller.coordination import CoordinationError
from moldau.protocol.apis import ApiKey
from moldau.protocol.framing import RequestHeader, encode_response
from moldau.protocol.metadata_response import with_throttle_time
from moldau.quotas.client_quotas import (
    CONSUMER_BYTE_RATE,
    PRODUCER_BYTE_RATE,
    REQUEST_PERCENTAGE,
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
# Never metered by request_percentage (Kafka: ApiVersions, SASL, and ClusterAction APIs).
REQUEST_QUOTA_EXEMPT = frozenset({
    ApiKey.API_VERSIONS, ApiKey.SASL_HANDSHAKE, ApiKey.SASL_AUTHENTICATE, ApiKey.LEADER_AND_ISR,
    ApiKey.STOP_REPLICA, ApiKey.UPDATE_METADATA, ApiKey.CONTROLLED_SHUTDOWN, ApiKey.ALTER_PARTITION,
    ApiKey.WRITE_TXN_MARKERS,
})


class TimedRequest:
    """Await a handler's coroutine, adding up the time its own steps ran: the broker time a
    request took, not the time it waited (a fetch's long poll, a JoinGroup's rebalance)."""

    __slots__ = ("coro", "spent_s")

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.coro = coro
        self.spent_s = 0.0

    def __await__(self) -> Generator[Any, Any, Any]:
        coro = self.coro
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            started = time.perf_counter()
            try:
                yielded = coro.send(sent) if thrown is None else coro.throw(thrown)
            except StopIteration as done:
                self.spent_s += time.perf_counter() - started
                return done.value
            self.spent_s += time.perf_counter() - started
            try:
                sent, thrown = (yield yielded), None
            except BaseException as exc:  # a cancellation thrown into the await
                sent, thrown = None, exc


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
        self.request = ClientQuotaManager(REQUEST_PERCENTAGE, samples, window_ms)
        self.entities: dict[QuotaEntity, dict[str, float]] = {}
        self.enabled = False
        self.request_enabled = False  # some request_percentage is set: handlers are timed

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
            self.request.set_quotas(entities)
            log.info("client quotas: %d entities", len(entities))
        self.enabled = bool(entities)
        self.request_enabled = any(REQUEST_PERCENTAGE in quotas for quotas in entities.values())

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

    def request_throttle_ms(self, api_key: int, header: RequestHeader, request: Any, spent_s: float) -> int:
        """Record a request's handler time against request_percentage; its throttle in ms."""
        if not self.request_enabled or api_key in REQUEST_QUOTA_EXEMPT or (
                api_key == ApiKey.FETCH and getattr(request, "replica_id", -1) >= 0):
            return 0
        user, client_id = quota_user(header.principal), header.client_id or ""
        throttle_ms = self.request.record(user, client_id, spent_s * 100.0, self._clock())
        return min(throttle_ms, self.request.window_ms)

    def throttle(self, api_key: int, api_version: int, header: RequestHeader, request: Any, request_size: int,
                 response: Any, conn: KafkaConnection, request_throttle_ms: int = 0) -> bytes | Deferred | None:
        """The encoded response, its throttle time set if the client went over a quota (and
        the connection muted for it): a Produce's or Fetch's byte rate, and the request
        throttle already recorded (`request_throttle_ms`, any API)."""
        user, client_id = quota_user(header.principal), header.client_id or ""
        if api_key == ApiKey.PRODUCE:
            throttle_ms = max(self.produce.record(user, client_id, request_size, self._clock()), request_throttle_ms)
            if throttle_ms:
                conn.mute(throttle_ms)
            return _encoded(api_key, api_version, header, response, throttle_ms)
        if api_key != ApiKey.FETCH or response is None or isinstance(response, (bytes, Deferred)) \
                or getattr(request, "replica_id", -1) >= 0:
            if request_throttle_ms:
                conn.mute(request_throttle_ms)
            return _encoded(api_key, api_version, header, response, request_throttle_ms)
        data = encode_response(api_key, api_version, header.correlation_id, response)
        now = self._clock()
        bandwidth_ms = self.fetch.record(user, client_id, len(data), now)
        throttle_ms = max(bandwidth_ms, request_throttle_ms)
        if not throttle_ms:
            return data
        conn.mute(throttle_ms)
        # Kafka's answer to a throttled fetch (KIP-219): no data, and its bytes unrecorded;
        # the client fetches them again once the throttle is over.
        self.fetch.record(user, client_id, -len(data), now)
        return _encoded(api_key, api_version, header, dataclasses.replace(response, responses=()), throttle_ms)


def _kafka_number(value: float) -> str:
    """As Kafka stores a quota: a Java double's text (`1024.0`)."""
    return repr(float(value))


def _with_throttle(response: Any, throttle_ms: int) -> Any:
    if not throttle_ms:
        return response
    return dataclasses.replace(response, throttle_time=datetime.timedelta(milliseconds=throttle_ms))


def _encoded(api_key: int, api_version: int, header: RequestHeader, response: Any,
             throttle_ms: int) -> bytes | Deferred | None:
    if isinstance(response, bytes) and api_key == ApiKey.METADATA:  # encoded whole, from cached topics
        return with_throttle_time(response, api_version, throttle_ms)
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

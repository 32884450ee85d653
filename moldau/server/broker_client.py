"""Outgoing Kafka connections from one broker to another (the controller's requests, the
replica fetchers, AlterPartition and ControlledShutdown): requests are pipelined and
answers matched in order. They use the inter-broker listener's security: TLS with its
trust store (and its key store as client certificate), then SASL (SaslHandshake v1 and
SaslAuthenticate v2, as a Kafka client does) with the broker's own JAAS credentials."""
from __future__ import annotations

import asyncio
import io
import itertools
import logging
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable
from functools import cache
from typing import TYPE_CHECKING, Any

from kio.serial import entity_reader, entity_writer

from moldau.protocol.apis import ApiKey, is_flexible, request_type, response_type
from moldau.server.security.errors import SaslError
from moldau.server.security.gssapi_mechanism import GSSAPI, GssapiClient
from moldau.server.security.oauthbearer import OAUTHBEARER, client_first_message, unsecured_token
from moldau.server.security.scram import MECHANISMS, ScramClient

if TYPE_CHECKING:
    from moldau.server.security.listener import InterBrokerSecurity

log = logging.getLogger(__name__)


@cache
def _writer(api_key: int, version: int) -> Any:
    return entity_writer(request_type(api_key, version))


@cache
def _reader(api_key: int, version: int) -> Any:
    return entity_reader(response_type(api_key, version))


def encode_request(api_key: int, version: int, correlation_id: int, client_id: str, request: Any) -> bytes:
    cid = client_id.encode()
    header = struct.pack(">hhih", api_key, version, correlation_id, len(cid)) + cid
    if is_flexible(api_key, version):
        header += b"\x00"
    body = io.BytesIO()
    _writer(api_key, version)(body, request)
    payload = header + body.getvalue()
    return struct.pack(">i", len(payload)) + payload


def decode_response(api_key: int, version: int, frame: bytes) -> tuple[int, Any]:
    (correlation_id,) = struct.unpack_from(">i", frame, 0)
    pos = 4
    if api_key != ApiKey.API_VERSIONS and is_flexible(api_key, version):
        pos += 1  # empty tagged fields (we never receive others from our own brokers)
    response, _ = _reader(api_key, version)(memoryview(frame).toreadonly(), pos)
    return correlation_id, response


class BrokerConnection:
    def __init__(self, host: str, port: int, client_id: str, security: InterBrokerSecurity | None = None) -> None:
        self.host, self.port, self.client_id = host, port, client_id
        self.security = security
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: deque[tuple[int, int, int, asyncio.Future[Any]]] = deque()
        self._ids = itertools.count(1)
        self._read_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        # KIP-368: the loop time after which this connection's SASL session is about to end
        # (0: never); a request then opens a new, freshly authenticated connection.
        self._session_deadline = 0.0
        self._session_lifetime_ms = 0

    async def _connect(self, timeout: float) -> None:
        security = self.security
        context = security.ssl_context if security is not None else None
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            self.host, self.port, ssl=context, server_hostname=self.host if context is not None else None), timeout)
        if security is not None and security.sasl:
            try:
                await asyncio.wait_for(self._authenticate(reader, writer, security), timeout)
            except BaseException:
                writer.close()
                raise
        self._reader, self._writer = reader, writer
        loop = asyncio.get_running_loop()
        # Re-authenticate by reconnecting a little before the broker would close the connection.
        self._session_deadline = (loop.time() + 0.8 * self._session_lifetime_ms / 1000
                                  if self._session_lifetime_ms > 0 else 0.0)
        self._read_task = loop.create_task(self._read_loop())

    async def _authenticate(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            security: InterBrokerSecurity) -> None:
        where = f"{self.host}:{self.port}"

        async def round_trip(api_key: int, version: int, request: Any) -> Any:
            correlation_id = next(self._ids)
            writer.write(encode_request(api_key, version, correlation_id, self.client_id, request))
            size = struct.unpack(">i", await reader.readexactly(4))[0]
            got_id, response = decode_response(api_key, version, await reader.readexactly(size))
            if got_id != correlation_id:
                raise ConnectionError(f"{where}: correlation id {got_id} != {correlation_id}")
            return response

        async def authenticate(token: bytes) -> bytes:
            request = request_type(ApiKey.SASL_AUTHENTICATE, 2)(auth_bytes=token)
            response = await round_trip(ApiKey.SASL_AUTHENTICATE, 2, request)
            if response.error_code != 0:
                raise ConnectionError(f"SASL {mechanism} authentication to {where} failed: {response.error_message}")
            self._session_lifetime_ms = int(response.session_lifetime.total_seconds() * 1000)
            return bytes(response.auth_bytes)

        mechanism, username, password = security.mechanism, security.username or "", security.password or ""
        handshake = await round_trip(ApiKey.SASL_HANDSHAKE, 1, request_type(ApiKey.SASL_HANDSHAKE, 1)(
            mechanism=mechanism))
        if handshake.error_code != 0:
            raise ConnectionError(f"{where} does not accept SASL {mechanism} (enabled: "
                                  f"{', '.join(handshake.mechanisms)})")
        if mechanism == "PLAIN":
            await authenticate(f"\x00{username}\x00{password}".encode())
            return
        if mechanism == OAUTHBEARER:
            token = (await security.oauth_login.token() if security.oauth_login is not None
                     else unsecured_token(security.login_options, int(time.time() * 1000)))
            await authenticate(client_first_message(token))
            return
        if mechanism == GSSAPI:
            await self._authenticate_gssapi(security, authenticate)
            return
        client = ScramClient(MECHANISMS[str(mechanism)], username, password)
        try:
            client.verify(await authenticate(client.final(await authenticate(client.first()))))
        except SaslError as exc:
            raise ConnectionError(f"SASL {mechanism} authentication to {where} failed: {exc}") from None

    async def _authenticate_gssapi(self, security: InterBrokerSecurity,
                                   authenticate: Callable[[bytes], Awaitable[bytes]]) -> None:
        """Kerberos as Java's GssKrb5Client: context tokens until established, then the
        security layer answer. The GSS calls may ask the KDC for tickets: worker threads."""
        assert security.kerberos is not None and security.kerberos_service_name is not None
        where = f"{self.host}:{self.port}"
        try:
            client = await asyncio.to_thread(GssapiClient, security.kerberos, security.kerberos_service_name,
                                             self.host)
            token = await asyncio.to_thread(client.first)
            while not client.done:
                token = await asyncio.to_thread(client.evaluate, await authenticate(token))
            await authenticate(token)
        except SaslError as exc:
            raise ConnectionError(f"SASL GSSAPI authentication to {where} failed: {exc}") from None

    async def _read_loop(self) -> None:
        assert self._reader is not None
        try:
            while True:
                size = struct.unpack(">i", await self._reader.readexactly(4))[0]
                frame = await self._reader.readexactly(size)
                if not self._pending:
                    continue
                correlation_id, api_key, version, fut = self._pending.popleft()
                try:
                    got_id, response = decode_response(api_key, version, frame)
                    if got_id != correlation_id:
                        raise ConnectionError(f"correlation id {got_id} != {correlation_id}")
                    if not fut.done():
                        fut.set_result(response)
                except Exception as exc:
                    if not fut.done():
                        fut.set_exception(exc)
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            self._fail(ConnectionError(f"connection to {self.host}:{self.port} lost: {exc}"))
        except asyncio.CancelledError:
            self._fail(ConnectionError("connection closed"))

    def _fail(self, exc: Exception) -> None:
        while self._pending:
            fut = self._pending.popleft()[3]
            if not fut.done():
                fut.set_exception(exc)
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def request(self, api_key: int, version: int, request: Any, timeout: float = 10.0) -> Any:
        async with self._lock:
            if (self._writer is not None and self._session_deadline and not self._pending
                    and asyncio.get_running_loop().time() > self._session_deadline):
                self.close()  # the SASL session is ending: reconnect (and so re-authenticate)
            if self._writer is None:
                await self._connect(timeout)
            assert self._writer is not None
            correlation_id = next(self._ids)
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._pending.append((correlation_id, api_key, version, fut))
            self._writer.write(encode_request(api_key, version, correlation_id, self.client_id, request))
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            self.close()
            raise

    def close(self) -> None:
        if self._read_task is not None:
            self._read_task.cancel()
            self._read_task = None
        self._fail(ConnectionError("connection closed"))

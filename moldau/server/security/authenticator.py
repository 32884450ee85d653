"""A SASL listener's connections until they are authenticated (Kafka's SaslServerAuthenticator).

Until a connection has authenticated, its frames come here instead of to the request
dispatcher; once it has, the connection's handler becomes the dispatcher itself, so an
authenticated connection (and every PLAINTEXT or SSL one) serves requests with no SASL
code on its path. Every state and what it accepts:

| state          | accepts                                   | then                                  |
| -------------- | ----------------------------------------- | ------------------------------------- |
| handshake      | ApiVersions                               | handshake                             |
|                | SaslHandshake v1, mechanism enabled       | authenticate                          |
|                | SaslHandshake v0, mechanism enabled       | raw_token (KIP-43: bare SASL tokens)  |
|                | SaslHandshake, mechanism not enabled      | failed: UNSUPPORTED_SASL_MECHANISM    |
| authenticate   | SaslAuthenticate, exchange goes on        | authenticate                          |
|                | SaslAuthenticate, exchange done           | complete (handler = the dispatcher)   |
|                | SaslAuthenticate, refused                 | failed: SASL_AUTHENTICATION_FAILED    |
| raw_token      | a size-prefixed token (no Kafka header)   | raw_token, complete, or closed        |
|                | (an exchange step with nothing to answer, GSSAPI's last, sends no frame)          |
| failed         | nothing: the answer is sent, and the connection closed after
|                | connection.failed.authentication.delay.ms (KIP-306; clients read the answer first) |

Any other request closes the connection, as Kafka does ("Unexpected Kafka request of
type ... during SASL handshake").

Re-authentication (KIP-368): with `connections.max.reauth.ms` > 0, the last
SaslAuthenticate answer carries it as `session_lifetime_ms`, and the connection's handler
becomes `_authenticated` instead of the dispatcher. That one passes requests to the
dispatcher while the session lasts; a SaslHandshake starts a re-authentication (back to
the table above from `handshake`, with the same mechanism, and the new login must be the
same principal, else SASL_AUTHENTICATION_FAILED and the connection is closed); any other
request after the session expired closes the connection, as Kafka does. Without it (0,
Kafka's default) the handler is the dispatcher itself and a session lasts as long as its
connection.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import struct
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from moldau.protocol.apis import ApiKey, is_supported
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import (
    MalformedRequestError,
    body_offset,
    build,
    decode_request,
    encode_response,
    parse_request_header,
)
from moldau.server.handlers._common import response_types
from moldau.server.security import oauthbearer
from moldau.server.security.errors import SaslAuthenticationError, SaslError
from moldau.server.security.gssapi_mechanism import GSSAPI, GssapiServer
from moldau.server.security.jwks import SignedValidator
from moldau.server.security.jwt_validator import UnknownKeyIdError, validate_jwt
from moldau.server.security.oauthbearer import OAUTHBEARER, UnsecuredValidator
from moldau.server.security.plain import authenticate_plain
from moldau.server.security.scram import MECHANISMS, ScramCredential, ScramServer

if TYPE_CHECKING:
    from moldau.server.network import Deferred, Handler, KafkaConnection
    from moldau.server.security.listener import ListenerSecurity

log = logging.getLogger(__name__)

# (mechanism name, username) -> the user's credential for that mechanism, or None.
CredentialLookup = Callable[[str, str], Awaitable[ScramCredential | None]]


class _PlainExchange:
    def __init__(self, users: dict[str, str]) -> None:
        self._users = users
        self.username: str | None = None

    async def evaluate(self, token: bytes) -> bytes | None:
        self.username = authenticate_plain(token, self._users)
        return b""


class _OAuthBearerExchange:
    def __init__(self, validator: UnsecuredValidator | SignedValidator) -> None:
        self._validator = validator
        self.username: str | None = None
        self.expires_ms = 0

    async def evaluate(self, token: bytes) -> bytes | None:
        validator = self._validator
        if isinstance(validator, UnsecuredValidator):
            found = oauthbearer.authenticate(token, validator, int(time.time() * 1000))
            self.username, self.expires_ms = found.principal, found.expires_ms
            return b""
        authorization_id, jwt = oauthbearer.parse_client_message(token)
        jwks = validator.jwks
        try:
            signed = validate_jwt(jwt, jwks.keys, validator.settings, int(time.time() * 1000))
        except UnknownKeyIdError as exc:  # a rotated key the issuer published after our last fetch?
            if not await jwks.refresh_for_unknown_kid(exc.kid):
                raise
            signed = validate_jwt(jwt, jwks.keys, validator.settings, int(time.time() * 1000))
        oauthbearer.check_authorization_id(authorization_id, signed.principal)
        self.username, self.expires_ms = signed.principal, signed.expires_ms
        return b""


class _GssapiExchange:
    """Kerberos (gssapi_mechanism.py); each step runs on a worker thread, since it decrypts
    the ticket with the keytab and writes the replay cache."""

    def __init__(self, listener: ListenerSecurity) -> None:
        if listener.gssapi is None:
            raise SaslError(f"GSSAPI is not configured on listener {listener.name}")
        self._server = GssapiServer(listener.gssapi)
        self.username: str | None = None

    async def evaluate(self, token: bytes) -> bytes | None:
        answer = await asyncio.to_thread(self._server.evaluate, token)
        if self._server.state == "complete":
            self.username = self._server.short_name
            log.debug("GSSAPI: %s authenticated as User:%s", self._server.peer, self.username)
        return answer


class _ScramExchange:
    def __init__(self, mechanism: str, lookup: CredentialLookup) -> None:
        self._server = ScramServer(MECHANISMS[mechanism])
        self._lookup = lookup
        self.username: str | None = None

    async def evaluate(self, token: bytes) -> bytes | None:
        server = self._server
        if server.state == "client_first":
            username = server.client_first(token)
            try:
                credential = await self._lookup(server.mechanism.name, username)
            except Exception as exc:  # the coordination service, a corrupt credential
                raise SaslError(f"Authentication failed: Credentials could not be obtained ({exc})") from None
            return server.server_first(credential)
        answer = server.client_final(token)
        self.username = server.username
        return answer


class SaslServerAuthenticator:
    """The handler of one connection on a SASL listener while it authenticates."""

    def __init__(self, listener: ListenerSecurity, dispatch: Handler, lookup: CredentialLookup,
                 failed_close_delay_s: float = 0.1, reauth_ms: int = 0) -> None:
        self.listener = listener
        self.failed_close_delay_s = failed_close_delay_s
        self.reauth_ms = reauth_ms
        self.reauthenticating = False
        self.session_expires = 0.0  # loop time; only with reauth_ms
        self.session_lifetime_ms = 0  # announced in the last SaslAuthenticate answer
        self._dispatch = dispatch
        self._lookup = lookup
        self.state = "handshake"
        self.mechanism = ""
        self._exchange: _PlainExchange | _ScramExchange | _OAuthBearerExchange | _GssapiExchange | None = None

    async def handle(self, frame: bytes, conn: KafkaConnection) -> bytes | None:
        if self.state == "handshake":
            return await self._handshake(frame, conn)
        if self.state == "authenticate":
            return await self._authenticate(frame, conn)
        if self.state == "raw_token":
            return await self._raw_token(frame, conn)
        return None  # failed: the connection is closing

    async def _handshake(self, frame: bytes, conn: KafkaConnection) -> bytes | None:
        header, pos = parse_request_header(frame)
        key, version = header.api_key, header.api_version
        if key == ApiKey.API_VERSIONS:
            return await self._dispatch(frame, conn)  # type: ignore[return-value]
        if key != ApiKey.SASL_HANDSHAKE:
            raise MalformedRequestError(f"Unexpected Kafka request of type {_name(key)} during SASL handshake "
                                        f"on listener {self.listener.name} (wrong security protocol?)")
        if not is_supported(key, version):
            raise MalformedRequestError(f"SaslHandshake version {version} is not supported")
        request = decode_request(key, version, frame, body_offset(header, pos, frame))
        t = response_types(key, version)
        mechanisms = self.listener.mechanisms
        if self.reauthenticating and request.mechanism != self.mechanism:
            mechanisms = (self.mechanism,)  # a session re-authenticates with the mechanism it began with
        if request.mechanism not in mechanisms:
            log.info("closing connection from %s: SASL mechanism %r is not enabled on listener %s",
                     conn.peer, request.mechanism, self.listener.name)
            self.state = "failed"
            conn.write_and_close(encode_response(key, version, header.correlation_id, build(
                t.SaslHandshakeResponse, error_code=ErrorCode.unsupported_sasl_mechanism, mechanisms=mechanisms)),
                self.failed_close_delay_s)
            return None
        self.mechanism = request.mechanism
        self._exchange = (_PlainExchange(self.listener.plain_users) if self.mechanism == "PLAIN"
                          else _OAuthBearerExchange(self.listener.oauthbearer) if self.mechanism == OAUTHBEARER
                          else _GssapiExchange(self.listener) if self.mechanism == GSSAPI
                          else _ScramExchange(self.mechanism, self._lookup))
        self.state = "authenticate" if version >= 1 else "raw_token"
        return encode_response(key, version, header.correlation_id, build(
            t.SaslHandshakeResponse, error_code=ErrorCode.none, mechanisms=mechanisms))

    async def _authenticate(self, frame: bytes, conn: KafkaConnection) -> bytes | None:
        header, pos = parse_request_header(frame)
        key, version = header.api_key, header.api_version
        if key != ApiKey.SASL_AUTHENTICATE:
            raise MalformedRequestError(f"Unexpected Kafka request of type {_name(key)} during SASL authentication")
        if not is_supported(key, version):
            raise MalformedRequestError(f"SaslAuthenticate version {version} is not supported")
        request = decode_request(key, version, frame, body_offset(header, pos, frame))
        t = response_types(key, version)
        try:
            token = await self._evaluate(bytes(request.auth_bytes), conn)
        except SaslError as exc:
            self.state = "failed"
            conn.write_and_close(encode_response(key, version, header.correlation_id, build(
                t.SaslAuthenticateResponse, error_code=ErrorCode.sasl_authentication_failed,
                error_message=self._client_message(exc), auth_bytes=b"")), self.failed_close_delay_s)
            return None
        lifetime = self.session_lifetime_ms if self.state == "complete" else 0
        return encode_response(key, version, header.correlation_id, build(
            t.SaslAuthenticateResponse, error_code=ErrorCode.none, error_message=None, auth_bytes=token or b"",
            session_lifetime=datetime.timedelta(milliseconds=lifetime)))

    async def _raw_token(self, frame: bytes, conn: KafkaConnection) -> bytes | None:
        try:
            token = await self._evaluate(frame, conn)
        except SaslError as exc:
            self.state = "failed"
            self._client_message(exc)
            conn.close()
            return None
        if token is None:
            return None
        return struct.pack(">i", len(token)) + token

    async def _evaluate(self, token: bytes, conn: KafkaConnection) -> bytes | None:
        exchange = self._exchange
        assert exchange is not None
        answer = await exchange.evaluate(token)
        if exchange.username is not None:
            principal = f"User:{exchange.username}"
            if self.reauthenticating and principal != conn.principal:
                raise SaslAuthenticationError(
                    f"Cannot change principals during re-authentication from {conn.principal}: {principal}")
            self.state = "complete"
            conn.principal = principal
            if self.reauth_ms > 0:
                lifetime_ms = self.reauth_ms
                if isinstance(exchange, _OAuthBearerExchange):  # never past the token's expiry
                    lifetime_ms = max(0, min(lifetime_ms, exchange.expires_ms - int(time.time() * 1000)))
                self.session_lifetime_ms = lifetime_ms
                self.session_expires = asyncio.get_running_loop().time() + lifetime_ms / 1000
                conn.set_handler(self._authenticated)
            else:
                conn.set_handler(self._dispatch)
            log.debug("%s authenticated as %s with %s on listener %s", conn.peer, conn.principal, self.mechanism,
                      self.listener.name)
        return answer

    async def _authenticated(self, frame: bytes, conn: KafkaConnection) -> bytes | Deferred | None:
        """An authenticated connection's requests while its session may expire."""
        (api_key,) = struct.unpack_from(">h", frame, 0)
        if api_key == ApiKey.SASL_HANDSHAKE:
            log.debug("%s re-authenticates on listener %s", conn.peer, self.listener.name)
            self.state, self.reauthenticating, self._exchange = "handshake", True, None
            conn.set_handler(self.handle)
            return await self._handshake(frame, conn)
        if asyncio.get_running_loop().time() > self.session_expires:
            log.info("closing connection from %s (%s): its SASL session expired (connections.max.reauth.ms=%d)",
                     conn.peer, conn.principal, self.reauth_ms)
            conn.close()
            return None
        return await self._dispatch(frame, conn)

    def _client_message(self, exc: SaslError) -> str:
        """What the client is told (Kafka hides the detail of a plain SaslException)."""
        log.info("SASL %s authentication failed on listener %s: %s", self.mechanism, self.listener.name, exc)
        if isinstance(exc, SaslAuthenticationError):
            return str(exc)
        return f"Authentication failed during authentication due to invalid credentials with SASL mechanism " \
               f"{self.mechanism}"


def _name(key: int) -> str:
    return ApiKey(key).name if key in ApiKey._value2member_map_ else f"unknown API {key}"


"""A broker's own OAUTHBEARER login with tokens from an OAuth/OIDC issuer (Kafka's
OAuthBearerLoginCallbackHandler with the client_credentials grant, KIP-768): how brokers
log in to each other on a listener that takes signed tokens only.

Set as in Kafka: `sasl.oauthbearer.token.endpoint.url` (broker-wide or
`listener.name.<l>.oauthbearer.` for the inter-broker listener), and the
OAuthBearerLoginModule's options `clientId`, `clientSecret` and optionally `scope`
(`listener.name.<l>.oauthbearer.sasl.login.callback.handler.class=` Kafka's
OAuthBearerLoginCallbackHandler is accepted, not needed). The request is RFC 6749's
section 4.4: a POST of `grant_type=client_credentials[&scope=...]` with the client's id and
secret in an HTTP basic Authorization header (not URL-encoded first: Kafka's default,
`sasl.oauthbearer.header.urlencode=false`); the answer's
`access_token` is the token. It is fetched in a thread (never on the event loop) and reused
until 80% of its lifetime has passed (`expires_in`, else the token's own `exp`), as
Kafka's refreshing login does; logins in the meantime share one fetch.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

FETCH_TIMEOUT_S = 10.0
REFRESH_FRACTION = 0.8  # Kafka's sasl.login.refresh.window.factor


@dataclass(frozen=True)
class ClientCredentials:
    token_endpoint_url: str
    client_id: str
    client_secret: str = field(repr=False)
    scope: str | None = None


def _jwt_exp(token: str) -> float | None:
    try:
        payload = token.split(".")[1]
        exp = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))).get("exp")
    except (IndexError, ValueError, AttributeError):
        return None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


def request_token(credentials: ClientCredentials, timeout_s: float = FETCH_TIMEOUT_S) -> tuple[str, float | None]:
    """(access token, lifetime in seconds or None) from the token endpoint (blocking).
    OSError or ValueError saying why not."""
    form = {"grant_type": "client_credentials"}
    if credentials.scope:
        form["scope"] = credentials.scope
    basic = base64.b64encode(f"{credentials.client_id}:{credentials.client_secret}".encode()).decode()
    request = urllib.request.Request(
        credentials.token_endpoint_url, data=urllib.parse.urlencode(form).encode(), method="POST",
        headers={"Authorization": f"Basic {basic}", "Accept": "application/json",
                 "Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 (URL checked at config time)
        body = response.read(1 << 20)
    try:
        answer = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("the token endpoint's answer is not JSON") from None
    token = answer.get("access_token") if isinstance(answer, dict) else None
    if not isinstance(token, str) or not token:
        raise ValueError("the token endpoint's answer has no access_token")
    expires_in = answer.get("expires_in")
    lifetime = float(expires_in) if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) else None
    return token, lifetime


class ClientCredentialsLogin:
    """The broker's current token, fetched when first needed and again before it expires."""

    def __init__(self, credentials: ClientCredentials) -> None:
        self.credentials = credentials
        self._token: str | None = None
        self._refresh_at = 0.0  # time.time() after which a new token is fetched
        self._in_flight: asyncio.Task[str] | None = None

    async def token(self) -> str:
        if self._token is not None and time.time() < self._refresh_at:
            return self._token
        if self._in_flight is None or self._in_flight.done():
            self._in_flight = asyncio.get_running_loop().create_task(self._fetch())
        return await asyncio.shield(self._in_flight)

    async def _fetch(self) -> str:
        url = self.credentials.token_endpoint_url
        try:
            token, lifetime = await asyncio.to_thread(request_token, self.credentials)
        except (OSError, ValueError) as exc:
            raise ConnectionError(f"could not get an OAUTHBEARER token from {url}: {exc}") from None
        now = time.time()
        if lifetime is None:
            exp = _jwt_exp(token)
            lifetime = exp - now if exp is not None else 60.0
        self._token, self._refresh_at = token, now + REFRESH_FRACTION * max(lifetime, 0.0)
        log.info("OAUTHBEARER: a token for client %s from %s, valid %.0f s", self.credentials.client_id, url, lifetime)
        return token

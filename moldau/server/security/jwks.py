"""An OIDC issuer's JSON Web Key Set, kept fresh (Kafka's RefreshingHttpsJwks, KIP-768).

`sasl.oauthbearer.jwks.endpoint.url` says where the set is: an http(s):// URL (fetched
with urllib, in a thread: never on the event loop) or a file: URL (read the same way).
The set is fetched when the broker starts, before its listeners open (one attempt of at
most `FETCH_TIMEOUT_S`), then every `sasl.oauthbearer.jwks.endpoint.refresh.ms`. A later
fetch is tried again after
`sasl.oauthbearer.jwks.endpoint.retry.backoff.ms`, doubling, while the waits add up to
no more than `...retry.backoff.max.ms` (Kafka's Retry); when it still fails, the broker
logs it and keeps the keys it had. Departure: Kafka refuses to start when the first fetch
fails; Moldau starts (every signed login is refused until the keys arrive) and tries
again every `...retry.backoff.max.ms`, so a cluster can restart while its issuer is down.

A token signed with a key the set does not hold (a rotated key the issuer published
after our last fetch) triggers an expedited refresh, which the login in progress waits
for (at most `EXPEDITED_WAIT_S`). Unknown key ids are rate-limited, as in Kafka: one
expedited refresh per key id per minute (the last 16 ids remembered), and Moldau adds at
most one expedited refresh per second overall, so that tokens with made-up key ids cannot
turn the broker into a load generator against the issuer. Refreshes never overlap: a
caller arriving during one waits for it (a login naming an unknown key id joins a refresh
under way whatever the limits say, so that a burst of logins with a new key all succeed).
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from moldau.server.security.jwt_validator import MAX_KEY_ID_LENGTH, JsonWebKey, JwtValidatorSettings, parse_jwks

log = logging.getLogger(__name__)

MISSING_KEY_ID_INTERVAL_MS = 60_000  # Kafka's MISSING_KEY_ID_CACHE_IN_FLIGHT_MS
MISSING_KEY_ID_ENTRIES = 16  # Kafka's MISSING_KEY_ID_CACHE_MAX_ENTRIES
EXPEDITED_MIN_INTERVAL_MS = 1_000
EXPEDITED_WAIT_S = 5.0
FETCH_TIMEOUT_S = 10.0
MAX_DOCUMENT_BYTES = 1 << 20


@dataclass(frozen=True)
class JwksSettings:
    url: str
    refresh_ms: int = 3_600_000
    retry_backoff_ms: int = 100
    retry_backoff_max_ms: int = 10_000


def check_url(url: str) -> None:
    """ValueError unless `url` is an http(s) URL with a host or a file URL with a path."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme in ("http", "https"):
        if not parsed.hostname:
            raise ValueError(f"{url!r} has no host")
    elif parsed.scheme == "file":
        if not parsed.path:
            raise ValueError(f"{url!r} has no path")
    else:
        raise ValueError(f"{url!r} is not an http://, https:// or file: URL")


def fetch_document(url: str, timeout_s: float = FETCH_TIMEOUT_S) -> bytes:
    """The bytes at `url` (blocking: call it in a thread). OSError when it cannot be read."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        path = Path(urllib.request.url2pathname(parsed.path))
        with path.open("rb") as f:
            return f.read(MAX_DOCUMENT_BYTES + 1)
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 (scheme checked)
        return bytes(response.read(MAX_DOCUMENT_BYTES + 1))


def load_keys(url: str) -> tuple[JsonWebKey, ...]:
    """Fetch and parse the key set (blocking); ValueError or OSError saying why not."""
    document = fetch_document(url)
    if len(document) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"the JWKS is larger than {MAX_DOCUMENT_BYTES} bytes")
    return parse_jwks(document)


class RefreshingJwks:
    """The current key set of one JWKS endpoint, shared by the listeners that name it."""

    def __init__(self, settings: JwksSettings,
                 load: Callable[[str], tuple[JsonWebKey, ...]] = load_keys,
                 clock_ms: Callable[[], int] = lambda: int(time.monotonic() * 1000),
                 keys: tuple[JsonWebKey, ...] | None = None) -> None:
        self.settings = settings
        self.keys: tuple[JsonWebKey, ...] = keys or ()
        self.loaded = keys is not None  # a fetch has succeeded at least once
        self._load = load
        self._clock_ms = clock_ms
        self._missing: OrderedDict[str, int] = OrderedDict()  # kid -> when it may expedite again
        self._last_expedited_ms: int | None = None
        self._in_flight: asyncio.Task[bool] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """The first fetch (one attempt, as Kafka's: a broker whose issuer hangs must not
        wait out the whole retry schedule to start), then the periodic refresh task."""
        if not await self.refresh(retry=False):
            log.error("OAuth JWKS: could not fetch %s; signed OAUTHBEARER logins are refused until it can be "
                      "(trying again every %d ms)", self.settings.url, self.settings.retry_backoff_max_ms)
        self._task = asyncio.get_running_loop().create_task(self._refresh_periodically())

    async def stop(self) -> None:
        for task in (self._task, self._in_flight):
            if task is not None:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        self._task = self._in_flight = None

    async def _refresh_periodically(self) -> None:
        while True:
            wait_ms = self.settings.refresh_ms if self.loaded else self.settings.retry_backoff_max_ms
            await asyncio.sleep(max(wait_ms, 1) / 1000)
            await self.refresh()

    def _refresh_task(self, retry: bool = True) -> asyncio.Task[bool]:
        """The fetch under way, or a new one (started before the caller's first await, so
        that every caller after it joins it)."""
        if self._in_flight is None or self._in_flight.done():
            self._in_flight = asyncio.get_running_loop().create_task(self._fetch(retry))
        return self._in_flight

    async def refresh(self, retry: bool = True) -> bool:
        """Fetch the set now (or join the fetch under way); True if it succeeded."""
        return await asyncio.shield(self._refresh_task(retry))

    async def _fetch(self, retry: bool) -> bool:
        url, settings = self.settings.url, self.settings
        waited_ms, backoff_ms, attempt = 0, settings.retry_backoff_ms, 0  # the schedule, not the clock
        while True:
            attempt += 1
            try:
                keys = await asyncio.to_thread(self._load, url)
            except (OSError, ValueError) as exc:
                if not retry or waited_ms + backoff_ms > settings.retry_backoff_max_ms:
                    log.warning("OAuth JWKS refresh of %s failed after %d attempt(s): %s; keeping the %d key(s) "
                                "fetched before", url, attempt, exc, len(self.keys))
                    return False
                log.debug("OAuth JWKS refresh of %s failed (%s); again in %d ms", url, exc, backoff_ms)
                await asyncio.sleep(backoff_ms / 1000)
                waited_ms += backoff_ms
                backoff_ms = max(backoff_ms * 2, 1)
                continue
            for key in keys:
                if key.kid is not None:
                    self._missing.pop(key.kid, None)
            if [k.kid for k in keys] != [k.kid for k in self.keys] or not self.loaded:
                log.info("OAuth JWKS from %s: key ids %s", url, ", ".join(repr(k.kid) for k in keys) or "none")
            self.keys, self.loaded = keys, True
            return True

    def may_expedite(self, kid: str) -> bool:
        """Whether a token naming the unknown `kid` may trigger a refresh now (and note it)."""
        if len(kid) > MAX_KEY_ID_LENGTH:
            return False
        now = self._clock_ms()
        next_check = self._missing.get(kid)
        if next_check is not None and next_check > now:
            return False
        if self._last_expedited_ms is not None and now - self._last_expedited_ms < EXPEDITED_MIN_INTERVAL_MS:
            return False
        self._missing[kid] = now + MISSING_KEY_ID_INTERVAL_MS
        self._missing.move_to_end(kid)
        while len(self._missing) > MISSING_KEY_ID_ENTRIES:
            self._missing.popitem(last=False)
        self._last_expedited_ms = now
        return True

    async def refresh_for_unknown_kid(self, kid: str) -> bool:
        """Refresh because a token names `kid`, if the rate limits allow; True when the set
        now holds it."""
        if any(k.kid == kid for k in self.keys):
            return True  # another login's refresh brought it meanwhile
        in_flight = self._in_flight is not None and not self._in_flight.done()
        if not in_flight and not self.may_expedite(kid):
            return False  # (a refresh under way is joined whatever the limits say)
        log.info("OAuth JWKS: a token names key id %r, which %s does not hold; refreshing", kid[:64],
                 self.settings.url)
        try:
            await asyncio.wait_for(asyncio.shield(self._refresh_task()), EXPEDITED_WAIT_S)
        except TimeoutError:
            return False
        return any(k.kid == kid for k in self.keys)


@dataclass(frozen=True)
class SignedValidator:
    """How an OAUTHBEARER listener checks signed tokens: its claim settings and the key
    set of its issuer (shared by the listeners naming the same endpoint)."""

    settings: JwtValidatorSettings
    jwks: RefreshingJwks

"""The Kafka listener: asyncio connections that frame requests and answer them in order.

Kafka's contract is that a connection's responses come back in request order. Requests
are handled one at a time, in order (a Fetch that waits for data holds back the requests
behind it on that connection, not on others), with one refinement over Kafka's network
layer: a handler may return a `Deferred` response, whose work is done (an acks=all
Produce has appended its batches) and which only waits (for the followers). The
connection then goes on with the next requests, and writes every response in request
order as soon as the ones before it are out. Kafka instead mutes the connection until
the acks=all response is sent, which caps a connection at one replication round trip per
request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

from moldau.protocol.framing import FrameDecoder, FrameTooLargeError, MalformedRequestError

log = logging.getLogger(__name__)

Handler = Callable[[bytes, "KafkaConnection"], Awaitable["bytes | Deferred | None"]]

# Requests read ahead of the one being served before the socket stops being read.
MAX_QUEUED_REQUESTS = 256
# Responses waiting (deferred, or behind a deferred one) before requests stop being served.
MAX_INFLIGHT_RESPONSES = 512


class Deferred:
    """A response that will be ready when `awaitable` completes (to the framed bytes)."""

    __slots__ = ("awaitable",)

    def __init__(self, awaitable: Awaitable[bytes | None]) -> None:
        self.awaitable = awaitable


class KafkaConnection(asyncio.Protocol):
    def __init__(self, handler: Handler, max_frame_size: int, listener: str = "",
                 tls_principal: Callable[[asyncio.Transport], str] | None = None) -> None:
        self._handler = handler
        self.listener = listener  # the listener name the client connected to
        self.principal = "User:ANONYMOUS"  # who authenticated (SASL listeners, or a client certificate)
        # SSL listeners: the principal of the client certificate (ValueError: refused).
        self._tls_principal = tls_principal
        self._decoder = FrameDecoder(max_frame_size)
        self._queue: deque[tuple[bytes, float]] = deque()  # frames read, with when (perf_counter)
        self.received_at = 0.0  # when the request being served was read (for its queue time)
        self._ready = asyncio.Event()
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._task: asyncio.Task[None] | None = None
        self._transport: asyncio.Transport | None = None
        self._reading_paused = False
        self._inflight: deque[asyncio.Future[bytes | None]] = deque()
        self.peer = "?"
        self.peer_host = ""
        self._muted_until = 0.0  # loop time before which no request is served (a throttled client)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.peer_host = f"/{peer[0]}" if peer else ""
        if self._tls_principal is not None:
            try:
                self.principal = self._tls_principal(transport)
            except ValueError as exc:
                log.info("closing connection from %s: %s", self.peer, exc)
                transport.close()
                return
        self._task = asyncio.get_running_loop().create_task(self._serve())

    def data_received(self, data: bytes) -> None:
        try:
            frames = self._decoder.feed(data)
        except FrameTooLargeError as exc:
            log.warning("closing connection from %s: %s", self.peer, exc)
            self.close()
            return
        if frames:
            now = time.perf_counter()
            self._queue.extend([(frame, now) for frame in frames])
            self._ready.set()
            if len(self._queue) >= MAX_QUEUED_REQUESTS and self._transport and not self._reading_paused:
                self._reading_paused = True
                self._transport.pause_reading()

    @property
    def queued_requests(self) -> int:
        """Requests read and waiting for the connection's earlier ones (Kafka's request queue)."""
        return len(self._queue)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._ready.set()
        self._can_write.set()
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def mute(self, delay_ms: int) -> None:
        """Serve nothing more for `delay_ms` (a client over its quota, KIP-219)."""
        self._muted_until = max(self._muted_until, asyncio.get_running_loop().time() + delay_ms / 1000)

    def set_handler(self, handler: Handler) -> None:
        """Serve the next frames with `handler` (a SASL connection, once authenticated,
        switches from its authenticator to the request dispatcher)."""
        self._handler = handler

    def write_and_close(self, data: bytes, delay_s: float = 0.0) -> None:
        """Send a last response, then close `delay_s` later (a refused SASL handshake or
        authentication: Kafka's connection.failed.authentication.delay.ms)."""
        transport = self._transport
        if transport is not None:
            transport.write(data)
            if delay_s > 0:
                asyncio.get_running_loop().call_later(delay_s, transport.close)
            else:
                transport.close()

    def _write_ready(self) -> None:
        """Write the responses at the head of the line that are complete, in order."""
        inflight = self._inflight
        while inflight and inflight[0].done():
            fut = inflight.popleft()
            if fut.cancelled():
                continue
            exc = fut.exception()
            if exc is not None:
                log.error("error completing a response to %s: %r; closing the connection", self.peer, exc)
                self.close()
                return
            data = fut.result()
            if data is not None and self._transport is not None:
                self._transport.write(data)

    async def _serve(self) -> None:
        queue = self._queue
        try:
            while self._transport is not None:
                if not queue:
                    self._ready.clear()
                    await self._ready.wait()
                    continue
                frame, self.received_at = queue.popleft()
                if self._reading_paused and len(queue) < MAX_QUEUED_REQUESTS // 2:
                    self._reading_paused = False
                    if self._transport is not None:
                        self._transport.resume_reading()
                try:
                    response = await self._handler(frame, self)
                except MalformedRequestError as exc:
                    log.warning("closing connection from %s: %s", self.peer, exc)
                    self.close()
                    return
                if isinstance(response, Deferred):
                    task = asyncio.ensure_future(response.awaitable)
                    task.add_done_callback(lambda _t: self._write_ready())
                    self._inflight.append(task)
                elif self._inflight:
                    done: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
                    done.set_result(response)
                    self._inflight.append(done)
                    self._write_ready()
                elif response is not None and self._transport is not None:
                    self._transport.write(response)
                if len(self._inflight) >= MAX_INFLIGHT_RESPONSES:
                    await asyncio.wait([self._inflight[0]])
                if not self._can_write.is_set():
                    await self._can_write.wait()
                if self._muted_until:
                    delay = self._muted_until - asyncio.get_running_loop().time()
                    self._muted_until = 0.0
                    if delay > 0:
                        await asyncio.sleep(delay)
        except asyncio.CancelledError:
            for fut in self._inflight:
                fut.cancel()
        except Exception:
            log.exception("error serving %s; closing the connection", self.peer)
            self.close()

"""The Kafka listener: asyncio connections that frame requests and answer them in order.

Kafka's contract is that a connection's responses come back in request order; like
Kafka's network layer, a connection handles one request at a time (a Fetch that waits
for data holds back the requests behind it on that connection, not on others).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from moldau.protocol.framing import FrameDecoder, FrameTooLargeError, MalformedRequestError

log = logging.getLogger(__name__)

Handler = Callable[[bytes, "KafkaConnection"], Awaitable[bytes | None]]

# Requests read ahead of the one being served before the socket stops being read.
MAX_QUEUED_REQUESTS = 256


class KafkaConnection(asyncio.Protocol):
    def __init__(self, handler: Handler, max_frame_size: int) -> None:
        self._handler = handler
        self._decoder = FrameDecoder(max_frame_size)
        self._queue: deque[bytes] = deque()
        self._ready = asyncio.Event()
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._task: asyncio.Task[None] | None = None
        self._transport: asyncio.Transport | None = None
        self._reading_paused = False
        self.peer = "?"
        self.peer_host = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.peer_host = f"/{peer[0]}" if peer else ""
        self._task = asyncio.get_running_loop().create_task(self._serve())

    def data_received(self, data: bytes) -> None:
        try:
            frames = self._decoder.feed(data)
        except FrameTooLargeError as exc:
            log.warning("closing connection from %s: %s", self.peer, exc)
            self.close()
            return
        if frames:
            self._queue.extend(frames)
            self._ready.set()
            if len(self._queue) >= MAX_QUEUED_REQUESTS and self._transport and not self._reading_paused:
                self._reading_paused = True
                self._transport.pause_reading()

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

    async def _serve(self) -> None:
        queue = self._queue
        try:
            while self._transport is not None:
                if not queue:
                    self._ready.clear()
                    await self._ready.wait()
                    continue
                frame = queue.popleft()
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
                if response is not None and self._transport is not None:
                    self._transport.write(response)
                    if not self._can_write.is_set():
                        await self._can_write.wait()
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("error serving %s; closing the connection", self.peer)
            self.close()

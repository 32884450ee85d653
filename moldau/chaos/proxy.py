"""Latency where netem is not available: a TCP proxy that delays every chunk it forwards.

    client ──► LatencyProxy(listen) ──(delay_s each way)──► target

Each direction has a reader that stamps every chunk with the time it may leave
(`now + delay_s`) and a writer that waits for that time, so bytes keep their order and a
stream is delayed, not throttled. `delay_s` may be changed while connections are open
(a fault starts, then heals). An end of stream is passed on after the bytes before it.
`ThreadedProxy` runs one in a thread of its own for synchronous callers (the harness).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time


class LatencyProxy:
    def __init__(self, target: tuple[str, int], delay_s: float = 0.0, listen: tuple[str, int] = ("127.0.0.1", 0)):
        self.target = target
        self.delay_s = delay_s
        self.listen = listen
        self.address: tuple[str, int] | None = None
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._serve, *self.listen)
        host, port = self._server.sockets[0].getsockname()[:2]
        self.address = (host, port)
        return self.address

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            target_r, target_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.close()
            return
        for reader, writer in ((client_r, target_w), (target_r, client_w)):
            task = asyncio.create_task(self._pump(reader, writer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                due, data = await queue.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(send())
        try:
            while True:
                try:
                    data = await reader.read(65536)
                except OSError:
                    data = b""
                queue.put_nowait((time.monotonic() + self.delay_s, data))
                if not data:
                    break
            await sender
        except OSError:  # a link reset by either side (a broker killed, ZooKeeper restarted): its end
            sender.cancel()
        except asyncio.CancelledError:
            sender.cancel()
            raise
        finally:
            writer.close()


class ThreadedProxy:
    """A LatencyProxy on an event loop in a daemon thread; `stop` in a `finally`."""

    def __init__(self, target: tuple[str, int], delay_s: float = 0.0, listen: tuple[str, int] = ("127.0.0.1", 0)):
        self.proxy = LatencyProxy(target, delay_s, listen)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="latency-proxy", daemon=True)

    def start(self) -> tuple[str, int]:
        self._thread.start()
        return asyncio.run_coroutine_threadsafe(self.proxy.start(), self._loop).result(10)

    def set_delay(self, delay_s: float) -> None:
        self.proxy.delay_s = delay_s  # read by the readers as each chunk arrives

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.proxy.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

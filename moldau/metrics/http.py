"""The `/metrics` endpoint: a minimal HTTP/1.1 server on asyncio, for Prometheus to scrape.

`respond` (pure) turns a request head into response bytes; `start_metrics_server` wraps
it in `asyncio.start_server`. One request per connection, then close; a request head is
bounded in size and time, so a slow or broken client cannot hold the broker's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from moldau.metrics.registry import CONTENT_TYPE

MAX_HEAD_BYTES = 8192
HEAD_TIMEOUT_S = 5.0
METRICS_PATH = "/metrics"


def _response(
    status: str, body: bytes, content_type: str = "text/plain; charset=utf-8", head_only: bool = False, extra: str = ""
) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        f"{extra}Connection: close\r\n\r\n"
    ).encode()
    return head if head_only else head + body


def respond(head: bytes, render: Callable[[], str]) -> bytes:
    """The response to one request head (request line and headers, without the body)."""
    try:
        request_line = head.split(b"\r\n", 1)[0].decode("ascii")
        method, target, version = request_line.split(" ")
    except (UnicodeDecodeError, ValueError):
        return _response("400 Bad Request", b"bad request line\n")
    if not version.startswith("HTTP/1."):
        return _response("505 HTTP Version Not Supported", b"HTTP/1.x only\n")
    path = target.split("?", 1)[0]
    if path not in (METRICS_PATH, "/"):
        return _response("404 Not Found", f"not found; metrics are at {METRICS_PATH}\n".encode())
    if method not in ("GET", "HEAD"):
        return _response("405 Method Not Allowed", b"GET or HEAD only\n", extra="Allow: GET, HEAD\r\n")
    if path == "/":
        return _response(
            "200 OK", f'<a href="{METRICS_PATH}">metrics</a>\n'.encode(), "text/html; charset=utf-8", method == "HEAD"
        )
    return _response("200 OK", render().encode(), CONTENT_TYPE, method == "HEAD")


async def _serve_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, render: Callable[[], str]) -> None:
    try:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
        except asyncio.LimitOverrunError:
            writer.write(_response("431 Request Header Fields Too Large", b"request head too large\n"))
        except (asyncio.IncompleteReadError, TimeoutError):
            return  # the client left or stalled: nothing to answer
        else:
            writer.write(respond(head, render))
        await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def start_metrics_server(host: str, port: int, render: Callable[[], str]) -> asyncio.Server:
    """Serve `render()` at /metrics on host:port (0: a free port; see server.sockets)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _serve_one(reader, writer, render)

    return await asyncio.start_server(handle, host, port, limit=MAX_HEAD_BYTES)

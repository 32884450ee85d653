"""Server-sent events: a live view re-renders a fragment every few seconds and sends it;
the page's script swaps it in (`data-live` elements, static/console.js)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import StreamingResponse


def sse_event(data: str, event: str | None = None) -> str:
    """One event in the text/event-stream format: every line of `data` as a `data:` field."""
    head = f"event: {event}\n" if event else ""
    lines = data.split("\n") if data else [""]
    return head + "".join(f"data: {line.rstrip(chr(13))}\n" for line in lines) + "\n"


def event_stream(request: Request, next_event: Callable[[], Awaitable[str | None]]) -> StreamingResponse:
    """Send what `next_event` returns (an encoded event, or None for nothing this round)
    until the browser goes away. `next_event` does its own waiting."""

    async def events() -> AsyncIterator[str]:
        # Tell EventSource how long to wait before reconnecting after a drop.
        yield "retry: 2000\n\n"
        while not await request.is_disconnected():
            event = await next_event()
            if event is not None:
                yield event

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def every(interval_s: float, render: Callable[[], Awaitable[str]]) -> Callable[[], Awaitable[str]]:
    """A `next_event` that renders now, then waits `interval_s` before the next time."""
    first = True

    async def next_event() -> str:
        nonlocal first
        if not first:
            await asyncio.sleep(interval_s)
        first = False
        return sse_event(await render())

    return next_event

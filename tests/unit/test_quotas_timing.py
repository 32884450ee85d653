"""request_percentage's clock: a handler's own steps, not its waits."""
from __future__ import annotations

import asyncio
import time

import pytest

from moldau.server.client_quotas import TimedRequest


def test_a_request_is_timed_by_its_own_steps_not_its_waits() -> None:
    async def handler() -> str:
        time.sleep(0.02)  # work
        await asyncio.sleep(0.2)  # waiting (a long poll): not the broker's time
        time.sleep(0.02)  # work
        return "done"

    async def main() -> tuple[str, float]:
        timed = TimedRequest(handler())
        return await timed, timed.spent_s

    result, spent = asyncio.run(main())
    assert result == "done"
    assert 0.04 <= spent < 0.15


def test_a_cancellation_passes_through() -> None:
    async def cancelled() -> None:
        task = asyncio.ensure_future(TimedRequest(asyncio.sleep(10)))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancelled())

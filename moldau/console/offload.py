"""Run a blocking cluster call on a worker thread, bounded by a timeout.

The event loop never waits on a broker: a call that does not finish in time becomes a
`ClusterTimeout` for the page, and its thread ends on its own (every gateway call also
carries the client's own timeout, so no thread waits forever).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from moldau.console.errors import ClusterTimeout

T = TypeVar("T")


async def offload(timeout_s: float, what: str, func: Callable[..., T], *args: object) -> T:
    try:
        return await asyncio.wait_for(asyncio.to_thread(func, *args), timeout_s)
    except TimeoutError:
        raise ClusterTimeout(f"{what}: the cluster did not answer within {timeout_s:g} s") from None

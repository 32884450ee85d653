"""Run a blocking cluster call on a worker thread, bounded by a timeout.

The event loop never waits on a broker: a call that does not finish in time becomes a
`ClusterTimeout` for the page, and its thread ends on its own (every gateway call also
carries the client's own timeout, so no thread waits forever). The console has its own
pool, larger than asyncio's default (cores + 4): with a slow broker each open live view
can hold a thread until the client's timeout, and pages must not queue behind them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from moldau.console.errors import ClusterTimeout

T = TypeVar("T")

WORKERS = ThreadPoolExecutor(max_workers=32, thread_name_prefix="console-kafka")


async def offload(timeout_s: float, what: str, func: Callable[..., T], *args: object) -> T:
    loop = asyncio.get_running_loop()
    try:
        return await asyncio.wait_for(loop.run_in_executor(WORKERS, func, *args), timeout_s)
    except TimeoutError:
        raise ClusterTimeout(f"{what}: the cluster did not answer within {timeout_s:g} s") from None

"""A byte-rate limit for background I/O (Kafka's ``Throttler``): the log cleaner reports
what it reads and writes, and sleeps whenever, over a check period, it went faster than
``log.cleaner.io.max.bytes.per.second``. Clock and sleep are injected."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

CHECK_PERIOD_S = 0.3  # Kafka's default checkIntervalMs


class Throttler:
    def __init__(
        self,
        max_bytes_per_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        period_s: float = CHECK_PERIOD_S,
    ) -> None:
        if not max_bytes_per_s > 0:
            raise ValueError(f"a throttle rate must be positive, not {max_bytes_per_s}")
        self.max_bytes_per_s = max_bytes_per_s
        self._clock, self._sleep, self._period_s = clock, sleep, period_s
        self._period_start = clock()
        self._observed = 0

    @property
    def unlimited(self) -> bool:
        return math.isinf(self.max_bytes_per_s) or self.max_bytes_per_s >= 1.7e308

    def observe(self, nbytes: int) -> None:
        """Count ``nbytes`` of I/O; sleep once a period has passed faster than the rate."""
        if self.unlimited:
            return
        self._observed += nbytes
        now = self._clock()
        elapsed = now - self._period_start
        if elapsed < self._period_s:
            return
        if self._observed / elapsed > self.max_bytes_per_s:
            self._sleep(self._observed / self.max_bytes_per_s - elapsed)
            now = self._clock()
        self._period_start, self._observed = now, 0

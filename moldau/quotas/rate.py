"""A client's observed byte rate and its throttle time (Kafka's Rate over SampledStat,
and ClientQuotaManager.throttleTime).

The rate is the bytes of the retained samples divided by the window they cover. There are
`quota.window.num` samples of `quota.window.size.seconds` each; the window is at least
`samples - 1` full sample windows long (so a client's first burst is averaged over them,
not counted as an infinite rate). When a record makes the rate exceed the quota Q, the
client is throttled for (rate - Q) / Q * window: the time after which, sending nothing,
its rate would be back at Q.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class _Sample:
    start_ms: int
    value: float = 0.0


@dataclass
class Rate:
    samples: int = 11
    window_ms: int = 1000
    _samples: list[_Sample] = field(default_factory=list)

    def _current(self, now_ms: int) -> _Sample:
        if not self._samples or now_ms >= self._samples[-1].start_ms + self.window_ms:
            self._samples.append(_Sample(now_ms))
        expired = now_ms - self.samples * self.window_ms
        while self._samples and self._samples[0].start_ms + self.window_ms <= expired:
            self._samples.pop(0)
        if len(self._samples) > self.samples:
            del self._samples[:len(self._samples) - self.samples]
        return self._samples[-1]

    def record(self, value: float, now_ms: int) -> None:
        self._current(now_ms).value += value

    def window_size_ms(self, now_ms: int) -> int:
        oldest = self._samples[0].start_ms if self._samples else now_ms
        elapsed = now_ms - oldest
        full = elapsed // self.window_ms
        if full < self.samples - 1:
            elapsed += (self.samples - 1 - full) * self.window_ms
        return max(elapsed, 1)

    def rate(self, now_ms: int) -> float:
        """Units per second."""
        self._current(now_ms)
        return sum(s.value for s in self._samples) * 1000.0 / self.window_size_ms(now_ms)

    def record_and_throttle_ms(self, value: float, now_ms: int, quota: float) -> int:
        """Record `value`; the throttle time in ms if the rate now exceeds `quota`, else 0."""
        self.record(value, now_ms)
        observed = self.rate(now_ms)
        if observed <= quota:
            return 0
        return int((observed - quota) / quota * self.window_size_ms(now_ms))

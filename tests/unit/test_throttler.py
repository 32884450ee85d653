"""The byte-rate throttle of background I/O, on a fake clock."""

from __future__ import annotations

import pytest

from moldau.log.throttler import Throttler


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_faster_than_the_rate_sleeps_back_down_to_it() -> None:
    t = FakeTime()
    throttle = Throttler(1000.0, clock=t.clock, sleep=t.sleep, period_s=0.3)
    throttle.observe(500)  # within the first period: no check yet
    assert t.slept == []
    t.now = 0.3
    throttle.observe(400)  # 900 bytes in 0.3 s: should have taken 0.9 s
    assert t.slept == [pytest.approx(0.6)]
    assert t.now == pytest.approx(0.9)


def test_slower_than_the_rate_never_sleeps() -> None:
    t = FakeTime()
    throttle = Throttler(1000.0, clock=t.clock, sleep=t.sleep)
    for _ in range(10):
        t.now += 0.5
        throttle.observe(400)
    assert t.slept == []


def test_over_many_periods_the_average_rate_holds() -> None:
    t = FakeTime()
    throttle = Throttler(10_000.0, clock=t.clock, sleep=t.sleep, period_s=0.3)
    total = 0
    for _ in range(10_000):
        t.now += 0.001  # work itself takes 1 ms per 100 bytes: 100 kB/s unthrottled
        throttle.observe(100)
        total += 100
    assert total / t.now == pytest.approx(10_000, rel=0.02)  # the last, unchecked period aside


def test_kafkas_default_rate_means_unlimited() -> None:
    t = FakeTime()
    throttle = Throttler(1.7976931348623157e308, clock=t.clock, sleep=t.sleep)
    for _ in range(100):
        t.now += 1
        throttle.observe(10**12)
    assert t.slept == []


@pytest.mark.parametrize("rate", [0.0, -5.0, float("nan")])
def test_a_rate_must_be_positive(rate: float) -> None:
    with pytest.raises(ValueError):
        Throttler(rate)

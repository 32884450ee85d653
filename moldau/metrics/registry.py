"""Counters, gauges and summaries, and their Prometheus text exposition.

Made for the broker's hot path: a labelled child is looked up once and kept by the
caller (`counter.labels("orders")`), after which an update is one attribute add. All
updates and scrapes happen on the broker's event loop, so nothing is locked.

A summary here is what Kafka's JMX exporter turns a Yammer histogram into: quantile
samples (`{quantile="0.99"}`) plus `_count`, and we add `_sum`. Quantiles come from
fixed log-spaced buckets over a sliding window of two periods (the finished one and the
current one), so old latencies age out as in Kafka's decaying reservoir; the window
moves when the caller says what time it is (`tick(now)`), never by reading a clock.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

LabelValues = tuple[str, ...]

# Kafka's histogram percentiles as the JMX exporter names them (50thPercentile -> "0.50").
KAFKA_QUANTILES: tuple[tuple[str, float], ...] = (
    ("0.50", 0.50),
    ("0.75", 0.75),
    ("0.95", 0.95),
    ("0.98", 0.98),
    ("0.99", 0.99),
    ("0.999", 0.999),
)


def log_buckets(smallest: float, largest: float, per_decade: int) -> tuple[float, ...]:
    """Upper bounds from `smallest` to at least `largest`, `per_decade` per factor of ten."""
    bounds = []
    step = 10 ** (1 / per_decade)
    bound = smallest
    while bound < largest * step:
        bounds.append(round(bound, 6))
        bound *= step
    return tuple(bounds)


# 0.01 ms .. ~10 min, 20 buckets per decade: a quantile is off by at most ~12 %.
LATENCY_MS_BUCKETS = log_buckets(0.01, 600_000.0, 20)


@dataclass(frozen=True)
class Sample:
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float


@dataclass(frozen=True)
class Family:
    """One metric family as exposed: `# HELP`, `# TYPE`, then its samples."""

    name: str
    type: str  # counter, gauge, summary
    help: str
    samples: tuple[Sample, ...]


class CounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class Counter:
    """A monotonically increasing count. The name carries `_total`, as exporters write it.

    With `aggregate`, the family also has one series without labels (Kafka's AllTopics
    meters: `..._bytesin_total` beside `..._bytesin_total{topic="t"}`), kept by the caller."""

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = (), aggregate: bool = False) -> None:
        check_name(name)
        self.name, self.help, self.labelnames = name, help, tuple(labelnames)
        self._children: dict[LabelValues, CounterChild] = {}
        self.aggregate = CounterChild() if aggregate and self.labelnames else None
        if not self.labelnames:
            self._children[()] = CounterChild()

    def labels(self, *values: str) -> CounterChild:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = CounterChild()
        return child

    def inc(self, amount: float = 1.0) -> None:
        self.labels().inc(amount)

    def remove(self, *values: str) -> None:
        """Forget a child (a deleted topic), so it is no longer exposed."""
        self._children.pop(values, None)

    def collect(self, now: float) -> Family:
        samples = [Sample(self.name, (), self.aggregate.value)] if self.aggregate is not None else []
        samples += [
            Sample(self.name, tuple(zip(self.labelnames, key, strict=True)), child.value)
            for key, child in sorted(self._children.items())
        ]
        return Family(self.name, "counter", self.help, tuple(samples))


class Gauge:
    """A value that goes up and down; set directly, or read from a function at scrape time."""

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        check_name(name)
        self.name, self.help, self.labelnames = name, help, tuple(labelnames)
        self._values: dict[LabelValues, float] = {}
        self._function: Callable[[], Iterable[tuple[LabelValues, float]]] | None = None

    def set(self, value: float, *labels: str) -> None:
        if len(labels) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {labels}")
        self._values[labels] = value

    def set_function(self, function: Callable[[], Iterable[tuple[LabelValues, float]]]) -> None:
        """Read every (labels, value) from `function` at each scrape instead."""
        self._function = function

    def collect(self, now: float) -> Family:
        values = list(self._function()) if self._function is not None else sorted(self._values.items())
        samples = tuple(Sample(self.name, tuple(zip(self.labelnames, k, strict=True)), v) for k, v in values)
        return Family(self.name, "gauge", self.help, samples)


class SummaryChild:
    __slots__ = ("_bounds", "count", "sum", "_current", "_previous")

    def __init__(self, bounds: Sequence[float]) -> None:
        self._bounds = bounds
        self.count = 0
        self.sum = 0.0
        self._current = [0] * (len(bounds) + 1)  # the last slot: above every bound
        self._previous = [0] * (len(bounds) + 1)

    def observe(self, value: float) -> None:
        self.count += 1
        if value <= 0.0:  # common (nothing waited remotely): no search, nothing to add
            self._current[0] += 1
            return
        self.sum += value
        self._current[bisect.bisect_left(self._bounds, value)] += 1

    def rotate(self) -> None:
        self._previous = self._current
        self._current = [0] * (len(self._bounds) + 1)

    def quantile(self, q: float) -> float:
        """The q-quantile of the window, interpolated inside its bucket; NaN when empty."""
        return bucket_quantile([a + b for a, b in zip(self._previous, self._current, strict=True)], self._bounds, q)


def bucket_quantile(counts: Sequence[int], bounds: Sequence[float], q: float) -> float:
    """The q-quantile of values counted in buckets (`counts[i]`: values up to `bounds[i]`,
    the last: above every bound), interpolated inside its bucket; NaN when empty."""
    total = sum(counts)
    if total == 0:
        return math.nan
    rank = q * total
    seen = 0
    for i, n in enumerate(counts):
        if n and seen + n >= rank:
            lower = bounds[i - 1] if i > 0 else 0.0
            upper = bounds[i] if i < len(bounds) else bounds[-1]
            return lower + (upper - lower) * ((rank - seen) / n)
        seen += n
    return bounds[-1]


class Summary:
    """Latencies as Kafka's JMX exporter shows a histogram: quantiles, `_count`, `_sum`."""

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        bounds: Sequence[float] = LATENCY_MS_BUCKETS,
        window_s: float = 60.0,
        quantiles: Sequence[tuple[str, float]] = KAFKA_QUANTILES,
    ) -> None:
        check_name(name)
        if list(bounds) != sorted(bounds) or not bounds:
            raise ValueError("bounds must be sorted and not empty")
        self.name, self.help, self.labelnames = name, help, tuple(labelnames)
        self.bounds, self.window_s, self.quantiles = tuple(bounds), window_s, tuple(quantiles)
        self._children: dict[LabelValues, SummaryChild] = {}
        self._window_start: float | None = None

    def labels(self, *values: str) -> SummaryChild:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = SummaryChild(self.bounds)
        return child

    def tick(self, now: float) -> None:
        """Move the window: every `window_s` the current period becomes the previous one."""
        if self._window_start is None:
            self._window_start = now
        elapsed = now - self._window_start
        if elapsed >= self.window_s:
            for child in self._children.values():
                child.rotate()
                if elapsed >= 2 * self.window_s:  # idle for two periods: nothing recent
                    child.rotate()
            self._window_start = now

    def collect(self, now: float) -> Family:
        self.tick(now)
        samples: list[Sample] = []
        for key, child in sorted(self._children.items()):
            labels = tuple(zip(self.labelnames, key, strict=True))
            for text, q in self.quantiles:
                samples.append(Sample(self.name, (*labels, ("quantile", text)), child.quantile(q)))
            samples.append(Sample(self.name + "_count", labels, child.count))
            samples.append(Sample(self.name + "_sum", labels, child.sum))
        return Family(self.name, "summary", self.help, tuple(samples))


Metric = Counter | Gauge | Summary


class Registry:
    def __init__(self) -> None:
        self._metrics: dict[str, Metric] = {}

    def register(self, metric: Metric) -> Metric:
        if metric.name in self._metrics:
            raise ValueError(f"metric {metric.name} is registered twice")
        self._metrics[metric.name] = metric
        return metric

    def counter(self, name: str, help: str, labelnames: Sequence[str] = (), aggregate: bool = False) -> Counter:
        c = Counter(name, help, labelnames, aggregate)
        self.register(c)
        return c

    def gauge(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Gauge:
        g = Gauge(name, help, labelnames)
        self.register(g)
        return g

    def summary(self, name: str, help: str, labelnames: Sequence[str] = (),
                bounds: Sequence[float] = LATENCY_MS_BUCKETS, window_s: float = 60.0) -> Summary:
        s = Summary(name, help, labelnames, bounds, window_s)
        self.register(s)
        return s

    def collect(self, now: float) -> list[Family]:
        return [m.collect(now) for m in self._metrics.values()]

    def tick(self, now: float) -> None:
        for m in self._metrics.values():
            if isinstance(m, Summary):
                m.tick(now)


# ----------------------------------------------------------------------- exposition

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def check_name(name: str) -> None:
    if not name or not (name[0].isalpha() or name[0] in "_:") or not all(c.isalnum() or c in "_:" for c in name):
        raise ValueError(f"not a Prometheus metric name: {name!r}")


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def exposition(families: Iterable[Family]) -> str:
    """The Prometheus text format (0.0.4) of these families."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.type}")
        for s in family.samples:
            if s.labels:
                labels = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in s.labels)
                lines.append(f"{s.name}{{{labels}}} {format_value(s.value)}")
            else:
                lines.append(f"{s.name} {format_value(s.value)}")
    return "\n".join(lines) + "\n"

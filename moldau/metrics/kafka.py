"""Kafka's broker metrics under the names Prometheus users already query.

Names follow the JMX exporter's standard Kafka rules (`lowercaseOutputName: true`):
`kafka.server:type=BrokerTopicMetrics,name=BytesInPerSec,topic=T` (a meter's Count)
becomes `kafka_server_brokertopicmetrics_bytesin_total{topic="T"}`; a gauge's Value
`kafka_<domain>_<type>_<name>`; a histogram quantiles plus `_count`. Consumer group and
partition offsets follow kafka_exporter (`kafka_consumergroup_lag{consumergroup,topic,
partition}`, ...). Each broker exposes what it knows: per-topic traffic for the
partitions it leads, controller gauges only while it is the controller (0 otherwise, as
Kafka), group lag for the groups it coordinates.

The broker reports events through `BrokerMetrics` methods (the hot-path ones take a
`TopicMetrics` it keeps per topic), and hands a `BrokerSnapshot` (plain data) to
`collect` at each scrape for everything that is a level rather than an event.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from moldau.metrics.registry import (
    KAFKA_QUANTILES,
    LATENCY_MS_BUCKETS,
    Counter,
    CounterChild,
    Family,
    Registry,
    Sample,
    bucket_quantile,
)
from moldau.protocol.errors import ErrorCode

# Kafka's RequestMetrics time components, in milliseconds (kafka.network.RequestChannel),
# those that have a counterpart here. Not exported: ResponseQueueTimeMs and
# ResponseSendTimeMs (a response is written to the socket by the task that made it, with
# no queue to a network thread), ThrottleTimeMs (no quotas).
REQUEST_TIMES = ("requestqueuetimems", "localtimems", "remotetimems")


def request_metric_names(api_name: str, from_follower: bool | None = None) -> tuple[str, ...]:
    """The `request` label values Kafka updates for one request: a fetch counts as
    `FetchFollower` or `FetchConsumer` and also as `Fetch` (RequestChannel.metricNames)."""
    if api_name == "Fetch" and from_follower is not None:
        return ("FetchFollower" if from_follower else "FetchConsumer", "Fetch")
    return (api_name,)


# Kafka's BrokerTopicMetrics meters, each exported per topic and once for all topics (a
# series without the label, Kafka's AllTopics*): (TopicCounters slot, exported name, help).
BROKER_TOPIC_METRICS: tuple[tuple[str, str, str], ...] = (
    ("bytes_in", "kafka_server_brokertopicmetrics_bytesin_total", "Bytes appended by producers (BytesInPerSec)"),
    ("bytes_out", "kafka_server_brokertopicmetrics_bytesout_total", "Bytes sent to consumers (BytesOutPerSec)"),
    ("messages_in", "kafka_server_brokertopicmetrics_messagesin_total", "Records appended (MessagesInPerSec)"),
    ("produce_requests", "kafka_server_brokertopicmetrics_totalproducerequests_total", "Produce requests per topic"),
    ("fetch_requests", "kafka_server_brokertopicmetrics_totalfetchrequests_total", "Fetch requests per topic"),
    ("failed_produce", "kafka_server_brokertopicmetrics_failedproducerequests_total",
     "Failed produce requests per topic"),
    ("failed_fetch", "kafka_server_brokertopicmetrics_failedfetchrequests_total", "Failed fetch requests per topic"),
)


class TopicCounters:
    """One child of each BrokerTopicMetrics counter: a topic's, or the all-topics series."""

    __slots__ = tuple(slot for slot, _, _ in BROKER_TOPIC_METRICS)
    bytes_in: CounterChild
    bytes_out: CounterChild
    messages_in: CounterChild
    produce_requests: CounterChild
    fetch_requests: CounterChild
    failed_produce: CounterChild
    failed_fetch: CounterChild

    def __init__(self, children: Mapping[str, CounterChild]) -> None:
        for slot in TopicCounters.__slots__:
            setattr(self, slot, children[slot])


class TopicMetrics(TopicCounters):
    """The counters one topic's traffic updates, looked up once and kept by the caller
    (a `Partition` holds its topic's): an event is a few plain adds, to the topic's series
    and to the all-topics one."""

    __slots__ = ("all_topics",)

    def __init__(self, counters: Mapping[str, Counter], topic: str, all_topics: TopicCounters) -> None:
        super().__init__({slot: counter.labels(topic) for slot, counter in counters.items()})
        self.all_topics = all_topics

    def appended(self, size_bytes: int, records: int) -> None:
        """A produce to this topic was appended by its leader (BytesIn, MessagesIn)."""
        self.bytes_in.value += size_bytes
        self.messages_in.value += records
        self.produce_requests.value += 1
        a = self.all_topics
        a.bytes_in.value += size_bytes
        a.messages_in.value += records
        a.produce_requests.value += 1

    def produce_failed(self) -> None:
        """A produce to this topic failed on the broker's side (Kafka does not count the
        client's mistakes here: unknown partition, not leader, too large, corrupt)."""
        self.produce_requests.value += 1
        self.failed_produce.value += 1
        self.all_topics.produce_requests.value += 1
        self.all_topics.failed_produce.value += 1

    def fetched(self, size_bytes: int) -> None:
        """A consumer's fetch from this topic returned `size_bytes` of records (BytesOut)."""
        self.bytes_out.value += size_bytes
        self.fetch_requests.value += 1
        self.all_topics.bytes_out.value += size_bytes
        self.all_topics.fetch_requests.value += 1

    def fetch_failed(self) -> None:
        self.fetch_requests.value += 1
        self.failed_fetch.value += 1
        self.all_topics.fetch_requests.value += 1
        self.all_topics.failed_fetch.value += 1


# Kafka's error names (Errors.name()), as the `error` label shows them.
ERROR_NAMES = {int(code): code.name.upper() for code in ErrorCode}


class RequestStats:
    """One kind of request (API, version, and for a fetch whether a follower sent it), as
    plain counts: how many, the error codes in their responses, and where their time went
    (Kafka's time histograms as bucket counts over a sliding window of two periods). The
    hot path is one `completed` call per request (a few searches and adds) and one add
    per error code; `request_families` turns them into Kafka's series at scrape time,
    where a fetch also counts under `Fetch` (summed, not counted twice)."""

    __slots__ = ("names", "version", "count", "sums", "current", "previous", "errors")

    def __init__(self, api_name: str, api_version: int, from_follower: bool | None = None) -> None:
        self.names = request_metric_names(api_name, from_follower)
        self.version = api_version
        self.count = 0
        self.sums = [0.0] * len(TIMES)  # per TIMES component
        self.current = [0] * (len(TIMES) * _STRIDE)  # per component, a count per bucket
        self.previous = [0] * (len(TIMES) * _STRIDE)
        self.errors: dict[int, int] = {}  # error code -> responses' count of it

    def completed(self, request_queue_ms: float, local_ms: float, remote_ms: float = 0.0) -> None:
        """A response was made (for acks=0: the request handled). Where its time went, in
        ms: read but waiting for the connection's earlier requests, in the handler,
        waiting elsewhere (acks=all for the followers)."""
        self.count += 1
        total_ms = request_queue_ms + local_ms + remote_ms
        sums, current, bounds = self.sums, self.current, LATENCY_MS_BUCKETS
        sums[0] += total_ms
        current[bisect_left(bounds, total_ms)] += 1
        sums[1] += request_queue_ms
        current[_STRIDE + bisect_left(bounds, request_queue_ms)] += 1
        sums[2] += local_ms
        current[2 * _STRIDE + bisect_left(bounds, local_ms)] += 1
        if remote_ms > 0.0:  # rare: acks=all
            sums[3] += remote_ms
            current[3 * _STRIDE + bisect_left(bounds, remote_ms)] += 1
        else:
            current[3 * _STRIDE] += 1

    def error_code(self, code: int) -> None:
        """The response carried this error code (Kafka's ErrorsPerSec counts every code in
        a response, one per partition, NONE included: successes)."""
        errors = self.errors
        errors[code] = errors.get(code, 0) + 1

    def rotate(self) -> None:
        self.previous = self.current
        self.current = [0] * len(self.previous)


# Kafka's RequestMetrics histograms: the total and its components (REQUEST_TIMES).
TIMES = ("totaltimems", *REQUEST_TIMES)
_STRIDE = len(LATENCY_MS_BUCKETS) + 1  # buckets per component, the last above every bound


def request_families(stats: Iterable[RequestStats]) -> list[Family]:
    """Kafka's request series from the request kinds seen: count by request and version,
    errors by request and error name, and per request name each time's quantiles (over
    the window), `_count` and `_sum`."""
    requests: dict[tuple[str, str], int] = {}
    errors: dict[tuple[str, str], int] = {}
    times: dict[str, tuple[list[int], list[float], list[int]]] = {}  # name -> (count, sums, window counts)
    for st in stats:
        window = [a + b for a, b in zip(st.previous, st.current, strict=True)]
        for name in st.names:
            key = (name, str(st.version))
            requests[key] = requests.get(key, 0) + st.count
            for code, n in st.errors.items():
                ekey = (name, ERROR_NAMES.get(code, str(code)))
                errors[ekey] = errors.get(ekey, 0) + n
            count, sums, counts = times.setdefault(name, ([0], [0.0] * len(TIMES), [0] * len(window)))
            count[0] += st.count
            for i, x in enumerate(st.sums):
                sums[i] += x
            for i, n in enumerate(window):
                counts[i] += n
    families = [
        Family("kafka_network_requestmetrics_requests_total", "counter", "Requests by API and version", tuple(
            Sample("kafka_network_requestmetrics_requests_total", (("request", r), ("version", v)), n)
            for (r, v), n in sorted(requests.items()))),
        Family("kafka_network_requestmetrics_errors_total", "counter", "Error codes in responses, by API", tuple(
            Sample("kafka_network_requestmetrics_errors_total", (("request", r), ("error", e)), n)
            for (r, e), n in sorted(errors.items()))),
    ]
    for t, time_name in enumerate(TIMES):
        family = f"kafka_network_requestmetrics_{time_name}"
        samples: list[Sample] = []
        for name, (count, sums, counts) in sorted(times.items()):
            window = counts[t * _STRIDE:(t + 1) * _STRIDE]
            label = (("request", name),)
            samples += [Sample(family, (*label, ("quantile", text)), bucket_quantile(window, LATENCY_MS_BUCKETS, q))
                        for text, q in KAFKA_QUANTILES]
            samples.append(Sample(family + "_count", label, count[0]))
            samples.append(Sample(family + "_sum", label, sums[t]))
        families.append(Family(family, "summary", f"Request {time_name[:-2]} in ms", tuple(samples)))
    return families


@dataclass(frozen=True)
class ReplicaState:
    """One partition replica on this broker, as the broker knows it at scrape time."""

    topic: str
    partition: int
    leader: int  # -1: none
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    is_leader: bool
    log_start_offset: int
    log_end_offset: int
    high_watermark: int
    size_bytes: int
    segments: int
    min_insync_replicas: int = 1


@dataclass(frozen=True)
class GroupState:
    """A group this broker coordinates: its members and committed offsets."""

    group_id: str
    members: int
    committed: Mapping[tuple[str, int], int]


@dataclass(frozen=True)
class BrokerSnapshot:
    """Every level the broker's gauges show, read by the broker when scraped."""

    replicas: Sequence[ReplicaState] = ()
    is_active_controller: bool = False
    offline_partitions: int = 0  # known to the controller only: 0 elsewhere, as in Kafka
    global_partitions: int = 0  # idem
    global_topics: int = 0  # idem
    live_brokers: int = 0
    request_queue_size: int = 0
    groups: Sequence[GroupState] = ()
    # high watermarks of partitions other brokers lead, for the lag of groups coordinated here
    remote_high_watermarks: Mapping[tuple[str, int], int] = field(default_factory=dict)
    # CPU seconds the broker's request handling (its event loop) has used so far, for
    # RequestHandlerAvgIdlePercent; None when unknown
    handler_busy_s: float | None = None


class BrokerMetrics:
    """Kafka's metrics for one broker: event methods for the broker to call, `collect`
    for the scrape."""

    def __init__(self, registry: Registry | None = None, window_s: float = 60.0) -> None:
        r = self.registry = registry or Registry()
        # Each per-topic family also has its broker-wide series, without the label.
        self.topic_counters = {
            slot: r.counter(name, help, ("topic",), aggregate=True) for slot, name, help in BROKER_TOPIC_METRICS
        }
        self.all_topics = TopicCounters({slot: _aggregate(c) for slot, c in self.topic_counters.items()})
        self.replication_bytes_in = r.counter(
            "kafka_server_brokertopicmetrics_replicationbytesin_total", "Bytes this broker's followers fetched"
        )
        self.replication_bytes_out = r.counter(
            "kafka_server_brokertopicmetrics_replicationbytesout_total", "Bytes followers fetched from this broker"
        )
        self.isr_shrinks = r.counter("kafka_server_replicamanager_isrshrinks_total", "ISR shrinks (IsrShrinksPerSec)")
        self.isr_expands = r.counter("kafka_server_replicamanager_isrexpands_total", "ISR expands (IsrExpandsPerSec)")
        self._topics: dict[str, TopicMetrics] = {}
        self._requests: dict[tuple[str, int, bool | None], RequestStats] = {}
        self._window_s = window_s
        self._requests_window_start: float | None = None
        # RequestHandlerAvgIdlePercent: 1 - busy time / wall time, over the last one to
        # two windows; (time, busy seconds) at the start of each of the last two windows.
        self._idle_marks: list[tuple[float, float]] = []
        self._idle_ratio = 1.0

    # ------------------------------------------------------------------- events

    def topic(self, name: str) -> TopicMetrics:
        """The topic's counters; keep it (one per topic) and call it on the hot path."""
        t = self._topics.get(name)
        if t is None:
            t = self._topics[name] = TopicMetrics(self.topic_counters, name, self.all_topics)
        return t

    def topic_deleted(self, name: str) -> None:
        self._topics.pop(name, None)
        for counter in self.topic_counters.values():
            counter.remove(name)

    def request(self, api_name: str, api_version: int, from_follower: bool | None = None) -> RequestStats:
        """The series for this kind of request (`RequestStats.completed` when answered).
        `from_follower` only for Fetch: True for a follower's fetch, False for a consumer's."""
        key = (api_name, api_version, from_follower)
        stats = self._requests.get(key)
        if stats is None:
            stats = self._requests[key] = RequestStats(api_name, api_version, from_follower)
        return stats

    def isr_shrunk(self) -> None:
        self.isr_shrinks.inc()

    def isr_expanded(self) -> None:
        self.isr_expands.inc()

    def replicated_in(self, size_bytes: int) -> None:
        self.replication_bytes_in.inc(size_bytes)

    def replicated_out(self, size_bytes: int) -> None:
        self.replication_bytes_out.inc(size_bytes)

    def tick(self, now: float, handler_busy_s: float | None = None, idle_window_s: float = 30.0) -> None:
        """Move the time windows (latency quantiles, handler idle ratio); called at each
        scrape (`handler_busy_s`: the handler's busy seconds so far, if known)."""
        self.registry.tick(now)
        if self._requests_window_start is None:
            self._requests_window_start = now
        elapsed = now - self._requests_window_start
        if elapsed >= self._window_s:  # the latency windows move (as registry.Summary's)
            for stats in self._requests.values():
                stats.rotate()
                if elapsed >= 2 * self._window_s:
                    stats.rotate()
            self._requests_window_start = now
        if handler_busy_s is None:
            return
        marks = self._idle_marks
        if not marks or now - marks[-1][0] >= idle_window_s:
            marks.append((now, handler_busy_s))
            del marks[:-2]
        start, busy_at_start = marks[0]
        if now - start >= 1.0:
            busy = handler_busy_s - busy_at_start
            self._idle_ratio = max(0.0, min(1.0, 1.0 - busy / (now - start)))

    # ------------------------------------------------------------------- scrape

    def collect(self, snapshot: BrokerSnapshot, now: float) -> list[Family]:
        self.tick(now, snapshot.handler_busy_s)
        return [
            *self.registry.collect(now),
            *request_families(self._requests.values()),
            *level_families(snapshot, self._idle_ratio),
        ]


def _aggregate(counter: Counter) -> CounterChild:
    assert counter.aggregate is not None
    return counter.aggregate


def _gauge(name: str, help: str, samples: Iterable[tuple[tuple[tuple[str, str], ...], float]]) -> Family:
    return Family(name, "gauge", help, tuple(Sample(name, labels, value) for labels, value in samples))


def _partition_labels(r: ReplicaState) -> tuple[tuple[str, str], ...]:
    return (("topic", r.topic), ("partition", str(r.partition)))


def level_families(s: BrokerSnapshot, handler_idle_ratio: float = 1.0) -> list[Family]:
    """Every gauge, from the snapshot: the JMX exporter's names, then kafka_exporter's."""
    led = [r for r in s.replicas if r.is_leader]
    tp = _partition_labels
    families = [
        _gauge(
            "kafka_server_replicamanager_underreplicatedpartitions",
            "Partitions led here whose ISR is smaller than their replicas",
            [((), sum(1 for r in led if len(r.isr) < len(r.replicas)))],
        ),
        _gauge(
            "kafka_server_replicamanager_underminisrpartitioncount",
            "Partitions led here whose ISR is smaller than min.insync.replicas",
            [((), sum(1 for r in led if len(r.isr) < r.min_insync_replicas))],
        ),
        _gauge("kafka_server_replicamanager_leadercount", "Partitions led by this broker", [((), len(led))]),
        _gauge(
            "kafka_server_replicamanager_partitioncount", "Partition replicas on this broker", [((), len(s.replicas))]
        ),
        _gauge(
            "kafka_controller_kafkacontroller_activecontrollercount",
            "1 on the active controller, else 0",
            [((), 1 if s.is_active_controller else 0)],
        ),
        _gauge(
            "kafka_controller_kafkacontroller_offlinepartitionscount",
            "Partitions without a leader (controller only)",
            [((), s.offline_partitions if s.is_active_controller else 0)],
        ),
        _gauge(
            "kafka_controller_kafkacontroller_globalpartitioncount",
            "Partitions in the cluster (controller only)",
            [((), s.global_partitions if s.is_active_controller else 0)],
        ),
        _gauge(
            "kafka_controller_kafkacontroller_globaltopiccount",
            "Topics in the cluster (controller only)",
            [((), s.global_topics if s.is_active_controller else 0)],
        ),
        _gauge(
            "kafka_log_log_size",
            "Bytes of a partition's log on this broker",
            [(tp(r), r.size_bytes) for r in s.replicas],
        ),
        _gauge("kafka_log_log_logstartoffset", "Log start offset", [(tp(r), r.log_start_offset) for r in s.replicas]),
        _gauge("kafka_log_log_logendoffset", "Log end offset", [(tp(r), r.log_end_offset) for r in s.replicas]),
        _gauge(
            "kafka_log_log_numlogsegments", "Segments in a partition's log", [(tp(r), r.segments) for r in s.replicas]
        ),
        _gauge(
            "kafka_network_requestchannel_requestqueuesize",
            "Requests read but not yet handled",
            [((), s.request_queue_size)],
        ),
        _gauge(
            "kafka_server_kafkarequesthandlerpool_requesthandleravgidle_percent",
            "Fraction of time request handling was idle (0..1)",
            [((), handler_idle_ratio)],
        ),
        *exporter_families(s),
    ]
    return families


def exporter_families(s: BrokerSnapshot) -> list[Family]:
    """kafka_exporter's topic and consumer group series, for what this broker knows."""
    led = sorted((r for r in s.replicas if r.is_leader), key=lambda r: (r.topic, r.partition))
    tp = _partition_labels
    partitions_per_topic: dict[str, int] = {}
    for r in led:
        partitions_per_topic[r.topic] = partitions_per_topic.get(r.topic, 0) + 1
    high_watermarks = dict(s.remote_high_watermarks)
    high_watermarks.update({(r.topic, r.partition): r.high_watermark for r in led})
    lag: list[tuple[tuple[tuple[str, str], ...], float]] = []
    current: list[tuple[tuple[tuple[str, str], ...], float]] = []
    lag_sum: dict[tuple[str, str], int] = {}
    for g in sorted(s.groups, key=lambda g: g.group_id):
        for (topic, partition), offset in sorted(g.committed.items()):
            labels = (("consumergroup", g.group_id), ("partition", str(partition)), ("topic", topic))
            current.append((labels, offset))
            hw = high_watermarks.get((topic, partition))
            if hw is not None:
                value = max(0, hw - offset)
                lag.append((labels, value))
                lag_sum[(g.group_id, topic)] = lag_sum.get((g.group_id, topic), 0) + value
    return [
        _gauge("kafka_brokers", "Number of Brokers in the Kafka Cluster", [((), s.live_brokers)]),
        _gauge(
            "kafka_topic_partitions",
            "Number of partitions for this Topic (led here)",
            [((("topic", t),), n) for t, n in sorted(partitions_per_topic.items())],
        ),
        _gauge("kafka_topic_partition_current_offset", "High watermark", [(tp(r), r.high_watermark) for r in led]),
        _gauge("kafka_topic_partition_oldest_offset", "Log start offset", [(tp(r), r.log_start_offset) for r in led]),
        _gauge("kafka_topic_partition_in_sync_replica", "ISR size", [(tp(r), len(r.isr)) for r in led]),
        _gauge("kafka_topic_partition_leader", "Leader broker id", [(tp(r), r.leader) for r in led]),
        _gauge("kafka_topic_partition_replicas", "Replica count", [(tp(r), len(r.replicas)) for r in led]),
        _gauge(
            "kafka_topic_partition_under_replicated_partition",
            "1 if under-replicated",
            [(tp(r), 1 if len(r.isr) < len(r.replicas) else 0) for r in led],
        ),
        _gauge(
            "kafka_topic_partition_leader_is_preferred",
            "1 if the leader is the first replica",
            [(tp(r), 1 if r.replicas and r.replicas[0] == r.leader else 0) for r in led],
        ),
        _gauge("kafka_consumergroup_current_offset", "Committed offset of a group at a partition", current),
        _gauge("kafka_consumergroup_lag", "High watermark minus committed offset", lag),
        _gauge(
            "kafka_consumergroup_lag_sum",
            "Lag of a group over a topic's partitions",
            [((("consumergroup", g), ("topic", t)), v) for (g, t), v in sorted(lag_sum.items())],
        ),
        _gauge(
            "kafka_consumergroup_members",
            "Members of a consumer group",
            [((("consumergroup", g.group_id),), g.members) for g in sorted(s.groups, key=lambda g: g.group_id)],
        ),
    ]

"""The metrics registry, Kafka's metric names and values after simulated traffic, the
Prometheus text exposition (parsed back with prometheus_client's own parser), and the
/metrics HTTP endpoint on a real asyncio server."""

from __future__ import annotations

import asyncio
import math

import pytest
from prometheus_client.parser import text_string_to_metric_families

from moldau.metrics import http
from moldau.metrics.kafka import BrokerMetrics, BrokerSnapshot, GroupState, ReplicaState
from moldau.metrics.registry import CONTENT_TYPE, Registry, Summary, exposition, log_buckets


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample by (name, sorted labels), as Prometheus would read the page."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def types(text: str) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(text)}


# ------------------------------------------------------------------------ registry


def test_counters_and_gauges_round_trip_through_the_text_format() -> None:
    r = Registry()
    c = r.counter("demo_bytes_total", "Bytes", ("topic",), aggregate=True)
    c.labels("a").inc(3)
    c.labels('we"ird\\name\n').inc(2)
    c.aggregate.inc(5)  # type: ignore[union-attr]
    g = r.gauge("demo_level", "A level", ("k",))
    g.set(1.5, "x")
    f = r.gauge("demo_computed", "From a function")
    f.set_function(lambda: [((), 42)])
    text = exposition(r.collect(now=0.0))
    got = parse(text)
    assert got[("demo_bytes_total", ())] == 5
    assert got[("demo_bytes_total", (("topic", "a"),))] == 3
    assert got[("demo_bytes_total", (("topic", 'we"ird\\name\n'),))] == 2
    assert got[("demo_level", (("k", "x"),))] == 1.5
    assert got[("demo_computed", ())] == 42
    assert types(text) == {"demo_bytes": "counter", "demo_level": "gauge", "demo_computed": "gauge"}
    c.remove("a")
    assert ("demo_bytes_total", (("topic", "a"),)) not in parse(exposition(r.collect(now=0.0)))


def test_registry_refuses_bad_names_duplicates_and_wrong_labels() -> None:
    r = Registry()
    r.counter("x_total", "x")
    with pytest.raises(ValueError, match="registered twice"):
        r.counter("x_total", "again")
    with pytest.raises(ValueError, match="not a Prometheus metric name"):
        r.gauge("1bad-name", "x")
    with pytest.raises(ValueError, match="takes labels"):
        r.counter("y_total", "y", ("topic",)).labels("a", "b")


def test_summary_quantiles_count_sum_and_window() -> None:
    s = Summary("lat_ms", "latency", ("request",), window_s=60.0)
    child = s.labels("Produce")
    for ms in range(1, 1001):
        child.observe(float(ms))
    got = parse(exposition([s.collect(now=0.0)]))
    q = {dict(k[1])["quantile"]: v for k, v in got.items() if k[0] == "lat_ms"}
    assert q.keys() == {"0.50", "0.75", "0.95", "0.98", "0.99", "0.999"}
    for text, expected in [("0.50", 500), ("0.95", 950), ("0.99", 990)]:
        assert abs(q[text] - expected) / expected < 0.13, (text, q[text])  # bucket resolution
    assert got[("lat_ms_count", (("request", "Produce"),))] == 1000
    assert got[("lat_ms_sum", (("request", "Produce"),))] == sum(range(1, 1001))
    # One window later the old values are still in the previous period; two later, gone.
    s.tick(61.0)
    assert not math.isnan(child.quantile(0.5))
    s.tick(122.0)
    assert math.isnan(child.quantile(0.5))
    assert child.count == 1000  # counts never reset


def test_log_buckets() -> None:
    bounds = log_buckets(1.0, 1000.0, 1)
    assert bounds == (1.0, 10.0, 100.0, 1000.0)


# --------------------------------------------------------------------- Kafka names


def snapshot() -> BrokerSnapshot:
    return BrokerSnapshot(
        replicas=[
            ReplicaState("orders", 0, 1, (1, 2, 3), (1, 2, 3), True, 0, 120, 120, 4096, 2),
            ReplicaState("orders", 1, 1, (1, 2, 3), (1, 3), True, 10, 50, 48, 1024, 1),
            ReplicaState("orders", 2, 2, (2, 1, 3), (2, 1, 3), False, 0, 70, 70, 2048, 1),
        ],
        is_active_controller=True,
        offline_partitions=1,
        global_partitions=3,
        global_topics=1,
        live_brokers=3,
        request_queue_size=4,
        groups=[GroupState("billing", 2, {("orders", 0): 100, ("orders", 1): 48, ("orders", 2): 60})],
        remote_high_watermarks={("orders", 2): 70},
    )


def test_kafka_metrics_after_traffic_have_the_exporters_names_and_values() -> None:
    m = BrokerMetrics()
    orders, other = m.topic("orders"), m.topic("clicks")
    for _ in range(3):
        orders.appended(size_bytes=1000, records=10)
    other.appended(size_bytes=70, records=1)
    orders.produce_failed()
    orders.fetched(size_bytes=500)
    produce = m.request("Produce", 9)
    produce.completed(request_queue_ms=0.5, local_ms=2.0, remote_ms=7.5)
    produce.completed(request_queue_ms=0.0, local_ms=1.0)
    m.request("Fetch", 12, from_follower=True).completed(request_queue_ms=0.0, local_ms=1.0, remote_ms=500.0)
    m.request("Fetch", 12, from_follower=False).completed(request_queue_ms=0.0, local_ms=1.0)
    produce.error_code(6)  # NOT_LEADER_OR_FOLLOWER
    produce.error_code(0)
    m.isr_shrunk()
    m.isr_shrunk()
    m.isr_expanded()
    m.replicated_out(300)

    text = exposition(m.collect(snapshot(), now=0.0))
    got = parse(text)

    def value(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    assert value("kafka_server_brokertopicmetrics_bytesin_total", topic="orders") == 3000
    assert value("kafka_server_brokertopicmetrics_bytesin_total") == 3070  # all topics
    assert value("kafka_server_brokertopicmetrics_messagesin_total", topic="orders") == 30
    assert value("kafka_server_brokertopicmetrics_messagesin_total") == 31
    assert value("kafka_server_brokertopicmetrics_bytesout_total", topic="orders") == 500
    assert value("kafka_server_brokertopicmetrics_failedproducerequests_total", topic="orders") == 1
    assert value("kafka_server_brokertopicmetrics_totalproducerequests_total", topic="orders") == 4
    assert value("kafka_server_brokertopicmetrics_replicationbytesout_total") == 300
    assert value("kafka_network_requestmetrics_requests_total", request="Produce", version="9") == 2
    assert value("kafka_network_requestmetrics_requests_total", request="FetchFollower", version="12") == 1
    assert value("kafka_network_requestmetrics_requests_total", request="FetchConsumer", version="12") == 1
    assert value("kafka_network_requestmetrics_requests_total", request="Fetch", version="12") == 2
    assert value("kafka_network_requestmetrics_errors_total", request="Produce", error="NOT_LEADER_OR_FOLLOWER") == 1
    assert value("kafka_network_requestmetrics_errors_total", request="Produce", error="NONE") == 1  # as Kafka
    assert value("kafka_network_requestmetrics_totaltimems_count", request="Produce") == 2
    assert value("kafka_network_requestmetrics_totaltimems_sum", request="Produce") == 11.0
    assert value("kafka_network_requestmetrics_remotetimems_sum", request="FetchFollower") == 500.0
    assert 9.0 <= value("kafka_network_requestmetrics_totaltimems", request="Produce", quantile="0.99") <= 11.5
    assert value("kafka_server_replicamanager_isrshrinks_total") == 2
    assert value("kafka_server_replicamanager_isrexpands_total") == 1

    assert value("kafka_server_replicamanager_underreplicatedpartitions") == 1  # orders-1, led here
    assert value("kafka_server_replicamanager_leadercount") == 2
    assert value("kafka_server_replicamanager_partitioncount") == 3
    assert value("kafka_controller_kafkacontroller_activecontrollercount") == 1
    assert value("kafka_controller_kafkacontroller_offlinepartitionscount") == 1
    assert value("kafka_log_log_size", topic="orders", partition="0") == 4096
    assert value("kafka_log_log_size", topic="orders", partition="2") == 2048  # followers too
    assert value("kafka_log_log_logendoffset", topic="orders", partition="1") == 50
    assert value("kafka_network_requestchannel_requestqueuesize") == 4

    assert value("kafka_brokers") == 3
    assert value("kafka_topic_partitions", topic="orders") == 2
    assert value("kafka_topic_partition_current_offset", topic="orders", partition="1") == 48  # the HW
    assert value("kafka_topic_partition_under_replicated_partition", topic="orders", partition="1") == 1
    assert value("kafka_consumergroup_current_offset", consumergroup="billing", topic="orders", partition="0") == 100
    assert value("kafka_consumergroup_lag", consumergroup="billing", topic="orders", partition="0") == 20
    assert value("kafka_consumergroup_lag", consumergroup="billing", topic="orders", partition="1") == 0
    assert value("kafka_consumergroup_lag", consumergroup="billing", topic="orders", partition="2") == 10
    assert value("kafka_consumergroup_lag_sum", consumergroup="billing", topic="orders") == 30
    assert value("kafka_consumergroup_members", consumergroup="billing") == 2

    kinds = types(text)
    assert kinds["kafka_network_requestmetrics_totaltimems"] == "summary"
    assert kinds["kafka_server_brokertopicmetrics_bytesin"] == "counter"
    assert kinds["kafka_consumergroup_lag"] == "gauge"


def test_controller_gauges_are_zero_on_other_brokers() -> None:
    s = BrokerSnapshot(is_active_controller=False, offline_partitions=5)
    got = parse(exposition(BrokerMetrics().collect(s, now=0.0)))
    assert got[("kafka_controller_kafkacontroller_activecontrollercount", ())] == 0
    assert got[("kafka_controller_kafkacontroller_offlinepartitionscount", ())] == 0


def test_a_deleted_topic_leaves_the_exposition() -> None:
    m = BrokerMetrics()
    m.topic("gone").appended(10, 1)
    m.topic_deleted("gone")
    got = parse(exposition(m.collect(BrokerSnapshot(), now=0.0)))
    assert not [k for k in got if ("topic", "gone") in k[1]]
    assert got[("kafka_server_brokertopicmetrics_bytesin_total", ())] == 10  # the broker total stays


def test_handler_idle_ratio_comes_from_handler_busy_time() -> None:
    m = BrokerMetrics()

    def idle(now: float, busy_s: float) -> float:
        got = parse(exposition(m.collect(BrokerSnapshot(handler_busy_s=busy_s), now=now)))
        return got[("kafka_server_kafkarequesthandlerpool_requesthandleravgidle_percent", ())]

    assert idle(0.0, 100.0) == 1.0  # nothing measured yet
    assert idle(15.0, 103.0) == pytest.approx(0.8)  # 3 s busy in 15 s
    assert idle(60.0, 115.0) == pytest.approx(0.75)  # 15 s in 60 s
    assert idle(90.0, 145.0) == pytest.approx(0.0)  # the last window: 30 s busy in 30 s


# ---------------------------------------------------------------------------- HTTP


def render() -> str:
    return exposition(BrokerMetrics().collect(BrokerSnapshot(live_brokers=1), now=0.0))


def test_respond() -> None:
    ok = http.respond(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", render)
    head, body = ok.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK") and f"Content-Type: {CONTENT_TYPE}".encode() in head
    assert f"Content-Length: {len(body)}".encode() in head
    assert parse(body.decode())[("kafka_brokers", ())] == 1
    assert http.respond(b"HEAD /metrics HTTP/1.1\r\n\r\n", render).endswith(b"\r\n\r\n")
    assert http.respond(b"POST /metrics HTTP/1.1\r\n\r\n", render).startswith(b"HTTP/1.1 405")
    assert http.respond(b"GET /other HTTP/1.1\r\n\r\n", render).startswith(b"HTTP/1.1 404")
    assert http.respond(b"\xff\xfe garbage\r\n\r\n", render).startswith(b"HTTP/1.1 400")
    assert http.respond(b"GET /metrics SPDY/3\r\n\r\n", render).startswith(b"HTTP/1.1 505")


def test_metrics_server_serves_scrapes_and_drops_stalled_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "HEAD_TIMEOUT_S", 0.3)

    async def scenario() -> None:
        server = await http.start_metrics_server("127.0.0.1", 0, render)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            answer = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            head, body = answer.split(b"\r\n\r\n", 1)
            assert head.startswith(b"HTTP/1.1 200 OK")
            assert parse(body.decode())[("kafka_brokers", ())] == 1

            stalled_reader, stalled = await asyncio.open_connection("127.0.0.1", port)
            stalled.write(b"GET /metr")  # and nothing more
            assert await asyncio.wait_for(stalled_reader.read(), 5) == b""  # closed by the server
            stalled.close()

            big_reader, big = await asyncio.open_connection("127.0.0.1", port)
            big.write(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * (2 * http.MAX_HEAD_BYTES) + b"\r\n\r\n")
            assert (await asyncio.wait_for(big_reader.read(), 5)).startswith(b"HTTP/1.1 431")
            big.close()
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(scenario())


def test_request_latencies_age_out_of_the_window_but_counts_stay() -> None:
    m = BrokerMetrics(window_s=60.0)
    fetch = m.request("Fetch", 12, from_follower=False)
    m.tick(now=0.0)
    for ms in (1.0, 2.0, 400.0):
        fetch.completed(request_queue_ms=0.0, local_ms=ms)

    def scraped(now: float) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return parse(exposition(m.collect(BrokerSnapshot(), now=now)))

    got = scraped(61.0)  # the previous period still counts
    assert 1.0 < got[("kafka_network_requestmetrics_localtimems", (("quantile", "0.50"), ("request", "Fetch")))] < 2.5
    assert got[("kafka_network_requestmetrics_localtimems", (("quantile", "0.99"), ("request", "FetchConsumer")))] > 300
    got = scraped(200.0)  # two periods later: nothing recent
    assert math.isnan(got[("kafka_network_requestmetrics_totaltimems", (("quantile", "0.50"), ("request", "Fetch")))])
    assert got[("kafka_network_requestmetrics_totaltimems_count", (("request", "Fetch"),))] == 3
    assert got[("kafka_network_requestmetrics_localtimems_sum", (("request", "FetchConsumer"),))] == 403.0

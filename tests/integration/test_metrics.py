"""Prometheus metrics of a real broker process after real traffic (confluent-kafka):
scraped over HTTP and parsed with prometheus_client's parser, checking values against
what was produced, consumed and committed; and what bad metrics settings get."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import BrokerProcess, env_with_repo_on_path, free_port

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = answer.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of `name` with these labels (whatever the others)."""
    return sum(v for (n, have), v in samples.items() if n == name and set(labels.items()) <= set(have))


def eventually(port: int, check: Callable[[Samples], bool], timeout: float = 10.0) -> Samples:
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(port)
        if check(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.1)


def test_metrics_after_real_traffic(make_broker: Callable[..., BrokerProcess]) -> None:
    metrics_port = free_port()
    broker = make_broker({"metrics.port": str(metrics_port), "offsets.topic.num.partitions": "1",
                          "group.initial.rebalance.delay.ms": "0"})
    topic, group = f"m-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(15)

    values = [f"value-{i:03d}-".encode() * (1 + i % 7) for i in range(50)]
    delivered: list[int] = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5,
                         "compression.type": "none"})
    for v in values:
        producer.produce(topic, v, partition=0, on_delivery=lambda e, m: e is None and delivered.append(m.offset()))
    assert producer.flush(20) == 0 and len(delivered) == 50

    s = scrape(metrics_port)
    bytes_in = value(s, "kafka_server_brokertopicmetrics_bytesin_total", topic=topic)
    payload = sum(map(len, values))
    produce_requests = total(s, "kafka_network_requestmetrics_requests_total", request="Produce")
    assert produce_requests >= 1
    # The record batches as sent: the values plus each batch's 61-byte header and a few
    # bytes of framing per record.
    assert payload < bytes_in <= payload + 61 * produce_requests + 12 * len(values), (payload, bytes_in)
    assert value(s, "kafka_server_brokertopicmetrics_messagesin_total", topic=topic) == 50
    assert value(s, "kafka_server_brokertopicmetrics_messagesin_total") == 50  # all topics: nothing else produced
    assert value(s, "kafka_server_brokertopicmetrics_totalproducerequests_total", topic=topic) == produce_requests
    assert value(s, "kafka_log_log_size", topic=topic, partition="0") == bytes_in  # stored byte for byte
    assert value(s, "kafka_log_log_logendoffset", topic=topic, partition="0") == 50
    assert value(s, "kafka_topic_partition_current_offset", partition="0", topic=topic) == 50
    assert value(s, "kafka_server_replicamanager_underreplicatedpartitions") == 0
    assert value(s, "kafka_controller_kafkacontroller_activecontrollercount") == 1
    assert value(s, "kafka_server_replicamanager_leadercount") >= 1

    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "session.timeout.ms": 6000, "fetch.wait.max.ms": 200})
    try:
        consumer.subscribe([topic])
        got: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(got) < 50 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got.append(msg.value())
        assert got == values
        assert consumer.poll(0.8) is None  # nothing new: the consumer's fetches wait (delayed fetches)
        consumer.commit(offsets=[TopicPartition(topic, 0, 30)], asynchronous=False)
        s = eventually(metrics_port, lambda s: ("kafka_consumergroup_lag", (
            ("consumergroup", group), ("partition", "0"), ("topic", topic))) in s)
        assert value(s, "kafka_consumergroup_current_offset", consumergroup=group, partition="0", topic=topic) == 30
        assert value(s, "kafka_consumergroup_lag", consumergroup=group, partition="0", topic=topic) == 20
        assert value(s, "kafka_consumergroup_lag_sum", consumergroup=group, topic=topic) == 20
        assert value(s, "kafka_consumergroup_members", consumergroup=group) == 1
        assert value(s, "kafka_server_brokertopicmetrics_bytesout_total", topic=topic) >= bytes_in  # all read once
        assert value(s, "kafka_server_brokertopicmetrics_totalfetchrequests_total", topic=topic) >= 1
        assert total(s, "kafka_network_requestmetrics_requests_total", request="FetchConsumer") >= 1
        assert total(s, "kafka_network_requestmetrics_requests_total", request="FetchFollower") == 0  # none here
        # A fetch waiting for data waits in remote time (Kafka's), not in the handler's local time.
        assert value(s, "kafka_network_requestmetrics_remotetimems_sum", request="FetchConsumer") >= 150
        assert value(s, "kafka_network_requestmetrics_localtimems", request="FetchConsumer", quantile="0.50") < 100
        assert value(s, "kafka_network_requestmetrics_totaltimems_count", request="Produce") == produce_requests
        assert value(s, "kafka_network_requestmetrics_errors_total", request="Produce", error="NONE") \
            == produce_requests  # one partition per request, all accepted

        consumer.commit(offsets=[TopicPartition(topic, 0, 50)], asynchronous=False)
        s = scrape(metrics_port)
        assert value(s, "kafka_consumergroup_lag", consumergroup=group, partition="0", topic=topic) == 0
        assert value(s, "kafka_consumergroup_current_offset", consumergroup=group, partition="0", topic=topic) == 50
    finally:
        consumer.close()


def _busy_port() -> tuple[socket.socket, int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s, s.getsockname()[1]


def test_bad_metrics_settings_get_a_clear_message(tmp_path) -> None:  # type: ignore[no-untyped-def]
    def moldau(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "moldau.cli.main", *args], capture_output=True, text=True,
                              timeout=30, env=env_with_repo_on_path(), stdin=subprocess.DEVNULL)

    bad = moldau("server", "--override", "metrics.port=70000", "--override", f"log.dirs={tmp_path / 'a'}")
    assert bad.returncode == 2 and "metrics.port: 70000 is out of range" in bad.stderr
    bad = moldau("server", "--override", "metrics.listener=tcp://127.0.0.1:1", "--override",
                 f"log.dirs={tmp_path / 'b'}")
    assert bad.returncode == 2 and "is not of the form http://host:port" in bad.stderr
    bad = moldau("dev", "--metrics-port", "-3", "--data-dir", str(tmp_path / "c"))
    assert bad.returncode == 2 and "--metrics-port -3 is out of range" in bad.stderr
    holder, port = _busy_port()
    try:
        taken = moldau("server", "--override", f"listeners=PLAINTEXT://127.0.0.1:{free_port()}",
                       "--override", f"metrics.port={port}", "--override", f"log.dirs={tmp_path / 'd'}")
    finally:
        holder.close()
    assert taken.returncode == 1 and f"metrics.port: cannot serve metrics on 127.0.0.1:{port}" in taken.stderr

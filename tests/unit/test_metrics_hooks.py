"""Where the broker's metrics are counted: the replica manager's events (appends, consumer
and follower fetches, replication, ISR changes) on three in-memory brokers with real
logs, reported to a real `BrokerMetrics` each; the dispatcher's request hook (error codes
found in kio responses, time components); the scrape-time snapshot."""
from __future__ import annotations

import asyncio
import datetime
import time
from pathlib import Path

from kio.schema.fetch.v12.response import FetchResponse
from kio.schema.produce.v9.response import PartitionProduceResponse, ProduceResponse, TopicProduceResponse

from moldau.log.config import LogConfig
from moldau.metrics.kafka import BrokerMetrics, BrokerSnapshot
from moldau.metrics.registry import exposition
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import RecordInput, build_batch
from moldau.replication.replica_manager import FetchParams, FetchPartitionRequest, FetchResults, ReplicaManager
from moldau.server.broker_metrics import RequestMetrics, error_code_paths
from tests.unit.replication_fakes import Cluster, ControllerState, FakeController, ManualClock, ManualScheduler
from tests.unit.test_metrics import parse

TP = ("t", 0)


def scrape(m: BrokerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return parse(exposition(m.collect(BrokerSnapshot(), now=0.0)))


def value(m: BrokerMetrics, name: str, **labels: str) -> float:
    return scrape(m).get((name, tuple(sorted(labels.items()))), 0.0)


def make_cluster(tmp_path: Path, min_isr: int = 1, lag_ms: int = 1000) -> tuple[Cluster, dict[int, BrokerMetrics]]:
    clock = ManualClock()
    controller = FakeController()
    cluster = Cluster(tmp_path, LogConfig(min_insync_replicas=min_isr), clock, ManualScheduler(clock), controller,
                      lag_ms)
    controller.states[TP] = ControllerState(0, 0, (0, 1, 2), (0, 1, 2))
    metrics = {b: BrokerMetrics() for b in (0, 1, 2)}
    cluster.stats.update(metrics)
    for b in (0, 1, 2):
        cluster.start(b)
    cluster.send_leader_and_isr(TP)
    return cluster, metrics


def batch(n: int, size: int = 10) -> bytes:
    return build_batch([RecordInput(b"x" * size, f"k{i}".encode()) for i in range(n)], timestamp=1)


async def replicate(cluster: Cluster, followers: tuple[int, ...] = (1, 2), rounds: int = 3) -> None:
    for _ in range(rounds):
        for b in followers:
            for fetcher in list(cluster.brokers[b].fetchers.values()):
                await fetcher.do_work(cluster.clock() / 1000)
        await asyncio.sleep(0)  # AlterPartition tasks


def consumer_fetch(rm: ReplicaManager, offset: int, max_wait_ms: int = 0) -> list[FetchResults]:
    out: list[FetchResults] = []
    rm.fetch_records(FetchParams(-1, max_wait_ms, 1, 1 << 20, ((TP, FetchPartitionRequest(offset, 1 << 20)),)),
                     out.append)
    return out


def test_appends_fetches_replication_and_isr_changes_are_counted_where_they_happen(tmp_path: Path) -> None:
    async def test() -> None:
        cluster, metrics = make_cluster(tmp_path)
        leader, m0 = cluster.brokers[0], metrics[0]
        first, second = batch(5), batch(3, size=100)
        for data in (first, second):
            out: list[object] = []
            leader.append_records(1, 1000, [(TP, data)], out.append)
            assert out
        assert value(m0, "kafka_server_brokertopicmetrics_bytesin_total", topic="t") == len(first) + len(second)
        assert value(m0, "kafka_server_brokertopicmetrics_messagesin_total", topic="t") == 8
        assert value(m0, "kafka_server_brokertopicmetrics_messagesin_total") == 8  # all topics
        assert value(m0, "kafka_server_brokertopicmetrics_totalproducerequests_total", topic="t") == 2
        # A produce to a follower is the client's mistake: counted nowhere.
        follower_out: list[object] = []
        cluster.brokers[1].append_records(1, 1000, [(TP, batch(1))], follower_out.append)
        assert value(metrics[1], "kafka_server_brokertopicmetrics_totalproducerequests_total", topic="t") == 0

        await replicate(cluster)
        total = len(first) + len(second)
        for b in (1, 2):  # each follower copied every byte once
            assert value(metrics[b], "kafka_server_brokertopicmetrics_replicationbytesin_total") == total
            assert value(metrics[b], "kafka_server_brokertopicmetrics_bytesin_total", topic="t") == 0
        assert value(m0, "kafka_server_brokertopicmetrics_replicationbytesout_total") == 2 * total
        assert value(m0, "kafka_server_brokertopicmetrics_bytesout_total", topic="t") == 0  # not consumers

        answered = consumer_fetch(leader, 0)
        assert answered and len(answered[0][0][1].records) == total
        assert value(m0, "kafka_server_brokertopicmetrics_bytesout_total", topic="t") == total
        assert value(m0, "kafka_server_brokertopicmetrics_totalfetchrequests_total", topic="t") == 1

        # A delayed fetch is counted once, when answered, not at each check while it waits.
        waiting = consumer_fetch(leader, 8, max_wait_ms=10_000)
        assert waiting == []
        third = batch(2)
        leader.append_records(1, 1000, [(TP, third)], lambda _r: None)
        await replicate(cluster)
        assert waiting and len(waiting[0][0][1].records) == len(third)
        assert value(m0, "kafka_server_brokertopicmetrics_bytesout_total", topic="t") == total + len(third)
        assert value(m0, "kafka_server_brokertopicmetrics_totalfetchrequests_total", topic="t") == 2

        # Broker 2 stops fetching: the leader shrinks the ISR, then expands it when it is back.
        assert value(m0, "kafka_server_replicamanager_isrshrinks_total") == 0
        cluster.clock.now_ms += 2000
        await replicate(cluster, followers=(1,))
        leader.check_isr(cluster.clock())
        await asyncio.sleep(0)
        assert cluster.controller.states[TP].isr == (0, 1)
        assert value(m0, "kafka_server_replicamanager_isrshrinks_total") == 1
        assert value(m0, "kafka_server_replicamanager_isrexpands_total") == 0
        await replicate(cluster)
        assert cluster.controller.states[TP].isr == (0, 1, 2)
        assert value(m0, "kafka_server_replicamanager_isrexpands_total") == 1
        assert value(m0, "kafka_server_replicamanager_isrshrinks_total") == 1
        for b in (1, 2):  # only the leader changes an ISR
            assert value(metrics[b], "kafka_server_replicamanager_isrshrinks_total") == 0
    asyncio.run(test())


def test_a_produce_refused_for_min_insync_replicas_is_a_failed_produce(tmp_path: Path) -> None:
    async def test() -> None:
        cluster, metrics = make_cluster(tmp_path, min_isr=2)
        leader = cluster.brokers[0]
        cluster.clock.now_ms += 2000  # neither follower fetched: both leave the ISR
        leader.check_isr(cluster.clock())
        await asyncio.sleep(0)
        assert cluster.controller.states[TP].isr == (0,)
        out: list[dict] = []  # type: ignore[type-arg]
        leader.append_records(-1, 1000, [(TP, batch(1))], out.append)
        assert out[0][TP].error == ErrorCode.not_enough_replicas
        m0 = metrics[0]
        assert value(m0, "kafka_server_brokertopicmetrics_failedproducerequests_total", topic="t") == 1
        assert value(m0, "kafka_server_brokertopicmetrics_totalproducerequests_total", topic="t") == 1
        assert value(m0, "kafka_server_brokertopicmetrics_bytesin_total", topic="t") == 0
        # A corrupt batch is the client's mistake (Kafka does not count it as failed).
        bad = bytearray(batch(1))
        bad[-1] ^= 0xFF
        leader.append_records(1, 1000, [(TP, bytes(bad))], out.append)
        assert out[-1][TP].error == ErrorCode.corrupt_message
        assert value(m0, "kafka_server_brokertopicmetrics_failedproducerequests_total", topic="t") == 1
    asyncio.run(test())


def test_error_codes_are_found_wherever_a_response_nests_them() -> None:
    assert error_code_paths(ProduceResponse) == (("responses", "partition_responses", "error_code"),)
    assert set(error_code_paths(FetchResponse)) == {("error_code",), ("responses", "partitions", "error_code")}


def produce_response(*codes: ErrorCode) -> ProduceResponse:
    return ProduceResponse(
        responses=(TopicProduceResponse(name="t", partition_responses=tuple(
            PartitionProduceResponse(index=i, error_code=code, base_offset=0, log_append_time=None,  # type: ignore[arg-type]
                                     log_start_offset=0, record_errors=(), error_message=None)
            for i, code in enumerate(codes))),),
        throttle_time=datetime.timedelta(0),  # type: ignore[arg-type]
    )


def test_the_request_hook_counts_requests_errors_and_time_components() -> None:
    m = BrokerMetrics()
    hook = RequestMetrics(m)
    response = produce_response(ErrorCode.none, ErrorCode.not_leader_or_follower, ErrorCode.none)
    t = time.perf_counter()
    hook.answered(ApiKey.PRODUCE, 9, None, response, received_s=t - 0.006, started_s=t - 0.004, local_done_s=t - 0.001)
    now = time.perf_counter()
    hook.answered(ApiKey.PRODUCE, 9, None, None, received_s=now, started_s=now)  # acks=0: nothing to read

    class FollowerFetch:
        replica_id = 2

    hook.answered(ApiKey.FETCH, 12, FollowerFetch(), b"framed", received_s=now, started_s=now)
    got = scrape(m)

    def v(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    assert v("kafka_network_requestmetrics_requests_total", request="Produce", version="9") == 2
    assert v("kafka_network_requestmetrics_errors_total", request="Produce", error="NONE") == 2
    assert v("kafka_network_requestmetrics_errors_total", request="Produce", error="NOT_LEADER_OR_FOLLOWER") == 1
    assert v("kafka_network_requestmetrics_requests_total", request="FetchFollower", version="12") == 1
    assert v("kafka_network_requestmetrics_requests_total", request="Fetch", version="12") == 1
    # The first produce: 2 ms queued, 3 ms in the handler, then at least 1 ms remote
    # (acks=all) until the hook ran; the second took no time.
    assert 1.99 < v("kafka_network_requestmetrics_requestqueuetimems_sum", request="Produce") < 2.5
    assert 2.99 < v("kafka_network_requestmetrics_localtimems_sum", request="Produce") < 3.5
    assert 0.99 < v("kafka_network_requestmetrics_remotetimems_sum", request="Produce") < 50
    assert v("kafka_network_requestmetrics_totaltimems_count", request="Produce") == 2

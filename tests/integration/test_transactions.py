"""Transactions and exactly-once with real clients (KIP-98, KIP-447): confluent-kafka's
transactional producer and read_committed consumer, consume-transform-produce with
send_offsets_to_transaction, fencing, the coordinator's abort of a timed-out
transaction, aiokafka's transactional producer; and regressions that bit other
Kafka-compatible brokers."""
from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.conftest import _attach_logs
from tests.helpers import BrokerProcess

OVERRIDES = {
    "transaction.state.log.num.partitions": "3",
    "offsets.topic.num.partitions": "3",
    "group.initial.rebalance.delay.ms": "0",
    # The coordinator looks for timed-out transactions every 200 ms (Kafka: 10 s).
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": "200",
}


@pytest.fixture(scope="module")
def txn_broker(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[BrokerProcess]:
    b = BrokerProcess(tmp_path_factory.mktemp("txn"), OVERRIDES)
    b.start()
    try:
        yield b
    finally:
        b.kill()
        _attach_logs(request, [b])


def new_topic(broker: BrokerProcess, partitions: int = 1, configs: dict[str, str] | None = None) -> str:
    name = f"txn-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1, config=configs or {})])[name].result(10)
    return name


def producer(broker: BrokerProcess, transactional_id: str | None = None, **extra: str | int) -> Producer:
    p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": transactional_id or uuid.uuid4().hex,
                  "linger.ms": 5, **extra})
    p.init_transactions(20)
    return p


def read_all(broker: BrokerProcess, topic: str, isolation: str, partitions: int = 1) -> list[bytes]:
    """Every record a consumer of ``isolation`` gets from the start up to the end it sees
    now (the LSO for read_committed, the high watermark otherwise), in partition order."""
    out: list[bytes] = []
    for p in range(partitions):
        end = end_offsets(broker, topic, isolation, p)[1]
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": uuid.uuid4().hex,
                      "isolation.level": isolation, "enable.auto.commit": False})
        c.assign([TopicPartition(topic, p, 0)])
        try:
            deadline = time.monotonic() + 20
            while c.position([TopicPartition(topic, p)])[0].offset < end and time.monotonic() < deadline:
                m = c.poll(0.2)
                if m is not None and not m.error():
                    out.append(m.value())
        finally:
            c.close()
    return out


def end_offsets(broker: BrokerProcess, topic: str, isolation: str, partition: int = 0) -> tuple[int, int]:
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": uuid.uuid4().hex, "isolation.level": isolation})
    try:
        low, high = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        return low, high
    finally:
        c.close()


def test_committed_records_are_seen_by_read_committed_and_aborted_ones_only_by_read_uncommitted(
        txn_broker: BrokerProcess) -> None:
    topic = new_topic(txn_broker)
    p = producer(txn_broker)
    p.begin_transaction()
    for i in range(3):
        p.produce(topic, f"committed-{i}".encode())
    p.commit_transaction(20)
    p.begin_transaction()
    for i in range(2):
        p.produce(topic, f"aborted-{i}".encode())
    p.flush(10)
    p.abort_transaction(20)
    p.begin_transaction()
    p.produce(topic, b"committed-3")
    p.commit_transaction(20)
    committed = read_all(txn_broker, topic, "read_committed")
    assert committed == [b"committed-0", b"committed-1", b"committed-2", b"committed-3"]
    assert read_all(txn_broker, topic, "read_uncommitted") == \
        [b"committed-0", b"committed-1", b"committed-2", b"aborted-0", b"aborted-1", b"committed-3"]


def test_an_open_transaction_holds_read_committed_readers_at_its_first_offset(txn_broker: BrokerProcess) -> None:
    topic = new_topic(txn_broker)
    plain = Producer({"bootstrap.servers": txn_broker.bootstrap})
    plain.produce(topic, b"before")
    plain.flush(10)
    p = producer(txn_broker)
    p.begin_transaction()
    p.produce(topic, b"open")
    p.flush(10)
    plain.produce(topic, b"after")
    plain.flush(10)
    # ListOffsets latest: the high watermark for read_uncommitted, the LSO for read_committed.
    assert end_offsets(txn_broker, topic, "read_uncommitted")[1] == 3
    assert end_offsets(txn_broker, topic, "read_committed")[1] == 1
    assert read_all(txn_broker, topic, "read_committed") == [b"before"]
    p.commit_transaction(20)
    assert read_all(txn_broker, topic, "read_committed") == [b"before", b"open", b"after"]
    assert end_offsets(txn_broker, topic, "read_committed")[1] == 4  # past the COMMIT marker


def test_consume_transform_produce_is_exactly_once_across_an_abort(txn_broker: BrokerProcess) -> None:
    source, sink = new_topic(txn_broker, 2), new_topic(txn_broker)
    plain = Producer({"bootstrap.servers": txn_broker.bootstrap})
    inputs = [f"in-{i}" for i in range(40)]
    for i, value in enumerate(inputs):
        plain.produce(source, value.encode(), partition=i % 2)
    plain.flush(10)
    group = f"ctp-{uuid.uuid4().hex[:6]}"

    def consumer() -> Consumer:
        c = Consumer({"bootstrap.servers": txn_broker.bootstrap, "group.id": group, "enable.auto.commit": False,
                      "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
        c.subscribe([source])
        return c

    c = consumer()
    p = producer(txn_broker)
    processed = 0
    aborted_once = False
    try:
        deadline = time.monotonic() + 60
        while processed < len(inputs) and time.monotonic() < deadline:
            batch = c.consume(7, 1.0)
            batch = [m for m in batch if not m.error()]
            if not batch:
                continue
            p.begin_transaction()
            for m in batch:
                p.produce(sink, m.value().replace(b"in-", b"out-"))
            p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), 20)
            if not aborted_once and processed >= 10:
                # Abort one transaction: its outputs and offsets must not count. The
                # consumer goes back to the committed offsets and processes it again.
                aborted_once = True
                p.abort_transaction(20)
                committed = c.committed(c.assignment(), 10)
                for tp in committed:
                    c.seek(TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else 0))
                continue
            p.commit_transaction(20)
            processed += len(batch)
    finally:
        c.close()
    assert aborted_once
    outputs = read_all(txn_broker, sink, "read_committed")
    assert sorted(outputs) == sorted(v.replace("in-", "out-").encode() for v in inputs)
    # The group's committed offsets are at the end: a restarted job has nothing to redo.
    c = consumer()
    try:
        committed = c.committed([TopicPartition(source, 0), TopicPartition(source, 1)], 10)
        assert sorted(tp.offset for tp in committed) == [20, 20]
    finally:
        c.close()


def test_a_fenced_zombie_cannot_commit(txn_broker: BrokerProcess) -> None:
    topic = new_topic(txn_broker)
    transactional_id = f"zombie-{uuid.uuid4().hex[:6]}"
    zombie = producer(txn_broker, transactional_id)
    zombie.begin_transaction()
    zombie.produce(topic, b"zombie")
    zombie.flush(10)
    successor = producer(txn_broker, transactional_id)  # bumps the epoch, aborts the zombie's transaction
    successor.begin_transaction()
    successor.produce(topic, b"successor")
    successor.commit_transaction(20)
    with pytest.raises(KafkaException) as excinfo:
        zombie.commit_transaction(20)
    assert excinfo.value.args[0].fatal() or "fenced" in str(excinfo.value).lower()
    assert read_all(txn_broker, topic, "read_committed") == [b"successor"]
    assert read_all(txn_broker, topic, "read_uncommitted") == [b"zombie", b"successor"]


def test_a_transaction_that_times_out_is_aborted_by_the_coordinator(txn_broker: BrokerProcess) -> None:
    topic = new_topic(txn_broker)
    slow = producer(txn_broker, **{"transaction.timeout.ms": 1000})
    slow.begin_transaction()
    slow.produce(topic, b"too-slow")
    slow.flush(10)
    plain = Producer({"bootstrap.servers": txn_broker.bootstrap})
    plain.produce(topic, b"plain")
    plain.flush(10)
    # The coordinator aborts it (transaction.timeout.ms, checked every 200 ms here): the
    # ABORT marker moves the LSO past it without any help from the producer.
    deadline = time.monotonic() + 15
    while end_offsets(txn_broker, topic, "read_committed")[1] < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert end_offsets(txn_broker, topic, "read_committed")[1] == 3
    assert read_all(txn_broker, topic, "read_committed") == [b"plain"]
    with pytest.raises(KafkaException):
        slow.commit_transaction(10)


def test_a_transaction_with_only_offsets_commits_them(txn_broker: BrokerProcess) -> None:
    source = new_topic(txn_broker)
    group = f"offsets-only-{uuid.uuid4().hex[:6]}"
    c = Consumer({"bootstrap.servers": txn_broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    p = producer(txn_broker)
    try:
        p.begin_transaction()
        p.send_offsets_to_transaction([TopicPartition(source, 0, 42)], c.consumer_group_metadata(), 20)
        p.commit_transaction(20)
        assert c.committed([TopicPartition(source, 0)], 10)[0].offset == 42
        p.begin_transaction()
        p.send_offsets_to_transaction([TopicPartition(source, 0, 99)], c.consumer_group_metadata(), 20)
        p.abort_transaction(20)
        assert c.committed([TopicPartition(source, 0)], 10)[0].offset == 42
    finally:
        c.close()


def test_a_fetch_of_only_aborted_records_moves_the_consumer_past_them(txn_broker: BrokerProcess) -> None:
    topic = new_topic(txn_broker)
    p = producer(txn_broker)
    p.begin_transaction()
    for i in range(5):
        p.produce(topic, f"aborted-{i}".encode())
    p.flush(10)
    p.abort_transaction(20)
    c = Consumer({"bootstrap.servers": txn_broker.bootstrap, "group.id": uuid.uuid4().hex,
                  "isolation.level": "read_committed", "enable.partition.eof": True})
    c.assign([TopicPartition(topic, 0, 0)])
    try:
        eof = None
        deadline = time.monotonic() + 15
        while eof is None and time.monotonic() < deadline:
            m = c.poll(0.5)
            assert m is None or m.error() is not None, m.value()
            if m is not None and m.error().code() == -191:  # _PARTITION_EOF
                eof = m.offset()
        assert eof == 6  # past the five records and the ABORT marker
        assert c.position([TopicPartition(topic, 0)])[0].offset == 6
    finally:
        c.close()


def test_an_aborted_transaction_spanning_segments_stays_hidden(txn_broker: BrokerProcess) -> None:
    topic = new_topic(txn_broker, configs={"segment.bytes": "1024"})
    p = producer(txn_broker, **{"linger.ms": 0, "batch.num.messages": 1})
    p.begin_transaction()
    for i in range(30):
        p.produce(topic, f"aborted-{i:02d}-".encode() + b"x" * 100)
        p.flush(10)  # one batch each: the transaction spans several 1 KiB segments
    p.abort_transaction(20)
    p.begin_transaction()
    p.produce(topic, b"committed")
    p.commit_transaction(20)
    assert read_all(txn_broker, topic, "read_committed") == [b"committed"]
    assert len(read_all(txn_broker, topic, "read_uncommitted")) == 31


def test_aiokafka_transactions(txn_broker: BrokerProcess) -> None:
    topic = new_topic(txn_broker)

    async def scenario() -> list[bytes]:
        p = AIOKafkaProducer(bootstrap_servers=txn_broker.bootstrap, transactional_id=uuid.uuid4().hex)
        await p.start()
        try:
            async with p.transaction():
                await p.send_and_wait(topic, b"aio-committed")
            await p.begin_transaction()
            await p.send_and_wait(topic, b"aio-aborted")
            await p.abort_transaction()
        finally:
            await p.stop()
        c = AIOKafkaConsumer(topic, bootstrap_servers=txn_broker.bootstrap, isolation_level="read_committed",
                             auto_offset_reset="earliest")
        await c.start()
        try:
            got: list[bytes] = []
            for _ in range(10):
                batches = await c.getmany(timeout_ms=500)
                got += [m.value for ms in batches.values() for m in ms if m.value is not None]
                if got:
                    break
            return got
        finally:
            await c.stop()

    assert asyncio.run(scenario()) == [b"aio-committed"]


def test_the_cli_lists_describes_and_aborts_a_hanging_transaction(txn_broker: BrokerProcess) -> None:
    from tests.integration.test_cli import run_cli

    topic = new_topic(txn_broker)
    transactional_id = f"hanging-{uuid.uuid4().hex[:6]}"
    hanging = producer(txn_broker, transactional_id)
    hanging.begin_transaction()
    hanging.produce(topic, b"hanging")
    hanging.flush(10)
    plain = Producer({"bootstrap.servers": txn_broker.bootstrap})
    plain.produce(topic, b"after")
    plain.flush(10)
    assert end_offsets(txn_broker, topic, "read_committed")[1] == 0  # held back by the open transaction

    listed = run_cli(txn_broker.bootstrap, "transactions", "list", "--state", "Ongoing")
    assert listed.returncode == 0, listed.stderr.decode()
    assert any(line.split()[0] == transactional_id and line.split()[-1] == "Ongoing"
               for line in listed.stdout.decode().splitlines())
    described = run_cli(txn_broker.bootstrap, "transactions", "describe", "--transactional-id", transactional_id)
    assert described.returncode == 0, described.stderr.decode()
    assert f"{topic}-0" in described.stdout.decode() and "Ongoing" in described.stdout.decode()
    bad = run_cli(txn_broker.bootstrap, "transactions", "list", "--state", "Sleeping")
    assert bad.returncode == 1 and b"unknown state" in bad.stderr

    # kafka-transactions.sh abort --start-offset: the leader writes the ABORT marker.
    aborted = run_cli(txn_broker.bootstrap, "transactions", "abort", "--topic", topic, "--partition", "0",
                      "--start-offset", "0")
    assert aborted.returncode == 0, aborted.stderr.decode()
    assert end_offsets(txn_broker, topic, "read_committed")[1] == 3
    assert read_all(txn_broker, topic, "read_committed") == [b"after"]
    again = run_cli(txn_broker.bootstrap, "transactions", "abort", "--topic", topic, "--partition", "0",
                    "--start-offset", "0")
    assert again.returncode == 1 and b"no open transaction" in again.stderr


def _raw(broker: BrokerProcess, api_key: int, version: int, request: Any) -> Any:
    from tests.raw import connect, decode, encode, recv_frame

    with connect(broker) as s:
        s.sendall(encode(api_key, version, request))
        frame = recv_frame(s)
    assert frame is not None
    return decode(api_key, version, frame)


def test_a_transactional_produce_outside_the_transaction_is_refused(txn_broker: BrokerProcess) -> None:
    """KIP-890 part 1: the leader asks the coordinator before a producer's first batch
    of a transaction in a partition. Raw requests: a client never skips AddPartitionsToTxn,
    but a late retry of a batch whose transaction was aborted does the same thing."""
    import dataclasses
    import datetime

    from kio.schema.add_partitions_to_txn.v3 import request as apt
    from kio.schema.end_txn.v3 import request as et
    from kio.schema.find_coordinator.v3 import request as fc
    from kio.schema.init_producer_id.v4 import request as ipi

    from moldau.protocol.records import RecordInput, build_batch
    from tests.raw import produce_request

    topic = new_topic(txn_broker)
    transactional_id = f"late-{uuid.uuid4().hex[:6]}"
    found = _raw(txn_broker, 10, 3, fc.FindCoordinatorRequest(key=transactional_id, key_type=1))
    assert found.error_code == 0
    init = _raw(txn_broker, 22, 4, ipi.InitProducerIdRequest(
        transactional_id=transactional_id, transaction_timeout=datetime.timedelta(seconds=60),
        producer_id=-1, producer_epoch=-1))
    assert init.error_code == 0
    pid, epoch = init.producer_id, init.producer_epoch
    sequence = 0

    def produce() -> int:
        nonlocal sequence
        batch = build_batch([RecordInput(b"late")], producer_id=pid, producer_epoch=epoch, base_sequence=sequence,
                            transactional=True, timestamp=int(time.time() * 1000))
        request = dataclasses.replace(produce_request(topic, 0, batch), transactional_id=transactional_id)
        response = _raw(txn_broker, 0, 8, request)
        code = response.responses[0].partition_responses[0].error_code
        if code == 0:
            sequence += 1
        return int(code)

    assert produce() == 48  # INVALID_TXN_STATE: never added to a transaction
    added = _raw(txn_broker, 24, 3, apt.AddPartitionsToTxnRequest(
        v3_and_below_transactional_id=transactional_id, v3_and_below_producer_id=pid,
        v3_and_below_producer_epoch=epoch,
        v3_and_below_topics=(apt.AddPartitionsToTxnTopic(name=topic, partitions=(0,)),)))
    assert added.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code == 0
    assert produce() == 0
    assert produce() == 0  # the transaction is open here now: no new verification
    ended = _raw(txn_broker, 26, 3, et.EndTxnRequest(transactional_id=transactional_id, producer_id=pid,
                                                     producer_epoch=epoch, committed=False))
    assert ended.error_code == 0
    deadline = time.monotonic() + 10
    while end_offsets(txn_broker, topic, "read_committed")[1] < 3 and time.monotonic() < deadline:
        time.sleep(0.1)  # the ABORT marker is written
    # A late batch of the aborted transaction must not open a transaction no marker ends.
    assert produce() == 48
    assert end_offsets(txn_broker, topic, "read_committed")[1] == 3


def test_kafka_python_transactions(txn_broker: BrokerProcess) -> None:
    from kafka import KafkaProducer

    topic = new_topic(txn_broker)
    p = KafkaProducer(bootstrap_servers=txn_broker.bootstrap, transactional_id=uuid.uuid4().hex)
    try:
        p.init_transactions()
        p.begin_transaction()
        p.send(topic, b"kp-committed")
        p.commit_transaction()
        p.begin_transaction()
        p.send(topic, b"kp-aborted").get(10)
        p.abort_transaction()
    finally:
        p.close(5)
    assert read_all(txn_broker, topic, "read_committed") == [b"kp-committed"]
    assert read_all(txn_broker, topic, "read_uncommitted") == [b"kp-committed", b"kp-aborted"]

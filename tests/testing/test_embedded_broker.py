"""moldau.testing.EmbeddedBroker with real clients: start, topics, stop, errors."""
from __future__ import annotations

import asyncio
import socket
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from moldau.testing import EmbeddedBroker, EmbeddedBrokerError


def roundtrip(bootstrap: str, topic: str, value: bytes) -> bytes:
    """Produce ``value``; return the first record of the topic, read by a new group."""
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, value)
    assert producer.flush(10) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex,
                         "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe([topic])
        message = consumer.poll(15)
    finally:
        consumer.close()
    assert message is not None and message.error() is None
    return message.value()


def test_ready_in_under_a_second_and_serves_clients(tmp_path: Path) -> None:
    EmbeddedBroker().start().stop()  # Moldau's modules imported: what is left is the start
    started = time.monotonic()
    with EmbeddedBroker() as broker:
        ready = time.monotonic() - started
        assert ready < 1.0, f"ready after {ready:.3f} s"
        assert broker.bootstrap_servers == f"127.0.0.1:{broker.port}"
        topic = broker.create_topic("orders", partitions=3, config={"retention.ms": "60000"})
        assert topic == "orders"
        metadata = AdminClient({"bootstrap.servers": broker.bootstrap_servers}).list_topics(timeout=10)
        assert sorted(metadata.topics["orders"].partitions) == [0, 1, 2]
        assert roundtrip(broker.bootstrap_servers, "orders", b"hello") == b"hello"
        data_dir = broker.data_dir
        assert data_dir is not None and (data_dir / "orders-0").is_dir()
    assert not broker.running and broker.port is None
    assert not data_dir.exists(), "a temporary data dir is removed on stop"
    broker.stop()  # idempotent


def test_async_context_manager() -> None:
    async def main() -> str:
        async with EmbeddedBroker() as broker:
            topic = broker.create_topic()
            # The broker runs on its own thread: a client on this loop is served meanwhile.
            value = await asyncio.to_thread(roundtrip, broker.bootstrap_servers, topic, b"async")
            return value.decode()

    assert asyncio.run(main()) == "async"


def test_topic_names_errors_and_deletion() -> None:
    with EmbeddedBroker() as broker:
        first, second = broker.create_topic(), broker.create_topic()
        assert first != second and {first, second} <= set(broker.topics())
        with pytest.raises(EmbeddedBrokerError) as exc:
            broker.create_topic(first)
        assert exc.value.error == "TOPIC_ALREADY_EXISTS"
        with pytest.raises(EmbeddedBrokerError) as exc:
            broker.create_topic("bad", config={"cleanup.policy": "sometimes"})
        assert exc.value.error == "INVALID_CONFIG"
        with pytest.raises(EmbeddedBrokerError) as exc:
            broker.create_topic("no/slashes")
        assert exc.value.error == "INVALID_TOPIC_EXCEPTION"
        broker.delete_topic(first)
        assert first not in broker.topics()
        with pytest.raises(EmbeddedBrokerError) as exc:
            broker.delete_topic(first)
        assert exc.value.error == "UNKNOWN_TOPIC_OR_PARTITION"
    with pytest.raises(EmbeddedBrokerError, match="not running"):
        broker.create_topic()


def test_given_port_and_data_dir_are_kept(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data_dir = tmp_path / "data"
    with EmbeddedBroker(port=port, data_dir=data_dir) as broker:
        assert broker.bootstrap_servers == f"127.0.0.1:{port}"
        broker.create_topic("kept")
        assert roundtrip(broker.bootstrap_servers, "kept", b"one") == b"one"
    assert (data_dir / "kept-0").is_dir()
    # The same data dir again: the topic and its record are still there.
    with EmbeddedBroker(data_dir=data_dir) as broker:
        assert "kept" in broker.topics()
        assert roundtrip(broker.bootstrap_servers, "kept", b"two") == b"one"


def test_a_port_in_use_is_an_error_and_leaves_nothing_behind() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        broker = EmbeddedBroker(port=s.getsockname()[1])
        with pytest.raises(EmbeddedBrokerError, match="could not start"):
            broker.start()
    assert not broker.running
    assert broker.data_dir is not None and not broker.data_dir.exists()
    with pytest.raises(ValueError):
        EmbeddedBroker(port=70000)


def test_broker_properties_are_kafkas() -> None:
    with EmbeddedBroker(properties={"num.partitions": "4", "auto.create.topics.enable": "false"}) as broker:
        topic = broker.create_topic(partitions=-1)  # -1: the broker's num.partitions
        metadata = AdminClient({"bootstrap.servers": broker.bootstrap_servers}).list_topics(timeout=10)
        assert len(metadata.topics[topic].partitions) == 4
    with pytest.raises(EmbeddedBrokerError, match="no.such.property"):
        EmbeddedBroker(properties={"no.such.property": "1"}).start()

"""The pytest plugin, run by pytester in child pytest processes as a user's project would:
the README's example tests, the marker and options, and pytest-xdist workers with a broker
each."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.helpers import readme_test_files


def test_the_readme_examples_pass(pytester: pytest.Pytester) -> None:
    files = readme_test_files()
    assert {"test_orders.py", "test_orders_aiokafka.py"} <= set(files), "the README lost its examples"
    for name, text in files.items():
        pytester.makepyfile(**{name.removesuffix(".py"): text})
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=len(files))


def test_marker_port_and_topic_lifecycle(pytester: pytest.Pytester) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pytester.makepyfile(
        f"""
        import pytest
        from confluent_kafka.admin import AdminClient, ConfigResource

        seen = []

        def describe(broker, topic):
            admin = AdminClient({{"bootstrap.servers": broker.bootstrap_servers}})
            partitions = admin.list_topics(timeout=10).topics[topic].partitions
            resource = ConfigResource("topic", topic)
            configs = admin.describe_configs([resource])[resource].result(10)
            return len(partitions), configs["cleanup.policy"].value

        def test_default_topic(moldau_broker, moldau_topic):
            assert moldau_broker.port == {port}
            assert moldau_topic.startswith("test_default_topic-")
            assert describe(moldau_broker, moldau_topic) == (1, "delete")
            seen.append(moldau_topic)

        @pytest.mark.moldau_topic(partitions=3, config={{"cleanup.policy": "compact"}})
        def test_marked_topic(moldau_broker, moldau_topic):
            assert describe(moldau_broker, moldau_topic) == (3, "compact")
            assert seen[0] not in moldau_broker.topics(), "the previous test's topic is deleted"
            seen.append(moldau_topic)

        @pytest.mark.moldau_topic(name="payments")
        @pytest.mark.parametrize("n", [1, 2])
        def test_named_topic_again_after_deletion(moldau_topic, n):
            assert moldau_topic == "payments"

        def test_the_same_broker_for_the_session(moldau_broker):
            assert moldau_broker.port == {port}
            assert not set(seen) & set(moldau_broker.topics())
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--moldau-port", str(port))
    result.assert_outcomes(passed=5)


def test_keep_data(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_writes(moldau_broker, moldau_topic):
            from confluent_kafka import Producer
            producer = Producer({"bootstrap.servers": moldau_broker.bootstrap_servers})
            producer.produce(moldau_topic, b"kept")
            assert producer.flush(10) == 0
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--moldau-keep-data",
                                           "--basetemp", str(pytester.path / "basetemp"))
    result.assert_outcomes(passed=1)
    kept = [line.split(" kept in ", 1)[1] for line in result.outlines if "moldau: the broker's data is kept in" in line]
    assert len(kept) == 1, result.outlines
    data_dir = Path(kept[0])
    assert data_dir.is_relative_to(pytester.path / "basetemp")
    topic_dirs = [p.name for p in data_dir.iterdir() if p.name.startswith("test_writes-")]
    assert topic_dirs, f"the test's topic is kept: {sorted(p.name for p in data_dir.iterdir())}"
    assert (data_dir / topic_dirs[0] / "00000000000000000000.log").stat().st_size > 0


def test_xdist_workers_each_have_a_broker(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    meeting = pytester.path / "meeting"
    meeting.mkdir()
    pytester.makepyfile(
        f"""
        import os, time
        from pathlib import Path
        from confluent_kafka import Consumer, Producer

        MEETING = Path({str(meeting)!r})

        def exchange(broker, topic, value):
            producer = Producer({{"bootstrap.servers": broker.bootstrap_servers}})
            producer.produce(topic, value)
            assert producer.flush(10) == 0
            consumer = Consumer({{"bootstrap.servers": broker.bootstrap_servers, "group.id": "g",
                                 "auto.offset.reset": "earliest"}})
            consumer.subscribe([topic])
            message = consumer.poll(15)
            consumer.close()
            assert message is not None and message.error() is None
            return message.value()

        def meet(broker, me, other):
            # Both tests run at the same time, each against its own broker.
            (MEETING / me).write_text(f"{{os.environ['PYTEST_XDIST_WORKER']}} {{broker.bootstrap_servers}}")
            deadline = time.monotonic() + 60
            while not (MEETING / other).exists():
                assert time.monotonic() < deadline, "the other test never ran alongside"
                time.sleep(0.05)

        def test_one(moldau_broker, moldau_topic):
            meet(moldau_broker, "one", "two")
            assert exchange(moldau_broker, moldau_topic, b"one") == b"one"

        def test_two(moldau_broker, moldau_topic):
            meet(moldau_broker, "two", "one")
            assert exchange(moldau_broker, moldau_topic, b"two") == b"two"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=2)
    one, two = ((meeting / name).read_text().split() for name in ("one", "two"))
    assert one[0] != two[0], "two workers"
    assert one[1] != two[1], "two brokers"

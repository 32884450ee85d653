"""Moldau as a library for tests: a Kafka broker to import, no Docker, no JVM.

    from moldau.testing import EmbeddedBroker

    with EmbeddedBroker() as broker:
        broker.create_topic("orders", partitions=3)
        producer = confluent_kafka.Producer({"bootstrap.servers": broker.bootstrap_servers})

The pytest plugin (`moldau.testing.pytest_plugin`, registered through the `pytest11`
entry point) gives the fixtures `moldau_broker` and `moldau_topic`.
"""

from moldau.testing.embedded_broker import TEST_PROPERTIES, EmbeddedBroker, EmbeddedBrokerError

__all__ = ["EmbeddedBroker", "EmbeddedBrokerError", "TEST_PROPERTIES"]

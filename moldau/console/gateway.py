"""Every call the console makes to the cluster, over the Kafka protocol, blocking.

`KafkaGateway` turns what confluent-kafka (and, for DescribeLogDirs, kafka-python) answer
into the plain dataclasses of the screen modules, and failures into `ConsoleError`s.
Each call carries a timeout; the web layer runs them on worker threads (`offload`).
Nothing here creates a topic as a side effect: metadata is always asked for all topics.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    OFFSET_END,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
)
from confluent_kafka import TopicPartition as KafkaTopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from moldau.console.brokers import BrokerNode, PartitionState
from moldau.console.errors import ClusterError, ClusterTimeout, ConsoleError, NotFound, from_kafka, kafka_error_text
from moldau.console.groups import GroupDescription, GroupListing, Member, TopicPartition
from moldau.console.messages import Message, ReadRange
from moldau.console.produce import Delivery, ProduceRequest
from moldau.console.topics import ConfigChange, ConfigOp, ConfigRow, NewTopicRequest, ReplicaSize

CLIENT_ID = "moldau-console"
# The browser's consumer never joins or commits: the id only satisfies librdkafka.
BROWSER_GROUP_ID = "moldau-console-browser"


@dataclass(frozen=True)
class ClusterSnapshot:
    cluster_id: str | None
    controller_id: int | None
    brokers: list[BrokerNode]
    partitions: dict[str, list[PartitionState]]  # by topic
    topic_errors: dict[str, str] = field(default_factory=dict)

    def all_partitions(self) -> list[PartitionState]:
        return [p for parts in self.partitions.values() for p in parts]


@dataclass(frozen=True)
class ReadResult:
    messages: list[Message]
    scanned: int
    timed_out: bool


def _quiet_logger() -> logging.Logger:
    # librdkafka's own log lines (connection refused, ...) would flood the console's
    # output; failures reach the page as errors instead.
    logger = logging.getLogger("moldau.console.librdkafka")
    logger.propagate = False
    logger.setLevel(logging.CRITICAL + 1)
    return logger


class KafkaGateway:
    def __init__(self, bootstrap: str, timeout_s: float, client_properties: Mapping[str, str] | None = None) -> None:
        self.bootstrap = bootstrap
        self.timeout_s = timeout_s
        self.client_properties = dict(client_properties or {})
        timeout_ms = int(timeout_s * 1000)
        self._base: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "client.id": CLIENT_ID,
            "socket.timeout.ms": max(timeout_ms, 1000),
            "socket.connection.setup.timeout.ms": max(timeout_ms, 1000),
            "logger": _quiet_logger(),
            **self.client_properties,
        }
        self._base["bootstrap.servers"] = bootstrap
        try:
            self._admin = AdminClient(dict(self._base))
        except (KafkaException, ValueError, TypeError) as e:
            raise ConsoleError(f"invalid client configuration: {kafka_error_text(e)}") from None
        self._producer: Producer | None = None
        self._log_dirs_client: Any = None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.flush(1)
            if self._log_dirs_client is not None:
                try:
                    self._log_dirs_client.close()
                except Exception:
                    pass

    def _wait(self, future: Future[Any], what: str) -> Any:
        try:
            return future.result(timeout=self.timeout_s + 1)
        except TimeoutError:
            raise ClusterTimeout(f"{what}: the cluster did not answer within {self.timeout_s:g} s") from None
        except (KafkaException, ValueError, TypeError) as e:
            raise from_kafka(e, what) from None

    # ----------------------------------------------------------------- metadata

    def snapshot(self) -> ClusterSnapshot:
        """Brokers, the controller and every partition's leader, replicas and ISR."""
        described = self._wait(self._admin.describe_cluster(request_timeout=self.timeout_s), "describe the cluster")
        try:
            metadata = self._admin.list_topics(timeout=self.timeout_s)
        except KafkaException as e:
            raise from_kafka(e, "fetch metadata") from None
        partitions: dict[str, list[PartitionState]] = {}
        errors: dict[str, str] = {}
        for name, topic in metadata.topics.items():
            if topic.error is not None and topic.error.code() != KafkaError.NO_ERROR:
                errors[name] = kafka_error_text(KafkaException(topic.error))
            partitions[name] = [
                PartitionState(
                    name,
                    p.id,
                    p.leader,
                    tuple(p.replicas),
                    tuple(p.isrs),
                    None if p.error is None else kafka_error_text(KafkaException(p.error)),
                )
                for p in sorted(topic.partitions.values(), key=lambda p: p.id)
            ]
        nodes = [BrokerNode(n.id, n.host, n.port, n.rack) for n in described.nodes]
        controller = described.controller.id if described.controller is not None else None
        return ClusterSnapshot(described.cluster_id, controller, nodes, partitions, errors)

    def topic_partitions(self, topic: str) -> list[PartitionState]:
        snapshot = self.snapshot()
        if topic not in snapshot.partitions or topic in snapshot.topic_errors:
            raise NotFound(f"topic {topic!r} does not exist (UNKNOWN_TOPIC_OR_PART)")
        return snapshot.partitions[topic]

    def offsets(self, partitions: Sequence[TopicPartition], spec: str | int) -> dict[TopicPartition, int]:
        """ListOffsets: 'earliest' (log start), 'latest' (high watermark), or a timestamp in
        ms (the first offset at or after it, -1 when none)."""
        if not partitions:
            return {}
        if spec == "earliest":
            offset_spec = OffsetSpec.earliest()
        elif spec == "latest":
            offset_spec = OffsetSpec.latest()
        else:
            offset_spec = OffsetSpec.for_timestamp(int(spec))
        futures = self._admin.list_offsets(
            {KafkaTopicPartition(t, p): offset_spec for t, p in partitions}, request_timeout=self.timeout_s
        )
        return {(tp.topic, tp.partition): self._wait(f, "list offsets").offset for tp, f in futures.items()}

    def replica_sizes(self, topic: str) -> list[ReplicaSize]:
        """DescribeLogDirs on every broker, through kafka-python (confluent-kafka has no
        such call). Raises ConsoleError when it cannot be asked."""
        with self._lock:
            try:
                client = self._log_dirs_admin()
                answers = client.describe_log_dirs(topic_partitions=[topic])
            except ConsoleError:
                raise
            except Exception as e:
                self._drop_log_dirs_admin()
                raise ClusterError(f"describe log dirs: {e or type(e).__name__}") from None
        sizes = []
        for answer in answers:
            for log_dir in answer.get("log_dirs", []):
                for t in log_dir.get("topics", []):
                    if t.get("name") != topic:
                        continue
                    for p in t.get("partitions", []):
                        sizes.append(ReplicaSize(answer["broker"], topic, p["partition_index"], p["partition_size"]))
        return sizes

    def _log_dirs_admin(self) -> Any:
        if self._log_dirs_client is None:
            from kafka.admin import KafkaAdminClient

            self._log_dirs_client = KafkaAdminClient(
                **kafka_python_config(self.bootstrap, self.client_properties, self.timeout_s)
            )
        return self._log_dirs_client

    def _drop_log_dirs_admin(self) -> None:
        if self._log_dirs_client is not None:
            try:
                self._log_dirs_client.close()
            except Exception:
                pass
            self._log_dirs_client = None

    # ------------------------------------------------------------------- topics

    def topic_configs(self, topic: str) -> list[ConfigRow]:
        resource = ConfigResource(ResourceType.TOPIC, topic)
        futures = self._admin.describe_configs([resource], request_timeout=self.timeout_s)
        entries = self._wait(futures[resource], f"describe configs of {topic}")
        return [
            ConfigRow(
                e.name,
                e.value,
                config_source_name(e.source),
                bool(e.is_default),
                bool(e.is_read_only),
                bool(e.is_sensitive),
            )
            for e in entries.values()
        ]

    def create_topic(self, request: NewTopicRequest) -> None:
        new = NewTopic(request.name, request.partitions, request.replication_factor, config=dict(request.configs))
        futures = self._admin.create_topics([new], request_timeout=self.timeout_s, operation_timeout=self.timeout_s)
        self._wait(futures[request.name], f"create topic {request.name}")

    def delete_topic(self, topic: str) -> None:
        futures = self._admin.delete_topics([topic], request_timeout=self.timeout_s, operation_timeout=self.timeout_s)
        self._wait(futures[topic], f"delete topic {topic}")

    def add_partitions(self, topic: str, count: int) -> None:
        futures = self._admin.create_partitions(
            [NewPartitions(topic, count)], request_timeout=self.timeout_s, operation_timeout=self.timeout_s
        )
        self._wait(futures[topic], f"add partitions to {topic}")

    def alter_config(self, topic: str, change: ConfigChange) -> None:
        op = AlterConfigOpType.SET if change.op is ConfigOp.SET else AlterConfigOpType.DELETE
        entry = ConfigEntry(change.name, change.value, incremental_operation=op)
        resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
        futures = self._admin.incremental_alter_configs([resource], request_timeout=self.timeout_s)
        self._wait(futures[resource], f"change {change.name} of {topic}")

    # ----------------------------------------------------------------- messages

    def _consumer(self) -> Consumer:
        conf = {
            **self._base,
            "group.id": BROWSER_GROUP_ID,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "allow.auto.create.topics": False,
            "fetch.wait.max.ms": 200,
        }
        try:
            return Consumer(conf)
        except (KafkaException, ValueError, TypeError) as e:
            raise ConsoleError(f"invalid client configuration: {kafka_error_text(e)}") from None

    def read(self, topic: str, ranges: Sequence[ReadRange], keep: Any = None) -> ReadResult:
        """Read each range (offsets start..stop-1), keeping the records `keep(message)`
        accepts (all by default), at most `range.keep` of them per partition unless
        searching. Stops at the ranges' ends, or after the timeout with what it has."""
        if not ranges:
            return ReadResult([], 0, False)
        consumer = self._consumer()
        try:
            consumer.assign([KafkaTopicPartition(topic, r.partition, r.start) for r in ranges])
            pending = {r.partition: r for r in ranges}
            kept: dict[int, int] = {r.partition: 0 for r in ranges}
            found: list[Message] = []
            scanned = 0
            deadline = time.monotonic() + self.timeout_s
            while pending and time.monotonic() < deadline:
                for record in consumer.consume(500, timeout=min(0.5, max(0.05, deadline - time.monotonic()))):
                    p = record.partition()
                    error = record.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            pending.pop(p, None)
                            continue
                        raise from_kafka(KafkaException(error), f"read {topic}")
                    r = pending.get(p)
                    if r is None or record.offset() >= r.stop:
                        pending.pop(p, None)
                        continue
                    scanned += 1
                    message = to_message(record)
                    if keep is None or keep(message):
                        found.append(message)
                        kept[p] += 1
                        if keep is None and kept[p] >= r.keep:
                            pending.pop(p, None)
                    if record.offset() >= r.stop - 1:
                        pending.pop(p, None)
            return ReadResult(found, scanned, bool(pending))
        finally:
            consumer.close()

    def open_tail(self, topic: str, partitions: Sequence[int]) -> Tail:
        """A consumer at the current end of the partitions; the caller closes it."""
        consumer = self._consumer()
        try:
            consumer.assign([KafkaTopicPartition(topic, p, OFFSET_END) for p in partitions])
        except KafkaException as e:
            consumer.close()
            raise from_kafka(e, f"tail {topic}") from None
        return Tail(consumer)

    def produce(self, request: ProduceRequest) -> Delivery:
        partitions = self.topic_partitions(request.topic)
        if request.partition is not None and request.partition >= len(partitions):
            raise NotFound(f"topic {request.topic} has partitions 0..{len(partitions) - 1}, not {request.partition}")
        producer = self._get_producer()
        result: list[Any] = []
        kwargs: dict[str, Any] = {"key": request.key, "value": request.value, "headers": list(request.headers)}
        if request.partition is not None:
            kwargs["partition"] = request.partition
        try:
            producer.produce(request.topic, on_delivery=lambda err, msg: result.append((err, msg)), **kwargs)
        except (KafkaException, BufferError, ValueError, TypeError) as e:
            raise from_kafka(e, f"produce to {request.topic}") from None
        producer.flush(self.timeout_s + 1)
        if not result:
            raise ClusterTimeout(f"produce to {request.topic}: not acknowledged within {self.timeout_s:g} s")
        err, msg = result[0]
        if err is not None:
            raise from_kafka(KafkaException(err), f"produce to {request.topic}")
        return Delivery(msg.topic(), msg.partition(), msg.offset())

    def _get_producer(self) -> Producer:
        with self._lock:
            if self._producer is None:
                conf = {
                    **self._base,
                    "acks": "all",
                    # Java's partitioner, so a key lands where Kafka's clients put it.
                    "partitioner": "murmur2_random",
                    "message.timeout.ms": int(self.timeout_s * 1000),
                    "linger.ms": 0,
                }
                try:
                    self._producer = Producer(conf)
                except (KafkaException, ValueError, TypeError) as e:
                    raise ConsoleError(f"invalid client configuration: {kafka_error_text(e)}") from None
            return self._producer

    # ------------------------------------------------------------------- groups

    def list_groups(self) -> list[GroupListing]:
        result = self._wait(self._admin.list_consumer_groups(request_timeout=self.timeout_s), "list groups")
        return sorted((GroupListing(g.group_id, _state_name(g.state)) for g in result.valid), key=lambda g: g.group_id)

    def describe_group(self, group_id: str) -> GroupDescription:
        futures = self._admin.describe_consumer_groups([group_id], request_timeout=self.timeout_s)
        g = self._wait(futures[group_id], f"describe group {group_id}")
        members = tuple(
            Member(
                m.member_id,
                m.client_id,
                m.host,
                m.group_instance_id,
                tuple(
                    sorted((tp.topic, tp.partition) for tp in (m.assignment.topic_partitions if m.assignment else []))
                ),
            )
            for m in g.members
        )
        coordinator = g.coordinator.id if g.coordinator is not None else None
        return GroupDescription(g.group_id, _state_name(g.state), g.partition_assignor or "", coordinator, members)

    def committed_offsets(self, group_id: str) -> dict[TopicPartition, int]:
        futures = self._admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group_id)], request_timeout=self.timeout_s
        )
        result = self._wait(futures[group_id], f"fetch offsets of group {group_id}")
        return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions if tp.offset >= 0}

    def alter_group_offsets(self, group_id: str, targets: Mapping[TopicPartition, int]) -> None:
        request = ConsumerGroupTopicPartitions(
            group_id, [KafkaTopicPartition(t, p, o) for (t, p), o in sorted(targets.items())]
        )
        futures = self._admin.alter_consumer_group_offsets([request], request_timeout=self.timeout_s)
        result = self._wait(futures[group_id], f"reset offsets of group {group_id}")
        for tp in result.topic_partitions:
            if tp.error is not None:
                raise from_kafka(KafkaException(tp.error), f"reset offsets of {tp.topic}-{tp.partition}")

    def delete_group(self, group_id: str) -> None:
        futures = self._admin.delete_consumer_groups([group_id], request_timeout=self.timeout_s)
        self._wait(futures[group_id], f"delete group {group_id}")


class Tail:
    """A consumer at the end of a topic's partitions: `poll()` returns what arrived since.

    `poll` and `close` run on worker threads and may overlap (a browser leaves while a
    poll waits): the lock keeps librdkafka from closing a consumer inside `consume`."""

    def __init__(self, consumer: Consumer) -> None:
        self._consumer = consumer
        self._lock = threading.Lock()
        self._closed = False

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._consumer.close()

    def poll(self, timeout_s: float) -> list[Message]:
        with self._lock:
            if self._closed:
                return []
            records = self._consumer.consume(200, timeout=timeout_s)
        out = []
        for record in records:
            error = record.error()
            if error is None:
                out.append(to_message(record))
            elif error.code() != KafkaError._PARTITION_EOF:
                raise from_kafka(KafkaException(error), f"tail {record.topic()}")
        return out


def to_message(record: Any) -> Message:
    ts_type, ts = record.timestamp()
    headers = tuple((name, value) for name, value in (record.headers() or []))
    return Message(
        record.topic(),
        record.partition(),
        record.offset(),
        ts if ts_type else None,
        record.key(),
        record.value(),
        headers,
    )


def config_source_name(source: Any) -> str:
    """Kafka's name of a config's source (librdkafka gives the number)."""
    try:
        return ConfigSource(source).name
    except ValueError:
        return str(source)


def _state_name(state: Any) -> str:
    return str(getattr(state, "name", state) or "UNKNOWN")


def kafka_python_config(bootstrap: str, properties: Mapping[str, str], timeout_s: float) -> dict[str, Any]:
    """kafka-python's names for the client properties the console understands."""
    conf: dict[str, Any] = {
        "bootstrap_servers": bootstrap.split(","),
        "client_id": CLIENT_ID,
        "request_timeout_ms": int(timeout_s * 1000),
    }
    names = {
        "security.protocol": "security_protocol",
        "sasl.mechanism": "sasl_mechanism",
        "sasl.mechanisms": "sasl_mechanism",
        "sasl.username": "sasl_plain_username",
        "sasl.password": "sasl_plain_password",
        "ssl.ca.location": "ssl_cafile",
        "ssl.certificate.location": "ssl_certfile",
        "ssl.key.location": "ssl_keyfile",
        "ssl.key.password": "ssl_password",
    }
    for key, value in properties.items():
        if key in names:
            conf[names[key]] = value
    return conf

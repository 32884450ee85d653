"""Topic and broker administration through confluent-kafka's AdminClient and raw requests:
create (incl. validate-only), describe/alter configs, create partitions, delete records,
delete topics, describe cluster, ListOffsets max-timestamp, LogAppendTime."""
from __future__ import annotations

import datetime
import time
import uuid

import pytest
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

from tests.helpers import BrokerProcess
from tests.integration.test_bad_input import connect, decode, encode, recv_frame


@pytest.fixture(scope="module")
def admin(broker: BrokerProcess) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def name() -> str:
    return f"a-{uuid.uuid4().hex[:10]}"


def error_code(exc: BaseException) -> str:
    assert isinstance(exc, KafkaException)
    return exc.args[0].name()


def test_create_validate_only_creates_nothing(admin: AdminClient) -> None:
    t = name()
    admin.create_topics([NewTopic(t, 2, 1)], validate_only=True)[t].result(10)
    assert t not in admin.list_topics(timeout=10).topics
    admin.create_topics([NewTopic(t, 2, 1)])[t].result(10)
    assert len(admin.list_topics(timeout=10).topics[t].partitions) == 2


def test_create_errors(admin: AdminClient) -> None:
    t = name()
    admin.create_topics([NewTopic(t, 1, 1)])[t].result(10)
    cases = [
        (NewTopic(t, 1, 1), "TOPIC_ALREADY_EXISTS"),
        (NewTopic(name(), 1, 3), "INVALID_REPLICATION_FACTOR"),
        (NewTopic(name(), 1, 1, config={"retention.ms": "soon"}), "INVALID_CONFIG"),
        (NewTopic(name(), 1, 1, config={"no.such.config": "1"}), "INVALID_CONFIG"),
        (NewTopic("bad/name", 1, 1), "TOPIC_EXCEPTION"),  # librdkafka's name for code 17
    ]
    for topic, expected in cases:
        with pytest.raises(KafkaException) as info:
            admin.create_topics([topic])[topic.topic].result(10)
        assert error_code(info.value) == expected, topic


def create_topics_raw(broker: BrokerProcess, topics: list[tuple[str, int, int]]) -> list[tuple[str, int]]:
    """A raw CreateTopics v7 (librdkafka refuses counts above 100,000 itself): (name, error code) per topic."""
    t = __import__("kio.schema.create_topics.v7.request", fromlist=["x"])
    request = t.CreateTopicsRequest(topics=tuple(
        t.CreatableTopic(name=n, num_partitions=p, replication_factor=rf, assignments=(), configs=())
        for n, p, rf in topics), timeout=datetime.timedelta(seconds=5), validate_only=False)
    with connect(broker) as s:
        s.sendall(encode(19, 7, request))
        response = decode(19, 7, recv_frame(s))
    return [(r.name, r.error_code) for r in response.topics]  # type: ignore[attr-defined]


def test_absurd_partition_counts_and_replication_factors_are_refused(admin: AdminClient, broker: BrokerProcess) -> None:
    """docs/reliability.md #3: a fuzzed count of 6,142,254 partitions made the broker build
    them all (1.4 GB RSS, no answer). Refused as Kafka refuses it (KAFKA-17870: more than
    10,000 partitions in one request is a POLICY_VIOLATION for every topic of it)."""
    t, u = name(), name()
    assert create_topics_raw(broker, [(t, 6_142_254, 1)]) == [(t, 44)]  # POLICY_VIOLATION
    assert create_topics_raw(broker, [(t, 2**31 - 1, 1)]) == [(t, 44)]
    assert create_topics_raw(broker, [(t, 6_000, 1), (u, 6_000, 1)]) == [(t, 44), (u, 44)]  # together too many
    assert create_topics_raw(broker, [(t, 1, 32_767)]) == [(t, 38)]  # INVALID_REPLICATION_FACTOR
    assert create_topics_raw(broker, [(t, 0, 1)]) == [(t, 37)]  # INVALID_PARTITIONS
    assert t not in admin.list_topics(timeout=10).topics and u not in admin.list_topics(timeout=10).topics
    admin.create_topics([NewTopic(t, 1, 1)])[t].result(10)
    with pytest.raises(KafkaException) as info:
        admin.create_partitions([NewPartitions(t, 100_000)], request_timeout=15)[t].result(15)
    assert error_code(info.value) == "POLICY_VIOLATION"
    assert len(admin.list_topics(t, timeout=10).topics[t].partitions) == 1


def test_topic_configs_describe_and_incremental_alter(admin: AdminClient) -> None:
    t = name()
    admin.create_topics([NewTopic(t, 1, 1, config={"retention.ms": "3600000"})])[t].result(10)
    res = ConfigResource(ConfigResource.Type.TOPIC, t)
    configs = admin.describe_configs([res])[res].result(10)
    assert configs["retention.ms"].value == "3600000"
    assert configs["retention.ms"].source == ConfigResource.Type.TOPIC.value or configs["retention.ms"].source == 1
    assert configs["segment.bytes"].value == "1073741824"
    assert configs["cleanup.policy"].value == "delete"
    alter = ConfigResource(ConfigResource.Type.TOPIC, t, incremental_configs=[
        ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
    ])
    admin.incremental_alter_configs([alter])[alter].result(10)
    configs = admin.describe_configs([res])[res].result(10)
    assert configs["retention.ms"].value == "1000"
    assert configs["cleanup.policy"].value == "delete,compact"
    delete = ConfigResource(ConfigResource.Type.TOPIC, t, incremental_configs=[
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)])
    admin.incremental_alter_configs([delete])[delete].result(10)
    assert admin.describe_configs([res])[res].result(10)["retention.ms"].value == "604800000"
    bad = ConfigResource(ConfigResource.Type.TOPIC, t, incremental_configs=[
        ConfigEntry("retention.ms", "x", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as info:
        admin.incremental_alter_configs([bad])[bad].result(10)
    assert error_code(info.value) == "INVALID_CONFIG"


def test_broker_configs(admin: AdminClient) -> None:
    res = ConfigResource(ConfigResource.Type.BROKER, "0")
    configs = admin.describe_configs([res])[res].result(10)
    assert configs["num.partitions"].value == "1"
    assert configs["socket.request.max.bytes"].is_read_only
    alter = ConfigResource(ConfigResource.Type.BROKER, "0", incremental_configs=[
        ConfigEntry("log.retention.bytes", "123456789", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([alter])[alter].result(10)
    assert admin.describe_configs([res])[res].result(10)["log.retention.bytes"].value == "123456789"
    static = ConfigResource(ConfigResource.Type.BROKER, "0", incremental_configs=[
        ConfigEntry("listeners", "PLAINTEXT://:1", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException):
        admin.incremental_alter_configs([static])[static].result(10)
    back = ConfigResource(ConfigResource.Type.BROKER, "0", incremental_configs=[
        ConfigEntry("log.retention.bytes", None, incremental_operation=AlterConfigOpType.DELETE)])
    admin.incremental_alter_configs([back])[back].result(10)


def test_create_partitions(admin: AdminClient, broker: BrokerProcess) -> None:
    t = name()
    admin.create_topics([NewTopic(t, 1, 1)])[t].result(10)
    admin.create_partitions([NewPartitions(t, 4)])[t].result(10)
    assert len(admin.list_topics(t, timeout=10).topics[t].partitions) == 4
    with pytest.raises(KafkaException) as info:
        admin.create_partitions([NewPartitions(t, 2)])[t].result(10)
    assert error_code(info.value) == "INVALID_PARTITIONS"
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce(t, b"in-new-partition", partition=3)
    assert p.flush(10) == 0


def test_delete_records_moves_log_start(admin: AdminClient, broker: BrokerProcess) -> None:
    t = name()
    admin.create_topics([NewTopic(t, 1, 1)])[t].result(10)
    p = Producer({"bootstrap.servers": broker.bootstrap, "batch.num.messages": 1})
    for i in range(20):
        p.produce(t, str(i).encode(), partition=0)
        p.flush(10)
    result = admin.delete_records([TopicPartition(t, 0, 12)])
    low = list(result.values())[0].result(10)
    assert low.low_watermark == 12
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "x"})
    assert c.get_watermark_offsets(TopicPartition(t, 0), timeout=10) == (12, 20)
    c.close()


def test_delete_topic_removes_data(admin: AdminClient, broker: BrokerProcess) -> None:
    t = name()
    admin.create_topics([NewTopic(t, 2, 1)])[t].result(10)
    assert (broker.data_dir / "logs" / f"{t}-0").exists()
    admin.delete_topics([t])[t].result(10)
    assert t not in admin.list_topics(timeout=10).topics
    deadline = time.monotonic() + 5
    while (broker.data_dir / "logs" / f"{t}-0").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not (broker.data_dir / "logs" / f"{t}-0").exists()
    with pytest.raises(KafkaException) as info:
        admin.delete_topics([t])[t].result(10)
    assert error_code(info.value) == "UNKNOWN_TOPIC_OR_PART"


def test_describe_cluster(admin: AdminClient, broker: BrokerProcess) -> None:
    cluster = admin.describe_cluster().result(10)
    assert cluster.cluster_id
    assert [n.id for n in cluster.nodes] == [0]
    assert cluster.nodes[0].port == broker.port
    assert cluster.controller.id == 0


def test_list_offsets_max_timestamp(admin: AdminClient, broker: BrokerProcess) -> None:
    t = name()
    admin.create_topics([NewTopic(t, 1, 1)])[t].result(10)
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 50})
    for i, ts in enumerate([1000, 5000, 3000, 5000, 2000]):
        p.produce(t, str(i).encode(), partition=0, timestamp=ts)
    assert p.flush(10) == 0
    mod = __import__("kio.schema.list_offsets.v7.request", fromlist=["x"])
    request = mod.ListOffsetsRequest(replica_id=-1, isolation_level=0, topics=(mod.ListOffsetsTopic(
        name=t, partitions=(mod.ListOffsetsPartition(partition_index=0, current_leader_epoch=-1, timestamp=-3),)),))
    with connect(broker) as s:
        s.sendall(encode(2, 7, request))
        response = decode(2, 7, recv_frame(s))
    part = response.topics[0].partitions[0]
    assert (part.error_code, part.offset, part.timestamp) == (0, 1, 5000)


def test_log_append_time(admin: AdminClient, broker: BrokerProcess) -> None:
    t = name()
    admin.create_topics([NewTopic(t, 1, 1, config={"message.timestamp.type": "LogAppendTime"})])[t].result(10)
    before = int(time.time() * 1000)
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "lz4"})
    p.produce(t, b"stamped", partition=0, timestamp=1234)
    assert p.flush(10) == 0
    after = int(time.time() * 1000)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "x"})
    c.assign([TopicPartition(t, 0, 0)])
    m = None
    for _ in range(50):
        m = c.poll(0.2)
        if m is not None and not m.error():
            break
    c.close()
    assert m is not None and m.value() == b"stamped"
    kind, ts = m.timestamp()
    assert kind == TIMESTAMP_LOG_APPEND_TIME
    assert before - 1000 <= ts <= after + 1000
    assert datetime.datetime.fromtimestamp(ts / 1000).year >= 2024


def alter_configs(broker: BrokerProcess, resource_type: int, resource: str, configs: dict[str, str],
                  validate_only: bool = False) -> tuple[int, str | None]:
    """A raw AlterConfigs v2 request for one resource: (error code, message)."""
    t = __import__("kio.schema.alter_configs.v2.request", fromlist=["x"])
    request = t.AlterConfigsRequest(validate_only=validate_only, resources=(t.AlterConfigsResource(
        resource_type=resource_type, resource_name=resource,
        configs=tuple(t.AlterableConfig(name=k, value=v) for k, v in configs.items())),))
    with connect(broker) as s:
        s.sendall(encode(33, 2, request))
        response = decode(33, 2, recv_frame(s))
    res = response.responses[0]  # type: ignore[attr-defined]
    return res.error_code, res.error_message


def test_legacy_alter_configs_replaces_the_whole_set(broker: BrokerProcess, admin: AdminClient) -> None:
    """AlterConfigs (not incremental): the given configs become the resource's whole set;
    the ones left out return to their defaults."""
    t = name()
    admin.create_topics([NewTopic(t, 1, 1, config={"retention.ms": "3600000", "cleanup.policy": "compact"})])[
        t].result(10)
    res = ConfigResource(ConfigResource.Type.TOPIC, t)
    assert alter_configs(broker, 2, t, {"segment.ms": "600000"}, validate_only=True)[0] == 0
    assert admin.describe_configs([res])[res].result(10)["retention.ms"].value == "3600000"  # validate only
    assert alter_configs(broker, 2, t, {"segment.ms": "600000"}) == (0, None)
    configs = admin.describe_configs([res])[res].result(10)
    assert configs["segment.ms"].value == "600000"
    assert configs["retention.ms"].value == "604800000"  # left out: back to the default
    assert configs["cleanup.policy"].value == "delete"
    assert alter_configs(broker, 2, t, {"segment.ms": "soon"})[0] == 40  # INVALID_CONFIG
    assert admin.describe_configs([res])[res].result(10)["segment.ms"].value == "600000"  # nothing changed
    assert alter_configs(broker, 2, name(), {"segment.ms": "1"})[0] == 3  # UNKNOWN_TOPIC_OR_PARTITION
    assert alter_configs(broker, 4, "", {"log.retention.bytes": "123456789"}) == (0, None)
    b = ConfigResource(ConfigResource.Type.BROKER, "0")
    assert admin.describe_configs([b])[b].result(10)["log.retention.bytes"].value == "123456789"
    assert alter_configs(broker, 4, "", {"broker.id": "7"})[0] == 40  # not dynamic
    assert alter_configs(broker, 4, "", {}) == (0, None)
    assert admin.describe_configs([b])[b].result(10)["log.retention.bytes"].value == "-1"


def test_describe_log_dirs_with_kafka_python(broker: BrokerProcess, admin: AdminClient) -> None:
    from kafka.admin import KafkaAdminClient

    t = name()
    admin.create_topics([NewTopic(t, 2, 1)])[t].result(10)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for _ in range(100):
        p.produce(t, b"x" * 100, partition=1)
    assert p.flush(10) == 0
    kp = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        everything = kp.describe_log_dirs()
        only = kp.describe_log_dirs({t: [1]})
    finally:
        kp.close()

    def partitions(result: list[dict]) -> dict[tuple[str, int], dict]:  # type: ignore[type-arg]
        """kafka-python's answer: [{"broker": id, "log_dirs": [{...}]}]."""
        out = {}
        assert [r["broker"] for r in result] == [0]
        for d in result[0]["log_dirs"]:
            assert d["error_code"] == 0
            assert d["log_dir"].endswith("logs")
            assert d["total_bytes"] > 0 and 0 <= d["usable_bytes"] <= d["total_bytes"]
            for topic in d["topics"]:
                for part in topic["partitions"]:
                    out[(topic["name"], part["partition_index"])] = part
        return out

    all_parts = partitions(everything)
    assert (t, 0) in all_parts and (t, 1) in all_parts
    assert all_parts[(t, 0)]["partition_size"] == 0
    assert all_parts[(t, 1)]["partition_size"] > 100 * 100
    assert all_parts[(t, 1)]["offset_lag"] == 0
    assert set(partitions(only)) == {(t, 1)}

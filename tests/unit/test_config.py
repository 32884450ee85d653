"""Broker properties: Kafka's names, defaults and errors that name the property."""
from pathlib import Path

import pytest

from moldau.server.config import BrokerConfig, ConfigError, read_properties


def test_defaults_follow_kafka() -> None:
    c = BrokerConfig.from_sources({})
    assert c["num.partitions"] == 1
    assert c["auto.create.topics.enable"] is True
    assert c.retention_ms == 168 * 3_600_000
    assert c.log_config().segment_bytes == 1073741824
    assert c.listeners()[0].port == 9092


def test_retention_precedence_ms_minutes_hours() -> None:
    assert BrokerConfig.from_sources({"log.retention.hours": "1"}).retention_ms == 3_600_000
    assert BrokerConfig.from_sources({"log.retention.minutes": "2",
                                      "log.retention.hours": "1"}).retention_ms == 120_000
    assert BrokerConfig.from_sources({"log.retention.ms": "-1"}).retention_ms == -1


@pytest.mark.parametrize(
    "props,needle",
    [
        ({"no.such.thing": "1"}, "no.such.thing"),
        ({"num.partitions": "many"}, "num.partitions"),
        ({"num.partitions": "0"}, "num.partitions"),
        ({"auto.create.topics.enable": "yes"}, "auto.create.topics.enable"),
        ({"listeners": "localhost"}, "listeners"),
        ({"log.message.timestamp.type": "Wallclock"}, "log.message.timestamp.type"),
    ],
)
def test_bad_properties_name_themselves(props: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        BrokerConfig.from_sources(props)


def test_overrides_win_and_are_checked() -> None:
    c = BrokerConfig.from_sources({"num.partitions": "3"}, ["num.partitions=5"])
    assert c["num.partitions"] == 5
    with pytest.raises(ConfigError, match="override"):
        BrokerConfig.from_sources({}, ["novalue"])


def test_properties_file(tmp_path: Path) -> None:
    p = tmp_path / "server.properties"
    p.write_text("# comment\nbroker.id = 4\nlog.dirs=/a,/b\nnum.network.threads=3\n")
    c = BrokerConfig.from_sources(read_properties(p))
    assert c.broker_id == 4
    assert [str(d) for d in c.log_dirs] == ["/a", "/b"]
    assert c.ignored == ["num.network.threads"]


def test_log_cleaner_properties_follow_kafka() -> None:
    c = BrokerConfig.from_sources({})
    assert c["log.cleaner.enable"] is True
    assert c["log.cleaner.backoff.ms"] == 15000
    assert c["log.cleaner.dedupe.buffer.size"] == 134217728
    defaults = c.log_config()
    assert (defaults.min_cleanable_dirty_ratio, defaults.delete_retention_ms) == (0.5, 86400000)
    assert (defaults.min_compaction_lag_ms, defaults.max_compaction_lag_ms) == (0, 2**63 - 1)
    tuned = BrokerConfig.from_sources({"log.cleaner.min.cleanable.ratio": "0.01",
                                       "log.cleaner.delete.retention.ms": "5"}).log_config()
    assert (tuned.min_cleanable_dirty_ratio, tuned.delete_retention_ms) == (0.01, 5)
    with pytest.raises(ConfigError, match=r"log\.cleaner\.min\.cleanable\.ratio"):
        BrokerConfig.from_sources({"log.cleaner.min.cleanable.ratio": "1.5"})
    with pytest.raises(ConfigError, match=r"log\.cleaner\.min\.cleanable\.ratio"):
        BrokerConfig.from_sources({"log.cleaner.min.cleanable.ratio": "half"})


def test_topic_cleaner_configs_override_and_are_checked() -> None:
    from moldau.log.config import TOPIC_CONFIGS, LogConfig

    config = LogConfig().with_overrides({"cleanup.policy": "compact,delete", "min.cleanable.dirty.ratio": "0.1",
                                         "delete.retention.ms": "7", "min.compaction.lag.ms": "8",
                                         "max.compaction.lag.ms": "9"})
    assert config.compact and config.delete
    assert (config.min_cleanable_dirty_ratio, config.delete_retention_ms) == (0.1, 7)
    assert (config.min_compaction_lag_ms, config.max_compaction_lag_ms) == (8, 9)
    assert LogConfig().delete and not LogConfig().compact
    assert LogConfig(cleanup_policy="compact").compact and not LogConfig(cleanup_policy="compact").delete
    with pytest.raises(ValueError, match="maximum"):
        TOPIC_CONFIGS["min.cleanable.dirty.ratio"].parse("2")
    with pytest.raises(ValueError, match="minimum"):
        TOPIC_CONFIGS["max.compaction.lag.ms"].parse("0")


def test_deprecated_kafka_3_broker_properties_are_accepted_and_ignored() -> None:
    c = BrokerConfig.from_sources({"log.message.format.version": "2.8", "inter.broker.protocol.version": "3.9",
                                   "log.message.downconversion.enable": "true",
                                   "log.message.timestamp.difference.max.ms": "1000"})
    assert sorted(c.ignored) == ["inter.broker.protocol.version", "log.message.downconversion.enable",
                                 "log.message.format.version", "log.message.timestamp.difference.max.ms"]
    with pytest.raises(ConfigError, match="unknown property 'log.message.format.versio'"):
        BrokerConfig.from_sources({"log.message.format.versio": "2.8"})


def test_kerberos_properties_are_accepted_without_effect_also_at_runtime() -> None:
    """Kafka's GSSAPI settings for Java's login thread: a Kafka file with them loads (they are
    ignored: MIT's library renews tickets itself), and setting one at runtime (AlterConfigs on
    the broker, as librdkafka's 0081 does) is a no-op. The service name is a property of its own."""
    c = BrokerConfig.from_sources({"sasl.kerberos.service.name": "kafka", "sasl.kerberos.kinit.cmd": "/usr/bin/kinit"})
    assert c.ignored == ["sasl.kerberos.kinit.cmd"]
    assert c["sasl.kerberos.service.name"] == "kafka"
    c.set_dynamic("sasl.kerberos.min.time.before.relogin", "58000")
    c.set_dynamic("sasl.kerberos.min.time.before.relogin", None)
    assert "sasl.kerberos.min.time.before.relogin" not in c.values
    with pytest.raises(ConfigError, match="unknown property 'sasl.kerberos.unknown'"):
        c.set_dynamic("sasl.kerberos.unknown", "1")

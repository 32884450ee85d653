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

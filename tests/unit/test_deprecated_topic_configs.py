"""Deprecated topic configs that Kafka 3.9 still accepts (removed in 4.0): checked as Kafka
checks them, stored, ignored, and said to be ignored once per topic and config."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from moldau.log.config import TOPIC_CONFIGS, LogConfig
from moldau.log.manager import LogManager

DEPRECATED = {
    "message.format.version": "2.8",
    "message.downconversion.enable": "true",
    "message.timestamp.difference.max.ms": "60000",
}


def test_the_table_lists_kafka_39s_deprecated_configs() -> None:
    assert {name for name, spec in TOPIC_CONFIGS.items() if spec.deprecated} == set(DEPRECATED)
    assert TOPIC_CONFIGS["message.format.version"].broker_name == "log.message.format.version"
    assert TOPIC_CONFIGS["message.downconversion.enable"].kind == "boolean"
    assert TOPIC_CONFIGS["message.timestamp.difference.max.ms"].kind == "long"


@pytest.mark.parametrize("value", ["0.8.0", "0.10.2", "0.10.0-IV1", "2.8", "3.0-IV1", " 3.9 "])
def test_message_format_version_takes_kafka_versions(value: str) -> None:
    assert TOPIC_CONFIGS["message.format.version"].parse(value) == value.strip()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("message.format.version", "banana"),
        ("message.format.version", "3"),
        ("message.format.version", "2.8-IV"),
        ("message.format.version", ""),
        ("message.downconversion.enable", "maybe"),
        ("message.timestamp.difference.max.ms", "-1"),
        ("message.timestamp.difference.max.ms", "soon"),
    ],
)
def test_bad_values_are_still_refused(name: str, value: str) -> None:
    """Deprecated is not unchecked: Kafka 3.9 refuses these with INVALID_CONFIG too."""
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        TOPIC_CONFIGS[name].parse(value)


def test_overrides_change_nothing_but_are_remembered() -> None:
    base = LogConfig(retention_ms=1000)
    config = base.with_overrides({**DEPRECATED, "segment.ms": "5000"})
    assert config.segment_ms == 5000
    assert config.deprecated_overrides == tuple(sorted(DEPRECATED.items()))
    ignored = {"deprecated_overrides", "message_format_version", "message_downconversion_enable",
               "message_timestamp_difference_max_ms", "segment_ms"}
    for f in dataclasses.fields(LogConfig):
        if f.name not in ignored:
            assert getattr(config, f.name) == getattr(base, f.name), f.name


def test_defaults_are_kafka_39s() -> None:
    """What DescribeConfigs shows for a topic that does not set them."""
    config = LogConfig()
    assert config.message_format_version == "3.0-IV1"
    assert config.message_downconversion_enable is True
    assert config.message_timestamp_difference_max_ms == 2**63 - 1
    assert config.deprecated_overrides == ()
    assert LogConfig().with_overrides({"retention.ms": "5"}).deprecated_overrides == ()


def test_overrides_accumulate_and_a_later_value_wins() -> None:
    config = LogConfig().with_overrides({"message.format.version": "2.8"})
    config = config.with_overrides({"message.format.version": "3.0", "message.downconversion.enable": "false"})
    assert config.deprecated_overrides == (("message.downconversion.enable", "false"),
                                           ("message.format.version", "3.0"))


def _ignored_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "is ignored" in r.getMessage()]


def test_log_manager_says_it_once_per_topic_and_config(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="moldau.log.manager")
    manager = LogManager([tmp_path], LogConfig())
    manager.load(0)
    config = LogConfig().with_overrides(DEPRECATED)
    for partition in range(3):
        manager.create("old", partition, config, 0)
    manager.create("old", 0, config, 0)  # again: the broker re-learns its partitions
    manager.update_config("old", config)
    manager.update_config("old", config.with_overrides({"retention.ms": "5"}))
    lines = _ignored_lines(caplog)
    assert len(lines) == 3
    assert any("message.format.version=2.8 of topic old" in line for line in lines)
    assert all("deprecated" in line for line in lines)

    caplog.clear()
    manager.update_config("not-here", config)  # a topic this broker holds no replica of
    manager.create("other", 0, LogConfig().with_overrides({"message.downconversion.enable": "false"}), 0)
    assert _ignored_lines(caplog) == [
        "Topic configuration message.downconversion.enable=false of topic other is ignored: it is deprecated "
        "(removed in Kafka 4.0) and has no effect on this broker"
    ]

    caplog.clear()
    manager.update_config("old", LogConfig())  # unset ...
    manager.update_config("old", config)  # ... and set again: said again
    assert len(_ignored_lines(caplog)) == 3

    caplog.clear()
    for partition in range(3):  # deleted and created again: said again
        manager.delete("old", partition)
    manager.create("old", 0, config, 0)
    assert len(_ignored_lines(caplog)) == 3
    manager.shutdown()

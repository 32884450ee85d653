"""The console tools' argument parsing, line splitting and output format: no broker."""

from __future__ import annotations

import argparse
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME, KafkaError

from moldau.cli.common import CliError, client_config, error_name, error_text, key_value, read_properties, unescape
from moldau.cli.consume import (
    PrintOptions,
    StartPosition,
    consumer_config,
    format_record,
    parse_offset,
    parse_timestamp,
    start_position,
)
from moldau.cli.main import parse_args
from moldau.cli.produce import MissingKeySeparator, producer_config, read_lines, split_line


def exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as e:
        parse_args(argv)
    assert isinstance(e.value.code, int)
    return e.value.code


# ---------------------------------------------------------------- top-level parser


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["--version"]) == 0
    assert capsys.readouterr().out.startswith("moldau ")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nonsense"],
        ["topics"],
        ["topics", "create"],
        ["topics", "create", "t", "--partitions", "0"],
        ["topics", "create", "t", "--partitions", "x"],
        ["topics", "create", "t", "--config", "novalue"],
        ["topics", "alter", "t"],  # nothing to alter
        ["produce"],  # no topic
        ["produce", "a", "--topic", "b"],  # two different topics
        ["produce", "t", "--acks", "2"],
        ["produce", "t", "--compression", "brotli"],
        ["produce", "t", "--header", "nokey"],
        ["produce", "t", "--timeout", "0"],
        ["consume", "t", "--offset", "-3"],
        ["consume", "t", "--offset", "soon"],
        ["consume", "t", "--from-beginning", "--offset", "5"],
        ["consume", "t", "--from-timestamp", "yesterday"],
        ["consume", "t", "--max-messages", "0"],
    ],
)
def test_bad_flags_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(argv) == 2
    assert "usage:" in capsys.readouterr().err


def test_every_command_has_a_func() -> None:
    for argv in (
        ["topics", "create", "t"],
        ["topics", "list"],
        ["topics", "describe"],
        ["topics", "describe", "t"],
        ["topics", "alter", "t", "--partitions", "3"],
        ["topics", "delete", "t"],
        ["produce", "t"],
        ["consume", "t"],
    ):
        assert callable(parse_args(argv).func), argv


# ------------------------------------------------------------------------- topics


def test_topics_create_flags() -> None:
    args = parse_args(
        [
            "topics",
            "create",
            "orders",
            "--partitions",
            "6",
            "--replication-factor",
            "3",
            "--config",
            "retention.ms=1000",
            "--config",
            "cleanup.policy=compact",
            "--if-not-exists",
            "--validate-only",
            "--bootstrap-server",
            "b1:9092,b2:9092",
        ]
    )
    assert args.topic == "orders"
    assert (args.partitions, args.replication_factor) == (6, 3)
    assert dict(args.config) == {"retention.ms": "1000", "cleanup.policy": "compact"}
    assert args.if_not_exists and args.validate_only
    assert args.bootstrap_server == "b1:9092,b2:9092"


def test_topics_defaults_leave_choice_to_broker() -> None:
    args = parse_args(["topics", "create", "t"])
    assert args.partitions is None and args.replication_factor is None
    assert args.config == []


def test_topics_alter_flags() -> None:
    args = parse_args(["topics", "alter", "t", "--config", "a=1", "--delete-config", "b", "--delete-config", "c"])
    assert args.config == [("a", "1")]
    assert args.delete_config == ["b", "c"]
    assert args.partitions is None


# ------------------------------------------------------------------------ produce


def test_topic_positional_or_flag() -> None:
    assert parse_args(["produce", "t"]).topic == "t"
    assert parse_args(["produce", "--topic", "t"]).topic == "t"
    assert parse_args(["consume", "--topic", "t", "t"]).topic == "t"


def test_produce_flags() -> None:
    args = parse_args(
        [
            "produce",
            "t",
            "--key-separator",
            "\\t",
            "--acks",
            "-1",
            "--partition",
            "2",
            "--compression",
            "zstd",
            "--header",
            "a=1",
            "--header",
            "b=x=y",
            "--timeout",
            "2.5",
        ]
    )
    assert args.key_separator == "\t"
    assert args.partition == 2
    assert args.header == [("a", "1"), ("b", "x=y")]
    conf = producer_config(args)
    assert conf["acks"] == "all"
    assert conf["compression.type"] == "zstd"
    assert conf["message.timeout.ms"] == 2500
    assert conf["linger.ms"] <= 10


@pytest.mark.parametrize("acks,expected", [("0", "0"), ("1", "1"), ("all", "all")])
def test_produce_acks(acks: str, expected: str) -> None:
    assert producer_config(parse_args(["produce", "t", "--acks", acks]))["acks"] == expected


def test_split_line_without_separator_is_the_value() -> None:
    assert split_line(b"a:b", 1, None, False) == (None, b"a:b")


def test_split_line_at_first_separator() -> None:
    assert split_line(b"k:v:w", 1, b":", False) == (b"k", b"v:w")
    assert split_line(b":v", 1, b":", False) == (b"", b"v")
    assert split_line(b"k:", 1, b":", False) == (b"k", b"")
    assert split_line(b"k::v", 1, b"::", False) == (b"k", b"v")


def test_split_line_missing_separator_names_the_line() -> None:
    with pytest.raises(MissingKeySeparator, match="line 7 .*':'"):
        split_line(b"novalue", 7, b":", False)


def test_split_line_missing_separator_ignored() -> None:
    assert split_line(b"novalue", 7, b":", True) == (None, b"novalue")


def test_read_lines_strips_line_endings_only() -> None:
    stream = io.BytesIO(b"a\nb\r\n\n  c  \nlast")
    assert list(read_lines(stream)) == [b"a", b"b", b"", b"  c  ", b"last"]


# ------------------------------------------------------------------------ consume


def test_parse_offset() -> None:
    assert parse_offset("earliest") == StartPosition("earliest")
    assert parse_offset("latest") == StartPosition("latest")
    assert parse_offset("42") == StartPosition("offset", 42)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_offset("-1")


def test_parse_timestamp_ms_and_iso() -> None:
    assert parse_timestamp("1700000000000") == StartPosition("timestamp", 1700000000000)
    expected = int(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp() * 1000)
    assert parse_timestamp("2024-01-02T03:04:05Z").value == expected
    assert parse_timestamp("2024-01-02T03:04:05+00:00").value == expected
    assert parse_timestamp("2024-01-02T04:04:05+01:00").value == expected


def test_start_position_without_group() -> None:
    assert start_position(parse_args(["consume", "t"])) == StartPosition("latest")
    assert start_position(parse_args(["consume", "t", "--from-beginning"])) == StartPosition("earliest")
    assert start_position(parse_args(["consume", "t", "--offset", "5"])) == StartPosition("offset", 5)


def test_start_position_with_group_defers_to_committed_offsets() -> None:
    args = parse_args(["consume", "t", "--group", "g", "--from-beginning"])
    assert start_position(args) is None
    assert consumer_config(args)["auto.offset.reset"] == "earliest"
    assert consumer_config(args)["group.id"] == "g"
    assert consumer_config(args)["enable.auto.commit"] is True


def test_consumer_without_group_never_commits() -> None:
    conf = consumer_config(parse_args(["consume", "t"]))
    assert conf["enable.auto.commit"] is False
    assert conf["group.id"].startswith("moldau-cli-")
    assert conf["group.id"] != consumer_config(parse_args(["consume", "t"]))["group.id"]


def test_format_value_only_by_default() -> None:
    assert format_record(PrintOptions(), value=b"v", key=b"k") == b"v\n"
    assert format_record(PrintOptions(), value=None) == b"null\n"


def test_format_all_columns_in_kafka_order() -> None:
    options = PrintOptions(key=True, headers=True, timestamp=True, offset=True, partition=True, separator=b"|")
    line = format_record(
        options,
        value=b"v",
        key=b"k",
        headers=[("h1", b"x"), ("h2", None)],
        timestamp=(TIMESTAMP_CREATE_TIME, 1234),
        partition=3,
        offset=99,
    )
    assert line == b"CreateTime:1234|Partition:3|Offset:99|h1:x,h2:null|k|v\n"


def test_format_missing_parts() -> None:
    options = PrintOptions(key=True, headers=True, timestamp=True)
    line = format_record(options, value=b"v", key=None, headers=None, timestamp=(0, -1))
    assert line == b"NO_TIMESTAMP\tNO_HEADERS\tnull\tv\n"
    line = format_record(PrintOptions(timestamp=True), value=b"v", timestamp=(TIMESTAMP_LOG_APPEND_TIME, 5))
    assert line == b"LogAppendTime:5\tv\n"


def test_print_options_from_args() -> None:
    args = parse_args(["consume", "t", "--print-key", "--key-separator", "\\n"])
    assert PrintOptions.from_args(args) == PrintOptions(key=True, separator=b"\n")


# ------------------------------------------------------------------------- common


def test_key_value() -> None:
    assert key_value("a=b=c") == ("a", "b=c")
    assert key_value("a=") == ("a", "")
    with pytest.raises(argparse.ArgumentTypeError):
        key_value("=b")


def test_unescape() -> None:
    assert unescape("\\t") == "\t"
    assert unescape(":") == ":"
    assert unescape("é") == "é"


def test_read_properties(tmp_path: Path) -> None:
    path = tmp_path / "client.properties"
    path.write_text("# comment\n! also a comment\n\nsecurity.protocol=PLAINTEXT\nclient.id : mine\nsasl.password=a=b\n")
    assert read_properties(str(path)) == {
        "security.protocol": "PLAINTEXT",
        "client.id": "mine",
        "sasl.password": "a=b",
    }


def test_read_properties_errors(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="cannot read"):
        read_properties(str(tmp_path / "missing"))
    bad = tmp_path / "bad.properties"
    bad.write_text("justakey\n")
    with pytest.raises(CliError, match="bad.properties:1"):
        read_properties(str(bad))


def test_client_config_precedence(tmp_path: Path) -> None:
    path = tmp_path / "client.properties"
    path.write_text("bootstrap.servers=fromfile:9092\nclient.id=fromfile\nlinger.ms=100\n")
    args = parse_args(["produce", "t", "--command-config", str(path)])
    conf, _ = client_config(args, {"linger.ms": 5})
    assert conf["bootstrap.servers"] == "fromfile:9092"  # file beats the default
    assert conf["client.id"] == "fromfile"  # file beats our defaults
    assert conf["linger.ms"] == 5  # the command's flags beat the file
    args = parse_args(["produce", "t", "--command-config", str(path), "--bootstrap-server", "x:1"])
    assert client_config(args)[0]["bootstrap.servers"] == "x:1"  # the flag beats everything


def test_client_config_is_bounded_by_timeout() -> None:
    conf, _ = client_config(parse_args(["topics", "list", "--timeout", "3"]))
    assert conf["bootstrap.servers"] == "localhost:9092"
    assert conf["socket.connection.setup.timeout.ms"] == 3000
    assert conf["socket.timeout.ms"] == 3000
    assert conf["allow.auto.create.topics"] is False


def test_errors_are_named_as_kafka_names_them() -> None:
    # librdkafka shortens these; Kafka's names are the ones its docs and logs use.
    assert error_name(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)) == "UNKNOWN_TOPIC_OR_PARTITION"
    assert error_name(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)) == "MESSAGE_TOO_LARGE"
    assert error_name(KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION)) == "NOT_LEADER_OR_FOLLOWER"
    assert error_name(KafkaError(-1)) == "UNKNOWN_SERVER_ERROR"
    assert error_name(KafkaError(KafkaError.GROUP_ID_NOT_FOUND)) == "GROUP_ID_NOT_FOUND"
    # librdkafka's local errors have no Kafka name.
    assert error_name(KafkaError(KafkaError._TRANSPORT)) == "_TRANSPORT"
    assert error_text(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)) == (
        "Unknown topic or partition (UNKNOWN_TOPIC_OR_PARTITION)")

"""`moldau groups`: flags, value parsing, offset planning and output rows; no broker."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import ConsumerGroupState

from moldau.cli.groups import (
    Group,
    Member,
    ResetTarget,
    TopicSelection,
    assignment_text,
    format_table,
    member_rows,
    new_offset,
    offset_rows,
    parse_datetime,
    parse_duration,
    parse_shift,
    parse_states,
    parse_topic_selection,
    plan_rows,
    state_name,
    state_row,
    summary_line,
    target_timestamp,
)
from moldau.cli.main import parse_args


def exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as e:
        parse_args(argv)
    assert isinstance(e.value.code, int)
    return e.value.code


# --------------------------------------------------------------------------- flags


@pytest.mark.parametrize(
    "argv",
    [
        ["groups"],
        ["groups", "nonsense"],
        ["groups", "list", "--state", "sleepy"],
        ["groups", "describe"],  # no group
        ["groups", "describe", "g", "--all-groups"],
        ["groups", "describe", "g", "--members", "--state"],
        ["groups", "delete"],
        ["groups", "reset-offsets", "--all-topics", "--to-earliest"],  # no --group
        ["groups", "reset-offsets", "--group", "g", "--to-earliest"],  # no scope
        ["groups", "reset-offsets", "--group", "g", "--all-topics"],  # no target
        ["groups", "reset-offsets", "--group", "g", "--all-topics", "--topic", "t", "--to-earliest"],
        ["groups", "reset-offsets", "--group", "g", "--all-topics", "--to-earliest", "--to-latest"],
        ["groups", "reset-offsets", "--group", "g", "--all-topics", "--to-offset", "-1"],
        ["groups", "reset-offsets", "--group", "g", "--all-topics", "--to-offset", "x"],
        ["groups", "reset-offsets", "--group", "g", "--all-topics", "--shift-by", "1.5"],
        ["groups", "reset-offsets", "--group", "g", "--all-topics", "--to-datetime", "yesterday"],
        ["groups", "reset-offsets", "--group", "g", "--all-topics", "--by-duration", "1h"],
        ["groups", "reset-offsets", "--group", "g", "--topic", "t:x", "--to-earliest"],
        ["groups", "reset-offsets", "--group", "g", "--topic", ":0", "--to-earliest"],
        ["groups", "reset-offsets", "--group", "g", "--all-topics", "--to-earliest", "--dry-run", "--execute"],
        ["groups", "list", "--timeout", "0"],
    ],
)
def test_bad_flags_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(argv) == 2
    assert "usage:" in capsys.readouterr().err


def test_every_action_has_a_func() -> None:
    for argv in (
        ["groups", "list"],
        ["groups", "describe", "g"],
        ["groups", "describe", "--all-groups"],
        ["groups", "delete", "g", "h"],
        ["groups", "reset-offsets", "--group", "g", "--all-topics", "--to-earliest"],
    ):
        assert callable(parse_args(argv).func), argv


def test_connection_flags_are_shared() -> None:
    args = parse_args(["groups", "list", "--bootstrap-server", "h:1", "--timeout", "3", "--command-config", "f"])
    assert (args.bootstrap_server, args.timeout, args.command_config) == ("h:1", 3.0, "f")


def test_list_state_flag() -> None:
    assert parse_args(["groups", "list"]).state is None
    assert parse_args(["groups", "list", "--state"]).state == []  # show states, filter nothing
    states = parse_args(["groups", "list", "--state", "Stable,empty", "PreparingRebalance"]).state
    assert states == [
        (ConsumerGroupState.STABLE, ConsumerGroupState.EMPTY),
        (ConsumerGroupState.PREPARING_REBALANCING,),
    ]


def test_describe_views() -> None:
    args = parse_args(["groups", "describe", "a", "b"])
    assert (args.groups, args.view, args.all_groups) == (["a", "b"], "offsets", False)
    assert parse_args(["groups", "describe", "a", "--members"]).view == "members"
    assert parse_args(["groups", "describe", "a", "--state"]).view == "state"
    assert parse_args(["groups", "describe", "--all-groups", "--offsets"]).view == "offsets"


def test_reset_flags() -> None:
    args = parse_args(["groups", "reset-offsets", "--group", "g", "--topic", "a", "--topic", "b:2,0", "--to-latest"])
    assert args.group == "g"
    assert args.topics == [TopicSelection("a"), TopicSelection("b", (0, 2))]
    assert not args.all_topics
    assert args.target == ResetTarget("latest")
    assert not args.execute and not args.dry_run  # a dry run by default

    def target(*flag: str) -> ResetTarget:
        parsed = parse_args(["groups", "reset-offsets", "--group", "g", "--all-topics", *flag, "--execute"])
        assert parsed.all_topics and parsed.execute
        result: ResetTarget = parsed.target
        return result

    assert target("--to-earliest") == ResetTarget("earliest")
    assert target("--to-current") == ResetTarget("current")
    assert target("--to-offset", "42") == ResetTarget("offset", 42)
    assert target("--shift-by", "-5") == ResetTarget("shift", -5)
    assert target("--shift-by", "+3") == ResetTarget("shift", 3)
    assert target("--by-duration", "PT1M") == ResetTarget("duration", 60_000)
    assert target("--to-datetime", "2024-01-31T12:00:00Z") == ResetTarget(
        "datetime", int(datetime(2024, 1, 31, 12, tzinfo=UTC).timestamp() * 1000)
    )


# -------------------------------------------------------------------------- values


def test_parse_states() -> None:
    assert parse_states("stable") == (ConsumerGroupState.STABLE,)
    assert parse_states("Empty, DEAD") == (ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD)
    assert parse_states("completingrebalance") == (ConsumerGroupState.COMPLETING_REBALANCING,)
    for bad in ("", ",", "Unknown", "rebalancing"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_states(bad)


def test_state_names_are_kafkas() -> None:
    assert state_name(ConsumerGroupState.PREPARING_REBALANCING) == "PreparingRebalance"
    assert state_name(ConsumerGroupState.COMPLETING_REBALANCING) == "CompletingRebalance"
    assert state_name(ConsumerGroupState.STABLE) == "Stable"
    assert state_name(None) == "Unknown"


def test_parse_topic_selection() -> None:
    assert parse_topic_selection("orders") == TopicSelection("orders")
    assert parse_topic_selection("orders:3") == TopicSelection("orders", (3,))
    assert parse_topic_selection("my.topic-1:2,0,2") == TopicSelection("my.topic-1", (0, 2))
    for bad in (":1", "t:", "t:a", "t:-1", "t:1,,2"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_topic_selection(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT1H", timedelta(hours=1)),
        ("pt30m", timedelta(minutes=30)),
        ("PT0.5S", timedelta(milliseconds=500)),
        ("P2D", timedelta(days=2)),
        ("P1DT2H3M4S", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("PT90S", timedelta(seconds=90)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == ResetTarget("duration", int(expected.total_seconds() * 1000))


@pytest.mark.parametrize("text", ["", "P", "PT", "P1DT", "1H", "PT1H30", "P1W", "PT-1H", "P1H", "PT1M1H"])
def test_parse_bad_duration(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(text)


def test_parse_datetime() -> None:
    utc = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
    ms = int(utc.timestamp() * 1000)
    assert parse_datetime("2024-05-06T07:08:09.123Z") == ResetTarget("datetime", ms)
    assert parse_datetime("2024-05-06T09:08:09.123+02:00") == ResetTarget("datetime", ms)
    # No zone: local time, as Kafka's tool reads it.
    local = datetime(2024, 5, 6, 7, 8, 9, 123000)
    assert parse_datetime("2024-05-06T07:08:09.123") == ResetTarget("datetime", int(local.timestamp() * 1000))
    assert parse_datetime(str(ms)) == ResetTarget("datetime", ms)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_datetime("2024-13-01T00:00:00")


def test_parse_shift() -> None:
    assert parse_shift("-10") == ResetTarget("shift", -10)
    assert parse_shift("0") == ResetTarget("shift", 0)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_shift("ten")


# ------------------------------------------------------------------------ planning


@pytest.mark.parametrize(
    ("target", "committed", "found", "expected"),
    [
        (ResetTarget("earliest"), 50, None, 10),
        (ResetTarget("latest"), 50, None, 100),
        (ResetTarget("offset", 42), None, None, 42),
        (ResetTarget("offset", 5), None, None, 10),  # below the log start: the start
        (ResetTarget("offset", 500), None, None, 100),  # beyond the end: the end
        (ResetTarget("shift", 7), 50, None, 57),
        (ResetTarget("shift", -7), 50, None, 43),
        (ResetTarget("shift", 1000), 50, None, 100),
        (ResetTarget("shift", -1000), 50, None, 10),
        (ResetTarget("current"), 50, None, 50),
        (ResetTarget("current"), None, None, 100),  # no committed offset: the end
        (ResetTarget("current"), 3, None, 10),  # a committed offset below the start moves up
        (ResetTarget("datetime", 1), None, 33, 33),
        (ResetTarget("datetime", 1), None, -1, 100),  # no record that late: the end
        (ResetTarget("duration", 1), 50, None, 100),
    ],
)
def test_new_offset(target: ResetTarget, committed: int | None, found: int | None, expected: int) -> None:
    assert new_offset(target, log_start=10, log_end=100, committed=committed, found=found) == expected


def test_new_offset_shift_needs_a_committed_offset() -> None:
    with pytest.raises(ValueError):
        new_offset(ResetTarget("shift", 1), log_start=0, log_end=10)


def test_target_timestamp() -> None:
    assert target_timestamp(ResetTarget("datetime", 1234), now_ms=10_000) == 1234
    assert target_timestamp(ResetTarget("duration", 3_000), now_ms=10_000) == 7_000
    assert target_timestamp(ResetTarget("duration", 30_000), now_ms=10_000) == 0
    assert target_timestamp(ResetTarget("latest"), now_ms=10_000) is None


# -------------------------------------------------------------------------- output


GROUP = Group(
    "g",
    "Stable",
    "range",
    "h:9092 (1)",
    (
        Member("m-2", "c2", "/10.0.0.2", None, (("t", 1),)),
        Member("m-1", "c1", "/10.0.0.1", "static-1", (("t", 0), ("u", 0))),
        Member("m-3", "c3", "/10.0.0.3"),
    ),
)


def test_offset_rows() -> None:
    committed = {("t", 0): 4, ("t", 1): 10, ("t", 2): 7}
    log_end = {("t", 0): 10, ("t", 1): 10, ("t", 2): 9, ("u", 0): 5}
    assert offset_rows(GROUP, committed, log_end) == [
        ("g", "t", "0", "4", "10", "6", "m-1", "/10.0.0.1", "c1"),
        ("g", "t", "1", "10", "10", "0", "m-2", "/10.0.0.2", "c2"),
        ("g", "t", "2", "7", "9", "2", "-", "-", "-"),  # committed, owned by nobody
        ("g", "u", "0", "-", "5", "-", "m-1", "/10.0.0.1", "c1"),  # owned, nothing committed
        ("g", "-", "-", "-", "-", "-", "m-3", "/10.0.0.3", "c3"),  # a member without partitions
    ]


def test_offset_rows_unknown_log_end() -> None:
    group = Group("g", "Empty")
    assert offset_rows(group, {("gone", 0): 3}, {}) == [("g", "gone", "0", "3", "-", "-", "-", "-", "-")]


def test_member_and_state_rows() -> None:
    assert member_rows(GROUP) == [
        ("g", "m-1", "static-1", "/10.0.0.1", "c1", "2", "t(0),u(0)"),
        ("g", "m-2", "-", "/10.0.0.2", "c2", "1", "t(1)"),
        ("g", "m-3", "-", "/10.0.0.3", "c3", "0", "-"),
    ]
    assert state_row(GROUP) == ("g", "h:9092 (1)", "range", "Stable", "3")
    assert summary_line(GROUP) == "Group: g\tState: Stable\tProtocol: range\tMembers: 3"
    assert summary_line(Group("e", "Empty")) == "Group: e\tState: Empty\tProtocol: -\tMembers: 0"


def test_assignment_text() -> None:
    assert assignment_text([("b", 1), ("a", 2), ("b", 0)]) == "a(2),b(0,1)"
    assert assignment_text([]) == "-"


def test_format_table_aligns_columns() -> None:
    lines = format_table(("GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"), plan_rows("grp", {("tt", 1): 5, ("a", 0): 12}))
    assert lines == [
        "GROUP  TOPIC  PARTITION  NEW-OFFSET",
        "grp    a      0          12",
        "grp    tt     1          5",
    ]

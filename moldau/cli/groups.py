"""`moldau groups`: list, describe, delete consumer groups and reset their offsets
(kafka-consumer-groups.sh).

Everything goes through confluent-kafka's AdminClient: ListGroups, DescribeGroups,
OffsetFetch (list_consumer_group_offsets), ListOffsets, DeleteGroups and OffsetCommit
(alter_consumer_group_offsets). Like Kafka's tool, offsets are only reset while the group
has no active members, and new offsets are clamped to [log start, log end].
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from confluent_kafka import (
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, ClusterMetadata, ConsumerGroupDescription, OffsetSpec

from moldau.cli.common import (
    CliError,
    ConnectionWatch,
    client_config,
    connection_parent,
    error_name,
    error_text,
    fetch_metadata,
    is_connection_error,
    kafka_error,
    make_client,
    non_negative_int,
    require_topic,
    unreachable,
    wait_future,
    warn,
)

# Kafka's names for the group states, as its tools print and accept them.
STATE_NAMES: dict[ConsumerGroupState, str] = {
    ConsumerGroupState.UNKNOWN: "Unknown",
    ConsumerGroupState.PREPARING_REBALANCING: "PreparingRebalance",
    ConsumerGroupState.COMPLETING_REBALANCING: "CompletingRebalance",
    ConsumerGroupState.STABLE: "Stable",
    ConsumerGroupState.DEAD: "Dead",
    ConsumerGroupState.EMPTY: "Empty",
}
STATES_BY_NAME: dict[str, ConsumerGroupState] = {
    name.lower(): state for state, name in STATE_NAMES.items() if state != ConsumerGroupState.UNKNOWN
}
# Offsets may only be reset while nobody consumes (Kafka: Empty or Dead).
INACTIVE_STATES = frozenset({"Empty", "Dead"})
NONE = "-"  # what Kafka's tool prints for a missing value


# -------------------------------------------------------------------------- parsing


def parse_states(text: str) -> tuple[ConsumerGroupState, ...]:
    """argparse type for --state: Kafka's state names, case-insensitive, comma-separated."""
    states: list[ConsumerGroupState] = []
    for part in text.split(","):
        name = part.strip().lower()
        if not name:
            continue
        state = STATES_BY_NAME.get(name)
        if state is None:
            choices = ", ".join(STATE_NAMES[s] for s in STATES_BY_NAME.values())
            raise argparse.ArgumentTypeError(f"unknown group state {part.strip()!r} (one of: {choices})")
        states.append(state)
    if not states:
        raise argparse.ArgumentTypeError(f"expected a group state, got {text!r}")
    return tuple(states)


def state_name(state: object) -> str:
    if isinstance(state, ConsumerGroupState):
        return STATE_NAMES.get(state, "Unknown")
    if isinstance(state, str) and state:
        return state
    return "Unknown"


@dataclass(frozen=True)
class TopicSelection:
    """`--topic T` (every partition) or `--topic T:0,2` (those partitions)."""

    topic: str
    partitions: tuple[int, ...] | None = None


def parse_topic_selection(text: str) -> TopicSelection:
    # Topic names cannot contain ':' (legal: letters, digits, '.', '_', '-').
    topic, sep, rest = text.partition(":")
    if not topic:
        raise argparse.ArgumentTypeError(f"expected TOPIC or TOPIC:PARTITION,..., got {text!r}")
    if not sep:
        return TopicSelection(topic)
    partitions: list[int] = []
    for part in rest.split(","):
        try:
            partitions.append(non_negative_int(part.strip()))
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"expected TOPIC:PARTITION,... with non-negative partition numbers, got {text!r}"
            ) from None
    return TopicSelection(topic, tuple(sorted(set(partitions))))


@dataclass(frozen=True)
class ResetTarget:
    """Where reset-offsets moves each partition.

    kind: earliest | latest | current | offset (value: the offset) | datetime (value: epoch
    ms) | duration (value: ms before now) | shift (value: +/- records).
    """

    kind: str
    value: int = 0


def parse_datetime(text: str) -> ResetTarget:
    """ISO-8601 (local time if no zone, as Kafka's tool) or milliseconds since the epoch."""
    try:
        return ResetTarget("datetime", non_negative_int(text))
    except argparse.ArgumentTypeError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO-8601 datetime such as 2024-01-31T12:00:00.000 (or epoch ms), got {text!r}"
        ) from None
    return ResetTarget("datetime", int(moment.timestamp() * 1000))


_DURATION = re.compile(
    r"P(?:(?P<days>\d+)D)?(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?",
    re.IGNORECASE,
)


def parse_duration(text: str) -> ResetTarget:
    """An ISO-8601 duration as Java's Duration.parse reads it: PnDTnHnMn.nS, e.g. PT1H30M, P2D."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or not any(match.groupdict().values()):
        raise argparse.ArgumentTypeError(f"expected a duration such as PT30M, PT1H or P1DT12H, got {text!r}")
    parts = match.groupdict()
    duration = timedelta(
        days=int(parts["days"] or 0),
        hours=int(parts["hours"] or 0),
        minutes=int(parts["minutes"] or 0),
        seconds=float(parts["seconds"] or 0),
    )
    return ResetTarget("duration", int(duration.total_seconds() * 1000))


def parse_shift(text: str) -> ResetTarget:
    try:
        return ResetTarget("shift", int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a (possibly negative) number of records, got {text!r}") from None


def parse_offset_target(text: str) -> ResetTarget:
    return ResetTarget("offset", non_negative_int(text))


# ------------------------------------------------------------------------- commands


def add_parsers(subparsers: Any) -> None:
    conn = connection_parent()
    groups = subparsers.add_parser(
        "groups",
        help="list, describe and delete consumer groups, reset their offsets",
        description="Manage consumer groups, like Kafka's kafka-consumer-groups.sh.",
    )
    actions = groups.add_subparsers(dest="action", required=True, metavar="ACTION")

    list_ = actions.add_parser("list", parents=[conn], help="list consumer groups")
    list_.add_argument(
        "--state",
        metavar="STATE",
        type=parse_states,
        nargs="*",
        default=None,
        help=(
            "show each group's state; with states (Stable, Empty, PreparingRebalance, "
            "CompletingRebalance, Dead; comma- or space-separated) list only groups in them"
        ),
    )
    list_.set_defaults(func=list_groups)

    describe = actions.add_parser(
        "describe",
        parents=[conn],
        help="show a group's committed offsets, lag and members",
        description=(
            "By default: the group's state and protocol, then per partition the committed "
            "offset, log end offset, lag and the member that owns it."
        ),
    )
    describe.add_argument("groups", metavar="GROUP", nargs="*", help="group id(s)")
    describe.add_argument("--all-groups", action="store_true", help="describe every group")
    view = describe.add_mutually_exclusive_group()
    view.add_argument(
        "--offsets", dest="view", action="store_const", const="offsets", help="offsets and lag (the default)"
    )
    view.add_argument(
        "--members", dest="view", action="store_const", const="members", help="members and their assignments"
    )
    view.add_argument(
        "--state", dest="view", action="store_const", const="state", help="the group's coordinator, state, size"
    )
    describe.set_defaults(func=describe_groups, view="offsets", _parser=describe, _check=check_describe)

    delete = actions.add_parser("delete", parents=[conn], help="delete consumer groups that have no members")
    delete.add_argument("groups", metavar="GROUP", nargs="+", help="group id(s)")
    delete.set_defaults(func=delete_groups)

    reset = actions.add_parser(
        "reset-offsets",
        parents=[conn],
        help="move a group's committed offsets (dry run unless --execute)",
        description=(
            "Move an inactive group's committed offsets. Prints the plan; changes nothing "
            "unless --execute is given. New offsets are clamped to the partition's "
            "[log start, log end]."
        ),
    )
    reset.add_argument("--group", metavar="GROUP", required=True, help="the group whose offsets to reset")
    scope = reset.add_mutually_exclusive_group(required=True)
    scope.add_argument(
        "--topic",
        dest="topics",
        metavar="TOPIC[:P,P...]",
        type=parse_topic_selection,
        action="append",
        help="a topic, all partitions or the listed ones; repeat for more",
    )
    scope.add_argument("--all-topics", action="store_true", help="every partition the group has a committed offset for")
    target = reset.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--to-earliest", dest="target", action="store_const", const=ResetTarget("earliest"), help="the log start"
    )
    target.add_argument(
        "--to-latest", dest="target", action="store_const", const=ResetTarget("latest"), help="the log end"
    )
    target.add_argument(
        "--to-current",
        dest="target",
        action="store_const",
        const=ResetTarget("current"),
        help="the committed offset (the log end where there is none)",
    )
    target.add_argument("--to-offset", dest="target", metavar="N", type=parse_offset_target, help="offset N")
    target.add_argument(
        "--to-datetime",
        dest="target",
        metavar="DATETIME",
        type=parse_datetime,
        help="the first record at or after this time (ISO-8601, e.g. 2024-01-31T12:00:00.000; local if no zone)",
    )
    target.add_argument(
        "--by-duration",
        dest="target",
        metavar="DURATION",
        type=parse_duration,
        help="the first record at or after now minus this ISO-8601 duration (PnDTnHnMnS, e.g. PT1H)",
    )
    target.add_argument(
        "--shift-by",
        dest="target",
        metavar="N",
        type=parse_shift,
        help="the committed offset plus N (negative: back)",
    )
    mode = reset.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="only print the plan (the default)")
    mode.add_argument("--execute", action="store_true", help="commit the new offsets")
    reset.set_defaults(func=reset_offsets)


def check_describe(args: argparse.Namespace) -> None:
    if args.all_groups and args.groups:
        args._parser.error("give GROUP(s) or --all-groups, not both")
    if not args.all_groups and not args.groups:
        args._parser.error("a group is required (GROUP or --all-groups)")


# -------------------------------------------------------------------------- helpers


def _admin(args: argparse.Namespace) -> tuple[AdminClient, ConnectionWatch]:
    conf, watch = client_config(args)
    return make_client(AdminClient, conf), watch


def _admin_result(
    future: Any, args: argparse.Namespace, watch: ConnectionWatch, what: str
) -> tuple[Any, KafkaError | None]:
    """(result, None) or (None, the broker's error); connection failures raise CliError."""
    try:
        return wait_future(future, args, what), None
    except KafkaException as e:
        err = kafka_error(e)
        if err is None:
            raise
        if is_connection_error(err):
            raise unreachable(args, watch) from None
        return None, err


def format_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Left-aligned columns two spaces apart, as kafka-consumer-groups.sh prints them."""
    table = [list(header), *(list(r) for r in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in table]


def _text(value: int | str | None) -> str:
    if value is None or value == "":
        return NONE
    return str(value)


def does_not_exist(group: str) -> str:
    return f"Consumer group '{group}' does not exist."


Partition = tuple[str, int]


@dataclass(frozen=True)
class Member:
    member_id: str
    client_id: str
    host: str
    instance_id: str | None = None
    assignment: tuple[Partition, ...] = ()


@dataclass(frozen=True)
class Group:
    """What describe_consumer_groups says about a group, in Kafka's words."""

    group_id: str
    state: str
    protocol: str = ""
    coordinator: str = ""
    members: tuple[Member, ...] = field(default=())

    @classmethod
    def from_description(cls, d: ConsumerGroupDescription) -> Group:
        members = tuple(
            Member(
                member_id=m.member_id,
                client_id=m.client_id,
                host=m.host,
                instance_id=m.group_instance_id,
                assignment=tuple(
                    sorted((tp.topic, tp.partition) for tp in (m.assignment.topic_partitions if m.assignment else []))
                ),
            )
            for m in d.members
        )
        node = d.coordinator
        coordinator = f"{node.host}:{node.port} ({node.id})" if node is not None else ""
        return cls(d.group_id, state_name(d.state), d.partition_assignor or "", coordinator, members)


def _describe(
    admin: AdminClient, group_ids: Sequence[str], args: argparse.Namespace, watch: ConnectionWatch
) -> dict[str, Group | None]:
    """Each group's description; None for a group that does not exist."""
    futures = admin.describe_consumer_groups(list(dict.fromkeys(group_ids)), request_timeout=args.timeout)
    result: dict[str, Group | None] = {}
    for group_id, future in futures.items():
        description, err = _admin_result(future, args, watch, f"describe consumer group '{group_id}'")
        if err is not None:
            if err.code() == KafkaError.GROUP_ID_NOT_FOUND:
                result[group_id] = None
                continue
            raise CliError(f"cannot describe consumer group '{group_id}': {error_text(err)}")
        group = Group.from_description(description)
        # DescribeGroups answers for an unknown group with state Dead and no error.
        result[group_id] = None if group.state == "Dead" else group
    return result


def _committed(
    admin: AdminClient, group_id: str, args: argparse.Namespace, watch: ConnectionWatch
) -> dict[Partition, int]:
    """The group's committed offsets (partitions without one are left out)."""
    futures = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group_id)], request_timeout=args.timeout)
    answer, err = _admin_result(futures[group_id], args, watch, f"fetch offsets of group '{group_id}'")
    if err is not None:
        raise CliError(f"cannot fetch the committed offsets of group '{group_id}': {error_text(err)}")
    committed: dict[Partition, int] = {}
    for tp in answer.topic_partitions or []:
        if tp.error is None and tp.offset >= 0:
            committed[(tp.topic, tp.partition)] = tp.offset
    return committed


def _list_offsets(
    admin: AdminClient,
    partitions: Iterable[Partition],
    spec: OffsetSpec,
    args: argparse.Namespace,
    watch: ConnectionWatch,
) -> tuple[dict[Partition, int], dict[Partition, KafkaError]]:
    """ListOffsets for each partition: (offsets, errors)."""
    wanted = {TopicPartition(t, p): spec for t, p in sorted(set(partitions))}
    if not wanted:
        return {}, {}
    futures = admin.list_offsets(wanted, request_timeout=args.timeout)
    offsets: dict[Partition, int] = {}
    errors: dict[Partition, KafkaError] = {}
    for tp, future in futures.items():
        info, err = _admin_result(future, args, watch, "list offsets")
        if err is not None:
            errors[(tp.topic, tp.partition)] = err
        else:
            offsets[(tp.topic, tp.partition)] = info.offset
    return offsets, errors


def _all_group_ids(admin: AdminClient, args: argparse.Namespace, watch: ConnectionWatch) -> list[str]:
    listings = _list(admin, None, args, watch)
    return sorted(g for g, _ in listings)


def _list(
    admin: AdminClient,
    states: set[ConsumerGroupState] | None,
    args: argparse.Namespace,
    watch: ConnectionWatch,
) -> list[tuple[str, str]]:
    kwargs: dict[str, Any] = {"request_timeout": args.timeout}
    if states:
        kwargs["states"] = states
    result, err = _admin_result(admin.list_consumer_groups(**kwargs), args, watch, "list consumer groups")
    if err is not None:
        raise CliError(f"cannot list consumer groups: {error_text(err)}")
    for error in result.errors or []:
        warn(f"while listing consumer groups: {_exception_or_error_text(error)}")
    return sorted((g.group_id, state_name(g.state)) for g in result.valid or [])


def _exception_or_error_text(error: Any) -> str:
    if isinstance(error, KafkaError):
        return error_text(error)
    if isinstance(error, BaseException):
        err = kafka_error(error)
        return error_text(err) if err is not None else str(error)
    return str(error)


# ----------------------------------------------------------------------------- list


def list_groups(args: argparse.Namespace) -> int:
    admin, watch = _admin(args)
    fetch_metadata(admin, args, watch)  # fails fast, naming the server, if unreachable
    state_args: list[tuple[ConsumerGroupState, ...]] | None = args.state
    states = {s for states in state_args or [] for s in states}
    listings = _list(admin, states or None, args, watch)
    if state_args is None:
        for group_id, _ in listings:
            print(group_id)
    else:
        print("\n".join(format_table(("GROUP", "STATE"), listings)))
    return 0


# ------------------------------------------------------------------------- describe


OFFSETS_HEADER = (
    "GROUP",
    "TOPIC",
    "PARTITION",
    "CURRENT-OFFSET",
    "LOG-END-OFFSET",
    "LAG",
    "CONSUMER-ID",
    "HOST",
    "CLIENT-ID",
)
MEMBERS_HEADER = ("GROUP", "CONSUMER-ID", "GROUP-INSTANCE-ID", "HOST", "CLIENT-ID", "#PARTITIONS", "ASSIGNMENT")
STATE_HEADER = ("GROUP", "COORDINATOR (ID)", "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS")


def summary_line(group: Group) -> str:
    return (
        f"Group: {group.group_id}\tState: {group.state}\tProtocol: {_text(group.protocol)}\t"
        f"Members: {len(group.members)}"
    )


def offset_rows(
    group: Group, committed: Mapping[Partition, int], log_end: Mapping[Partition, int]
) -> list[tuple[str, ...]]:
    """kafka-consumer-groups.sh --describe rows: every assigned or committed partition, by
    topic and partition; then members without partitions."""
    owner: dict[Partition, Member] = {}
    for member in group.members:
        for partition in member.assignment:
            owner[partition] = member
    rows: list[tuple[str, ...]] = []
    for partition in sorted(set(owner) | set(committed)):
        current = committed.get(partition)
        end = log_end.get(partition)
        lag = max(end - current, 0) if current is not None and end is not None else None
        owner_of = owner.get(partition)
        rows.append(
            (
                group.group_id,
                partition[0],
                str(partition[1]),
                _text(current),
                _text(end),
                _text(lag),
                _text(owner_of.member_id if owner_of else None),
                _text(owner_of.host if owner_of else None),
                _text(owner_of.client_id if owner_of else None),
            )
        )
    for member in sorted(group.members, key=lambda m: m.member_id):
        if not member.assignment:
            rows.append(
                (
                    group.group_id,
                    NONE,
                    NONE,
                    NONE,
                    NONE,
                    NONE,
                    member.member_id,
                    _text(member.host),
                    _text(member.client_id),
                )
            )
    return rows


def assignment_text(assignment: Sequence[Partition]) -> str:
    """Kafka's form: `topic(0,1,2),other(0)`."""
    by_topic: dict[str, list[int]] = {}
    for topic, partition in sorted(assignment):
        by_topic.setdefault(topic, []).append(partition)
    if not by_topic:
        return NONE
    return ",".join(f"{topic}({','.join(str(p) for p in ps)})" for topic, ps in by_topic.items())


def member_rows(group: Group) -> list[tuple[str, ...]]:
    return [
        (
            group.group_id,
            m.member_id,
            _text(m.instance_id),
            _text(m.host),
            _text(m.client_id),
            str(len(m.assignment)),
            assignment_text(m.assignment),
        )
        for m in sorted(group.members, key=lambda m: m.member_id)
    ]


def state_row(group: Group) -> tuple[str, ...]:
    return (group.group_id, _text(group.coordinator), _text(group.protocol), group.state, str(len(group.members)))


def describe_groups(args: argparse.Namespace) -> int:
    admin, watch = _admin(args)
    fetch_metadata(admin, args, watch)
    group_ids: list[str] = _all_group_ids(admin, args, watch) if args.all_groups else list(dict.fromkeys(args.groups))
    groups = _describe(admin, group_ids, args, watch) if group_ids else {}
    sections: list[list[str]] = []
    missing: list[str] = []
    for group_id in group_ids:
        group = groups.get(group_id)
        if group is None:
            if not args.all_groups:  # one deleted meanwhile is not an error
                missing.append(group_id)
            continue
        if args.view == "state":
            sections.append(format_table(STATE_HEADER, [state_row(group)]))
        elif args.view == "members":
            if group.members:
                sections.append(format_table(MEMBERS_HEADER, member_rows(group)))
            else:
                sections.append([f"Consumer group '{group_id}' has no active members."])
        else:
            committed = _committed(admin, group_id, args, watch)
            assigned = [p for m in group.members for p in m.assignment]
            log_end, _ = _list_offsets(admin, [*committed, *assigned], OffsetSpec.latest(), args, watch)
            rows = offset_rows(group, committed, log_end)
            sections.append([summary_line(group), "", *format_table(OFFSETS_HEADER, rows)])
    if sections:
        print("\n\n".join("\n".join(lines) for lines in sections), flush=True)
    if missing:
        raise CliError(" ".join(does_not_exist(g) for g in missing))
    return 0


# --------------------------------------------------------------------------- delete


def delete_groups(args: argparse.Namespace) -> int:
    admin, watch = _admin(args)
    fetch_metadata(admin, args, watch)
    group_ids = list(dict.fromkeys(args.groups))
    futures = admin.delete_consumer_groups(group_ids, request_timeout=args.timeout)
    failures: list[str] = []
    for group_id in group_ids:
        _, err = _admin_result(futures[group_id], args, watch, f"delete consumer group '{group_id}'")
        if err is None:
            print(f"Deleted consumer group {group_id}.", flush=True)
        elif err.code() == KafkaError.GROUP_ID_NOT_FOUND:
            failures.append(does_not_exist(group_id))
        elif err.code() == KafkaError.NON_EMPTY_GROUP:
            failures.append(
                f"cannot delete consumer group '{group_id}': it has active members; stop them first (NON_EMPTY_GROUP)"
            )
        else:
            failures.append(f"cannot delete consumer group '{group_id}': {error_text(err)}")
    if failures:
        raise CliError("; ".join(failures))
    return 0


# ---------------------------------------------------------------------------- reset


def new_offset(
    target: ResetTarget,
    *,
    log_start: int,
    log_end: int,
    committed: int | None = None,
    found: int | None = None,
) -> int:
    """The offset `target` gives one partition, clamped to [log_start, log_end] as Kafka does.

    `found` is the offset ListOffsets returned for a datetime/duration target (None or
    negative: no record that late, so the log end). A shift needs `committed`.
    """
    if target.kind == "earliest":
        offset = log_start
    elif target.kind == "latest":
        offset = log_end
    elif target.kind == "offset":
        offset = target.value
    elif target.kind in ("datetime", "duration"):
        offset = found if found is not None and found >= 0 else log_end
    elif target.kind == "shift":
        if committed is None:
            raise ValueError("a shift needs a committed offset")
        offset = committed + target.value
    elif target.kind == "current":
        offset = committed if committed is not None else log_end
    else:
        raise ValueError(f"unknown reset target {target.kind!r}")
    return max(log_start, min(offset, log_end))


def target_timestamp(target: ResetTarget, now_ms: int) -> int | None:
    """The time to look offsets up by, for datetime and duration targets."""
    if target.kind == "datetime":
        return target.value
    if target.kind == "duration":
        return max(now_ms - target.value, 0)
    return None


def select_partitions(
    metadata: ClusterMetadata,
    selections: Sequence[TopicSelection] | None,
    committed: Mapping[Partition, int],
) -> list[Partition]:
    """The partitions to reset: those named, or (--all-topics) every one with a committed offset."""
    if selections is None:
        return sorted(committed)
    chosen: set[Partition] = set()
    for selection in selections:
        info = require_topic(metadata, selection.topic)
        existing = set(info.partitions)
        ids = selection.partitions if selection.partitions is not None else sorted(existing)
        for p in ids:
            if p not in existing:
                raise CliError(
                    f"topic '{selection.topic}' has no partition {p} (it has {len(existing)}) "
                    "(UNKNOWN_TOPIC_OR_PARTITION)"
                )
            chosen.add((selection.topic, p))
    return sorted(chosen)


def _offsets_or_fail(
    found: tuple[dict[Partition, int], dict[Partition, KafkaError]], what: str
) -> dict[Partition, int]:
    offsets, errors = found
    if errors:
        (topic, partition), err = sorted(errors.items())[0]
        raise CliError(f"cannot look up the {what} of {topic}-{partition}: {error_text(err)}")
    return offsets


def reset_offsets(args: argparse.Namespace) -> int:
    admin, watch = _admin(args)
    metadata = fetch_metadata(admin, args, watch)
    group_id: str = args.group
    target: ResetTarget = args.target

    group = _describe(admin, [group_id], args, watch)[group_id]
    state = group.state if group is not None else "Dead"
    if state not in INACTIVE_STATES:
        raise CliError(
            f"Assignments can only be reset if the group '{group_id}' is inactive, but the current state is {state}."
        )

    committed = _committed(admin, group_id, args, watch)
    partitions = select_partitions(metadata, None if args.all_topics else args.topics, committed)
    if not partitions:
        warn(f"group '{group_id}' has no committed offsets: nothing to reset")
        return 0
    if target.kind == "shift":
        without = [p for p in partitions if p not in committed]
        if without:
            topic, partition = without[0]
            raise CliError(
                f"cannot shift the offset of {topic}-{partition}: group '{group_id}' has no committed offset for it"
            )

    starts = _offsets_or_fail(_list_offsets(admin, partitions, OffsetSpec.earliest(), args, watch), "log start")
    ends = _offsets_or_fail(_list_offsets(admin, partitions, OffsetSpec.latest(), args, watch), "log end")
    found: dict[Partition, int] = {}
    timestamp = target_timestamp(target, int(time.time() * 1000))
    if timestamp is not None:
        found = _offsets_or_fail(
            _list_offsets(admin, partitions, OffsetSpec.for_timestamp(timestamp), args, watch), "offset by time"
        )

    plan = {
        p: new_offset(target, log_start=starts[p], log_end=ends[p], committed=committed.get(p), found=found.get(p))
        for p in partitions
    }
    if args.execute:
        _commit(admin, group_id, plan, args, watch)
    print("\n".join(format_table(("GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"), plan_rows(group_id, plan))), flush=True)
    if not args.execute and not args.dry_run:
        warn("dry run: nothing was changed; add --execute to commit these offsets")
    return 0


def plan_rows(group_id: str, plan: Mapping[Partition, int]) -> list[tuple[str, ...]]:
    return [(group_id, topic, str(partition), str(offset)) for (topic, partition), offset in sorted(plan.items())]


def _commit(
    admin: AdminClient,
    group_id: str,
    plan: Mapping[Partition, int],
    args: argparse.Namespace,
    watch: ConnectionWatch,
) -> None:
    request = ConsumerGroupTopicPartitions(group_id, [TopicPartition(t, p, o) for (t, p), o in sorted(plan.items())])
    futures = admin.alter_consumer_group_offsets([request], request_timeout=args.timeout)
    answer, err = _admin_result(futures[group_id], args, watch, f"commit offsets of group '{group_id}'")
    errors = [(tp.topic, tp.partition, tp.error) for tp in (answer.topic_partitions if answer else []) if tp.error]
    if err is None and not errors:
        return
    if err is None:
        topic, partition, err = errors[0]
        where = f" for {topic}-{partition}"
    else:
        where = ""
    if err.code() == KafkaError.UNKNOWN_MEMBER_ID:  # a member joined since we looked
        raise CliError(
            f"cannot reset offsets of group '{group_id}'{where}: the group has active members again ({error_name(err)})"
        )
    raise CliError(f"cannot reset offsets of group '{group_id}'{where}: {error_text(err)}")

"""`moldau consume`: records to stdout, one per line, like kafka-console-consumer.sh.

Without --group the tool assign()s partitions itself, under a throwaway group.id with
auto-commit off, so no group coordinator is involved. With --group it subscribes as a
member of that consumer group and commits what it printed.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    OFFSET_STORED,
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from moldau.cli.common import (
    CliError,
    add_topic_args,
    client_config,
    connection_parent,
    error_name,
    error_text,
    exception_text,
    fetch_metadata,
    is_connection_error,
    make_client,
    non_negative_int,
    positive_int,
    require_topic,
    unescape,
    warn,
)

# Errors after which waiting longer cannot help.
FATAL_CONSUME_ERRORS = frozenset(
    {
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.INVALID_GROUP_ID,
    }
)
POLL_INTERVAL_S = 0.5
MAX_BATCH = 500


@dataclass(frozen=True)
class StartPosition:
    """Where to begin reading each partition: `earliest`, `latest`, an offset, a time."""

    kind: str  # "earliest" | "latest" | "offset" | "timestamp"
    value: int = 0


def parse_offset(text: str) -> StartPosition:
    if text in ("earliest", "latest"):
        return StartPosition(text)
    try:
        return StartPosition("offset", non_negative_int(text))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a non-negative offset, 'earliest' or 'latest', got {text!r}"
        ) from None


def parse_timestamp(text: str) -> StartPosition:
    """Milliseconds since the epoch, or an ISO-8601 datetime (local time if no zone)."""
    try:
        return StartPosition("timestamp", non_negative_int(text))
    except argparse.ArgumentTypeError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected milliseconds since the epoch or an ISO-8601 datetime, got {text!r}"
        ) from None
    return StartPosition("timestamp", int(moment.timestamp() * 1000))


def add_parsers(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "consume",
        parents=[connection_parent()],
        help="print a topic's records, one per line",
        description=(
            "Print records from a topic, like Kafka's kafka-console-consumer.sh. By default "
            "only new records, only values, until Ctrl-C."
        ),
    )
    add_topic_args(parser)
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--from-beginning",
        action="store_true",
        help="start at the earliest record (with --group: only if it has no committed offset)",
    )
    start.add_argument(
        "--offset",
        type=parse_offset,
        default=None,
        metavar="N|earliest|latest",
        help="start every partition read at this offset (default: latest)",
    )
    start.add_argument(
        "--from-timestamp",
        type=parse_timestamp,
        default=None,
        metavar="MS|DATETIME",
        help="start at the first record at or after this time (epoch ms or ISO-8601)",
    )
    parser.add_argument("--partition", type=non_negative_int, default=None, help="read only this partition")
    parser.add_argument("--max-messages", type=positive_int, default=None, help="exit after N records")
    parser.add_argument(
        "--timeout-ms",
        type=positive_int,
        default=None,
        help="exit after N ms without a record (default: wait for more forever)",
    )
    parser.add_argument(
        "--group",
        metavar="GROUP",
        default=None,
        help="consume as a member of this consumer group and commit offsets",
    )
    output = parser.add_argument_group("output")
    output.add_argument("--print-key", action="store_true")
    output.add_argument("--print-headers", action="store_true")
    output.add_argument("--print-timestamp", action="store_true")
    output.add_argument("--print-offset", action="store_true")
    output.add_argument("--print-partition", action="store_true")
    output.add_argument(
        "--key-separator",
        metavar="SEP",
        type=unescape,
        default="\t",
        help="separates the printed columns (default: tab)",
    )
    parser.set_defaults(func=consume)


# --------------------------------------------------------------------------- format


@dataclass(frozen=True)
class PrintOptions:
    key: bool = False
    headers: bool = False
    timestamp: bool = False
    offset: bool = False
    partition: bool = False
    separator: bytes = b"\t"

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> PrintOptions:
        return cls(
            key=args.print_key,
            headers=args.print_headers,
            timestamp=args.print_timestamp,
            offset=args.print_offset,
            partition=args.print_partition,
            separator=args.key_separator.encode(),
        )


NULL = b"null"


def format_record(
    options: PrintOptions,
    *,
    value: bytes | None,
    key: bytes | None = None,
    headers: Sequence[tuple[str, bytes | None]] | None = None,
    timestamp: tuple[int, int] = (0, -1),
    partition: int = 0,
    offset: int = 0,
) -> bytes:
    """One output line, columns in kafka-console-consumer.sh's order:
    timestamp, partition, offset, headers, key, value.
    """
    columns: list[bytes] = []
    if options.timestamp:
        timestamp_type, ms = timestamp
        if timestamp_type == TIMESTAMP_CREATE_TIME:
            columns.append(b"CreateTime:%d" % ms)
        elif timestamp_type == TIMESTAMP_LOG_APPEND_TIME:
            columns.append(b"LogAppendTime:%d" % ms)
        else:
            columns.append(b"NO_TIMESTAMP")
    if options.partition:
        columns.append(b"Partition:%d" % partition)
    if options.offset:
        columns.append(b"Offset:%d" % offset)
    if options.headers:
        if headers:
            columns.append(b",".join(k.encode() + b":" + (NULL if v is None else v) for k, v in headers))
        else:
            columns.append(b"NO_HEADERS")
    if options.key:
        columns.append(NULL if key is None else key)
    columns.append(NULL if value is None else value)
    return options.separator.join(columns) + b"\n"


def format_message(options: PrintOptions, msg: Message) -> bytes:
    return format_record(
        options,
        value=msg.value(),
        key=msg.key(),
        headers=msg.headers(),
        timestamp=msg.timestamp(),
        partition=msg.partition() or 0,
        offset=msg.offset() or 0,
    )


# -------------------------------------------------------------------------- consume


def start_position(args: argparse.Namespace) -> StartPosition | None:
    """The explicit start position, or None to use the group's committed offsets."""
    if args.offset is not None:
        position: StartPosition = args.offset
        return position
    if args.from_timestamp is not None:
        position = args.from_timestamp
        return position
    if args.from_beginning:
        return None if args.group else StartPosition("earliest")
    return None if args.group else StartPosition("latest")


def consumer_config(args: argparse.Namespace) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "enable.partition.eof": False,
        "auto.offset.reset": "earliest" if args.from_beginning else "latest",
    }
    if args.group:
        conf.update({"group.id": args.group, "enable.auto.commit": True})
    else:
        conf.update(
            {
                "group.id": f"moldau-cli-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
            }
        )
    return conf


def resolve_positions(
    consumer: Consumer, partitions: list[TopicPartition], position: StartPosition, timeout: float
) -> list[TopicPartition]:
    """`partitions` with their offsets set to where `position` says reading should start."""
    if position.kind == "timestamp":
        queries = [TopicPartition(p.topic, p.partition, position.value) for p in partitions]
        try:
            found = consumer.offsets_for_times(queries, timeout=timeout)
        except KafkaException as e:
            raise CliError(f"cannot look up offsets by timestamp: {exception_text(e)}") from None
        # No record at or after the time: wait at the end for new ones.
        return [TopicPartition(p.topic, p.partition, p.offset if p.offset >= 0 else OFFSET_END) for p in found]
    offset = {
        "earliest": OFFSET_BEGINNING,
        "latest": OFFSET_END,
        "offset": position.value,
    }[position.kind]
    return [TopicPartition(p.topic, p.partition, offset) for p in partitions]


class _StopRequest:
    """Ctrl-C (SIGINT) or `kill` (SIGTERM) asked the consumer to stop: a flag the print
    loop reads between polls, not an exception raised wherever the signal lands. Raised
    inside a librdkafka callback (its logger, error_cb), KeyboardInterrupt can be swallowed
    by the client and the consumer runs on: seen once in a loaded suite run, a consumer
    still running 30 s after SIGINT."""

    def __init__(self) -> None:
        self.requested = False
        self.polling = False  # before the print loop (connecting, joining), a signal interrupts at once

    def __call__(self, signum: int, frame: Any) -> None:
        self.requested = True
        if not self.polling:
            raise KeyboardInterrupt


def consume(args: argparse.Namespace) -> int:
    # `kill` (SIGTERM) ends a consumer as cleanly as Ctrl-C: commit, leave the group, exit 0.
    stop = _StopRequest()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _consume(args, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _consume(args: argparse.Namespace, stop: _StopRequest) -> int:
    conf, watch = client_config(args, consumer_config(args))
    consumer: Consumer = make_client(Consumer, conf)
    try:
        topic_info = require_topic(fetch_metadata(consumer, args, watch), args.topic)
        if args.partition is not None and args.partition not in topic_info.partitions:
            raise CliError(
                f"topic '{args.topic}' has no partition {args.partition} "
                f"(it has {len(topic_info.partitions)}) (UNKNOWN_TOPIC_OR_PARTITION)"
            )
        assignment = start(consumer, args, sorted(topic_info.partitions))
        count = 0
        stop.polling = True
        try:
            count = print_records(consumer, args, sys.stdout.buffer, assignment, stop=lambda: stop.requested)
        except KeyboardInterrupt:
            pass
        finally:
            stop.polling = False
        if sys.stderr.isatty():
            print(f"Processed a total of {count} messages", file=sys.stderr)
    finally:
        try:
            consumer.close()  # with --group: commits what was printed and leaves the group
        except (KafkaException, RuntimeError, KeyboardInterrupt):
            pass
    return 0


class Assignment:
    """When this consumer got its partitions: at once with assign(), after a join with a group."""

    def __init__(self, at: float | None = None) -> None:
        self.at = at


def start(consumer: Consumer, args: argparse.Namespace, partition_ids: list[int]) -> Assignment:
    position = start_position(args)
    if args.group and args.partition is None:
        return _subscribe(consumer, args, position)
    ids = [args.partition] if args.partition is not None else partition_ids
    partitions = [TopicPartition(args.topic, p, OFFSET_STORED) for p in ids]
    if position is not None:
        partitions = resolve_positions(consumer, partitions, position, args.timeout)
    consumer.assign(partitions)
    return Assignment(time.monotonic())


def _subscribe(consumer: Consumer, args: argparse.Namespace, position: StartPosition | None) -> Assignment:
    positioned: set[tuple[str, int]] = set()
    assignment = Assignment()

    def on_assign(c: Consumer, partitions: list[TopicPartition]) -> None:
        if assignment.at is None:
            assignment.at = time.monotonic()
        # An explicit start applies once per partition, not again after each rebalance.
        fresh = [p for p in partitions if (p.topic, p.partition) not in positioned]
        if position is None or not fresh:
            return
        moved = {(p.topic, p.partition): p for p in resolve_positions(c, fresh, position, args.timeout)}
        positioned.update(moved)
        c.assign([moved.get((p.topic, p.partition), p) for p in partitions])

    consumer.subscribe([args.topic], on_assign=on_assign)
    return assignment


def print_records(consumer: Consumer, args: argparse.Namespace, out: BinaryIO, assignment: Assignment,
                  stop: Callable[[], bool] = lambda: False) -> int:
    """Print records until --max-messages, --timeout-ms of silence, or Ctrl-C (``stop``).

    Silence is counted from the assignment, not from startup: joining a group can take
    seconds. If no assignment comes within --timeout, silence is counted from then.
    """
    options = PrintOptions.from_args(args)
    idle_limit = args.timeout_ms / 1000 if args.timeout_ms else None
    started = time.monotonic()
    last_record: float | None = None
    warned: set[int] = set()
    join_warned = False
    count = 0
    while (args.max_messages is None or count < args.max_messages) and not stop():
        now = time.monotonic()
        joining_too_long = assignment.at is None and now - started >= args.timeout
        if joining_too_long and not join_warned and idle_limit is None:
            join_warned = True
            warn(
                f"no partitions assigned in group '{args.group}' after {args.timeout:g}s "
                "(still joining; is the group coordinator reachable?)"
            )
        wait = POLL_INTERVAL_S
        if idle_limit is not None:
            quiet_since = last_record or assignment.at
            if quiet_since is None and joining_too_long:
                quiet_since = started + args.timeout
            if quiet_since is not None:
                left = idle_limit - (now - quiet_since)
                if left <= 0:
                    if assignment.at is None:
                        raise CliError(
                            f"no partitions were assigned in group '{args.group}' within "
                            f"{args.timeout:g}s (is the group coordinator reachable?)"
                        )
                    break
                wait = min(wait, left)
        want = MAX_BATCH if args.max_messages is None else args.max_messages - count
        # Ask for no more than we will print: with --group, what is returned is committed.
        messages = consumer.consume(num_messages=min(want, MAX_BATCH), timeout=wait)
        for msg in messages:
            err = msg.error()
            if err is not None:
                _consume_error(err, args, warned)
                continue
            out.write(format_message(options, msg))
            count += 1
            last_record = time.monotonic()
        if messages:
            out.flush()
    return count


def _consume_error(err: KafkaError, args: argparse.Namespace, warned: set[int]) -> None:
    if err.code() == KafkaError._PARTITION_EOF or is_connection_error(err):
        return  # the client reconnects by itself
    if err.fatal() or err.code() in FATAL_CONSUME_ERRORS:
        if err.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
            raise CliError(f"topic '{args.topic}' does not exist ({error_name(err)})")
        raise CliError(f"cannot consume from topic '{args.topic}': {error_text(err)}")
    if err.code() not in warned:
        warned.add(err.code())
        warn(f"while consuming: {error_text(err)}")

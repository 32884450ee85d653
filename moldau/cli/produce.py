"""`moldau produce`: stdin lines to records, like kafka-console-producer.sh."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from moldau.cli.common import (
    CliError,
    ConnectionWatch,
    add_topic_args,
    client_config,
    connection_parent,
    error_text,
    fetch_metadata,
    kafka_error,
    key_value,
    make_client,
    non_negative_int,
    require_topic,
    unescape,
)

ACKS = {"0": "0", "1": "1", "all": "all", "-1": "all"}
COMPRESSION_TYPES = ("none", "gzip", "snappy", "lz4", "zstd")
PROGRESS_EVERY = 10_000


def add_parsers(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "produce",
        parents=[connection_parent()],
        help="send stdin lines to a topic, one record per line",
        description=(
            "Read lines from stdin and send each as one record, like Kafka's "
            "kafka-console-producer.sh. Exits non-zero if any record was not delivered."
        ),
    )
    add_topic_args(parser)
    parser.add_argument(
        "--key-separator",
        metavar="SEP",
        type=unescape,
        default=None,
        help="split each line at the first SEP into key and value (\\t is understood)",
    )
    parser.add_argument(
        "--ignore-missing-key",
        action="store_true",
        help="with --key-separator, send a line without SEP as a value with a null key",
    )
    parser.add_argument("--acks", choices=sorted(ACKS), default="all", help="(default: %(default)s)")
    parser.add_argument(
        "--partition",
        type=non_negative_int,
        default=None,
        help="send every record to this partition (default: by key, else spread)",
    )
    parser.add_argument("--compression", choices=COMPRESSION_TYPES, default="none", help="(default: %(default)s)")
    parser.add_argument(
        "--header",
        metavar="KEY=VALUE",
        type=key_value,
        action="append",
        default=[],
        help="add this header to every record; repeat for more",
    )
    parser.set_defaults(func=produce)


class MissingKeySeparator(ValueError):
    def __init__(self, line_number: int, separator: bytes) -> None:
        super().__init__(
            f"line {line_number} has no key separator {separator.decode(errors='replace')!r} "
            "(use --ignore-missing-key to send such lines with a null key)"
        )


def split_line(
    line: bytes, line_number: int, key_separator: bytes | None, ignore_missing_key: bool
) -> tuple[bytes | None, bytes]:
    """(key, value) of one input line; the key is None when there is no key separator."""
    if key_separator is None:
        return None, line
    key, sep, value = line.partition(key_separator)
    if sep:
        return key, value
    if ignore_missing_key:
        return None, line
    raise MissingKeySeparator(line_number, key_separator)


def read_lines(stream: BinaryIO) -> Iterator[bytes]:
    """Lines without their line ending (`\\n` or `\\r\\n`)."""
    for raw in stream:
        if raw.endswith(b"\n"):
            raw = raw[:-1]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
        yield raw


class DeliveryReport:
    """Counts what the broker acknowledged; remembers the first failure for the message."""

    def __init__(self) -> None:
        self.delivered = 0
        self.failed = 0
        self.first_error: KafkaError | None = None

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.delivered += 1
        else:
            self.fail(err)

    def fail(self, err: KafkaError) -> None:
        self.failed += 1
        if self.first_error is None:
            self.first_error = err


def producer_config(args: argparse.Namespace) -> dict[str, Any]:
    timeout_ms = int(args.timeout * 1000)
    return {
        "acks": ACKS[args.acks],
        "compression.type": args.compression,
        # A person typing, or a short pipe: send promptly rather than wait to batch.
        "linger.ms": 5,
        # Every record is delivered or failed within --timeout; flush() then returns.
        "message.timeout.ms": timeout_ms,
        "request.timeout.ms": min(timeout_ms, 30_000),
    }


def produce(args: argparse.Namespace) -> int:
    conf, watch = client_config(args, producer_config(args))
    producer: Producer = make_client(Producer, conf)
    topic_info = require_topic(fetch_metadata(producer, args, watch), args.topic)
    if args.partition is not None and args.partition not in topic_info.partitions:
        raise CliError(
            f"topic '{args.topic}' has no partition {args.partition} "
            f"(it has {len(topic_info.partitions)}) (UNKNOWN_TOPIC_OR_PARTITION)"
        )
    if sys.stdin.isatty():
        print("Type one record per line; Ctrl-D sends and exits.", file=sys.stderr)
    report = DeliveryReport()
    key_separator = args.key_separator.encode() if args.key_separator else None
    headers = [(k, v.encode()) for k, v in args.header] or None
    progress = sys.stderr.isatty()
    line_error: CliError | None = None
    sent = 0
    try:
        try:
            sent = send_lines(
                producer,
                args,
                read_lines(sys.stdin.buffer),
                key_separator,
                headers,
                report,
                progress,
            )
        except MissingKeySeparator as e:
            line_error = CliError(str(e))
        except KeyboardInterrupt:
            pass  # Ctrl-C ends input like Ctrl-D: deliver what was typed.
        finish(producer, args, watch, report)
    finally:
        if progress and sent >= PROGRESS_EVERY:
            print(file=sys.stderr)
    if line_error is not None:
        raise line_error
    return 0


def send_lines(
    producer: Producer,
    args: argparse.Namespace,
    lines: Iterable[bytes],
    key_separator: bytes | None,
    headers: list[tuple[str, bytes]] | None,
    report: DeliveryReport,
    progress: bool,
) -> int:
    extra: dict[str, Any] = {"on_delivery": report}
    if headers:
        extra["headers"] = headers
    if args.partition is not None:
        extra["partition"] = args.partition
    sent = 0
    for line_number, line in enumerate(lines, start=1):
        key, value = split_line(line, line_number, key_separator, args.ignore_missing_key)
        while True:
            try:
                producer.produce(args.topic, value=value, key=key, **extra)
                break
            except BufferError:
                producer.poll(0.1)  # local queue full: let deliveries drain
            except KafkaException as e:
                err = kafka_error(e)
                if err is None:
                    raise
                report.fail(err)
                break
        producer.poll(0)
        sent += 1
        if progress and sent % PROGRESS_EVERY == 0:
            print(f"\r{sent} records sent", end="", file=sys.stderr, flush=True)
    return sent


def finish(producer: Producer, args: argparse.Namespace, watch: ConnectionWatch, report: DeliveryReport) -> None:
    try:
        remaining = producer.flush(args.timeout + 5)
    except KeyboardInterrupt:
        remaining = len(producer)
        raise CliError(f"interrupted; {remaining} records may not have been delivered", 130) from None
    total = report.delivered + report.failed + remaining
    if remaining:
        raise CliError(f"{remaining} of {total} records still undelivered after {args.timeout:g}s")
    if report.failed:
        assert report.first_error is not None
        raise CliError(
            f"{report.failed} of {total} records were not delivered to topic "
            f"'{args.topic}': {error_text(report.first_error)}"
        )

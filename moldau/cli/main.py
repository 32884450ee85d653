"""The `moldau` command: one argparse parser, a subcommand per tool.

Each subcommand sets `func`, a callable taking the parsed Namespace and returning an
exit code. Expected failures are `CliError`s and print as one line; bad flags exit 2
(argparse's convention).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from moldau import __version__
from moldau.cli import acls, cluster, console, consume, groups, produce, quotas, reassign, topics, transactions, users
from moldau.cli.common import CliError, exception_text, kafka_error, resolve_topic, warn

Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="moldau",
        description="Moldau: a Kafka-compatible streaming platform.",
    )
    parser.add_argument("--version", action="version", version=f"moldau {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # `server` and `dev` live in moldau.cli.server, written separately; the client tools
    # must keep working without it.
    try:
        server = importlib.import_module("moldau.cli.server")
    except ImportError as e:
        if e.name != "moldau.cli.server":  # it exists but is broken: say so, carry on
            warn(f"server commands unavailable: {e}")
    else:
        server.add_parsers(subparsers)
    topics.add_parsers(subparsers)
    produce.add_parsers(subparsers)
    consume.add_parsers(subparsers)
    groups.add_parsers(subparsers)
    cluster.add_parsers(subparsers)
    users.add_parsers(subparsers)
    acls.add_parsers(subparsers)
    quotas.add_parsers(subparsers)
    reassign.add_parsers(subparsers)
    transactions.add_parsers(subparsers)
    console.add_parsers(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(run(argv))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse and cross-check the command line; exits 2 with usage on bad flags."""
    args = build_parser().parse_args(argv)
    if "topic_positional" in vars(args):
        args.topic = resolve_topic(args)
    check: Callable[[argparse.Namespace], None] | None = getattr(args, "_check", None)
    if check is not None:
        check(args)
    return args


def run(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    func: Command = args.func
    try:
        return func(args)
    except CliError as e:
        print(f"moldau: error: {e.message}", file=sys.stderr, flush=True)
        return e.exit_code
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `moldau consume ... | head`: the reader left; that is not our failure.
        _silence_stdout()
        return 0
    except Exception as e:
        if kafka_error(e) is None:
            raise
        print(f"moldau: error: {exception_text(e)}", file=sys.stderr, flush=True)
        return 1


def _silence_stdout() -> None:
    # Python would otherwise complain again when it flushes stdout at exit.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    main()

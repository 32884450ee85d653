"""`moldau console`: the web console for a cluster (Moldau or Apache Kafka)."""

from __future__ import annotations

import argparse
from typing import Any

from moldau.cli.common import CliError, bootstrap_server, connection_parent, positive_float, read_properties

DEFAULT_CONSOLE_PORT = 8080
DEFAULT_CONSOLE_HOST = "127.0.0.1"
DEFAULT_CONSOLE_TIMEOUT_S = 5.0


def port_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a port (0-65535): {text!r}")
    return value


def add_parsers(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "console",
        parents=[connection_parent()],
        help="run the web console for a cluster",
        description="Serve a web console (brokers, topics, messages, consumer groups, replication) that "
        "talks to the cluster over the Kafka protocol, so it works against Apache Kafka too.",
    )
    parser.add_argument(
        "--port",
        type=port_number,
        default=DEFAULT_CONSOLE_PORT,
        help="HTTP port (default: %(default)s; 0 picks a free one)",
    )
    parser.add_argument(
        "--host",
        default=DEFAULT_CONSOLE_HOST,
        help="address to listen on (default: %(default)s; 0.0.0.0 for every interface)",
    )
    parser.add_argument(
        "--refresh",
        type=positive_float,
        default=2.0,
        metavar="SECONDS",
        help="how often live views update (default: %(default)s)",
    )
    parser.set_defaults(func=run_console, timeout=DEFAULT_CONSOLE_TIMEOUT_S)


def run_console(args: argparse.Namespace) -> int:
    from moldau.console.errors import ConsoleError
    from moldau.console.server import serve

    props = read_properties(args.command_config) if args.command_config else {}
    props.pop("bootstrap.servers", None)
    try:
        serve(bootstrap_server(args), args.host, args.port, args.timeout, props, args.refresh)
    except ConsoleError as e:
        raise CliError(e.message) from None
    except OSError as e:
        raise CliError(f"cannot serve on {args.host}:{args.port}: {e.strerror or e}") from None
    return 0

"""`moldau cluster up|status|down`: a local cluster of one ZooKeeper and N brokers.

`up` prints the bootstrap string on stdout (so `BOOTSTRAP=$(moldau cluster up ...)`
works) and its progress on stderr. `status` exits 0 only when everything is up. The work
is done by `moldau.cluster.local`; this module parses flags and prints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from moldau.cli.common import CliError, key_value, positive_float, positive_int
from moldau.cluster.local import (
    RESERVED_PROPERTIES,
    ClusterError,
    UpRequest,
    broker_ports,
    down,
    format_status,
    log_tail,
    require_state,
    status,
    up,
)

DEFAULT_DIR = Path("cluster")
DEFAULT_BASE_PORT = 9092
DEFAULT_ZOOKEEPER_PORT = 2181
DEFAULT_CONSOLE_PORT = 8080
DEFAULT_UP_TIMEOUT_S = 60.0
DEFAULT_STATUS_TIMEOUT_S = 5.0
DEFAULT_DOWN_TIMEOUT_S = 30.0
MAX_BROKERS = 64


def port_number(text: str) -> int:
    """argparse type for a TCP port: 1..65535."""
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"not a port (1-65535): {text!r}")
    return value


def broker_count(text: str) -> int:
    value = positive_int(text)
    if value > MAX_BROKERS:
        raise argparse.ArgumentTypeError(f"at most {MAX_BROKERS} brokers: {text!r}")
    return value


def _dir_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIR,
        metavar="DIR",
        help="the cluster's directory: cluster.json, logs and data (default: ./%(default)s)",
    )


def add_parsers(subparsers: Any) -> None:
    cluster = subparsers.add_parser(
        "cluster",
        help="run a local cluster: ZooKeeper and N brokers",
        description="Start, inspect and stop a local cluster: one Apache ZooKeeper and N brokers, "
        "each a background process with its own port, data dir and log under DIR.",
    )
    commands = cluster.add_subparsers(dest="cluster_command", required=True, metavar="COMMAND")

    up_parser = commands.add_parser(
        "up",
        help="start ZooKeeper and N brokers, print the bootstrap string",
        description="Start ZooKeeper (the machine's Apache ZooKeeper install) and N brokers (ids 0..N-1, "
        "ports BASE-PORT..BASE-PORT+N-1), wait until all are in the cluster metadata, "
        "and print the bootstrap string on stdout.",
    )
    _dir_arg(up_parser)
    up_parser.add_argument("--brokers", type=broker_count, required=True, metavar="N", help="number of brokers")
    up_parser.add_argument(
        "--base-port",
        type=port_number,
        default=DEFAULT_BASE_PORT,
        metavar="PORT",
        help="broker i listens on PORT+i (default: %(default)s)",
    )
    up_parser.add_argument(
        "--zookeeper-port",
        type=port_number,
        default=DEFAULT_ZOOKEEPER_PORT,
        metavar="PORT",
        help="ZooKeeper's client port (default: %(default)s)",
    )
    up_parser.add_argument(
        "--override",
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a broker property for every broker (repeatable)",
    )
    up_parser.add_argument(
        "--racks",
        type=rack_list,
        default=None,
        metavar="RACK,RACK,...",
        help="broker.rack of each broker, one per broker in id order (e.g. a,b,c for 3 brokers)",
    )
    up_parser.add_argument("--console", action="store_true", help="also start the web console (moldau console)")
    up_parser.add_argument(
        "--console-port",
        type=port_number,
        default=DEFAULT_CONSOLE_PORT,
        metavar="PORT",
        help="the console's HTTP port, with --console (default: %(default)s)",
    )
    up_parser.add_argument(
        "--metrics-port",
        type=port_number,
        default=None,
        metavar="PORT",
        help="broker i serves Prometheus metrics at http://127.0.0.1:PORT+i/metrics (default: off)",
    )
    up_parser.add_argument(
        "--timeout",
        type=positive_float,
        default=DEFAULT_UP_TIMEOUT_S,
        metavar="SECONDS",
        help="give up when the cluster is not up after this long (default: %(default)s)",
    )
    up_parser.set_defaults(func=run_up, _parser=up_parser, _check=check_up)

    status_parser = commands.add_parser(
        "status",
        help="show ZooKeeper, the brokers, the controller and unhealthy partitions",
        description="Show ZooKeeper, each broker (process alive, in the metadata), the controller, and "
        "partitions without a leader or under-replicated. Exit 0 when all is up, 1 otherwise.",
    )
    _dir_arg(status_parser)
    status_parser.add_argument(
        "--timeout",
        type=positive_float,
        default=DEFAULT_STATUS_TIMEOUT_S,
        metavar="SECONDS",
        help="wait this long for the brokers' answers (default: %(default)s)",
    )
    status_parser.set_defaults(func=run_status)

    down_parser = commands.add_parser(
        "down",
        help="stop the brokers (controlled shutdown) and ZooKeeper",
        description="SIGTERM each broker (a controlled shutdown), then ZooKeeper; SIGKILL what has not "
        "exited after --timeout. Removes cluster.json; the data stays unless --delete-data.",
    )
    _dir_arg(down_parser)
    down_parser.add_argument("--delete-data", action="store_true", help="also delete ZooKeeper's and the brokers' data")
    down_parser.add_argument(
        "--timeout",
        type=positive_float,
        default=DEFAULT_DOWN_TIMEOUT_S,
        metavar="SECONDS",
        help="per process, before SIGKILL (default: %(default)s)",
    )
    down_parser.set_defaults(func=run_down)


def rack_list(text: str) -> tuple[str, ...]:
    """argparse type for --racks: comma-separated, none empty."""
    racks = tuple(r.strip() for r in text.split(","))
    if not all(racks):
        raise argparse.ArgumentTypeError(f"an empty rack name in {text!r}")
    return racks


def check_up(args: argparse.Namespace) -> None:
    """Cross-flag checks for `up`; a failure is a usage error (exit 2)."""
    parser: argparse.ArgumentParser = args._parser
    ports = broker_ports(args.base_port, args.brokers)
    if ports[-1] > 65535:
        parser.error(f"--base-port {args.base_port} with {args.brokers} brokers goes past port 65535")
    if args.console and args.console_port in [*ports, args.zookeeper_port]:
        parser.error(f"--console-port {args.console_port} is taken by ZooKeeper or a broker")
    if args.metrics_port is not None:
        metrics = broker_ports(args.metrics_port, args.brokers)
        if metrics[-1] > 65535:
            parser.error(f"--metrics-port {args.metrics_port} with {args.brokers} brokers goes past port 65535")
        taken = set(metrics) & {*ports, args.zookeeper_port, *([args.console_port] if args.console else [])}
        if taken:
            parser.error(f"--metrics-port {args.metrics_port}: port {min(taken)} is taken by ZooKeeper, a broker "
                         "or the console")
    if args.zookeeper_port in ports:
        parser.error(
            f"--zookeeper-port {args.zookeeper_port} is one of the brokers' ports ({ports[0]}-{ports[-1]})"
        )
    if args.racks is not None:
        if len(args.racks) != args.brokers:
            parser.error(f"--racks names {len(args.racks)} rack(s) for {args.brokers} broker(s): give one per broker")
        if any(key == "broker.rack" for key, _ in args.override):
            parser.error("--override broker.rack and --racks both set the brokers' racks: use one")
    reserved = sorted({key for key, _ in args.override} & RESERVED_PROPERTIES)
    if reserved:
        parser.error(f"--override cannot set {', '.join(reserved)}: `cluster up` sets it for each broker")


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _fail(e: ClusterError) -> CliError:
    """Show the end of the log that explains the failure, then the one-line error."""
    if e.log_path is not None:
        tail = log_tail(e.log_path)
        if tail:
            print(f"--- last lines of {e.log_path} ---\n{tail}\n---", file=sys.stderr, flush=True)
        return CliError(f"{e.message} (log: {e.log_path})")
    return CliError(e.message)


def run_up(args: argparse.Namespace) -> int:
    request = UpRequest(
        directory=args.dir.resolve(),
        brokers=args.brokers,
        base_port=args.base_port,
        zookeeper_port=args.zookeeper_port,
        overrides=dict(args.override),
        timeout=args.timeout,
        console_port=args.console_port if args.console else None,
        metrics_base_port=args.metrics_port,
        racks=args.racks,
    )
    try:
        state = up(request, progress)
    except ClusterError as e:
        raise _fail(e) from None
    print(state.bootstrap, flush=True)
    return 0


def run_status(args: argparse.Namespace) -> int:
    try:
        state = require_state(args.dir.resolve())
    except ClusterError as e:
        raise _fail(e) from None
    result = status(state, args.timeout)
    for line in format_status(result):
        print(line)
    sys.stdout.flush()
    return 0 if result.healthy else 1


def run_down(args: argparse.Namespace) -> int:
    try:
        down(args.dir.resolve(), args.timeout, args.delete_data, progress)
    except ClusterError as e:
        raise _fail(e) from None
    return 0

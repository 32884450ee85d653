"""`moldau reassign`: move partitions between brokers, change their replication factor,
cancel a move, list the moves in progress (kafka-reassign-partitions.sh).

    moldau reassign orders:0=1,2 orders:1=2,3      start moves (target replicas, in order)
    moldau reassign orders:0=1,2 --wait            ... and wait until they are done
    moldau reassign --cancel orders:0              go back to the replicas before the move
    moldau reassign --list                         the moves in progress

Requests go to the controller (AlterPartitionReassignments / ListPartitionReassignments).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import time
from typing import Any

from confluent_kafka.admin import AdminClient

from moldau.cli.common import CliError, client_config, connection_parent, fetch_metadata, make_client
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.server.broker_client import BrokerConnection

Move = tuple[str, int, list[int] | None]  # topic, partition, target replicas (None: cancel)


def add_parsers(subparsers: Any) -> None:
    conn = connection_parent()
    p = subparsers.add_parser(
        "reassign", parents=[conn],
        help="move partitions between brokers, change replication factors, list or cancel moves",
        description="Reassign partitions, like Kafka's kafka-reassign-partitions.sh. "
                    "A move is TOPIC:PARTITION=BROKER,BROKER,... (the first broker is the preferred leader).")
    p.add_argument("moves", metavar="TOPIC:PARTITION=BROKERS", nargs="*", type=parse_move,
                   help="a partition and its new replicas")
    p.add_argument("--cancel", metavar="TOPIC:PARTITION", action="append", default=[], type=parse_partition,
                   help="cancel the move of a partition; repeat for more")
    p.add_argument("--list", action="store_true", help="show the moves in progress")
    p.add_argument("--wait", action="store_true", help="after starting the moves, wait until they are done")
    p.set_defaults(func=reassign, _parser=p, _check=check)


def parse_partition(text: str) -> tuple[str, int]:
    topic, sep, partition = text.rpartition(":")
    if not sep or not topic or not partition.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not TOPIC:PARTITION")
    return topic, int(partition)


def parse_move(text: str) -> Move:
    where, sep, brokers = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r} is not TOPIC:PARTITION=BROKER,BROKER,...")
    topic, partition = parse_partition(where)
    try:
        replicas = [int(b) for b in brokers.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{brokers!r} is not a comma-separated list of broker ids") from None
    if any(b < 0 for b in replicas) or len(set(replicas)) != len(replicas):
        raise argparse.ArgumentTypeError(f"{brokers!r}: broker ids must be distinct and not negative")
    return topic, partition, replicas


def check(args: argparse.Namespace) -> None:
    if not (args.moves or args.cancel or args.list):
        args._parser.error("nothing to do: give moves, --cancel or --list")
    if args.wait and not (args.moves or args.cancel):
        args._parser.error("--wait needs moves to wait for")


def _controller(args: argparse.Namespace) -> tuple[str, int]:
    conf, watch = client_config(args)
    admin = make_client(AdminClient, conf)
    metadata = fetch_metadata(admin, args, watch)
    broker = metadata.brokers.get(metadata.controller_id)
    if broker is None:
        raise CliError("the cluster has no controller right now; try again")
    return broker.host, broker.port


def _call(args: argparse.Namespace, api_key: int, version: int, request: Any) -> Any:
    host, port = _controller(args)

    async def call() -> Any:
        conn = BrokerConnection(host, port, "moldau-reassign")
        try:
            return await conn.request(api_key, version, request, timeout=args.timeout)
        finally:
            conn.close()

    try:
        response = asyncio.run(call())
    except (OSError, ConnectionError, TimeoutError) as exc:
        raise CliError(f"controller at {host}:{port}: {exc or 'no answer'}") from None
    if response.error_code != ErrorCode.none:
        raise CliError(f"controller at {host}:{port}: {ErrorCode(response.error_code).name.upper()}"
                       + (f": {response.error_message}" if response.error_message else ""))
    return response


def _timeout(args: argparse.Namespace) -> datetime.timedelta:
    return datetime.timedelta(seconds=args.timeout)


def list_moves(args: argparse.Namespace) -> dict[tuple[str, int], tuple[list[int], list[int], list[int]]]:
    from kio.schema.list_partition_reassignments.v0 import request as lr

    response = _call(args, ApiKey.LIST_PARTITION_REASSIGNMENTS, 0,
                     lr.ListPartitionReassignmentsRequest(timeout=_timeout(args), topics=None))
    return {(t.name, p.partition_index): (list(p.replicas), list(p.adding_replicas), list(p.removing_replicas))
            for t in response.topics for p in t.partitions}


def start_moves(args: argparse.Namespace, moves: list[Move]) -> list[str]:
    """Send the moves; returns one error line per refused partition."""
    from kio.schema.alter_partition_reassignments.v0 import request as ar

    by_topic: dict[str, list[Any]] = {}
    for topic, partition, replicas in moves:
        by_topic.setdefault(topic, []).append(ar.ReassignablePartition(
            partition_index=partition, replicas=tuple(replicas) if replicas is not None else None))
    response = _call(args, ApiKey.ALTER_PARTITION_REASSIGNMENTS, 0, ar.AlterPartitionReassignmentsRequest(
        timeout=_timeout(args), topics=tuple(ar.ReassignableTopic(name=t, partitions=tuple(ps))
                                             for t, ps in by_topic.items())))
    errors = []
    for t in response.responses:
        for p in t.partitions:
            if p.error_code != ErrorCode.none:
                errors.append(f"{t.name}:{p.partition_index}: {ErrorCode(p.error_code).name.upper()}"
                              + (f": {p.error_message}" if p.error_message else ""))
    return errors


def reassign(args: argparse.Namespace) -> int:
    moves: list[Move] = list(args.moves) + [(t, p, None) for t, p in args.cancel]
    if moves:
        errors = start_moves(args, moves)
        for line in errors:
            print(f"moldau: error: {line}", flush=True)
        started = len(moves) - len(errors)
        print(f"started {started} of {len(moves)} reassignment(s)" if args.moves else
              f"cancelled {started} of {len(moves)} reassignment(s)", flush=True)
        if errors:
            return 1
        if args.wait:
            wanted = {(t, p) for t, p, _ in moves}
            deadline = time.monotonic() + max(args.timeout, 1) * 20
            while True:
                pending = wanted & set(list_moves(args))
                if not pending:
                    print("all done", flush=True)
                    break
                if time.monotonic() > deadline:
                    raise CliError(f"still moving: {', '.join(f'{t}:{p}' for t, p in sorted(pending))}")
                print(f"waiting for {len(pending)} partition(s) to catch up...", flush=True)
                time.sleep(1)
    if args.list:
        ongoing = list_moves(args)
        if not ongoing:
            print("no reassignments in progress")
        for (topic, partition), (replicas, adding, removing) in sorted(ongoing.items()):
            print(f"{topic}:{partition}\treplicas {','.join(map(str, replicas))}"
                  f"\tadding {','.join(map(str, adding)) or '-'}\tremoving {','.join(map(str, removing)) or '-'}")
    return 0

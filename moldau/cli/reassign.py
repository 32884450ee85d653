"""`moldau reassign`: move partitions between brokers, change their replication factor,
cancel a move, list the moves in progress (kafka-reassign-partitions.sh).

    moldau reassign orders:0=1,2 orders:1=2,3      start moves (target replicas, in order)
    moldau reassign orders:0=1,2 --wait            ... and wait until they are done
    moldau reassign --cancel orders:0              go back to the replicas before the move
    moldau reassign --list                         the moves in progress
    moldau reassign orders:0=1,2 --throttle 10000000 --wait
                                                   move at most 10 MB/s, unthrottle when done
    moldau reassign --remove-throttle orders       drop a throttle left by a move without --wait

Requests go to the controller (AlterPartitionReassignments / ListPartitionReassignments).
`--throttle` does what kafka-reassign-partitions.sh --throttle does: before the moves it
sets `leader.replication.throttled.rate` and `follower.replication.throttled.rate` (dynamic
broker configs; Moldau keeps them cluster-wide) and, on each moved topic,
`leader.replication.throttled.replicas` (the partitions' current replicas) and
`follower.replication.throttled.replicas` (the replicas being added); Kafka's --verify
removes them, here `--wait` once the moves are done, or `--remove-throttle`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import time
from typing import Any

from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from moldau.cli.common import (
    CliError,
    client_config,
    connection_parent,
    exception_text,
    fetch_metadata,
    make_client,
    positive_int,
    wait_future,
)
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
    p.add_argument("--throttle", metavar="BYTES_PER_SEC", type=positive_int, default=None,
                   help="limit the moves' replication to this rate (removed at the end with --wait)")
    p.add_argument("--remove-throttle", metavar="TOPIC", action="append", default=[],
                   help="remove the replication throttle set for the moves of this topic; repeat for more")
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
    if not (args.moves or args.cancel or args.list or args.remove_throttle):
        args._parser.error("nothing to do: give moves, --cancel, --list or --remove-throttle")
    if args.throttle is not None and not args.moves:
        args._parser.error("--throttle needs moves to throttle")
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


THROTTLE_RATES = ("leader.replication.throttled.rate", "follower.replication.throttled.rate")
THROTTLED_REPLICAS = ("leader.replication.throttled.replicas", "follower.replication.throttled.replicas")


def throttled_replicas(current: dict[tuple[str, int], list[int]], moves: list[Move]) -> dict[str, tuple[str, str]]:
    """Per moved topic, its (leader, follower) throttled-replicas lists, as Kafka's tool
    computes them: the leader side throttles the partitions' current replicas (any may
    lead during the move), the follower side the replicas the move adds."""
    leaders: dict[str, set[tuple[int, int]]] = {}
    followers: dict[str, set[tuple[int, int]]] = {}
    for topic, partition, target in moves:
        existing = current.get((topic, partition), [])
        leaders.setdefault(topic, set()).update((partition, b) for b in existing)
        followers.setdefault(topic, set()).update((partition, b) for b in target or () if b not in existing)

    def text(pairs: set[tuple[int, int]]) -> str:
        return ",".join(f"{p}:{b}" for p, b in sorted(pairs))

    return {topic: (text(leaders[topic]), text(followers.get(topic, set()))) for topic in leaders}


def _alter_configs(admin: Any, args: argparse.Namespace, resources: list[Any], what: str) -> None:
    for resource, future in admin.incremental_alter_configs(resources, request_timeout=args.timeout).items():
        try:
            wait_future(future, args, what)
        except Exception as exc:
            raise CliError(f"cannot {what} ({resource.name or 'brokers'}): {exception_text(exc)}") from None


def set_throttle(args: argparse.Namespace, moves: list[Move]) -> None:
    conf, watch = client_config(args)
    admin = make_client(AdminClient, conf)
    metadata = fetch_metadata(admin, args, watch)
    current: dict[tuple[str, int], list[int]] = {}
    for topic, partition, _ in moves:
        t = metadata.topics.get(topic)
        if t is None or partition not in t.partitions:
            raise CliError(f"{topic}:{partition} does not exist")
        current[(topic, partition)] = list(t.partitions[partition].replicas)
    rate = str(args.throttle)
    # Dynamic broker configs are cluster-wide in Moldau: one broker resource sets them all.
    broker = ConfigResource(ResourceType.BROKER, str(min(metadata.brokers)), incremental_configs=[
        ConfigEntry(name, rate, incremental_operation=AlterConfigOpType.SET) for name in THROTTLE_RATES])
    topics = [ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
        for name, value in zip(THROTTLED_REPLICAS, lists, strict=True)])
        for topic, lists in throttled_replicas(current, moves).items()]
    _alter_configs(admin, args, [broker, *topics], "set the replication throttle")
    print(f"replication throttled to {args.throttle} bytes/s", flush=True)


def remove_throttle(args: argparse.Namespace, topics: list[str]) -> None:
    conf, watch = client_config(args)
    admin = make_client(AdminClient, conf)
    metadata = fetch_metadata(admin, args, watch)
    broker = ConfigResource(ResourceType.BROKER, str(min(metadata.brokers)), incremental_configs=[
        ConfigEntry(name, None, incremental_operation=AlterConfigOpType.DELETE) for name in THROTTLE_RATES])
    resources = [broker] + [ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry(name, None, incremental_operation=AlterConfigOpType.DELETE) for name in THROTTLED_REPLICAS])
        for topic in sorted(set(topics))]
    _alter_configs(admin, args, resources, "remove the replication throttle")
    print("replication throttle removed", flush=True)


def reassign(args: argparse.Namespace) -> int:
    moves: list[Move] = list(args.moves) + [(t, p, None) for t, p in args.cancel]
    if args.throttle is not None:
        set_throttle(args, list(args.moves))
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
                    if args.throttle is not None:
                        remove_throttle(args, [t for t, _, _ in args.moves])
                    break
                if time.monotonic() > deadline:
                    raise CliError(f"still moving: {', '.join(f'{t}:{p}' for t, p in sorted(pending))}")
                print(f"waiting for {len(pending)} partition(s) to catch up...", flush=True)
                time.sleep(1)
        elif args.throttle is not None:
            topics = " ".join(f"--remove-throttle {t}" for t in sorted({t for t, _, _ in args.moves}))
            print(f"the throttle stays until the moves are done and it is removed: moldau reassign {topics}",
                  flush=True)
    if args.remove_throttle:
        remove_throttle(args, args.remove_throttle)
    if args.list:
        ongoing = list_moves(args)
        if not ongoing:
            print("no reassignments in progress")
        for (topic, partition), (replicas, adding, removing) in sorted(ongoing.items()):
            print(f"{topic}:{partition}\treplicas {','.join(map(str, replicas))}"
                  f"\tadding {','.join(map(str, adding)) or '-'}\tremoving {','.join(map(str, removing)) or '-'}")
    return 0

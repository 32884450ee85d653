"""`moldau topics`: create, list, describe, alter and delete topics (kafka-topics.sh)."""

from __future__ import annotations

import argparse
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ClusterMetadata,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from moldau.cli.common import (
    CliError,
    ConnectionWatch,
    client_config,
    connection_parent,
    error_text,
    exception_text,
    fetch_metadata,
    is_connection_error,
    kafka_error,
    key_value,
    make_client,
    positive_int,
    require_topic,
    unreachable,
    wait_future,
    warn,
)


def add_parsers(subparsers: Any) -> None:
    conn = connection_parent()
    topics = subparsers.add_parser(
        "topics",
        help="create, list, describe, alter and delete topics",
        description="Manage topics, like Kafka's kafka-topics.sh.",
    )
    actions = topics.add_subparsers(dest="action", required=True, metavar="ACTION")

    create = actions.add_parser("create", parents=[conn], help="create a topic")
    create.add_argument("topic", metavar="TOPIC")
    create.add_argument("--partitions", type=positive_int, default=None, help="(default: the broker's)")
    create.add_argument("--replication-factor", type=positive_int, default=None, help="(default: the broker's)")
    create.add_argument(
        "--config",
        metavar="KEY=VALUE",
        type=key_value,
        action="append",
        default=[],
        help="a topic config override; repeat for more",
    )
    create.add_argument("--if-not-exists", action="store_true", help="succeed if the topic already exists")
    create.add_argument("--validate-only", action="store_true", help="ask the broker to check, create nothing")
    create.set_defaults(func=create_topic)

    list_ = actions.add_parser("list", parents=[conn], help="list topic names")
    list_.add_argument("--exclude-internal", action="store_true", help="leave out topics whose names start '__'")
    list_.set_defaults(func=list_topics)

    describe = actions.add_parser(
        "describe", parents=[conn], help="show partitions, leaders, replicas, ISR and configs"
    )
    describe.add_argument("topic", metavar="TOPIC", nargs="?", help="(default: all topics)")
    describe.add_argument(
        "--under-replicated-partitions",
        action="store_true",
        help="show only partitions whose ISR is smaller than their replica set",
    )
    describe.set_defaults(func=describe_topics)

    alter = actions.add_parser("alter", parents=[conn], help="add partitions or change topic configs")
    alter.add_argument("topic", metavar="TOPIC")
    alter.add_argument("--partitions", type=positive_int, default=None, help="new (larger) partition count")
    alter.add_argument(
        "--config",
        metavar="KEY=VALUE",
        type=key_value,
        action="append",
        default=[],
        help="set a topic config; repeat for more",
    )
    alter.add_argument(
        "--delete-config",
        metavar="KEY",
        action="append",
        default=[],
        help="remove a topic config override; repeat for more",
    )
    alter.set_defaults(func=alter_topic, _parser=alter, _check=check_alter)

    delete = actions.add_parser("delete", parents=[conn], help="delete a topic")
    delete.add_argument("topic", metavar="TOPIC")
    delete.add_argument("--if-exists", action="store_true", help="succeed if there is no topic")
    delete.set_defaults(func=delete_topic)


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


def _request_timeouts(args: argparse.Namespace) -> dict[str, float]:
    return {"request_timeout": args.timeout, "operation_timeout": args.timeout}


# --------------------------------------------------------------------------- create


def create_topic(args: argparse.Namespace) -> int:
    admin, watch = _admin(args)
    fetch_metadata(admin, args, watch)  # fails fast, naming the server, if unreachable
    new_topic = NewTopic(
        args.topic,
        num_partitions=args.partitions if args.partitions is not None else -1,
        replication_factor=(args.replication_factor if args.replication_factor is not None else -1),
        config=dict(args.config),
    )
    futures = admin.create_topics([new_topic], validate_only=args.validate_only, **_request_timeouts(args))
    _, err = _admin_result(futures[args.topic], args, watch, f"create topic '{args.topic}'")
    if err is not None:
        if err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
            if args.if_not_exists:
                return 0
            raise CliError(f"topic '{args.topic}' already exists (TOPIC_ALREADY_EXISTS)")
        raise CliError(f"cannot create topic '{args.topic}': {error_text(err)}")
    if args.validate_only:
        print(f"Topic {args.topic} is valid and would be created (validate-only).")
    else:
        print(f"Created topic {args.topic}.")
    return 0


# ----------------------------------------------------------------------------- list


def list_topics(args: argparse.Namespace) -> int:
    admin, watch = _admin(args)
    metadata = fetch_metadata(admin, args, watch)
    for name in sorted(metadata.topics):
        if args.exclude_internal and name.startswith("__"):
            continue
        print(name)
    return 0


# ------------------------------------------------------------------------- describe


def describe_topics(args: argparse.Namespace) -> int:
    admin, watch = _admin(args)
    metadata = fetch_metadata(admin, args, watch)
    if args.topic is not None:
        require_topic(metadata, args.topic)
        names = [args.topic]
    else:
        names = sorted(metadata.topics)
    configs = _non_default_configs(admin, names, args, watch)
    lines: list[str] = []
    for name in names:
        lines.extend(describe_lines(metadata, name, configs.get(name, {}), args.under_replicated_partitions))
    if lines:
        print("\n".join(lines))
    return 0


def describe_lines(
    metadata: ClusterMetadata,
    topic: str,
    configs: dict[str, str],
    only_under_replicated: bool = False,
) -> list[str]:
    """kafka-topics.sh --describe output for one topic: a summary line, one per partition."""
    info = metadata.topics[topic]
    partitions = [info.partitions[p] for p in sorted(info.partitions)]
    replication_factor = len(partitions[0].replicas) if partitions else 0
    config_text = ",".join(f"{k}={v}" for k, v in sorted(configs.items()))
    lines: list[str] = []
    if not only_under_replicated:
        lines.append(
            f"Topic: {topic}\tPartitionCount: {len(partitions)}\t"
            f"ReplicationFactor: {replication_factor}\tConfigs: {config_text}"
        )
    for p in partitions:
        under_replicated = len(p.isrs) < len(p.replicas)
        if only_under_replicated and not under_replicated:
            continue
        leader = str(p.leader) if p.leader >= 0 else "none"
        line = (
            f"\tTopic: {topic}\tPartition: {p.id}\tLeader: {leader}\tReplicas: {_ids(p.replicas)}\tIsr: {_ids(p.isrs)}"
        )
        if p.leader < 0:
            line += "\t(offline)"
        if under_replicated:
            line += "\t(under-replicated)"
        lines.append(line)
    return lines


def _ids(broker_ids: list[int]) -> str:
    return ",".join(str(b) for b in broker_ids)


def _non_default_configs(
    admin: AdminClient, topics: list[str], args: argparse.Namespace, watch: ConnectionWatch
) -> dict[str, dict[str, str]]:
    """Each topic's configs that differ from the default, as kafka-topics.sh shows them."""
    if not topics:
        return {}
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in topics]
    try:
        futures = admin.describe_configs(resources, request_timeout=args.timeout)
    except KafkaException as e:
        warn(f"cannot describe topic configs: {exception_text(e)}")
        return {}
    result: dict[str, dict[str, str]] = {}
    warned = False
    for resource, future in futures.items():
        entries, err = _admin_result(future, args, watch, "describe configs")
        if err is not None:
            if not warned:
                warn(f"cannot describe configs of topic '{resource.name}': {error_text(err)}")
                warned = True
            continue
        result[resource.name] = {
            name: ("[hidden]" if entry.is_sensitive else str(entry.value))
            for name, entry in entries.items()
            if not entry.is_default and entry.value is not None
        }
    return result


# ---------------------------------------------------------------------------- alter


def check_alter(args: argparse.Namespace) -> None:
    if args.partitions is None and not args.config and not args.delete_config:
        args._parser.error("nothing to alter: give --partitions, --config or --delete-config")


def alter_topic(args: argparse.Namespace) -> int:
    admin, watch = _admin(args)
    require_topic(fetch_metadata(admin, args, watch), args.topic)
    if args.partitions is not None:
        futures = admin.create_partitions([NewPartitions(args.topic, args.partitions)], **_request_timeouts(args))
        _, err = _admin_result(futures[args.topic], args, watch, "create partitions")
        if err is not None:
            raise CliError(f"cannot change topic '{args.topic}' to {args.partitions} partitions: {error_text(err)}")
        print(f"Topic {args.topic} now has {args.partitions} partitions.")
    if args.config or args.delete_config:
        entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in args.config] + [
            ConfigEntry(k, None, incremental_operation=AlterConfigOpType.DELETE) for k in args.delete_config
        ]
        resource = ConfigResource(ResourceType.TOPIC, args.topic, incremental_configs=entries)
        futures = admin.incremental_alter_configs([resource], request_timeout=args.timeout)
        for future in futures.values():
            _, err = _admin_result(future, args, watch, "alter configs")
            if err is not None:
                raise CliError(f"cannot alter configs of topic '{args.topic}': {error_text(err)}")
        print(f"Updated configs of topic {args.topic}.")
    return 0


# --------------------------------------------------------------------------- delete


def delete_topic(args: argparse.Namespace) -> int:
    admin, watch = _admin(args)
    fetch_metadata(admin, args, watch)
    futures = admin.delete_topics([args.topic], **_request_timeouts(args))
    _, err = _admin_result(futures[args.topic], args, watch, f"delete topic '{args.topic}'")
    if err is not None:
        if err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            if args.if_exists:
                return 0
            raise CliError(f"topic '{args.topic}' does not exist (UNKNOWN_TOPIC_OR_PARTITION)")
        raise CliError(f"cannot delete topic '{args.topic}': {error_text(err)}")
    print(f"Deleted topic {args.topic}.")
    return 0

"""`moldau acls`: add, list and remove ACLs, with kafka-acls.sh's options, through a broker
(CreateAcls, DescribeAcls, DeleteAcls over the Kafka protocol; --command-config for a
secured listener).

    moldau acls add --allow-principal User:alice --operation Read --topic orders --group billing
    moldau acls add --deny-principal User:bob --operation Write --topic ord- --resource-pattern-type prefixed
    moldau acls add --allow-principal User:alice --producer --topic orders
    moldau acls list [--topic orders] [--principal User:alice] [--resource-pattern-type match]
    moldau acls remove --allow-principal User:alice --operation Read --topic orders

As in kafka-acls.sh: `--operation` defaults to All, hosts to `*`, `--resource-pattern-type`
to literal for add (any for list and remove); `remove` without principals or operations
removes every ACL of the resources named, and `list` without a resource lists them all.
`--producer` means Write, Describe and Create on the topics; `--consumer` Read and
Describe on the topics and Read on the groups.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ConfigResource,
)
from confluent_kafka.admin import ResourcePatternType as PatternType
from confluent_kafka.admin import ResourceType as KafkaResourceType

from moldau.cli.common import (
    CliError,
    client_config,
    connection_parent,
    error_text,
    fetch_metadata,
    kafka_error,
    make_client,
    wait_future,
    warn,
)

CLUSTER_NAME = "kafka-cluster"
OPERATIONS = {op.name.replace("_", "").lower(): op for op in AclOperation
              if op not in (AclOperation.UNKNOWN, AclOperation.ANY)}
PATTERN_TYPES = {"literal": PatternType.LITERAL, "prefixed": PatternType.PREFIXED, "any": PatternType.ANY,
                 "match": PatternType.MATCH}


def _operation(text: str) -> AclOperation:
    """Kafka's names, any case, with or without separators: Read, DescribeConfigs,
    describe-configs, IDEMPOTENT_WRITE."""
    op = OPERATIONS.get(text.replace("_", "").replace("-", "").lower())
    if op is None:
        names = ", ".join(sorted(o.name.title().replace("_", "") for o in OPERATIONS.values()))
        raise argparse.ArgumentTypeError(f"unknown operation {text!r} (one of {names})")
    return op


def _principal(text: str) -> str:
    if ":" not in text or text.startswith(":"):
        raise argparse.ArgumentTypeError(f"{text!r}: a principal is Type:name, e.g. User:alice")
    return text


def add_parsers(subparsers: Any) -> None:
    conn = connection_parent()
    acls = subparsers.add_parser("acls", help="add, list and remove ACLs",
                                 description="Manage ACLs, like kafka-acls.sh (needs authorizer.class.name "
                                             "on the brokers).")
    actions = acls.add_subparsers(dest="action", required=True, metavar="ACTION")
    resources = argparse.ArgumentParser(add_help=False)
    group = resources.add_argument_group("resources")
    group.add_argument("--topic", action="append", default=[], metavar="TOPIC", help="a topic (repeatable; * = all)")
    group.add_argument("--group", action="append", default=[], metavar="GROUP",
                       help="a consumer group (repeatable; * = all)")
    group.add_argument("--transactional-id", action="append", default=[], metavar="ID",
                       help="a transactional id (repeatable; * = all)")
    group.add_argument("--cluster", action="store_true", help="the cluster")
    entries = argparse.ArgumentParser(add_help=False)
    who = entries.add_argument_group("entries")
    who.add_argument("--allow-principal", action="append", default=[], type=_principal, metavar="PRINCIPAL")
    who.add_argument("--deny-principal", action="append", default=[], type=_principal, metavar="PRINCIPAL")
    who.add_argument("--allow-host", action="append", default=[], metavar="HOST", help="(default: *)")
    who.add_argument("--deny-host", action="append", default=[], metavar="HOST", help="(default: *)")
    who.add_argument("--operation", action="append", default=[], type=_operation, metavar="OPERATION",
                     help="repeatable (default: All)")
    who.add_argument("--producer", action="store_true", help="Write, Describe and Create on the topics")
    who.add_argument("--consumer", action="store_true", help="Read and Describe on the topics, Read on the groups")

    add = actions.add_parser("add", parents=[conn, resources, entries], help="add ACLs")
    add.add_argument("--resource-pattern-type", choices=("literal", "prefixed"), default="literal")
    add.set_defaults(func=add_acls)

    remove = actions.add_parser("remove", parents=[conn, resources, entries], help="remove ACLs")
    remove.add_argument("--resource-pattern-type", choices=sorted(PATTERN_TYPES), default="any")
    remove.add_argument("--force", action="store_true", help="accepted for kafka-acls.sh compatibility")
    remove.set_defaults(func=remove_acls)

    list_ = actions.add_parser("list", parents=[conn, resources], help="list ACLs")
    list_.add_argument("--principal", action="append", default=[], type=_principal, metavar="PRINCIPAL",
                       help="only the ACLs of this principal (repeatable)")
    list_.add_argument("--resource-pattern-type", choices=sorted(PATTERN_TYPES), default="any")
    list_.set_defaults(func=list_acls)


@dataclass(frozen=True)
class Resource:
    resource_type: KafkaResourceType
    name: str


def resources_of(args: argparse.Namespace) -> list[Resource]:
    found = [Resource(KafkaResourceType.TOPIC, t) for t in args.topic]
    found += [Resource(KafkaResourceType.GROUP, g) for g in args.group]
    found += [Resource(KafkaResourceType.TRANSACTIONAL_ID, x) for x in args.transactional_id]
    if args.cluster:
        found.append(Resource(KafkaResourceType.BROKER, CLUSTER_NAME))  # librdkafka's name for CLUSTER
    return found


def _operations_for(args: argparse.Namespace, resource: Resource) -> list[AclOperation]:
    """The operations an entry gets on a resource: --operation, or what --producer and
    --consumer mean for its type (Kafka's AclCommand)."""
    ops: list[AclOperation] = list(args.operation)
    if args.producer and resource.resource_type is KafkaResourceType.TOPIC:
        ops += [AclOperation.WRITE, AclOperation.DESCRIBE, AclOperation.CREATE]
    if args.consumer and resource.resource_type is KafkaResourceType.TOPIC:
        ops += [AclOperation.READ, AclOperation.DESCRIBE]
    if args.consumer and resource.resource_type is KafkaResourceType.GROUP:
        ops.append(AclOperation.READ)
    if not ops and not (args.producer or args.consumer):
        ops = [AclOperation.ALL]
    return list(dict.fromkeys(ops))


def _entries(args: argparse.Namespace) -> list[tuple[str, str, AclPermissionType]]:
    allow_hosts = args.allow_host or ["*"]
    deny_hosts = args.deny_host or ["*"]
    return ([(p, h, AclPermissionType.ALLOW) for p in args.allow_principal for h in allow_hosts]
            + [(p, h, AclPermissionType.DENY) for p in args.deny_principal for h in deny_hosts])


def bindings_to_add(args: argparse.Namespace) -> list[AclBinding]:
    """The ACLs `moldau acls add` creates; CliError for options that name none."""
    resources = resources_of(args)
    if not resources:
        raise CliError("name at least one resource: --topic, --group, --transactional-id or --cluster")
    entries = _entries(args)
    if not entries:
        raise CliError("name at least one principal: --allow-principal or --deny-principal")
    if (args.producer or args.consumer) and args.operation:
        raise CliError("--producer and --consumer cannot be combined with --operation")
    if args.consumer and not (args.group and args.topic):
        raise CliError("--consumer needs --topic and --group")
    if args.producer and not args.topic:
        raise CliError("--producer needs --topic")
    pattern_type = PATTERN_TYPES[args.resource_pattern_type]
    bindings = [
        AclBinding(r.resource_type, r.name, pattern_type, principal, host, op, permission)
        for r in resources for op in _operations_for(args, r) for principal, host, permission in entries
    ]
    if not bindings:
        raise CliError("these options name no ACL")
    return bindings


def filters_to_remove(args: argparse.Namespace) -> list[AclBindingFilter]:
    """The filters `moldau acls remove` deletes with."""
    resources = resources_of(args)
    if not resources:
        raise CliError("name at least one resource: --topic, --group, --transactional-id or --cluster")
    pattern_type = PATTERN_TYPES[args.resource_pattern_type]
    entries: list[tuple[str | None, str | None, AclPermissionType]] = list(_entries(args))
    if not entries:  # no principal: every entry of the resources
        entries = [(None, None, AclPermissionType.ANY)]
    filters = []
    for r in resources:
        explicit = bool(args.operation or args.producer or args.consumer)
        ops = _operations_for(args, r) if explicit else [AclOperation.ANY]
        for op in ops:
            for principal, host, permission in entries:
                host_filter = host if (args.allow_host or args.deny_host) else None
                filters.append(AclBindingFilter(r.resource_type, r.name, pattern_type, principal, host_filter, op,
                                                permission))
    return filters


def filters_to_list(args: argparse.Namespace) -> list[AclBindingFilter]:
    pattern_type = PATTERN_TYPES[args.resource_pattern_type]
    resources: Iterable[Resource | None] = resources_of(args) or [None]
    principals: list[str | None] = list(args.principal) or [None]
    return [
        AclBindingFilter(r.resource_type if r else KafkaResourceType.ANY, r.name if r else None,
                         pattern_type if r else PatternType.ANY if pattern_type is PatternType.MATCH else pattern_type,
                         principal, None, AclOperation.ANY, AclPermissionType.ANY)
        for r in resources for principal in principals
    ]


def _admin(args: argparse.Namespace) -> AdminClient:
    conf, watch = client_config(args)
    admin = make_client(AdminClient, conf)
    fetch_metadata(admin, args, watch)  # fails fast, naming the server, if unreachable
    return admin


def _wait(future: Any, args: argparse.Namespace, what: str) -> Any:
    try:
        return wait_future(future, args, what)
    except Exception as exc:
        err = kafka_error(exc)
        raise CliError(f"cannot {what}: {error_text(err) if err else exc}") from None


def _type_name(resource_type: KafkaResourceType) -> str:
    return "CLUSTER" if resource_type is KafkaResourceType.BROKER else resource_type.name


def _print(bindings: Iterable[AclBinding]) -> None:
    """As kafka-acls.sh prints them: grouped by resource pattern."""
    grouped: dict[tuple[str, str, str], list[AclBinding]] = {}
    for b in bindings:
        grouped.setdefault((_type_name(b.restype), b.name, b.resource_pattern_type.name), []).append(b)
    for (kind, name, pattern_type), entries in sorted(grouped.items()):
        print(f"Current ACLs for resource `ResourcePattern(resourceType={kind}, name={name}, "
              f"patternType={pattern_type})`:")
        for b in sorted(entries, key=lambda b: (b.principal, b.host, b.operation.name, b.permission_type.name)):
            print(f" \t(principal={b.principal}, host={b.host}, operation={b.operation.name}, "
                  f"permissionType={b.permission_type.name})")
        print()


def add_acls(args: argparse.Namespace) -> int:
    bindings = bindings_to_add(args)
    admin = _admin(args)
    futures = admin.create_acls(bindings, request_timeout=args.timeout)
    for binding in bindings:
        _wait(futures[binding], args, f"add {binding.principal} {binding.operation.name} on {binding.name}")
    print(f"Added {len(bindings)} ACL(s):")
    _print(bindings)
    return 0


def remove_acls(args: argparse.Namespace) -> int:
    filters = filters_to_remove(args)
    admin = _admin(args)
    futures = admin.delete_acls(filters, request_timeout=args.timeout)
    removed: list[AclBinding] = []
    for acl_filter in filters:
        removed += _wait(futures[acl_filter], args, "remove ACLs")
    print(f"Removed {len(removed)} ACL(s):")
    _print(removed)
    return 0


def _authorizer_class(admin: AdminClient, args: argparse.Namespace) -> str | None:
    """The broker's authorizer.class.name, or None when it cannot be read."""
    metadata = admin.list_topics(timeout=args.timeout)
    resource = ConfigResource(ConfigResource.Type.BROKER, str(next(iter(metadata.brokers))))
    try:
        configs = admin.describe_configs([resource], request_timeout=args.timeout)[resource].result(args.timeout)
    except Exception:
        return None
    entry = configs.get("authorizer.class.name")
    return None if entry is None else (entry.value or "")


def list_acls(args: argparse.Namespace) -> int:
    admin = _admin(args)
    found: dict[Any, AclBinding] = {}
    for acl_filter in filters_to_list(args):
        for binding in _wait(admin.describe_acls(acl_filter, request_timeout=args.timeout), args, "list ACLs"):
            found[str(binding)] = binding
    if not found:
        # librdkafka drops DescribeAcls' error code: an empty answer may be SECURITY_DISABLED
        # (no authorizer) or CLUSTER_AUTHORIZATION_FAILED (no Describe on the cluster).
        if _authorizer_class(admin, args) == "":
            raise CliError("cannot list ACLs: the broker has no authorizer (authorizer.class.name is not set)")
        warn("no ACLs found (or no Describe permission on the cluster: librdkafka does not report it)")
    _print(found.values())
    return 0

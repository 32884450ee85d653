"""Kafka's ZooKeeper format for ACLs (its AclAuthorizer's), pure: paths and bytes only.

One znode per resource pattern holds all of that pattern's entries:

    /kafka-acl/<ResourceType>/<name>                     LITERAL patterns
    /kafka-acl-extended/prefixed/<ResourceType>/<name>   PREFIXED patterns (KIP-290)

`<ResourceType>` is the PascalCase name (`Topic`, `Group`, `Cluster`, `TransactionalId`,
`DelegationToken`, `User`), `<name>` the pattern's name as is (`*` for the wildcard;
`kafka-cluster` for the cluster). The value is JSON, compact, keys in this order:

    {"version":1,"acls":[{"principal":"User:alice","permissionType":"Allow","operation":"Read","host":"*"}]}

A pattern without entries has no znode (Kafka deletes it with its last ACL).

A writer then creates a persistent sequential znode so that every broker re-reads the
pattern's znode:

    /kafka-acl-changes/acl_changes_0000000042           for a LITERAL pattern; the value is
                                                         `<RESOURCE_TYPE>:<name>`, e.g. `TOPIC:orders`
    /kafka-acl-extended-changes/acl_changes_0000000007  for a PREFIXED pattern; the value is
        {"version":1,"resourceType":"TOPIC","name":"ord","patternType":"PREFIXED"}

Brokers process notifications in sequence order from the last one they processed, and
delete those older than 15 minutes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from moldau.authorizer.acl import (
    AccessControlEntry,
    AclOperation,
    AclPermissionType,
    PatternType,
    ResourcePattern,
    ResourceType,
)

LITERAL_ACL_ROOT = "/kafka-acl"
EXTENDED_ACL_ROOT = "/kafka-acl-extended"
PREFIXED_ACL_ROOT = f"{EXTENDED_ACL_ROOT}/prefixed"
LITERAL_CHANGES_ROOT = "/kafka-acl-changes"
EXTENDED_CHANGES_ROOT = "/kafka-acl-extended-changes"
CHANGE_SEQUENCE_PREFIX = "acl_changes_"
# The paths a broker creates (if absent) before it loads or watches ACLs.
ACL_PATHS = (LITERAL_ACL_ROOT, LITERAL_CHANGES_ROOT, PREFIXED_ACL_ROOT, EXTENDED_CHANGES_ROOT)
# Where the ACLs of each pattern type live.
ACL_ROOTS: dict[PatternType, str] = {PatternType.LITERAL: LITERAL_ACL_ROOT, PatternType.PREFIXED: PREFIXED_ACL_ROOT}
# Notifications older than this are deleted by the brokers that see them.
CHANGE_EXPIRATION_MS = 15 * 60 * 1000
ACL_JSON_VERSION = 1
CHANGE_EVENT_VERSION = 1


def _json(document: object) -> bytes:
    # As Kafka's Jackson writes it: no spaces, keys in insertion order, UTF-8 (not \u escapes).
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


class AclStoreError(ValueError):
    """Bytes or a path in ZooKeeper that are not Kafka's ACL format."""


def acl_root(pattern_type: PatternType) -> str:
    try:
        return ACL_ROOTS[pattern_type]
    except KeyError:
        raise AclStoreError(f"Invalid pattern type: {pattern_type.name}") from None


def resource_type_path(pattern_type: PatternType, resource_type: ResourceType) -> str:
    """`/kafka-acl/Topic`: the parent of a type's patterns (its children are the names)."""
    return f"{acl_root(pattern_type)}/{resource_type.kafka_name}"


def acl_path(pattern: ResourcePattern) -> str:
    """`/kafka-acl/Topic/orders`, `/kafka-acl-extended/prefixed/Topic/ord`."""
    return f"{resource_type_path(pattern.pattern_type, pattern.resource_type)}/{pattern.name}"


def pattern_at(pattern_type: PatternType, resource_type_name: str, name: str) -> ResourcePattern | None:
    """The pattern of the znode `<root of pattern_type>/<resource_type_name>/<name>`, as
    found when listing children at load time; None for a resource type this broker does not
    know (Kafka logs "Ignoring unknown ResourceType" and skips it)."""
    resource_type = ResourceType.from_kafka_name(resource_type_name)
    if resource_type in (ResourceType.UNKNOWN, ResourceType.ANY):
        return None
    return ResourcePattern(resource_type, name, pattern_type)


def acls_from_znodes(znodes: Iterable[tuple[PatternType, str, str, bytes | None]]
                     ) -> dict[ResourcePattern, frozenset[AccessControlEntry]]:
    """The ACLs found at load time, from (pattern type of the root, resource type child,
    name child, the name znode's value) for every znode under `ACL_ROOTS`. Unknown resource
    types and znodes without entries are skipped."""
    found: dict[ResourcePattern, frozenset[AccessControlEntry]] = {}
    for pattern_type, resource_type_name, name, data in znodes:
        pattern = pattern_at(pattern_type, resource_type_name, name)
        entries = decode_acls(data)
        if pattern is not None and entries:
            found[pattern] = entries
    return found


def encode_acls(entries: Iterable[AccessControlEntry]) -> bytes:
    """The znode value for a pattern's entries. Kafka writes them in its set's (hash) order;
    Moldau sorts them, so the same entries always give the same bytes."""
    acls = [
        {
            "principal": entry.principal,
            "permissionType": entry.permission_type.kafka_name,
            "operation": entry.operation.kafka_name,
            "host": entry.host,
        }
        for entry in sorted(set(entries))
    ]
    return _json({"version": ACL_JSON_VERSION, "acls": acls})


def _operation(name: str) -> AclOperation:
    # Kafka writes PascalCase (`DescribeConfigs`); older Kafka read enum names too (`READ`).
    found = AclOperation.from_kafka_name(name)
    if found is AclOperation.UNKNOWN:
        found = AclOperation.__members__.get(name.upper(), AclOperation.UNKNOWN)
    return found


def _permission_type(name: str) -> AclPermissionType:
    found = AclPermissionType.from_kafka_name(name)
    if found is AclPermissionType.UNKNOWN:
        found = AclPermissionType.__members__.get(name.upper(), AclPermissionType.UNKNOWN)
    return found


def decode_acls(data: bytes | None) -> frozenset[AccessControlEntry]:
    """A pattern's entries from its znode value (no value or empty: none). An operation or
    permission type this broker does not know reads as UNKNOWN (it never matches)."""
    if not data:
        return frozenset()
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AclStoreError(f"ACL znode is not JSON: {data!r}") from e
    if not isinstance(document, dict) or document.get("version") != ACL_JSON_VERSION:
        raise AclStoreError(f"Unsupported ACL znode version: {data!r}")
    entries = set()
    for item in document.get("acls", []):
        try:
            principal, host = item["principal"], item["host"]
            operation, permission = item["operation"], item["permissionType"]
        except (KeyError, TypeError) as e:
            raise AclStoreError(f"ACL entry without {e}: {item!r}") from e
        if not isinstance(principal, str) or ":" not in principal:
            raise AclStoreError(f"expected a string in format principalType:principalName but got {principal}")
        entries.add(AccessControlEntry(principal, str(host), _operation(str(operation)),
                                       _permission_type(str(permission))))
    return frozenset(entries)


def change_root(pattern_type: PatternType) -> str:
    if pattern_type is PatternType.LITERAL:
        return LITERAL_CHANGES_ROOT
    if pattern_type is PatternType.PREFIXED:
        return EXTENDED_CHANGES_ROOT
    raise AclStoreError(f"Invalid pattern type: {pattern_type.name}")


@dataclass(frozen=True)
class ChangeNotification:
    """A notification to create: a persistent sequential znode at `path_prefix`
    (ZooKeeper appends the ten-digit sequence number) holding `data`."""

    path_prefix: str
    data: bytes


def change_notification(pattern: ResourcePattern) -> ChangeNotification:
    if pattern.pattern_type is PatternType.LITERAL:
        data = f"{pattern.resource_type.name}:{pattern.name}".encode()
    elif pattern.pattern_type is PatternType.PREFIXED:
        data = _json({
            "version": CHANGE_EVENT_VERSION,
            "resourceType": pattern.resource_type.name,
            "name": pattern.name,
            "patternType": pattern.pattern_type.name,
        })
    else:
        raise AclStoreError(f"Invalid pattern type: {pattern.pattern_type.name}")
    return ChangeNotification(f"{change_root(pattern.pattern_type)}/{CHANGE_SEQUENCE_PREFIX}", data)


def decode_change_notification(root: str, data: bytes) -> ResourcePattern:
    """The pattern whose znode a notification under `root` asks to re-read."""
    text = data.decode()
    if root == LITERAL_CHANGES_ROOT:
        # `TOPIC:orders`; older Kafka wrote `Topic:orders`: the type is read case-insensitively.
        if ":" not in text:
            raise AclStoreError(f"expected a string in format ResourceType:ResourceName but got {text}")
        type_name, name = text.split(":", 1)
        return ResourcePattern(_known(ResourceType.from_string(type_name), text), name, PatternType.LITERAL)
    if root == EXTENDED_CHANGES_ROOT:
        try:
            event = json.loads(text)
            version, type_name = event["version"], event["resourceType"]
            name, pattern_type_name = event["name"], event["patternType"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise AclStoreError(f"Failed to parse ACL change event: {text}") from e
        if not isinstance(version, int) or version > CHANGE_EVENT_VERSION:
            raise AclStoreError(f"Acl change event received for unsupported version: {version}")
        pattern_type = PatternType.from_string(str(pattern_type_name))
        if not pattern_type.is_specific():
            raise AclStoreError(f"Failed to convert ACL change event to resource: {text}")
        return ResourcePattern(_known(ResourceType.from_string(str(type_name)), text), str(name), pattern_type)
    raise AclStoreError(f"Not an ACL change notification root: {root}")


def _known(resource_type: ResourceType, text: str) -> ResourceType:
    if resource_type in (ResourceType.UNKNOWN, ResourceType.ANY):
        raise AclStoreError(f"Unknown resource type in ACL change notification: {text}")
    return resource_type


def sequence_number(node_name: str) -> int:
    """`acl_changes_0000000042` -> 42."""
    if not node_name.startswith(CHANGE_SEQUENCE_PREFIX):
        raise AclStoreError(f"Not an ACL change notification: {node_name}")
    return int(node_name[len(CHANGE_SEQUENCE_PREFIX):])


def notifications_to_process(children: Iterable[str], last_processed: int | None) -> list[str]:
    """The notification znodes (children of a change root) not processed yet, in
    sequence order. `last_processed` None: a broker that just loaded all ACLs, which
    processes every notification present (harmless: each only re-reads a znode)."""
    names = sorted((sequence_number(child), child) for child in children if child.startswith(CHANGE_SEQUENCE_PREFIX))
    return [name for seq, name in names if last_processed is None or seq > last_processed]


def expired_notifications(children_ctime_ms: dict[str, int], now_ms: int) -> list[str]:
    """The notification znodes (name -> creation time) to delete: older than 15 minutes."""
    return sorted(name for name, ctime in children_ctime_ms.items() if ctime < now_ms - CHANGE_EXPIRATION_MS)

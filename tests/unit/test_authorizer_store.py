"""Kafka's ZooKeeper format for ACLs: golden paths and bytes as Kafka writes them."""
from __future__ import annotations

import pytest

from moldau.authorizer.acl import (
    AccessControlEntry,
    AclOperation,
    AclPermissionType,
    PatternType,
    ResourcePattern,
    ResourceType,
)
from moldau.authorizer.store import (
    ACL_PATHS,
    AclStoreError,
    ChangeNotification,
    acl_path,
    acls_from_znodes,
    change_notification,
    decode_acls,
    decode_change_notification,
    encode_acls,
    expired_notifications,
    notifications_to_process,
    pattern_at,
    resource_type_path,
    sequence_number,
)

LITERAL, PREFIXED = PatternType.LITERAL, PatternType.PREFIXED
ALLOW, DENY = AclPermissionType.ALLOW, AclPermissionType.DENY


def test_znode_paths() -> None:
    assert acl_path(ResourcePattern(ResourceType.TOPIC, "orders", LITERAL)) == "/kafka-acl/Topic/orders"
    assert acl_path(ResourcePattern(ResourceType.TOPIC, "ord", PREFIXED)) == "/kafka-acl-extended/prefixed/Topic/ord"
    assert acl_path(ResourcePattern(ResourceType.TOPIC, "*", LITERAL)) == "/kafka-acl/Topic/*"
    cluster = ResourcePattern(ResourceType.CLUSTER, "kafka-cluster", LITERAL)
    assert acl_path(cluster) == "/kafka-acl/Cluster/kafka-cluster"
    assert acl_path(ResourcePattern(ResourceType.TRANSACTIONAL_ID, "tx", LITERAL)) == "/kafka-acl/TransactionalId/tx"
    assert acl_path(ResourcePattern(ResourceType.GROUP, "g", PREFIXED)) == "/kafka-acl-extended/prefixed/Group/g"
    assert resource_type_path(LITERAL, ResourceType.DELEGATION_TOKEN) == "/kafka-acl/DelegationToken"
    assert ACL_PATHS == ("/kafka-acl", "/kafka-acl-changes", "/kafka-acl-extended/prefixed",
                         "/kafka-acl-extended-changes")


def test_patterns_found_when_listing() -> None:
    assert pattern_at(PREFIXED, "Topic", "ord") == ResourcePattern(ResourceType.TOPIC, "ord", PREFIXED)
    assert pattern_at(LITERAL, "TransactionalId", "tx") == ResourcePattern(ResourceType.TRANSACTIONAL_ID, "tx", LITERAL)
    assert pattern_at(LITERAL, "Broker", "x") is None  # unknown type: skipped
    assert pattern_at(LITERAL, "topic", "x") is None  # the names are exact


GOLDEN_ACLS = (
    b'{"version":1,"acls":['
    b'{"principal":"User:alice","permissionType":"Deny","operation":"Read","host":"10.0.0.1"},'
    b'{"principal":"User:bob","permissionType":"Allow","operation":"DescribeConfigs","host":"*"}]}'
)


def test_acl_json_is_kafkas() -> None:
    entries = {
        AccessControlEntry("User:bob", "*", AclOperation.DESCRIBE_CONFIGS, ALLOW),
        AccessControlEntry("User:alice", "10.0.0.1", AclOperation.READ, DENY),
    }
    assert encode_acls(entries) == GOLDEN_ACLS
    assert decode_acls(GOLDEN_ACLS) == entries
    accented = AccessControlEntry("User:zoë", "*", AclOperation.WRITE, ALLOW)
    assert encode_acls([accented]) == (
        '{"version":1,"acls":[{"principal":"User:zoë","permissionType":"Allow","operation":"Write","host":"*"}]}'
    ).encode()
    single = AccessControlEntry("User:alice", "*", AclOperation.READ, ALLOW)
    assert encode_acls([single]) == (
        b'{"version":1,"acls":[{"principal":"User:alice","permissionType":"Allow","operation":"Read","host":"*"}]}')


def test_acl_json_as_other_writers_format_it() -> None:
    # Kafka's own test input: spaces, any key order, an old enum-style operation name.
    text = (b'{"version": 1, "acls": [{"host": "host1","permissionType": "Deny","operation": "READ", '
            b'"principal": "User:alice"  },  {  "host":  "*" ,  "permissionType": "Allow",  "operation":  "Read", '
            b'"principal": "User:bob1\\\\bob2"  }]}')
    assert decode_acls(text) == {
        AccessControlEntry("User:alice", "host1", AclOperation.READ, DENY),
        AccessControlEntry("User:bob1\\bob2", "*", AclOperation.READ, ALLOW),
    }
    every_operation = [AccessControlEntry("User:a", "*", op, ALLOW)
                       for op in AclOperation if op not in (AclOperation.ANY, AclOperation.UNKNOWN)]
    assert decode_acls(encode_acls(every_operation)) == set(every_operation)
    assert decode_acls(b"") == frozenset()
    assert decode_acls(None) == frozenset()
    unknown = decode_acls(b'{"version":1,"acls":[{"principal":"User:a","permissionType":"Allow",'
                          b'"operation":"Teleport","host":"*"}]}')
    assert {e.operation for e in unknown} == {AclOperation.UNKNOWN}


@pytest.mark.parametrize("bad", [
    b"not json",
    b'{"version":2,"acls":[]}',
    b'{"version":1,"acls":[{"principal":"alice","permissionType":"Allow","operation":"Read","host":"*"}]}',
    b'{"version":1,"acls":[{"permissionType":"Allow","operation":"Read","host":"*"}]}',
])
def test_bad_acl_json_is_refused(bad: bytes) -> None:
    with pytest.raises(AclStoreError):
        decode_acls(bad)


def test_literal_change_notification() -> None:
    pattern = ResourcePattern(ResourceType.TOPIC, "orders", LITERAL)
    assert change_notification(pattern) == ChangeNotification("/kafka-acl-changes/acl_changes_", b"TOPIC:orders")
    assert decode_change_notification("/kafka-acl-changes", b"TOPIC:orders") == pattern
    assert decode_change_notification("/kafka-acl-changes", b"Topic:orders") == pattern  # Kafka 1.x wrote this
    cluster = ResourcePattern(ResourceType.TRANSACTIONAL_ID, "a:b", LITERAL)
    assert change_notification(cluster).data == b"TRANSACTIONAL_ID:a:b"
    assert decode_change_notification("/kafka-acl-changes", b"TRANSACTIONAL_ID:a:b") == cluster
    with pytest.raises(AclStoreError):
        decode_change_notification("/kafka-acl-changes", b"orders")


def test_extended_change_notification() -> None:
    pattern = ResourcePattern(ResourceType.TOPIC, "ord", PREFIXED)
    golden = b'{"version":1,"resourceType":"TOPIC","name":"ord","patternType":"PREFIXED"}'
    assert change_notification(pattern) == ChangeNotification("/kafka-acl-extended-changes/acl_changes_", golden)
    assert decode_change_notification("/kafka-acl-extended-changes", golden) == pattern
    spaced = b'{ "patternType": "PREFIXED", "name": "g-", "resourceType": "GROUP", "version": 1 }'
    assert decode_change_notification("/kafka-acl-extended-changes", spaced) == ResourcePattern(
        ResourceType.GROUP, "g-", PREFIXED)
    with pytest.raises(AclStoreError, match="unsupported version"):
        decode_change_notification("/kafka-acl-extended-changes",
                                   b'{"version":2,"resourceType":"TOPIC","name":"x","patternType":"PREFIXED"}')


def test_notification_sequence() -> None:
    children = ["acl_changes_0000000010", "acl_changes_0000000002", "acl_changes_0000000009", "other"]
    assert sequence_number("acl_changes_0000000042") == 42
    assert notifications_to_process(children, None) == [
        "acl_changes_0000000002", "acl_changes_0000000009", "acl_changes_0000000010"]
    assert notifications_to_process(children, 9) == ["acl_changes_0000000010"]
    now = 100 * 60 * 1000
    assert expired_notifications({"acl_changes_0000000001": now - 16 * 60 * 1000,
                                  "acl_changes_0000000002": now - 60 * 1000}, now) == ["acl_changes_0000000001"]


def test_acls_loaded_from_znodes() -> None:
    read = AccessControlEntry("User:alice", "*", AclOperation.READ, ALLOW)
    znodes = [
        (LITERAL, "Topic", "orders", encode_acls([read])),
        (PREFIXED, "Group", "g-", encode_acls([read])),
        (LITERAL, "Broker", "1", encode_acls([read])),  # a type this broker does not know
        (LITERAL, "Topic", "empty", b""),
    ]
    assert acls_from_znodes(znodes) == {
        ResourcePattern(ResourceType.TOPIC, "orders", LITERAL): {read},
        ResourcePattern(ResourceType.GROUP, "g-", PREFIXED): {read},
    }

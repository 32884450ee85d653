"""`moldau acls`: which ACLs and filters its options mean (kafka-acls.sh's), no broker."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AclBinding, AclBindingFilter, AclOperation, AclPermissionType, ResourceType
from confluent_kafka.admin import ResourcePatternType as PatternType

from moldau.cli.acls import bindings_to_add, filters_to_list, filters_to_remove
from moldau.cli.common import CliError
from moldau.cli.main import parse_args

ALLOW, DENY = AclPermissionType.ALLOW, AclPermissionType.DENY


def test_add_defaults_to_all_operations_and_any_host() -> None:
    args = parse_args(["acls", "add", "--allow-principal", "User:alice", "--topic", "t", "--cluster"])
    assert bindings_to_add(args) == [
        AclBinding(ResourceType.TOPIC, "t", PatternType.LITERAL, "User:alice", "*", AclOperation.ALL, ALLOW),
        AclBinding(ResourceType.BROKER, "kafka-cluster", PatternType.LITERAL, "User:alice", "*", AclOperation.ALL,
                   ALLOW),
    ]


def test_add_every_combination() -> None:
    args = parse_args(["acls", "add", "--allow-principal", "User:a", "--deny-principal", "User:b", "--deny-host",
                       "10.0.0.1", "--operation", "read", "--operation", "DescribeConfigs", "--group", "g",
                       "--resource-pattern-type", "prefixed"])
    assert set(bindings_to_add(args)) == {
        AclBinding(ResourceType.GROUP, "g", PatternType.PREFIXED, p, h, op, perm)
        for p, h, perm in (("User:a", "*", ALLOW), ("User:b", "10.0.0.1", DENY))
        for op in (AclOperation.READ, AclOperation.DESCRIBE_CONFIGS)
    }


def test_producer_and_consumer_shortcuts() -> None:
    producer = bindings_to_add(parse_args(["acls", "add", "--allow-principal", "User:p", "--producer", "--topic",
                                           "t"]))
    assert [b.operation for b in producer] == [AclOperation.WRITE, AclOperation.DESCRIBE, AclOperation.CREATE]
    consumer = bindings_to_add(parse_args(["acls", "add", "--allow-principal", "User:c", "--consumer", "--topic",
                                           "t", "--group", "g"]))
    assert {(b.restype, b.operation) for b in consumer} == {
        (ResourceType.TOPIC, AclOperation.READ), (ResourceType.TOPIC, AclOperation.DESCRIBE),
        (ResourceType.GROUP, AclOperation.READ)}


@pytest.mark.parametrize("argv", [
    ["acls", "add", "--allow-principal", "User:a"],  # no resource
    ["acls", "add", "--topic", "t"],  # no principal
    ["acls", "add", "--allow-principal", "User:a", "--consumer", "--topic", "t"],  # no group
    ["acls", "add", "--allow-principal", "User:a", "--producer", "--operation", "Read", "--topic", "t"],
])
def test_add_refuses_options_that_name_no_acl(argv: list[str]) -> None:
    with pytest.raises(CliError):
        bindings_to_add(parse_args(argv))


@pytest.mark.parametrize("argv", [
    ["acls", "add", "--allow-principal", "alice", "--topic", "t"],
    ["acls", "add", "--allow-principal", "User:a", "--operation", "Fly", "--topic", "t"],
    ["acls", "add", "--allow-principal", "User:a", "--topic", "t", "--resource-pattern-type", "match"],
])
def test_bad_flags_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as e:
        parse_args(argv)
    assert e.value.code == 2


def test_remove_and_list_filters() -> None:
    everything_on_t = filters_to_remove(parse_args(["acls", "remove", "--topic", "t"]))
    assert everything_on_t == [AclBindingFilter(ResourceType.TOPIC, "t", PatternType.ANY, None, None,
                                                AclOperation.ANY, AclPermissionType.ANY)]
    one = filters_to_remove(parse_args(["acls", "remove", "--deny-principal", "User:b", "--operation", "Write",
                                        "--topic", "t", "--resource-pattern-type", "literal"]))
    assert one == [AclBindingFilter(ResourceType.TOPIC, "t", PatternType.LITERAL, "User:b", None,
                                    AclOperation.WRITE, DENY)]
    assert filters_to_list(parse_args(["acls", "list"])) == [AclBindingFilter(
        ResourceType.ANY, None, PatternType.ANY, None, None, AclOperation.ANY, AclPermissionType.ANY)]
    assert filters_to_list(parse_args(["acls", "list", "--topic", "t", "--resource-pattern-type", "match",
                                       "--principal", "User:a"])) == [AclBindingFilter(
        ResourceType.TOPIC, "t", PatternType.MATCH, "User:a", None, AclOperation.ANY, AclPermissionType.ANY)]

"""CreateAcls and DeleteAcls decided from the ACLs known now."""
from __future__ import annotations

from moldau.authorizer.acl import (
    ANY_BINDING,
    ANY_ENTRY,
    AccessControlEntry,
    AccessControlEntryFilter,
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    PatternType,
    Resource,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)
from moldau.authorizer.acl_updates import AclCreationResult, AclUpdate, plan_create_acls, plan_delete_acls
from moldau.authorizer.authorizer import AclAuthorizer, AuthorizerConfig
from moldau.protocol.errors import ErrorCode

TOPIC = ResourceType.TOPIC
ORDERS = ResourcePattern(TOPIC, "orders", PatternType.LITERAL)
ORD = ResourcePattern(TOPIC, "ord", PatternType.PREFIXED)
READ = AccessControlEntry("User:alice", "*", AclOperation.READ, AclPermissionType.ALLOW)
WRITE = AccessControlEntry("User:alice", "*", AclOperation.WRITE, AclPermissionType.ALLOW)
BOB_READ = AccessControlEntry("User:bob", "*", AclOperation.READ, AclPermissionType.ALLOW)


def test_create_adds_to_a_patterns_entries_and_reports_each_creation() -> None:
    current = {ORDERS: frozenset({READ})}
    bad = AclBinding(ResourcePattern(TOPIC, "", PatternType.LITERAL), READ)
    results, updates = plan_create_acls(current, [AclBinding(ORDERS, WRITE), bad, AclBinding(ORD, READ),
                                                  AclBinding(ORDERS, READ)])
    assert results == [AclCreationResult(), AclCreationResult(ErrorCode.invalid_request, "Invalid empty resource name"),
                       AclCreationResult(), AclCreationResult()]
    assert updates == [AclUpdate(ORDERS, frozenset({READ, WRITE})), AclUpdate(ORD, frozenset({READ}))]


def test_creating_what_exists_changes_nothing() -> None:
    results, updates = plan_create_acls({ORDERS: frozenset({READ})}, [AclBinding(ORDERS, READ)])
    assert results == [AclCreationResult()]
    assert updates == []


def test_delete_attributes_each_binding_to_the_first_matching_filter() -> None:
    current = {ORDERS: frozenset({READ, WRITE, BOB_READ}), ORD: frozenset({READ})}
    alice = AclBindingFilter(ResourcePatternFilter(TOPIC, "orders", PatternType.MATCH),
                             AccessControlEntryFilter("User:alice", None, AclOperation.ANY, AclPermissionType.ANY))
    reads = AclBindingFilter(ResourcePatternFilter(TOPIC, None, PatternType.ANY),
                             AccessControlEntryFilter(None, None, AclOperation.READ, AclPermissionType.ANY))
    deleted, updates = plan_delete_acls(current, [alice, reads])
    assert deleted == [
        sorted([AclBinding(ORD, READ), AclBinding(ORDERS, READ), AclBinding(ORDERS, WRITE)]),
        [AclBinding(ORDERS, BOB_READ)],
    ]
    assert sorted(updates, key=lambda u: u.pattern) == sorted(
        [AclUpdate(ORDERS, frozenset()), AclUpdate(ORD, frozenset())], key=lambda u: u.pattern)


def test_delete_with_nothing_matching() -> None:
    current = {ORDERS: frozenset({READ})}
    other = AclBindingFilter(ResourcePatternFilter(TOPIC, "payments", PatternType.LITERAL), ANY_ENTRY)
    assert plan_delete_acls(current, [other]) == ([[]], [])


def test_plans_applied_to_an_authorizer() -> None:
    auth = AclAuthorizer(AuthorizerConfig())
    _, updates = plan_create_acls(auth.snapshot(), [AclBinding(ORD, READ)])
    for update in updates:
        auth.set_acls(update.pattern, update.entries)
    assert auth.authorize("User:alice", "10.0.0.1", AclOperation.READ, Resource(TOPIC, "orders"))
    _, updates = plan_delete_acls(auth.snapshot(), [ANY_BINDING])
    for update in updates:
        auth.set_acls(update.pattern, update.entries)
    assert auth.snapshot() == {}

"""The ACL model: Kafka's codes and names, pattern and entry filters (DescribeAcls,
DeleteAcls), and what CreateAcls refuses."""
from __future__ import annotations

import pytest

from moldau.authorizer.acl import (
    ANY_BINDING,
    AccessControlEntry,
    AccessControlEntryFilter,
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AclValidationError,
    PatternType,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
    authorization_error,
    validate_filter,
    validate_new_acl,
)
from moldau.protocol.errors import ErrorCode

LITERAL, PREFIXED, MATCH, ANY = PatternType.LITERAL, PatternType.PREFIXED, PatternType.MATCH, PatternType.ANY
TOPIC = ResourceType.TOPIC


def test_wire_codes_are_kafkas() -> None:
    assert {t.name: int(t) for t in ResourceType} == {
        "UNKNOWN": 0, "ANY": 1, "TOPIC": 2, "GROUP": 3, "CLUSTER": 4, "TRANSACTIONAL_ID": 5,
        "DELEGATION_TOKEN": 6, "USER": 7,
    }
    assert {t.name: int(t) for t in PatternType} == {"UNKNOWN": 0, "ANY": 1, "MATCH": 2, "LITERAL": 3, "PREFIXED": 4}
    assert {o.name: int(o) for o in AclOperation} == {
        "UNKNOWN": 0, "ANY": 1, "ALL": 2, "READ": 3, "WRITE": 4, "CREATE": 5, "DELETE": 6, "ALTER": 7,
        "DESCRIBE": 8, "CLUSTER_ACTION": 9, "DESCRIBE_CONFIGS": 10, "ALTER_CONFIGS": 11,
        "IDEMPOTENT_WRITE": 12, "CREATE_TOKENS": 13, "DESCRIBE_TOKENS": 14,
    }
    assert {p.name: int(p) for p in AclPermissionType} == {"UNKNOWN": 0, "ANY": 1, "DENY": 2, "ALLOW": 3}


def test_kafka_names_are_pascal_case_and_parse_back() -> None:
    assert ResourceType.TRANSACTIONAL_ID.kafka_name == "TransactionalId"
    assert ResourceType.DELEGATION_TOKEN.kafka_name == "DelegationToken"
    assert AclOperation.DESCRIBE_CONFIGS.kafka_name == "DescribeConfigs"
    assert AclOperation.CLUSTER_ACTION.kafka_name == "ClusterAction"
    assert AclOperation.IDEMPOTENT_WRITE.kafka_name == "IdempotentWrite"
    assert AclPermissionType.ALLOW.kafka_name == "Allow"
    for op in AclOperation:
        assert AclOperation.from_kafka_name(op.kafka_name) is op
    assert AclOperation.from_kafka_name("describeconfigs") is AclOperation.UNKNOWN  # exact, as Kafka
    assert ResourceType.from_kafka_name("Topic") is TOPIC
    assert ResourceType.from_kafka_name("TOPIC") is ResourceType.UNKNOWN
    assert ResourceType.from_string("topic") is TOPIC  # change notifications: case-insensitive
    assert ResourceType.from_string("Nope") is ResourceType.UNKNOWN
    assert ResourceType.from_code(99) is ResourceType.UNKNOWN
    assert AclOperation.from_code(42) is AclOperation.UNKNOWN


def test_a_pattern_or_entry_may_not_be_a_filter() -> None:
    with pytest.raises(ValueError, match="resourceType must not be ANY"):
        ResourcePattern(ResourceType.ANY, "x", LITERAL)
    with pytest.raises(ValueError, match="patternType must not be MATCH"):
        ResourcePattern(TOPIC, "x", MATCH)
    with pytest.raises(ValueError, match="patternType must not be ANY"):
        ResourcePattern(TOPIC, "x", ANY)
    with pytest.raises(ValueError, match="operation must not be ANY"):
        AccessControlEntry("User:a", "*", AclOperation.ANY, AclPermissionType.ALLOW)
    with pytest.raises(ValueError, match="permissionType must not be ANY"):
        AccessControlEntry("User:a", "*", AclOperation.READ, AclPermissionType.ANY)


def pf(name: str | None, pattern_type: PatternType, resource_type: ResourceType = TOPIC) -> ResourcePatternFilter:
    return ResourcePatternFilter(resource_type, name, pattern_type)


literal_orders = ResourcePattern(TOPIC, "orders", LITERAL)
literal_wildcard = ResourcePattern(TOPIC, "*", LITERAL)
prefixed_ord = ResourcePattern(TOPIC, "ord", PREFIXED)
prefixed_other = ResourcePattern(TOPIC, "pay", PREFIXED)
prefixed_star = ResourcePattern(TOPIC, "*", PREFIXED)
group_orders = ResourcePattern(ResourceType.GROUP, "orders", LITERAL)
ALL_PATTERNS = [literal_orders, literal_wildcard, prefixed_ord, prefixed_other, prefixed_star, group_orders]


def matching(f: ResourcePatternFilter) -> set[ResourcePattern]:
    return {p for p in ALL_PATTERNS if f.matches(p)}


def test_match_filter_selects_the_patterns_that_apply_to_a_name() -> None:
    assert matching(pf("orders", MATCH)) == {literal_orders, literal_wildcard, prefixed_ord}
    # `*` in a prefixed pattern is an ordinary character: it does not apply to "orders".
    assert prefixed_star not in matching(pf("orders", MATCH))
    # MATCH without a name: every pattern of the type.
    assert matching(pf(None, MATCH)) == {literal_orders, literal_wildcard, prefixed_ord, prefixed_other, prefixed_star}


def test_literal_prefixed_and_any_filters_compare_names_exactly() -> None:
    assert matching(pf("orders", LITERAL)) == {literal_orders}  # not the wildcard
    assert matching(pf("orders", PREFIXED)) == set()  # not the prefix "ord"
    assert matching(pf("ord", PREFIXED)) == {prefixed_ord}
    assert matching(pf("*", LITERAL)) == {literal_wildcard}
    assert matching(pf("*", ANY)) == {literal_wildcard, prefixed_star}
    assert matching(pf(None, ANY)) == {literal_orders, literal_wildcard, prefixed_ord, prefixed_other, prefixed_star}
    assert matching(pf(None, ANY, ResourceType.ANY)) == set(ALL_PATTERNS)
    assert matching(pf("orders", ANY, ResourceType.ANY)) == {literal_orders, group_orders}


def test_matches_at_most_one_names_the_open_field() -> None:
    assert pf("orders", LITERAL).matches_at_most_one()
    assert pf("orders", MATCH).find_indefinite_field() == "Resource pattern type is MATCH."
    assert pf(None, LITERAL).find_indefinite_field() == "Resource name is NULL."
    assert pf("x", LITERAL, ResourceType.ANY).find_indefinite_field() == "Resource type is ANY."
    entry_filter = AccessControlEntryFilter("User:a", None, AclOperation.READ, AclPermissionType.ALLOW)
    assert entry_filter.find_indefinite_field() == "Host is NULL"
    assert AclBindingFilter(pf("x", LITERAL), entry_filter).find_indefinite_field() == "Host is NULL"
    assert not ANY_BINDING.matches_at_most_one()


def test_entry_filter_compares_principal_and_host_exactly() -> None:
    alice_read = AccessControlEntry("User:alice", "*", AclOperation.READ, AclPermissionType.ALLOW)
    everyone_read = AccessControlEntry("User:*", "*", AclOperation.READ, AclPermissionType.ALLOW)
    f = AccessControlEntryFilter("User:alice", None, AclOperation.ANY, AclPermissionType.ANY)
    assert f.matches(alice_read)
    assert not f.matches(everyone_read)  # a filter is not an authorization check
    assert not AccessControlEntryFilter(None, "10.0.0.1", AclOperation.ANY, AclPermissionType.ANY).matches(alice_read)
    assert not AccessControlEntryFilter(None, None, AclOperation.ALL, AclPermissionType.ANY).matches(alice_read)
    assert not AccessControlEntryFilter(None, None, AclOperation.ANY, AclPermissionType.DENY).matches(alice_read)
    binding = AclBinding(literal_orders, alice_read)
    assert ANY_BINDING.matches(binding)
    assert binding.to_filter().matches(binding)
    assert AclBindingFilter(pf("orders", MATCH), f).matches(binding)


def binding(name: str = "orders", principal: str = "User:alice", resource_type: ResourceType = TOPIC,
            pattern_type: PatternType = LITERAL, operation: AclOperation = AclOperation.READ,
            permission: AclPermissionType = AclPermissionType.ALLOW) -> AclBinding:
    return AclBinding(ResourcePattern(resource_type, name, pattern_type),
                      AccessControlEntry(principal, "*", operation, permission))


@pytest.mark.parametrize(("bad", "message"), [
    (binding(resource_type=ResourceType.CLUSTER, name="my-cluster"),
     "The only valid name for the CLUSTER resource is kafka-cluster"),
    (binding(name=""), "Invalid empty resource name"),
    (binding(resource_type=ResourceType.UNKNOWN), "Invalid resourceType UNKNOWN"),
    (binding(pattern_type=PatternType.UNKNOWN), "Invalid patternType UNKNOWN"),
    (binding(operation=AclOperation.UNKNOWN), "Invalid operation UNKNOWN"),
    (binding(permission=AclPermissionType.UNKNOWN), "Invalid permissionType UNKNOWN"),
    (binding(principal="alice"),
     "Could not parse principal from `alice` (no colon is present separating the principal type "
     "from the principal name)"),
    (binding(name="a/b"), "ACL binding contains invalid resource name: a/b"),
])
def test_create_acls_refuses_with_invalid_request(bad: AclBinding, message: str) -> None:
    with pytest.raises(AclValidationError) as refused:
        validate_new_acl(bad)
    assert refused.value.error_code == ErrorCode.invalid_request
    assert refused.value.message == message


def test_valid_acls_pass_validation() -> None:
    validate_new_acl(binding())
    validate_new_acl(binding(name="*"))
    validate_new_acl(binding(principal="User:*", pattern_type=PREFIXED, name="ord"))
    validate_new_acl(binding(resource_type=ResourceType.CLUSTER, name="kafka-cluster",
                             operation=AclOperation.CLUSTER_ACTION))


def test_filter_with_unknown_codes_is_refused() -> None:
    validate_filter(ANY_BINDING)
    unknown = AclBindingFilter(pf(None, PatternType.from_code(9)), ANY_BINDING.entry_filter)
    with pytest.raises(AclValidationError):
        validate_filter(unknown)


def test_authorization_error_per_resource_type() -> None:
    assert authorization_error(TOPIC) == ErrorCode.topic_authorization_failed
    assert authorization_error(ResourceType.GROUP) == ErrorCode.group_authorization_failed
    assert authorization_error(ResourceType.CLUSTER) == ErrorCode.cluster_authorization_failed
    assert authorization_error(ResourceType.TRANSACTIONAL_ID) == ErrorCode.transactional_id_authorization_failed
    with pytest.raises(ValueError):
        authorization_error(ResourceType.ANY)

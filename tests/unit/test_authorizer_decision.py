"""AclAuthorizer's decision: super users, the no-ACL default, deny over allow, wildcards,
literal/prefixed/wildcard patterns, implied operations, by-resource-type checks."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moldau.authorizer.acl import (
    ANY_ENTRY,
    CLUSTER,
    AccessControlEntry,
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
from moldau.authorizer.authorizer import (
    AclAuthorizer,
    AuthorizerConfig,
    authorizer_configured,
    client_host,
    operations_bitfield,
)
from moldau.authorizer.principal import KafkaPrincipal

Op = AclOperation
ALLOW, DENY = AclPermissionType.ALLOW, AclPermissionType.DENY
LITERAL, PREFIXED = PatternType.LITERAL, PatternType.PREFIXED
TOPIC, GROUP = ResourceType.TOPIC, ResourceType.GROUP
ALICE, BOB = "User:alice", "User:bob"
HOST = "10.0.0.7"


def acl(name: str, principal: str = ALICE, operation: AclOperation = Op.READ, permission: AclPermissionType = ALLOW,
        pattern_type: PatternType = LITERAL, host: str = "*", resource_type: ResourceType = TOPIC) -> AclBinding:
    return AclBinding(ResourcePattern(resource_type, name, pattern_type),
                      AccessControlEntry(principal, host, operation, permission))


def authorizer(*acls: AclBinding, allow_everyone: bool = False, super_users: str = "") -> AclAuthorizer:
    config = AuthorizerConfig.from_properties({
        "super.users": super_users, "allow.everyone.if.no.acl.found": str(allow_everyone).lower(),
    })
    return AclAuthorizer(config, acls)


def topic(name: str) -> Resource:
    return Resource(TOPIC, name)


def test_no_acl_denies_by_default_and_allows_when_configured() -> None:
    assert not authorizer().authorize(ALICE, HOST, Op.READ, topic("orders"))
    assert authorizer(allow_everyone=True).authorize(ALICE, HOST, Op.READ, topic("orders"))


def test_allow_everyone_applies_only_to_resources_without_any_acl() -> None:
    # An ACL for bob on "orders" means "orders" has ACLs: alice is denied, though no ACL names her.
    auth = authorizer(acl("orders", principal=BOB), allow_everyone=True)
    assert not auth.authorize(ALICE, HOST, Op.READ, topic("orders"))
    assert auth.authorize(ALICE, HOST, Op.READ, topic("payments"))
    # A prefixed ACL counts as an ACL of every topic it covers.
    auth = authorizer(acl("ord", principal=BOB, pattern_type=PREFIXED), allow_everyone=True)
    assert not auth.authorize(ALICE, HOST, Op.READ, topic("orders"))


def test_super_users_may_do_anything_even_when_denied() -> None:
    auth = authorizer(acl("orders", principal="User:*", operation=Op.ALL, permission=DENY),
                      super_users="User:admin; User:broker")
    assert auth.config.super_users == {KafkaPrincipal("User", "admin"), KafkaPrincipal("User", "broker")}
    assert auth.authorize("User:broker", HOST, Op.WRITE, topic("orders"))
    assert auth.authorize("User:admin", HOST, Op.CLUSTER_ACTION, CLUSTER)
    assert not auth.authorize(ALICE, HOST, Op.READ, topic("orders"))


def test_authorizer_class_names() -> None:
    assert not authorizer_configured({})
    assert not authorizer_configured({"authorizer.class.name": " "})
    assert authorizer_configured({"authorizer.class.name": "kafka.security.authorizer.AclAuthorizer"})
    assert authorizer_configured({"authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer"})
    with pytest.raises(ValueError, match="is not supported"):
        authorizer_configured({"authorizer.class.name": "com.example.OpaAuthorizer"})


def test_super_users_must_be_principals() -> None:
    with pytest.raises(ValueError, match="expected a string in format principalType:principalName but got alice"):
        AuthorizerConfig.from_properties({"super.users": "User:admin;alice"})
    assert AuthorizerConfig.from_properties({"super.users": "User:admin;"}).super_users == {
        KafkaPrincipal("User", "admin")}


def test_literal_allow_is_for_its_principal_operation_and_resource_only() -> None:
    auth = authorizer(acl("orders"))
    assert auth.authorize(ALICE, HOST, Op.READ, topic("orders"))
    assert not auth.authorize(BOB, HOST, Op.READ, topic("orders"))
    assert not auth.authorize(ALICE, HOST, Op.WRITE, topic("orders"))
    assert not auth.authorize(ALICE, HOST, Op.READ, topic("orders2"))
    assert not auth.authorize(ALICE, HOST, Op.READ, Resource(GROUP, "orders"))


def test_deny_wins_over_allow() -> None:
    auth = authorizer(acl("orders", principal="User:*"), acl("orders", principal=BOB, permission=DENY))
    assert auth.authorize(ALICE, HOST, Op.READ, topic("orders"))
    assert not auth.authorize(BOB, HOST, Op.READ, topic("orders"))
    # Deny on a prefix beats allow on the literal name, and deny on the wildcard beats all.
    auth = authorizer(acl("orders"), acl("ord", permission=DENY, pattern_type=PREFIXED))
    assert not auth.authorize(ALICE, HOST, Op.READ, topic("orders"))
    auth = authorizer(acl("orders"), acl("*", principal="User:*", operation=Op.ALL, permission=DENY))
    assert not auth.authorize(ALICE, HOST, Op.READ, topic("orders"))


def test_wildcard_principal_host_and_resource() -> None:
    auth = authorizer(acl("*", principal="User:*"))
    assert auth.authorize(ALICE, HOST, Op.READ, topic("anything"))
    assert auth.authorize("Group:ops", HOST, Op.READ, topic("anything"))  # User:* matches any principal
    assert not auth.authorize(ALICE, HOST, Op.READ, Resource(GROUP, "anything"))


def test_host_must_match_the_clients_address_unless_star() -> None:
    auth = authorizer(acl("orders", host="10.0.0.7"))
    assert auth.authorize(ALICE, "10.0.0.7", Op.READ, topic("orders"))
    assert not auth.authorize(ALICE, "10.0.0.8", Op.READ, topic("orders"))
    auth = authorizer(acl("orders"), acl("orders", permission=DENY, host="10.0.0.8"))
    assert auth.authorize(ALICE, "10.0.0.7", Op.READ, topic("orders"))
    assert not auth.authorize(ALICE, "10.0.0.8", Op.READ, topic("orders"))


def test_prefixed_acls_cover_names_that_start_with_them() -> None:
    auth = authorizer(acl("ord", pattern_type=PREFIXED))
    assert auth.authorize(ALICE, HOST, Op.READ, topic("ord"))
    assert auth.authorize(ALICE, HOST, Op.READ, topic("orders"))
    assert not auth.authorize(ALICE, HOST, Op.READ, topic("or"))
    assert not auth.authorize(ALICE, HOST, Op.READ, topic("payments-ord"))
    # `*` is not a wildcard in a prefixed pattern.
    auth = authorizer(acl("*", pattern_type=PREFIXED))
    assert not auth.authorize(ALICE, HOST, Op.READ, topic("orders"))
    assert auth.authorize(ALICE, HOST, Op.READ, topic("*orders"))


@pytest.mark.parametrize("granted", [Op.READ, Op.WRITE, Op.DELETE, Op.ALTER, Op.DESCRIBE, Op.ALL])
def test_describe_is_implied(granted: AclOperation) -> None:
    assert authorizer(acl("orders", operation=granted)).authorize(ALICE, HOST, Op.DESCRIBE, topic("orders"))


@pytest.mark.parametrize("granted", [Op.CREATE, Op.DESCRIBE_CONFIGS, Op.ALTER_CONFIGS, Op.IDEMPOTENT_WRITE])
def test_describe_is_not_implied_by_others(granted: AclOperation) -> None:
    assert not authorizer(acl("orders", operation=granted)).authorize(ALICE, HOST, Op.DESCRIBE, topic("orders"))


def test_describe_configs_is_implied_by_alter_configs_only() -> None:
    assert authorizer(acl("orders", operation=Op.ALTER_CONFIGS)).authorize(
        ALICE, HOST, Op.DESCRIBE_CONFIGS, topic("orders"))
    assert not authorizer(acl("orders", operation=Op.ALTER)).authorize(
        ALICE, HOST, Op.DESCRIBE_CONFIGS, topic("orders"))
    assert not authorizer(acl("orders", operation=Op.DESCRIBE_CONFIGS)).authorize(
        ALICE, HOST, Op.ALTER_CONFIGS, topic("orders"))


def test_implied_operations_allow_but_do_not_deny() -> None:
    # Deny Read does not deny Describe; Deny All does.
    auth = authorizer(acl("orders", operation=Op.DESCRIBE), acl("orders", operation=Op.READ, permission=DENY))
    assert auth.authorize(ALICE, HOST, Op.DESCRIBE, topic("orders"))
    assert not auth.authorize(ALICE, HOST, Op.READ, topic("orders"))
    auth = authorizer(acl("orders", operation=Op.WRITE), acl("orders", operation=Op.ALL, permission=DENY))
    assert not auth.authorize(ALICE, HOST, Op.DESCRIBE, topic("orders"))


def test_all_allows_every_operation() -> None:
    auth = authorizer(acl("kafka-cluster", operation=Op.ALL, resource_type=ResourceType.CLUSTER))
    for op in (Op.CLUSTER_ACTION, Op.CREATE, Op.ALTER, Op.DESCRIBE_CONFIGS, Op.IDEMPOTENT_WRITE):
        assert auth.authorize(ALICE, HOST, op, CLUSTER)


def test_describable_topics_hides_the_rest_in_order() -> None:
    auth = authorizer(acl("orders", operation=Op.WRITE), acl("pay", pattern_type=PREFIXED),
                      acl("payments-eu", operation=Op.DESCRIBE, permission=DENY))
    topics = ["secret", "payments-us", "orders", "payments-eu", "orders"]
    assert auth.describable_topics(ALICE, HOST, topics) == ["payments-us", "orders"]


def test_authorized_operations_and_their_bitfield() -> None:
    auth = authorizer(acl("orders", operation=Op.WRITE), acl("orders", operation=Op.ALTER_CONFIGS))
    ops = auth.authorized_operations(ALICE, HOST, topic("orders"))
    assert ops == {Op.WRITE, Op.DESCRIBE, Op.ALTER_CONFIGS, Op.DESCRIBE_CONFIGS}
    assert operations_bitfield(ops) == (1 << 4) | (1 << 8) | (1 << 11) | (1 << 10)


def test_set_acls_replaces_a_patterns_entries() -> None:
    auth = authorizer(acl("orders"))
    pattern = ResourcePattern(TOPIC, "orders", LITERAL)
    auth.set_acls(pattern, [AccessControlEntry(BOB, "*", Op.READ, ALLOW)])
    assert not auth.authorize(ALICE, HOST, Op.READ, topic("orders"))
    assert auth.authorize(BOB, HOST, Op.READ, topic("orders"))
    auth.set_acls(pattern, [])
    assert auth.snapshot() == {}


def test_acls_selects_by_filter() -> None:
    bindings = [acl("orders"), acl("ord", pattern_type=PREFIXED, principal=BOB), acl("*"), acl("pay")]
    auth = authorizer(*bindings)
    match_orders = AclBindingFilter(ResourcePatternFilter(TOPIC, "orders", PatternType.MATCH), ANY_ENTRY)
    assert set(auth.acls(match_orders)) == set(bindings[:3])


def test_authorize_by_resource_type() -> None:
    def by_type(*acls: AclBinding, principal: str = ALICE, allow_everyone: bool = False) -> bool:
        return authorizer(*acls, allow_everyone=allow_everyone).authorize_by_resource_type(
            principal, HOST, Op.WRITE, TOPIC)

    assert not by_type()
    assert by_type(allow_everyone=True)
    assert by_type(acl("orders", operation=Op.WRITE))
    assert not by_type(acl("orders", operation=Op.WRITE), principal=BOB)
    assert by_type(acl("orders", operation=Op.ALL))
    assert not by_type(acl("orders", operation=Op.READ))  # implied operations do not count
    assert not by_type(acl("orders", operation=Op.WRITE), acl("orders", operation=Op.WRITE, permission=DENY))
    assert not by_type(acl("orders", operation=Op.WRITE), acl("or", operation=Op.WRITE, permission=DENY,
                                                              pattern_type=PREFIXED))
    # A deny on another name leaves the allowed one.
    assert by_type(acl("orders", operation=Op.WRITE), acl("pay", operation=Op.WRITE, permission=DENY))
    # An allowed prefix is dominated only by a denied prefix of itself.
    assert by_type(acl("ord", operation=Op.WRITE, pattern_type=PREFIXED),
                   acl("orders", operation=Op.WRITE, permission=DENY))
    assert not by_type(acl("ord", operation=Op.WRITE, pattern_type=PREFIXED),
                       acl("o", operation=Op.WRITE, permission=DENY, pattern_type=PREFIXED))
    # A denied literal wildcard denies all, even with allow.everyone.if.no.acl.found.
    assert not by_type(acl("orders", operation=Op.WRITE),
                       acl("*", principal="User:*", operation=Op.WRITE, permission=DENY), allow_everyone=True)
    # An allowed literal wildcard survives literal denies.
    assert by_type(acl("*", operation=Op.WRITE), acl("orders", operation=Op.WRITE, permission=DENY))


def test_client_host_is_written_as_java_writes_it() -> None:
    assert client_host("10.0.0.7") == "10.0.0.7"
    assert client_host("::1") == "0:0:0:0:0:0:0:1"
    assert client_host("fe80::1%eth0") == "fe80:0:0:0:0:0:0:1%eth0"
    assert client_host("2001:db8::ab:0") == "2001:db8:0:0:0:0:ab:0"
    assert client_host("::ffff:10.0.0.7") == "10.0.0.7"
    auth = authorizer(acl("orders", host="0:0:0:0:0:0:0:1"))
    assert auth.authorize(ALICE, client_host("::1"), Op.READ, topic("orders"))


names = st.text(alphabet="ab*", min_size=1, max_size=4)
patterns = st.builds(ResourcePattern, st.sampled_from([TOPIC, GROUP]), names, st.sampled_from([LITERAL, PREFIXED]))


@given(st.lists(patterns, max_size=8), names, st.sampled_from([TOPIC, GROUP]))
def test_the_match_filter_selects_exactly_the_patterns_authorize_consults(
        found: list[ResourcePattern], name: str, resource_type: ResourceType) -> None:
    # Two statements of one rule: DescribeAcls with MATCH, and the ACLs authorize() reads.
    entry = AccessControlEntry(ALICE, "*", Op.READ, ALLOW)
    auth = AclAuthorizer(AuthorizerConfig(), [AclBinding(p, entry) for p in found])
    by_filter = {b.pattern for b in auth.acls(AclBindingFilter(
        ResourcePatternFilter(resource_type, name, PatternType.MATCH), ANY_ENTRY))}
    consulted = {p for p in found if p.resource_type is resource_type and (
        (p.pattern_type is LITERAL and p.name in (name, "*")) or
        (p.pattern_type is PREFIXED and name.startswith(p.name)))}
    assert by_filter == consulted
    assert bool(consulted) == bool(auth.matching_acls(Resource(resource_type, name)))
    assert auth.authorize(ALICE, HOST, Op.DESCRIBE, Resource(resource_type, name)) == bool(consulted)

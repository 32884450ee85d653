"""The authorization decision of Kafka's AclAuthorizer, over ACLs held in memory.

`AclAuthorizer` answers "may this principal, from this host, do this operation on this
resource?" from a cache of ACLs (resource pattern -> its entries). It does no I/O: the
server loads the cache from ZooKeeper (`store.py`) at start and replaces a pattern's
entries on each change notification (`set_acls`).

The rules, in Kafka's order:
1. A principal in `super.users` may do anything.
2. The ACLs that apply to a resource are those of its literal pattern, of the literal
   wildcard `*` of its type, and of every prefixed pattern its name starts with.
3. If there are none (for anybody), `allow.everyone.if.no.acl.found` decides (default
   false: denied).
4. A matching Deny wins: an entry whose principal is the caller or `User:*`, whose host is
   the caller's address or `*`, and whose operation is the one asked or `All`.
5. Else a matching Allow permits, where an Allow of Read, Write, Delete or Alter also
   permits Describe, and an Allow of AlterConfigs also permits DescribeConfigs. (Implied
   operations apply to Allow only: Deny Read does not deny Describe.)
6. Else denied.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from moldau.authorizer.acl import (
    SUPPORTED_OPERATIONS,
    WILDCARD_HOST,
    WILDCARD_PRINCIPAL,
    WILDCARD_RESOURCE,
    AccessControlEntry,
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    PatternType,
    Resource,
    ResourcePattern,
    ResourceType,
)
from moldau.authorizer.principal import KafkaPrincipal, parse_super_users

AUTHORIZER_CLASS_NAME_CONFIG = "authorizer.class.name"
SUPER_USERS_CONFIG = "super.users"
ALLOW_EVERYONE_IF_NO_ACL_FOUND_CONFIG = "allow.everyone.if.no.acl.found"
# Kafka's ACL authorizers (ZooKeeper mode, KRaft mode): either name turns this one on.
ACL_AUTHORIZER_CLASS_NAMES = frozenset({
    "kafka.security.authorizer.AclAuthorizer",
    "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
})


def authorizer_configured(properties: Mapping[str, str]) -> bool:
    """Whether the broker authorizes requests: `authorizer.class.name` names one of Kafka's
    ACL authorizers (unset or empty: no authorization, as in Kafka; the ACL APIs then answer
    SECURITY_DISABLED). Raise ValueError for another class: Moldau cannot load it."""
    name = properties.get(AUTHORIZER_CLASS_NAME_CONFIG, "").strip()
    if not name:
        return False
    if name not in ACL_AUTHORIZER_CLASS_NAMES:
        raise ValueError(f"{AUTHORIZER_CLASS_NAME_CONFIG}={name} is not supported; use one of "
                         f"{', '.join(sorted(ACL_AUTHORIZER_CLASS_NAMES))}")
    return True

# An Allow of any of these operations permits the key operation too.
IMPLIED_BY: dict[AclOperation, frozenset[AclOperation]] = {
    AclOperation.DESCRIBE: frozenset({
        AclOperation.DESCRIBE, AclOperation.READ, AclOperation.WRITE, AclOperation.DELETE, AclOperation.ALTER,
    }),
    AclOperation.DESCRIBE_CONFIGS: frozenset({AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS}),
}


@dataclass(frozen=True)
class AuthorizerConfig:
    super_users: frozenset[KafkaPrincipal] = frozenset()
    allow_everyone_if_no_acl_found: bool = False

    @classmethod
    def from_properties(cls, properties: Mapping[str, str]) -> AuthorizerConfig:
        """From broker properties. Raise ValueError for a malformed `super.users` entry."""
        super_users = parse_super_users(properties.get(SUPER_USERS_CONFIG, "").strip())
        allow = properties.get(ALLOW_EVERYONE_IF_NO_ACL_FOUND_CONFIG, "false").strip().lower() == "true"
        return cls(super_users, allow)


AclCache = Mapping[ResourcePattern, frozenset[AccessControlEntry]]


class AclAuthorizer:
    def __init__(self, config: AuthorizerConfig, acls: Iterable[AclBinding] = ()) -> None:
        self.config = config
        self._super_users = frozenset(str(p) for p in config.super_users)
        self._acls: dict[ResourcePattern, frozenset[AccessControlEntry]] = {}
        # The same, indexed for decisions: (type, name) of literal and of prefixed patterns,
        # and the lengths of the prefixed names of each type (a name is looked up only at
        # those lengths, not at every one of its prefixes).
        self._literal: dict[tuple[ResourceType, str], frozenset[AccessControlEntry]] = {}
        self._prefixed: dict[tuple[ResourceType, str], frozenset[AccessControlEntry]] = {}
        self._prefix_lengths: dict[ResourceType, tuple[int, ...]] = {}
        grouped: dict[ResourcePattern, set[AccessControlEntry]] = {}
        for binding in acls:
            grouped.setdefault(binding.pattern, set()).add(binding.entry)
        for pattern, entries in grouped.items():
            self.set_acls(pattern, entries)

    # -- the cache ---------------------------------------------------------------------

    def set_acls(self, pattern: ResourcePattern, entries: Iterable[AccessControlEntry]) -> None:
        """Replace the entries of one pattern (what a change notification brings: the
        pattern's znode as read now; none when it was deleted)."""
        frozen = frozenset(entries)
        key = (pattern.resource_type, pattern.name)
        index = self._prefixed if pattern.pattern_type is PatternType.PREFIXED else self._literal
        if frozen:
            self._acls[pattern] = frozen
            index[key] = frozen
        else:
            self._acls.pop(pattern, None)
            index.pop(key, None)
        if pattern.pattern_type is PatternType.PREFIXED:
            kind = pattern.resource_type
            self._prefix_lengths[kind] = tuple(sorted({len(name) for k, name in self._prefixed if k is kind}))

    def acls_of(self, pattern: ResourcePattern) -> frozenset[AccessControlEntry]:
        return self._acls.get(pattern, frozenset())

    def snapshot(self) -> dict[ResourcePattern, frozenset[AccessControlEntry]]:
        return dict(self._acls)

    def acls(self, acl_filter: AclBindingFilter) -> list[AclBinding]:
        """The bindings a DescribeAcls filter selects, sorted."""
        return sorted(
            AclBinding(pattern, entry)
            for pattern, entries in self._acls.items()
            if acl_filter.pattern_filter.matches(pattern)
            for entry in entries
            if acl_filter.entry_filter.matches(entry)
        )

    # -- decisions -----------------------------------------------------------------------

    def is_super_user(self, principal: str) -> bool:
        return principal in self._super_users

    def matching_acls(self, resource: Resource) -> list[AccessControlEntry]:
        """Every entry that applies to the resource, whoever it is for."""
        found: list[AccessControlEntry] = []
        kind, name = resource.resource_type, resource.name
        literal, prefixed = self._literal, self._prefixed
        found.extend(literal.get((kind, WILDCARD_RESOURCE), ()))
        if name != WILDCARD_RESOURCE:
            found.extend(literal.get((kind, name), ()))
        for length in self._prefix_lengths.get(kind, ()):
            if length > len(name):
                break
            found.extend(prefixed.get((kind, name[:length]), ()))
        return found

    def authorize(self, principal: str, host: str, operation: AclOperation, resource: Resource) -> bool:
        """May `principal` (`User:alice`) connected from `host` (the client's IP address as
        text) do `operation` on `resource`?"""
        if operation in (AclOperation.ANY, AclOperation.UNKNOWN):
            raise ValueError(f"Operation must not be {operation.name}")
        if self.is_super_user(principal):
            return True
        acls = self.matching_acls(resource)
        if not acls:
            return self.config.allow_everyone_if_no_acl_found
        # One pass: a matching Deny of the operation (or All) decides at once; else an Allow
        # of the operation, of one that implies it, or of All.
        allowing = IMPLIED_BY.get(operation) or frozenset({operation})
        allowed = False
        for entry in acls:
            if entry.principal != principal and entry.principal != WILDCARD_PRINCIPAL:
                continue
            if entry.host != host and entry.host != WILDCARD_HOST:
                continue
            if entry.permission_type is AclPermissionType.DENY:
                if entry.operation is operation or entry.operation is AclOperation.ALL:
                    return False
            elif entry.permission_type is AclPermissionType.ALLOW and (
                    entry.operation is AclOperation.ALL or entry.operation in allowing):
                allowed = True
        return allowed

    def filter_authorized(self, principal: str, host: str, operation: AclOperation,
                          resource_type: ResourceType, names: Iterable[str]) -> list[str]:
        """The names (in their order, once each) the principal may do `operation` on."""
        decided: dict[str, bool] = {}
        for name in names:
            if name not in decided:
                decided[name] = self.authorize(principal, host, operation, Resource(resource_type, name))
        return [name for name, allowed in decided.items() if allowed]

    def describable_topics(self, principal: str, host: str, topics: Iterable[str]) -> list[str]:
        """The topics the principal may Describe: the only ones Metadata (for all topics),
        ListOffsets and OffsetFetch (for all partitions) reveal to it."""
        return self.filter_authorized(principal, host, AclOperation.DESCRIBE, ResourceType.TOPIC, topics)

    def authorized_operations(self, principal: str, host: str, resource: Resource) -> frozenset[AclOperation]:
        """The operations of the resource's type the principal may do on it (the
        `*_authorized_operations` fields of Metadata, DescribeGroups, DescribeCluster)."""
        return frozenset(
            op for op in SUPPORTED_OPERATIONS[resource.resource_type]
            if self.authorize(principal, host, op, resource)
        )

    def authorize_by_resource_type(self, principal: str, host: str, operation: AclOperation,
                                   resource_type: ResourceType) -> bool:
        """May the principal do `operation` on at least one resource of the type? (Kafka's
        authorizeByResourceType: InitProducerId without a transactional id asks it for
        Write on topics.)

        Allowed when some Allow (for the principal or `User:*`, the host or `*`, the
        operation or `All`; implied operations do not count here) names a resource that no
        Deny covers: a literal name not denied literally nor by a denied prefix of it, the
        literal wildcard `*`, or a prefix no shorter denied prefix covers. A Deny of the
        literal wildcard denies everything; `allow.everyone.if.no.acl.found` allows when
        that is absent.
        """
        if operation in (AclOperation.ANY, AclOperation.UNKNOWN):
            raise ValueError(f"Operation must not be {operation.name}")
        if resource_type in (ResourceType.ANY, ResourceType.UNKNOWN):
            raise ValueError(f"Resource type must not be {resource_type.name}")
        if self.is_super_user(principal):
            return True

        def names(permission: AclPermissionType, pattern_type: PatternType) -> set[str]:
            return {
                pattern.name
                for pattern, entries in self._acls.items()
                if pattern.resource_type is resource_type and pattern.pattern_type is pattern_type
                and any(_applies(entry, principal, host, operation, permission) for entry in entries)
            }

        deny_literals = names(AclPermissionType.DENY, PatternType.LITERAL)
        if WILDCARD_RESOURCE in deny_literals:
            return False
        if self.config.allow_everyone_if_no_acl_found:
            return True
        deny_prefixes = names(AclPermissionType.DENY, PatternType.PREFIXED)
        allow_literals = names(AclPermissionType.ALLOW, PatternType.LITERAL)
        allow_prefixes = names(AclPermissionType.ALLOW, PatternType.PREFIXED)

        def denied_by_prefix(name: str) -> bool:
            return any(name[:end] in deny_prefixes for end in range(len(name) + 1))

        if any(not denied_by_prefix(prefix) for prefix in allow_prefixes):
            return True
        return any(
            literal == WILDCARD_RESOURCE or (literal not in deny_literals and not denied_by_prefix(literal))
            for literal in allow_literals
        )


def _applies(entry: AccessControlEntry, principal: str, host: str, operation: AclOperation,
             permission_type: AclPermissionType) -> bool:
    return (
        entry.permission_type is permission_type
        and (entry.principal == principal or entry.principal == WILDCARD_PRINCIPAL)
        and (entry.operation is operation or entry.operation is AclOperation.ALL)
        and (entry.host == host or entry.host == WILDCARD_HOST)
    )


def operations_bitfield(operations: Iterable[AclOperation]) -> int:
    """The int32 bit field the `*_authorized_operations` response fields carry: bit `code`
    set for each operation (Kafka's Utils.to32BitField)."""
    field = 0
    for op in operations:
        field |= 1 << int(op)
    return field


def client_host(peer_address: str) -> str:
    """The host an ACL's `host` is compared with: the client's IP address as Java writes it
    (InetAddress.getHostAddress), so that ACLs written for Kafka match here too. IPv4 as is;
    an IPv4-mapped IPv6 address as its IPv4 address (Java makes it an Inet4Address); other
    IPv6 addresses uncompressed, without leading zeros (`::1` -> `0:0:0:0:0:0:0:1`), with
    their `%scope` if any. Anything else (a Unix socket path) unchanged."""
    address, _, scope = peer_address.partition("%")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return peer_address
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ip)
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    text = ":".join(format(int(group, 16), "x") for group in ip.exploded.split(":"))
    return f"{text}%{scope}" if scope else text

"""Kafka's ACL model: resource patterns, access control entries, bindings, and the filters
DescribeAcls and DeleteAcls use.

The enums carry Kafka's wire codes (CreateAcls/DescribeAcls/DeleteAcls send them as int8)
and Kafka's names: `kafka_name` is the PascalCase spelling Kafka writes in ZooKeeper and in
its logs (`TransactionalId`, `DescribeConfigs`, `Allow`), `name` the Java enum constant
(`TRANSACTIONAL_ID`) that the extended change notifications and error messages carry.

An ACL is an `AclBinding`: a `ResourcePattern` (`Topic`, `orders`, LITERAL) and an
`AccessControlEntry` (`User:alice`, host `*`, `Read`, `Allow`). A LITERAL pattern named `*`
is the wildcard: it applies to every resource of its type. A PREFIXED pattern (KIP-290)
applies to every resource whose name starts with it (`*` there is an ordinary character).

Filters (`AclBindingFilter`) may leave fields open: `None` for a name, principal or host,
`ANY` for a type, operation or permission. A pattern filter with `PatternType.MATCH` and a
name matches the patterns that would apply to a resource of that name: the literal pattern
of that name, the literal wildcard `*`, and every prefixed pattern the name starts with.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from moldau.protocol.errors import ErrorCode

WILDCARD_RESOURCE = "*"
WILDCARD_PRINCIPAL = "User:*"
WILDCARD_HOST = "*"
# The one name a CLUSTER resource may have.
CLUSTER_NAME = "kafka-cluster"


def _pascal_case(constant: str) -> str:
    """`TRANSACTIONAL_ID` -> `TransactionalId` (Kafka's SecurityUtils.toPascalCase)."""
    return "".join(part[:1].upper() + part[1:].lower() for part in constant.split("_"))


class _KafkaEnum(enum.IntEnum):
    @property
    def kafka_name(self) -> str:
        return _pascal_case(self.name)

    def is_unknown(self) -> bool:
        return self.name == "UNKNOWN"


class ResourceType(_KafkaEnum):
    UNKNOWN = 0
    ANY = 1  # filters only
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7  # KIP-373: tokens created for other users

    @classmethod
    def from_code(cls, code: int) -> ResourceType:
        try:
            return cls(code)
        except ValueError:
            return cls.UNKNOWN

    @classmethod
    def from_kafka_name(cls, name: str) -> ResourceType:
        """Exact PascalCase name as in a znode path (`Topic`), else UNKNOWN."""
        for member in cls:
            if member.kafka_name == name:
                return member
        return cls.UNKNOWN

    @classmethod
    def from_string(cls, text: str) -> ResourceType:
        """Case-insensitive enum name (`TOPIC`, `topic`, `Topic`), else UNKNOWN: Kafka's
        ResourceType.fromString, used to read change notifications."""
        return cls.__members__.get(text.upper(), cls.UNKNOWN)


class PatternType(_KafkaEnum):
    UNKNOWN = 0
    ANY = 1  # filters only: any pattern type, names compared exactly
    MATCH = 2  # filters only: the patterns that would apply to the named resource
    LITERAL = 3
    PREFIXED = 4

    @classmethod
    def from_code(cls, code: int) -> PatternType:
        try:
            return cls(code)
        except ValueError:
            return cls.UNKNOWN

    @classmethod
    def from_string(cls, text: str) -> PatternType:
        return cls.__members__.get(text.upper(), cls.UNKNOWN)

    def is_specific(self) -> bool:
        """LITERAL or PREFIXED: the pattern types an ACL (not a filter) may have."""
        return self in (PatternType.LITERAL, PatternType.PREFIXED)


class AclOperation(_KafkaEnum):
    UNKNOWN = 0
    ANY = 1  # filters only
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14

    @classmethod
    def from_code(cls, code: int) -> AclOperation:
        try:
            return cls(code)
        except ValueError:
            return cls.UNKNOWN

    @classmethod
    def from_kafka_name(cls, name: str) -> AclOperation:
        """Exact PascalCase name as stored in ZooKeeper (`DescribeConfigs`), else UNKNOWN."""
        for member in cls:
            if member.kafka_name == name:
                return member
        return cls.UNKNOWN


class AclPermissionType(_KafkaEnum):
    UNKNOWN = 0
    ANY = 1  # filters only
    DENY = 2
    ALLOW = 3

    @classmethod
    def from_code(cls, code: int) -> AclPermissionType:
        try:
            return cls(code)
        except ValueError:
            return cls.UNKNOWN

    @classmethod
    def from_kafka_name(cls, name: str) -> AclPermissionType:
        for member in cls:
            if member.kafka_name == name:
                return member
        return cls.UNKNOWN


# The operations kafka-acls.sh accepts for each resource type (Kafka's
# AclEntry.supportedOperations). Brokers store any operation; this is for tools and docs.
SUPPORTED_OPERATIONS: dict[ResourceType, frozenset[AclOperation]] = {
    ResourceType.TOPIC: frozenset({
        AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE, AclOperation.DESCRIBE,
        AclOperation.DELETE, AclOperation.ALTER, AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS,
    }),
    ResourceType.GROUP: frozenset({AclOperation.READ, AclOperation.DESCRIBE, AclOperation.DELETE}),
    ResourceType.CLUSTER: frozenset({
        AclOperation.CREATE, AclOperation.CLUSTER_ACTION, AclOperation.DESCRIBE_CONFIGS,
        AclOperation.ALTER_CONFIGS, AclOperation.IDEMPOTENT_WRITE, AclOperation.ALTER, AclOperation.DESCRIBE,
    }),
    ResourceType.TRANSACTIONAL_ID: frozenset({AclOperation.DESCRIBE, AclOperation.WRITE}),
    ResourceType.DELEGATION_TOKEN: frozenset({AclOperation.DESCRIBE}),
    ResourceType.USER: frozenset({AclOperation.CREATE_TOKENS, AclOperation.DESCRIBE_TOKENS}),
}


def authorization_error(resource_type: ResourceType) -> ErrorCode:
    """The error a request gets when denied on a resource of this type (Kafka's
    AclEntry.authorizationError)."""
    errors = {
        ResourceType.TOPIC: ErrorCode.topic_authorization_failed,
        ResourceType.GROUP: ErrorCode.group_authorization_failed,
        ResourceType.CLUSTER: ErrorCode.cluster_authorization_failed,
        ResourceType.TRANSACTIONAL_ID: ErrorCode.transactional_id_authorization_failed,
        ResourceType.DELEGATION_TOKEN: ErrorCode.delegation_token_authorization_failed,
    }
    if resource_type not in errors:
        raise ValueError(f"Authorization error type not known: {resource_type.name}")
    return errors[resource_type]


@dataclass(frozen=True, order=True)
class Resource:
    """A named resource a request acts on (Kafka's `Resource`): what `authorize` is asked
    about. The cluster is `Resource(ResourceType.CLUSTER, CLUSTER_NAME)`."""

    resource_type: ResourceType
    name: str


CLUSTER = Resource(ResourceType.CLUSTER, CLUSTER_NAME)


@dataclass(frozen=True, order=True)
class ResourcePattern:
    """What an ACL applies to. Never ANY, MATCH or a None name: those are for filters."""

    resource_type: ResourceType
    name: str
    pattern_type: PatternType

    def __post_init__(self) -> None:
        if self.resource_type is ResourceType.ANY:
            raise ValueError("resourceType must not be ANY")
        if self.pattern_type in (PatternType.MATCH, PatternType.ANY):
            raise ValueError(f"patternType must not be {self.pattern_type.name}")

    def is_unknown(self) -> bool:
        return self.resource_type.is_unknown() or self.pattern_type.is_unknown()

    def to_filter(self) -> ResourcePatternFilter:
        return ResourcePatternFilter(self.resource_type, self.name, self.pattern_type)

    def __str__(self) -> str:
        return (f"ResourcePattern(resourceType={self.resource_type.name}, name={self.name}, "
                f"patternType={self.pattern_type.name})")


@dataclass(frozen=True, order=True)
class AccessControlEntry:
    """Who (`principal`, `Type:name`), from where (`host`: a client IP address or `*`),
    may or may not (`permission_type`) do what (`operation`)."""

    principal: str
    host: str
    operation: AclOperation
    permission_type: AclPermissionType

    def __post_init__(self) -> None:
        if self.operation is AclOperation.ANY:
            raise ValueError("operation must not be ANY")
        if self.permission_type is AclPermissionType.ANY:
            raise ValueError("permissionType must not be ANY")

    def is_unknown(self) -> bool:
        return self.operation.is_unknown() or self.permission_type.is_unknown()

    def to_filter(self) -> AccessControlEntryFilter:
        return AccessControlEntryFilter(self.principal, self.host, self.operation, self.permission_type)

    def __str__(self) -> str:
        return (f"(principal={self.principal}, host={self.host}, operation={self.operation.name}, "
                f"permissionType={self.permission_type.name})")


@dataclass(frozen=True, order=True)
class AclBinding:
    pattern: ResourcePattern
    entry: AccessControlEntry

    def is_unknown(self) -> bool:
        return self.pattern.is_unknown() or self.entry.is_unknown()

    def to_filter(self) -> AclBindingFilter:
        return AclBindingFilter(self.pattern.to_filter(), self.entry.to_filter())


@dataclass(frozen=True)
class ResourcePatternFilter:
    """`resource_type` ANY ignores the type; `name` None ignores the name; `pattern_type`
    ANY matches any pattern type by exact name, MATCH the patterns that apply to `name`."""

    resource_type: ResourceType
    name: str | None
    pattern_type: PatternType

    def is_unknown(self) -> bool:
        return self.resource_type.is_unknown() or self.pattern_type.is_unknown()

    def matches(self, pattern: ResourcePattern) -> bool:
        if self.resource_type is not ResourceType.ANY and self.resource_type is not pattern.resource_type:
            return False
        open_pattern_type = self.pattern_type in (PatternType.ANY, PatternType.MATCH)
        if not open_pattern_type and self.pattern_type is not pattern.pattern_type:
            return False
        if self.name is None:
            return True
        if self.pattern_type is PatternType.ANY or self.pattern_type is pattern.pattern_type:
            return self.name == pattern.name
        # MATCH: would this pattern apply to a resource called `name`?
        if pattern.pattern_type is PatternType.LITERAL:
            return self.name == pattern.name or pattern.name == WILDCARD_RESOURCE
        if pattern.pattern_type is PatternType.PREFIXED:
            return self.name.startswith(pattern.name)
        raise ValueError(f"Unsupported PatternType: {pattern.pattern_type.name}")

    def find_indefinite_field(self) -> str | None:
        """Why this filter could match more than one pattern, or None if it cannot."""
        if self.resource_type is ResourceType.ANY:
            return "Resource type is ANY."
        if self.resource_type is ResourceType.UNKNOWN:
            return "Resource type is UNKNOWN."
        if self.name is None:
            return "Resource name is NULL."
        if self.pattern_type is PatternType.MATCH:
            return "Resource pattern type is MATCH."
        if self.pattern_type is PatternType.UNKNOWN:
            return "Resource pattern type is UNKNOWN."
        return None

    def matches_at_most_one(self) -> bool:
        return self.find_indefinite_field() is None


@dataclass(frozen=True)
class AccessControlEntryFilter:
    """None principal or host, ANY operation or permission type: not compared. Names are
    compared exactly: a filter for `User:alice` does not match an entry for `User:*`."""

    principal: str | None
    host: str | None
    operation: AclOperation
    permission_type: AclPermissionType

    def is_unknown(self) -> bool:
        return self.operation.is_unknown() or self.permission_type.is_unknown()

    def matches(self, entry: AccessControlEntry) -> bool:
        if self.principal is not None and self.principal != entry.principal:
            return False
        if self.host is not None and self.host != entry.host:
            return False
        if self.operation is not AclOperation.ANY and self.operation is not entry.operation:
            return False
        return self.permission_type is AclPermissionType.ANY or self.permission_type is entry.permission_type

    def find_indefinite_field(self) -> str | None:
        if self.principal is None:
            return "Principal is NULL"
        if self.host is None:
            return "Host is NULL"
        if self.operation is AclOperation.ANY:
            return "Operation is ANY"
        if self.operation is AclOperation.UNKNOWN:
            return "Operation is UNKNOWN"
        if self.permission_type is AclPermissionType.ANY:
            return "Permission type is ANY"
        if self.permission_type is AclPermissionType.UNKNOWN:
            return "Permission type is UNKNOWN"
        return None

    def matches_at_most_one(self) -> bool:
        return self.find_indefinite_field() is None


@dataclass(frozen=True)
class AclBindingFilter:
    pattern_filter: ResourcePatternFilter
    entry_filter: AccessControlEntryFilter

    def is_unknown(self) -> bool:
        return self.pattern_filter.is_unknown() or self.entry_filter.is_unknown()

    def matches(self, binding: AclBinding) -> bool:
        return self.pattern_filter.matches(binding.pattern) and self.entry_filter.matches(binding.entry)

    def find_indefinite_field(self) -> str | None:
        return self.pattern_filter.find_indefinite_field() or self.entry_filter.find_indefinite_field()

    def matches_at_most_one(self) -> bool:
        return self.find_indefinite_field() is None


ANY_PATTERN = ResourcePatternFilter(ResourceType.ANY, None, PatternType.ANY)
ANY_ENTRY = AccessControlEntryFilter(None, None, AclOperation.ANY, AclPermissionType.ANY)
ANY_BINDING = AclBindingFilter(ANY_PATTERN, ANY_ENTRY)


class AclValidationError(ValueError):
    """An ACL a CreateAcls request may not create: the error code and message Kafka puts in
    that creation's result."""

    def __init__(self, error_code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


def validate_new_acl(binding: AclBinding) -> None:
    """Raise AclValidationError if CreateAcls must refuse this binding.

    The checks of Kafka's broker on CreateAcls, in its order: KafkaApis (the CLUSTER
    resource's only name, no empty name), the controller's AclControlManager.validateNewAcl
    (no UNKNOWN or ANY type, operation or permission, a LITERAL or PREFIXED pattern, a
    principal with a colon), and the ZooKeeper authorizer's (no `/` in a name: it would
    be a znode path). All are INVALID_REQUEST.
    """
    pattern, entry = binding.pattern, binding.entry
    if pattern.resource_type is ResourceType.CLUSTER and pattern.name != CLUSTER_NAME:
        raise AclValidationError(ErrorCode.invalid_request,
                                 f"The only valid name for the CLUSTER resource is {CLUSTER_NAME}")
    if pattern.name == "":
        raise AclValidationError(ErrorCode.invalid_request, "Invalid empty resource name")
    if pattern.resource_type in (ResourceType.UNKNOWN, ResourceType.ANY):
        raise AclValidationError(ErrorCode.invalid_request, f"Invalid resourceType {pattern.resource_type.name}")
    if not pattern.pattern_type.is_specific():
        raise AclValidationError(ErrorCode.invalid_request, f"Invalid patternType {pattern.pattern_type.name}")
    if entry.operation in (AclOperation.UNKNOWN, AclOperation.ANY):
        raise AclValidationError(ErrorCode.invalid_request, f"Invalid operation {entry.operation.name}")
    if entry.permission_type not in (AclPermissionType.ALLOW, AclPermissionType.DENY):
        raise AclValidationError(ErrorCode.invalid_request, f"Invalid permissionType {entry.permission_type.name}")
    if ":" not in entry.principal:
        raise AclValidationError(
            ErrorCode.invalid_request,
            f"Could not parse principal from `{entry.principal}` (no colon is present separating the "
            "principal type from the principal name)")
    if "/" in pattern.name:
        raise AclValidationError(ErrorCode.invalid_request,
                                 f"ACL binding contains invalid resource name: {pattern.name}")


def validate_filter(acl_filter: AclBindingFilter) -> None:
    """Raise AclValidationError if a DescribeAcls or DeleteAcls filter has an UNKNOWN field
    (a code this broker does not know): Kafka refuses such a request as INVALID_REQUEST."""
    if acl_filter.is_unknown():
        raise AclValidationError(ErrorCode.invalid_request, "Filter contains UNKNOWN elements")

"""What the ACL APIs (DescribeAcls, CreateAcls, DeleteAcls) share: filters and bindings
from their wire fields (int8 codes as in Kafka's enums), and Kafka's answers when no
authorizer is configured."""
from __future__ import annotations

from typing import Any

from moldau.authorizer.acl import (
    AccessControlEntry,
    AccessControlEntryFilter,
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    PatternType,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)

SECURITY_DISABLED_MESSAGE = "No Authorizer is configured."


def binding_filter(f: Any) -> AclBindingFilter:
    """A DescribeAcls request or a DeleteAcls filter as an AclBindingFilter."""
    return AclBindingFilter(
        ResourcePatternFilter(ResourceType.from_code(f.resource_type_filter), f.resource_name_filter,
                              PatternType.from_code(f.pattern_type_filter)),
        AccessControlEntryFilter(f.principal_filter, f.host_filter, AclOperation.from_code(f.operation),
                                 AclPermissionType.from_code(f.permission_type)))


def binding(creation: Any) -> AclBinding:
    """A CreateAcls creation as a binding; ValueError for an ANY or MATCH type in it."""
    return AclBinding(
        ResourcePattern(ResourceType.from_code(creation.resource_type), creation.resource_name,
                        PatternType.from_code(creation.resource_pattern_type)),
        AccessControlEntry(creation.principal, creation.host, AclOperation.from_code(creation.operation),
                           AclPermissionType.from_code(creation.permission_type)))

"""What CreateAcls and DeleteAcls change, decided from the ACLs known now (Kafka's
AclAuthorizer.createAcls and deleteAcls), without writing anything.

Each plan returns the answer for the request and the `AclUpdate`s to make: for each
pattern whose entries change, its new entries. The caller writes each update to ZooKeeper
(the pattern's znode set, created, or deleted when no entry is left: `store.acl_path`,
`store.encode_acls`, with the znode version as compare-and-set, re-planning on a
conflict), then creates the pattern's change notification (`store.change_notification`),
then applies the update to its own `AclAuthorizer` (`set_acls`); other brokers apply it
when they see the notification. As Kafka's deleteAcls, the caller plans a deletion from the
patterns of its cache that a filter matches plus the one pattern a filter names exactly
(`ResourcePatternFilter.matches_at_most_one`), each as read from ZooKeeper now.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from moldau.authorizer.acl import (
    AccessControlEntry,
    AclBinding,
    AclBindingFilter,
    AclValidationError,
    ResourcePattern,
    validate_new_acl,
)
from moldau.authorizer.authorizer import AclCache
from moldau.protocol.errors import ErrorCode


@dataclass(frozen=True)
class AclUpdate:
    """The entries `pattern` has after the request; none: its znode is deleted."""

    pattern: ResourcePattern
    entries: frozenset[AccessControlEntry]


@dataclass(frozen=True)
class AclCreationResult:
    error_code: ErrorCode = ErrorCode.none
    error_message: str | None = None


def plan_create_acls(current: AclCache, creations: Sequence[AclBinding]
                     ) -> tuple[list[AclCreationResult], list[AclUpdate]]:
    """One result per creation, in order, and the updates. Creating an ACL that exists
    succeeds and changes nothing."""
    results: list[AclCreationResult] = []
    added: dict[ResourcePattern, set[AccessControlEntry]] = {}
    for binding in creations:
        try:
            validate_new_acl(binding)
        except AclValidationError as refused:
            results.append(AclCreationResult(refused.error_code, refused.message))
            continue
        added.setdefault(binding.pattern, set()).add(binding.entry)
        results.append(AclCreationResult())
    updates = []
    for pattern, entries in added.items():
        before = current.get(pattern, frozenset())
        after = before | entries
        if after != before:
            updates.append(AclUpdate(pattern, after))
    return results, updates


def plan_delete_acls(current: AclCache, filters: Sequence[AclBindingFilter]
                     ) -> tuple[list[list[AclBinding]], list[AclUpdate]]:
    """For each filter, in order, the bindings it deletes (sorted; a binding several
    filters match is reported under the first of them only), and the updates."""
    deleted: list[list[AclBinding]] = [[] for _ in filters]
    updates = []
    for pattern in sorted(current):
        matching = [(index, f) for index, f in enumerate(filters) if f.pattern_filter.matches(pattern)]
        if not matching:
            continue
        entries = current[pattern]
        removed = set()
        for entry in sorted(entries):
            for index, acl_filter in matching:
                if acl_filter.entry_filter.matches(entry):
                    deleted[index].append(AclBinding(pattern, entry))
                    removed.add(entry)
                    break
        if removed:
            updates.append(AclUpdate(pattern, entries - removed))
    return [sorted(bindings) for bindings in deleted], updates

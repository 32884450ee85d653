"""The broker's ACLs: Kafka's AclAuthorizer as the broker runs it (its cache, its ZooKeeper
storage and change notifications), and the per-request decision path handlers call.

`moldau/authorizer/` decides and formats; this module does the I/O:

- At start, every pattern's znode under `/kafka-acl` and `/kafka-acl-extended/prefixed` (the
  embedded coordinator keeps the same znodes in its file) is loaded into an `AclAuthorizer`.
- CreateAcls and DeleteAcls re-read the znodes of the patterns they touch, plan the change
  (`acl_updates.py`), write each changed znode by compare-and-set together with its change
  notification (one multi-op), and apply it to this broker's cache; on a conflict with
  another broker's write they re-read and plan again. Writes on one broker are serialized.
- Every broker watches `/kafka-acl-changes` and `/kafka-acl-extended-changes`; a new
  notification names a pattern, whose znode is re-read into the cache. Notifications older
  than 15 minutes are deleted by whoever sees them.

Decisions (`authorize`) are cached per (principal, client host, operation, resource type,
name) until the next ACL change, so a produce or fetch costs one dict lookup per topic;
without `authorizer.class.name` every check is allowed at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from moldau.authorizer.acl import (
    CLUSTER_NAME,
    SUPPORTED_OPERATIONS,
    AccessControlEntry,
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclValidationError,
    PatternType,
    Resource,
    ResourcePattern,
    ResourceType,
    validate_new_acl,
)
from moldau.authorizer.acl_updates import AclCreationResult, AclUpdate, plan_create_acls, plan_delete_acls
from moldau.authorizer.authorizer import AclAuthorizer, AuthorizerConfig, client_host, operations_bitfield
from moldau.authorizer.store import (
    ACL_ROOTS,
    EXTENDED_CHANGES_ROOT,
    LITERAL_CHANGES_ROOT,
    AclStoreError,
    acl_path,
    acls_from_znodes,
    change_notification,
    decode_acls,
    decode_change_notification,
    encode_acls,
    expired_notifications,
    notifications_to_process,
    sequence_number,
)
from moldau.controller.coordination import CoordinationError

if TYPE_CHECKING:
    from moldau.controller.coordination import Coordination
    from moldau.protocol.framing import RequestHeader

log = logging.getLogger(__name__)

CHANGE_ROOTS = (LITERAL_CHANGES_ROOT, EXTENDED_CHANGES_ROOT)
_ACL_ROOTS = tuple(ACL_ROOTS[p] for p in (PatternType.LITERAL, PatternType.PREFIXED))
# Decisions kept before the cache is emptied (a client cycling through topic names must
# not grow it without bound).
MAX_CACHED_DECISIONS = 100_000
_WRITE_ATTEMPTS = 10

_DecisionKey = tuple[str, str, AclOperation, ResourceType, str]


class AclWriteConflict(CoordinationError):
    """Other writers kept changing the same ACL znodes."""


class AclManager:
    def __init__(self, config: AuthorizerConfig | None, coordination: Coordination,
                 clock: Callable[[], int]) -> None:
        self.enabled = config is not None
        self.authorizer = AclAuthorizer(config or AuthorizerConfig())
        self._coordination = coordination
        self._clock = clock
        self._decisions: dict[_DecisionKey, bool] = {}
        self._last_processed: dict[str, int | None] = {root: None for root in CHANGE_ROOTS}
        self._write_lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._processing: asyncio.Task[None] | None = None
        self._again = False

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Load the ACLs and watch for changes (only with an authorizer configured)."""
        if not self.enabled:
            return
        self._loop = asyncio.get_running_loop()
        self._write_lock = asyncio.Lock()
        # Notifications first: one written after this read is processed, whatever the load saw.
        for root in CHANGE_ROOTS:
            names = [name for name, _, _ in await asyncio.to_thread(self._coordination.acl_changes, root)]
            seqs = [sequence_number(n) for n in names if n.startswith("acl_changes_")]
            self._last_processed[root] = max(seqs) if seqs else -1
        znodes = await asyncio.to_thread(self._coordination.acl_znodes, _ACL_ROOTS)
        by_root = {root: pattern_type for pattern_type, root in ACL_ROOTS.items()}
        loaded = acls_from_znodes((by_root[root], kind, name, data) for root, kind, name, data in znodes)
        for pattern, entries in loaded.items():
            self.authorizer.set_acls(pattern, entries)
        self._invalidate()
        log.info("authorizer: %d ACL patterns loaded", len(loaded))
        self._coordination.watch_acl_changes(CHANGE_ROOTS, self._on_change_threadsafe)

    def stop(self) -> None:
        if self._processing is not None:
            self._processing.cancel()

    # --- decisions ----------------------------------------------------------------------

    def _invalidate(self) -> None:
        self._decisions.clear()

    def authorize(self, principal: str, peer_host: str, operation: AclOperation,
                  resource_type: ResourceType, name: str) -> bool:
        """May `principal`, connected from `peer_host` (the request header's client host,
        `/1.2.3.4`), do `operation` on the resource? Always True without an authorizer."""
        if not self.enabled:
            return True
        key = (principal, peer_host, operation, resource_type, name)
        decided = self._decisions.get(key)
        if decided is None:
            host = client_host(peer_host[1:] if peer_host.startswith("/") else peer_host)
            decided = self.authorizer.authorize(principal, host, operation, Resource(resource_type, name))
            if len(self._decisions) >= MAX_CACHED_DECISIONS:
                self._decisions.clear()
            self._decisions[key] = decided
        return decided

    def allowed(self, header: RequestHeader, operation: AclOperation, resource_type: ResourceType,
                name: str) -> bool:
        return self.authorize(header.principal, header.client_host, operation, resource_type, name)

    def cluster_allowed(self, header: RequestHeader, operation: AclOperation) -> bool:
        return self.authorize(header.principal, header.client_host, operation, ResourceType.CLUSTER, CLUSTER_NAME)

    def topics_allowed(self, header: RequestHeader, operation: AclOperation, names: Iterable[str]) -> set[str]:
        """The names among `names` the request's principal may do `operation` on."""
        return {name for name in names
                if self.authorize(header.principal, header.client_host, operation, ResourceType.TOPIC, name)}

    def authorized_operations(self, header: RequestHeader, resource_type: ResourceType, name: str) -> int:
        """The `*_authorized_operations` bit field: the operations of the resource's type
        the principal may do on it (all of them without an authorizer, as in Kafka)."""
        operations = SUPPORTED_OPERATIONS[resource_type]
        if self.enabled:
            operations = frozenset(op for op in operations if self.allowed(header, op, resource_type, name))
        return operations_bitfield(operations)

    def any_topic_allowed(self, header: RequestHeader, operation: AclOperation) -> bool:
        """Kafka's authorizeByResourceType (InitProducerId for an idempotent producer)."""
        if not self.enabled:
            return True
        host = client_host(header.client_host.lstrip("/"))
        return self.authorizer.authorize_by_resource_type(header.principal, host, operation, ResourceType.TOPIC)

    # --- DescribeAcls, CreateAcls, DeleteAcls ----------------------------------------------

    def describe(self, acl_filter: AclBindingFilter) -> list[AclBinding]:
        return self.authorizer.acls(acl_filter)

    def _lock(self) -> asyncio.Lock:
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        return self._write_lock

    def _read(self, patterns: Iterable[ResourcePattern]
              ) -> dict[ResourcePattern, tuple[frozenset[AccessControlEntry], int | None]]:
        """The patterns' entries and znode versions as stored now (blocking)."""
        found: dict[ResourcePattern, tuple[frozenset[AccessControlEntry], int | None]] = {}
        for pattern in patterns:
            got = self._coordination.acl_znode(acl_path(pattern))
            found[pattern] = (frozenset(), None) if got is None else (decode_acls(got[0]), got[1])
        return found

    def _write(self, updates: Sequence[AclUpdate],
               versions: dict[ResourcePattern, tuple[frozenset[AccessControlEntry], int | None]]) -> bool:
        """Write each update with its notification (blocking); False on a conflict."""
        for update in updates:
            notification = change_notification(update.pattern)
            data = encode_acls(update.entries) if update.entries else None
            if not self._coordination.write_acl_znode(acl_path(update.pattern), data, versions[update.pattern][1],
                                                      notification.path_prefix, notification.data):
                return False
        return True

    def _apply(self, current: dict[ResourcePattern, tuple[frozenset[AccessControlEntry], int | None]],
               updates: Sequence[AclUpdate]) -> None:
        for pattern, (entries, _) in current.items():
            self.authorizer.set_acls(pattern, entries)
        for update in updates:
            self.authorizer.set_acls(update.pattern, update.entries)
        self._invalidate()

    async def create(self, creations: Sequence[AclBinding]) -> list[AclCreationResult]:
        async with self._lock():
            for _ in range(_WRITE_ATTEMPTS):
                patterns = set()
                for binding in creations:
                    try:
                        validate_new_acl(binding)
                    except AclValidationError:
                        continue
                    patterns.add(binding.pattern)
                current = await asyncio.to_thread(self._read, patterns)
                results, updates = plan_create_acls({p: e for p, (e, _) in current.items()}, creations)
                if await asyncio.to_thread(self._write, updates, current):
                    self._apply(current, updates)
                    return results
        raise AclWriteConflict("CreateAcls: other writers kept changing the same ACLs")

    async def delete(self, filters: Sequence[AclBindingFilter]) -> list[list[AclBinding]]:
        async with self._lock():
            for _ in range(_WRITE_ATTEMPTS):
                patterns = [p for p in self.authorizer.snapshot() if any(f.pattern_filter.matches(p) for f in filters)]
                # As Kafka: a filter naming exactly one pattern reads it even if this broker
                # has not heard of it yet (created through another broker a moment ago).
                patterns += [ResourcePattern(f.pattern_filter.resource_type, f.pattern_filter.name or "", pattern_type)
                             for f in filters if f.pattern_filter.matches_at_most_one()
                             for pattern_type in ((PatternType.LITERAL, PatternType.PREFIXED)
                                                  if f.pattern_filter.pattern_type is PatternType.ANY
                                                  else (f.pattern_filter.pattern_type,))]
                patterns = list(dict.fromkeys(patterns))
                current = await asyncio.to_thread(self._read, patterns)
                deleted, updates = plan_delete_acls({p: e for p, (e, _) in current.items() if e}, filters)
                if await asyncio.to_thread(self._write, updates, current):
                    self._apply(current, updates)
                    return deleted
        raise AclWriteConflict("DeleteAcls: other writers kept changing the same ACLs")

    # --- change notifications -------------------------------------------------------------

    def _on_change_threadsafe(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._schedule_processing)

    def _schedule_processing(self) -> None:
        if self._processing is not None and not self._processing.done():
            self._again = True
            return
        assert self._loop is not None
        self._processing = self._loop.create_task(self._process_changes())

    async def _process_changes(self) -> None:
        while True:
            self._again = False
            try:
                await self._process_once()
            except (CoordinationError, AclStoreError) as exc:
                log.warning("ACL change notifications not processed yet: %s", exc)
                self._again = True
                await asyncio.sleep(1)
            if not self._again:
                return

    async def _process_once(self) -> None:
        for root in CHANGE_ROOTS:
            changes = await asyncio.to_thread(self._coordination.acl_changes, root)
            data = {name: value for name, value, _ in changes}
            todo = notifications_to_process(data, self._last_processed[root])
            patterns = []
            for name in todo:
                try:
                    patterns.append(decode_change_notification(root, data[name]))
                except (AclStoreError, ValueError, UnicodeDecodeError) as exc:
                    log.warning("ignoring ACL change notification %s/%s: %s", root, name, exc)
            if patterns:
                current = await asyncio.to_thread(self._read, dict.fromkeys(patterns))
                for pattern, (entries, _) in current.items():
                    self.authorizer.set_acls(pattern, entries)
                self._invalidate()
                log.info("ACLs reloaded for %s", ", ".join(str(p) for p in current))
            if todo:
                self._last_processed[root] = sequence_number(todo[-1])
            expired = expired_notifications({name: ctime for name, _, ctime in changes}, self._clock())
            if expired:
                await asyncio.to_thread(self._coordination.delete_acl_changes, root, expired)

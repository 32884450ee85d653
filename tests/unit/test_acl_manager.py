"""The broker's ACL manager over a real (embedded) coordination store: what two brokers
see when only one of them has heard of an ACL."""

from __future__ import annotations

import asyncio
from pathlib import Path

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
from moldau.authorizer.authorizer import AuthorizerConfig
from moldau.controller.embedded_coordination import EmbeddedCoordination
from moldau.server.acl_manager import AclManager

READ = AccessControlEntry("User:alice", "*", AclOperation.READ, AclPermissionType.ALLOW)
ORDERS = ResourcePattern(ResourceType.TOPIC, "orders", PatternType.LITERAL)


def test_an_exact_delete_finds_an_acl_this_broker_has_not_heard_of(tmp_path: Path) -> None:
    store = EmbeddedCoordination(tmp_path)  # keeps no change notifications: nothing propagates
    store.start()

    async def run() -> None:
        writer = AclManager(AuthorizerConfig(), store, lambda: 0)
        other = AclManager(AuthorizerConfig(), store, lambda: 0)
        await writer.start()
        await other.start()
        assert [r.error_code for r in await writer.create([AclBinding(ORDERS, READ)])] == [0]
        assert other.describe(AclBindingFilter(ORDERS.to_filter(), READ.to_filter())) == []
        # A filter that names one pattern (type, name, pattern type) is read from the store.
        exact = AclBindingFilter(ResourcePatternFilter(ResourceType.TOPIC, "orders", PatternType.ANY),
                                 AccessControlEntryFilter(None, None, AclOperation.ANY, AclPermissionType.ANY))
        assert await other.delete([exact]) == [[AclBinding(ORDERS, READ)]]
        assert store.acl_znode("/kafka-acl/Topic/orders") is None
        # A filter that could match many is planned from the cache only (Kafka's rule).
        await writer.create([AclBinding(ORDERS, READ)])
        broad = AclBindingFilter(ResourcePatternFilter(ResourceType.ANY, None, PatternType.ANY), exact.entry_filter)
        assert await AclManager(AuthorizerConfig(), store, lambda: 0).delete([broad]) == [[]]

    try:
        asyncio.run(run())
    finally:
        store.close()

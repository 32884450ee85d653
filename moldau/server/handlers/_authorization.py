"""Authorization checks the dispatcher makes before a handler runs, for the APIs whose
first check refuses the whole request (`authorizer/operations.py`): one operation on the
cluster (the inter-broker APIs need ClusterAction, the admin ones Alter or Describe), or
Read/Delete on the request's group (JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
OffsetDelete). A denied request gets the API's response with its top-level error code
set to CLUSTER_AUTHORIZATION_FAILED or GROUP_AUTHORIZATION_FAILED and nothing else in
it, as Kafka's getErrorResponse gives. Checks on the items of a request are the
handlers' (Produce, Fetch, Metadata, ...)."""
from __future__ import annotations

import dataclasses
from typing import Any

from moldau.authorizer.acl import AclOperation, ResourceType
from moldau.authorizer.operations import API_ACL_CHECKS, OnDenial, Target
from moldau.protocol.apis import ApiKey, response_type
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE

# Checked in their handlers: the answer to a denial is per item, or SECURITY_DISABLED.
_HANDLER_CHECKED = frozenset({
    ApiKey.ALTER_USER_SCRAM_CREDENTIALS, ApiKey.DESCRIBE_ACLS, ApiKey.CREATE_ACLS, ApiKey.DELETE_ACLS})

CLUSTER_ONLY: dict[int, AclOperation] = {
    key: checks[0].operation
    for key, checks in API_ACL_CHECKS.items()
    if key not in _HANDLER_CHECKED and len(checks) == 1 and checks[0].target is Target.CLUSTER
    and checks[0].on_denial is OnDenial.REQUEST
}

GROUP_FIRST: dict[int, AclOperation] = {
    key: checks[0].operation
    for key, checks in API_ACL_CHECKS.items()
    if checks and checks[0].target is Target.GROUP and checks[0].on_denial is OnDenial.REQUEST
    # Answered per partition (OffsetCommit) or per group (OffsetFetch v8+) by their handlers.
    and key not in (ApiKey.OFFSET_COMMIT, ApiKey.OFFSET_FETCH)
}


def error_response(api_key: int, api_version: int, error: ErrorCode) -> Any:
    """The API's response with every top-level error code set to `error`, lists empty,
    strings null (or empty when not nullable), numbers 0."""
    cls = response_type(api_key, api_version)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
            continue
        kind = f.metadata.get("kafka_type")
        if kind == "error_code":
            values[f.name] = error
        elif kind == "timedelta_i32":
            values[f.name] = NO_THROTTLE
        elif kind == "string":
            values[f.name] = None if "None" in str(f.type) else ""
        elif kind == "bytes":
            values[f.name] = None if "None" in str(f.type) else b""
        elif kind == "bool":
            values[f.name] = False
        elif kind is None or str(f.type).startswith("tuple"):
            values[f.name] = ()
        else:
            values[f.name] = 0
    return cls(**values)


def refused(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any | None:
    """The error response when the request's principal lacks the permission its API needs first."""
    operation = CLUSTER_ONLY.get(header.api_key)
    if operation is not None:
        if ctx.acls.cluster_allowed(header, operation):
            return None
        return error_response(header.api_key, header.api_version, ErrorCode.cluster_authorization_failed)
    operation = GROUP_FIRST.get(header.api_key)
    if operation is None or ctx.acls.allowed(header, operation, ResourceType.GROUP, request.group_id):
        return None
    return error_response(header.api_key, header.api_version, ErrorCode.group_authorization_failed)

"""The error responses the dispatcher sends for a request refused before its handler
(server/handlers/_authorization.py): every version of every such API encodes, with the
error in its top-level error code."""
from __future__ import annotations

import pytest

from moldau.authorizer.acl import AclOperation
from moldau.protocol.apis import SUPPORTED_VERSIONS, ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import encode_response
from moldau.server.handlers._authorization import CLUSTER_ONLY, GROUP_FIRST, error_response

CASES = [(key, version) for key in sorted({*CLUSTER_ONLY, *GROUP_FIRST})
         for version in range(SUPPORTED_VERSIONS[key][0], SUPPORTED_VERSIONS[key][1] + 1)]


@pytest.mark.parametrize(("key", "version"), CASES, ids=[f"{ApiKey(k).name}-v{v}" for k, v in CASES])
def test_error_responses_encode(key: int, version: int) -> None:
    response = error_response(key, version, ErrorCode.cluster_authorization_failed)
    assert encode_response(key, version, 7, response)
    if hasattr(response, "error_code"):
        assert response.error_code == ErrorCode.cluster_authorization_failed


def test_which_apis_are_checked_first() -> None:
    assert CLUSTER_ONLY[ApiKey.LEADER_AND_ISR] is AclOperation.CLUSTER_ACTION
    assert CLUSTER_ONLY[ApiKey.ALTER_PARTITION] is AclOperation.CLUSTER_ACTION
    assert CLUSTER_ONLY[ApiKey.LIST_PARTITION_REASSIGNMENTS] is AclOperation.DESCRIBE
    assert ApiKey.CREATE_ACLS not in CLUSTER_ONLY and ApiKey.ALTER_USER_SCRAM_CREDENTIALS not in CLUSTER_ONLY
    assert GROUP_FIRST == {ApiKey.JOIN_GROUP: AclOperation.READ, ApiKey.SYNC_GROUP: AclOperation.READ,
                           ApiKey.HEARTBEAT: AclOperation.READ, ApiKey.LEAVE_GROUP: AclOperation.READ,
                           ApiKey.OFFSET_DELETE: AclOperation.DELETE}

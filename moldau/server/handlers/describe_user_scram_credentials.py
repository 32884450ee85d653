"""DescribeUserScramCredentials (KIP-554): which SCRAM mechanisms, with how many
iterations, each user has; never the credentials themselves."""
from __future__ import annotations

import asyncio
from typing import Any

from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.errors import TopicError
from moldau.server.handlers._common import NO_THROTTLE, response_types
from moldau.server.security.scram import MECHANISMS, ScramCredential


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS, header.api_version)
    try:
        users = await asyncio.to_thread(ctx.admin.scram_users)
    except TopicError as exc:
        return build(t.DescribeUserScramCredentialsResponse, throttle_time=NO_THROTTLE, error_code=exc.code,
                     error_message=exc.message, results=())
    requested = [u.name for u in request.users] if request.users else sorted(users)
    results = []
    for name in dict.fromkeys(requested):
        code, message, infos = ErrorCode.none, None, ()
        if requested.count(name) > 1:
            code, message = (ErrorCode.duplicate_resource,
                             "Cannot describe SCRAM credentials for the same user twice in a single request")
        elif name not in users:
            code, message = ErrorCode.resource_not_found, "Attempt to describe a user credential that does not exist"
        else:
            infos = tuple(
                build(t.CredentialInfo, mechanism=MECHANISMS[mech].type_id,
                      iterations=ScramCredential.from_kafka(text).iterations)
                for mech, text in sorted(users[name].items()) if mech in MECHANISMS)
        results.append(build(t.DescribeUserScramCredentialsResult, user=name, error_code=code,
                             error_message=message, credential_infos=infos))
    return build(t.DescribeUserScramCredentialsResponse, throttle_time=NO_THROTTLE, error_code=ErrorCode.none,
                 error_message=None, results=tuple(results))

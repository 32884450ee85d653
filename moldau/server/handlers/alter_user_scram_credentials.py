"""AlterUserScramCredentials (KIP-554): add, replace or delete users' SCRAM credentials.

The client sends the salt and SaltedPassword (never the password); the broker derives
StoredKey and ServerKey and stores Kafka's credential string where Kafka does
(/config/users/<user>, or the embedded coordinator's file). One result per user; a user
whose alterations are invalid gets its error and none of them is applied.
"""
from __future__ import annotations

import asyncio
from typing import Any

from moldau.authorizer.acl import AclOperation
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.errors import TopicError
from moldau.server.handlers._common import NO_THROTTLE, response_types
from moldau.server.security.scram import BY_TYPE, ScramCredential

UserError = tuple[ErrorCode, str]


def check_alterations(request: Any) -> dict[str, UserError | None]:
    """Kafka's validation, per user: None when its alterations may be applied."""
    errors: dict[str, UserError | None] = {}
    seen: set[tuple[str, int]] = set()
    alterations = [(d.name, d.mechanism, None) for d in request.deletions] + \
        [(u.name, u.mechanism, u.iterations) for u in request.upsertions]
    for name, mechanism, iterations in alterations:
        if errors.get(name) is not None:
            continue
        errors[name] = None
        mech = BY_TYPE.get(mechanism)
        if not name:
            errors[name] = (ErrorCode.unacceptable_credential, "Username must not be empty")
        elif mech is None:
            errors[name] = (ErrorCode.unsupported_sasl_mechanism, "Unknown SCRAM mechanism")
        elif (name, mechanism) in seen:
            errors[name] = (ErrorCode.duplicate_resource,
                            "A user credential cannot be altered twice in the same request")
        elif iterations is not None and iterations < mech.min_iterations:
            errors[name] = (ErrorCode.unacceptable_credential, "Too few iterations")
        elif iterations is not None and iterations > mech.max_iterations:
            errors[name] = (ErrorCode.unacceptable_credential, "Too many iterations")
        seen.add((name, mechanism))
    return errors


def _apply(ctx: HandlerContext, request: Any, errors: dict[str, UserError | None]) -> dict[str, UserError | None]:
    results = dict(errors)
    for name, error in errors.items():
        if error is not None:
            continue
        try:
            results[name] = _apply_user(ctx, request, name)
        except TopicError as exc:  # the coordination service failed
            results[name] = (exc.code, exc.message)
    return results


def _apply_user(ctx: HandlerContext, request: Any, name: str) -> UserError | None:
    credentials = ctx.admin.scram_credentials(name)
    for d in request.deletions:
        if d.name == name:
            mech = BY_TYPE[d.mechanism].name
            if mech not in credentials:
                return ErrorCode.resource_not_found, "Attempt to delete a user credential that does not exist"
            del credentials[mech]
    for u in request.upsertions:
        if u.name == name:
            mech = BY_TYPE[u.mechanism]
            credential = ScramCredential.from_salted_password(mech, bytes(u.salted_password), bytes(u.salt),
                                                              u.iterations)
            credentials[mech.name] = credential.to_kafka()
    ctx.admin.set_scram_credentials(name, credentials)
    return None


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.ALTER_USER_SCRAM_CREDENTIALS, header.api_version)
    if not ctx.acls.cluster_allowed(header, AclOperation.ALTER):  # Alter on the cluster, per user
        names = dict.fromkeys([d.name for d in request.deletions] + [u.name for u in request.upsertions])
        results: dict[str, UserError | None] = {
            name: (ErrorCode.cluster_authorization_failed, "Cluster authorization failed.") for name in names}
    else:
        results = await asyncio.to_thread(_apply, ctx, request, check_alterations(request))
    return build(t.AlterUserScramCredentialsResponse, throttle_time=NO_THROTTLE, results=tuple(
        build(t.AlterUserScramCredentialsResult, user=name, error_code=error[0] if error else ErrorCode.none,
              error_message=error[1] if error else None)
        for name, error in results.items()))

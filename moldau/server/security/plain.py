"""SASL/PLAIN (RFC 4616) against the users of the listener's PlainLoginModule, with the
messages of Kafka's `PlainSaslServer`. The token is `[authzid] NUL username NUL password`."""

from __future__ import annotations

import hmac

from moldau.server.security.errors import SaslAuthenticationError, SaslError

INVALID = "Authentication failed: Invalid username or password"


def authenticate_plain(token: bytes, users: dict[str, str]) -> str:
    """The authenticated username, or SaslAuthenticationError (message for the client) /
    SaslError (details only for the log) when refused."""
    parts = token.decode("utf-8", "replace").split("\x00")
    if len(parts) != 3:
        raise SaslError(f"Invalid SASL/PLAIN response: expected 3 tokens, got {len(parts)}")
    authzid, username, password = parts
    if not username:
        raise SaslAuthenticationError("Authentication failed: username not specified")
    if not password:
        raise SaslAuthenticationError("Authentication failed: password not specified")
    expected = users.get(username)
    # Compare even for unknown users, so the answer takes as long either way.
    ok = hmac.compare_digest((expected or "\x00" + password).encode(), password.encode())
    if expected is None or not ok:
        raise SaslAuthenticationError(INVALID)
    if authzid and authzid != username:
        raise SaslAuthenticationError(
            "Authentication failed: Client requested an authorization id that is different from username")
    return username

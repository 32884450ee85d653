"""SASL OAUTHBEARER (RFC 7628, KIP-255) with unsecured JWS tokens, the server side of
Kafka's default (OAuthBearerUnsecuredValidatorCallbackHandler): for development, not for
production, as in Kafka.

The client's one message is a GS2 header and key/value pairs separated by 0x01:

    n,a=alice,\\x01auth=Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSIsImV4cCI6...\\x01\\x01

The token is an unsecured JWS: base64url(header) "." base64url(claims) "." (no signature),
the header's `alg` is `none`. The principal is the `sub` claim; `exp` (seconds since the
epoch, required) must not have passed (`iat`, if present, not be in the future), within
`unsecuredValidatorAllowableClockSkewMs`; `unsecuredValidatorRequiredScope` lists scopes
the token's `scope` claim must hold. An authorization id (`a=`), if given, must be the
principal. Pure: the time is passed in.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from moldau.server.security.errors import SaslAuthenticationError

OAUTHBEARER = "OAUTHBEARER"
OAUTHBEARER_LOGIN_MODULE = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"


@dataclass(frozen=True)
class UnsecuredValidator:
    principal_claim: str = "sub"
    scope_claim: str = "scope"
    required_scope: tuple[str, ...] = ()
    allowable_clock_skew_ms: int = 0

    @classmethod
    def from_jaas_options(cls, options: dict[str, str]) -> UnsecuredValidator:
        """From the OAuthBearerLoginModule's options (Kafka's names); ValueError if bad."""
        skew = options.get("unsecuredValidatorAllowableClockSkewMs", "0")
        if not skew.isdigit():
            raise ValueError(f"unsecuredValidatorAllowableClockSkewMs={skew!r}: not a non-negative number")
        return cls(options.get("unsecuredValidatorPrincipalClaimName", "sub"),
                   options.get("unsecuredValidatorScopeClaimName", "scope"),
                   tuple(options.get("unsecuredValidatorRequiredScope", "").split()), int(skew))


@dataclass(frozen=True)
class OAuthBearerToken:
    principal: str
    expires_ms: int


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _claims(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    parts = token.split(".")
    if len(parts) != 3 or parts[2]:
        raise SaslAuthenticationError("invalid_token: not an unsecured JWS (header.claims.)")
    try:
        header, claims = json.loads(_b64url(parts[0])), json.loads(_b64url(parts[1]))
    except (ValueError, UnicodeDecodeError) as exc:
        raise SaslAuthenticationError(f"invalid_token: {exc}") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise SaslAuthenticationError("invalid_token: the JOSE header and claims must be JSON objects")
    return header, claims


def validate(token: str, validator: UnsecuredValidator, now_ms: int) -> OAuthBearerToken:
    header, claims = _claims(token)
    if header.get("alg") != "none":
        raise SaslAuthenticationError(f"invalid_token: unsecured JWS needs alg none, not {header.get('alg')!r}")
    principal = claims.get(validator.principal_claim)
    if not isinstance(principal, str) or not principal:
        raise SaslAuthenticationError(f"invalid_token: no {validator.principal_claim} claim")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise SaslAuthenticationError("invalid_token: no numeric exp claim")
    skew = validator.allowable_clock_skew_ms
    if exp * 1000 + skew <= now_ms:
        raise SaslAuthenticationError("invalid_token: the token has expired")
    iat = claims.get("iat")
    if isinstance(iat, int | float) and not isinstance(iat, bool) and iat * 1000 - skew > now_ms:
        raise SaslAuthenticationError("invalid_token: the token was issued in the future")
    if validator.required_scope:
        scope = claims.get(validator.scope_claim, [])
        granted = set(scope.split() if isinstance(scope, str) else scope if isinstance(scope, list) else [])
        missing = [s for s in validator.required_scope if s not in granted]
        if missing:
            raise SaslAuthenticationError(f"insufficient_scope: the token lacks {', '.join(missing)}")
    return OAuthBearerToken(principal, int(exp * 1000))


def parse_client_message(message: bytes) -> tuple[str | None, str]:
    """(authorization id or None, bearer token) of the client's initial response."""
    try:
        text = message.decode()
    except UnicodeDecodeError:
        raise SaslAuthenticationError("Invalid OAUTHBEARER client first message: not UTF-8") from None
    gs2, sep, rest = text.partition(",\x01")
    if not sep or not rest.endswith("\x01\x01") or not gs2.startswith(("n,", "y,")):
        raise SaslAuthenticationError("Invalid OAUTHBEARER client first message")
    flag, _, authzid = gs2.partition(",")
    authorization_id = authzid[2:] if authzid.startswith("a=") else None
    pairs = dict(kv.partition("=")[::2] for kv in rest[:-2].split("\x01") if kv)
    auth = pairs.get("auth", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise SaslAuthenticationError("Invalid OAUTHBEARER client first message: no auth=Bearer <token>")
    return authorization_id, token.strip()


def authenticate(message: bytes, validator: UnsecuredValidator, now_ms: int) -> OAuthBearerToken:
    authorization_id, token = parse_client_message(message)
    found = validate(token, validator, now_ms)
    check_authorization_id(authorization_id, found.principal)
    return found


def check_authorization_id(authorization_id: str | None, principal: str) -> None:
    """An authorization id (`a=`), if the client gave one, must be the token's principal."""
    if authorization_id and authorization_id != principal:
        raise SaslAuthenticationError(
            f"Authentication failed: Client requested an authorization id ({authorization_id}) that is different "
            f"from the token's principal name ({principal})")


# --- the client side: a broker logging in to the others -----------------------------------


def unsecured_token(options: dict[str, str], now_ms: int) -> str:
    """The unsecured token a client builds from its OAuthBearerLoginModule options (Kafka's
    OAuthBearerUnsecuredLoginCallbackHandler): `unsecuredLoginStringClaim_<name>`,
    `unsecuredLoginNumberClaim_<name>`, `unsecuredLoginListClaim_<name>` (the value's first
    character separates its items: ",read,write"), valid for
    `unsecuredLoginLifetimeSeconds` (3600) from ``now_ms``. ValueError for a bad option."""
    claims: dict[str, Any] = {}
    for key, value in options.items():
        kind, found, name = key.partition("Claim_")
        if not found or not name:
            continue
        if kind == "unsecuredLoginString":
            claims[name] = value
        elif kind == "unsecuredLoginNumber":
            try:
                claims[name] = float(value) if "." in value else int(value)
            except ValueError:
                raise ValueError(f"{key}={value!r}: not a number") from None
        elif kind == "unsecuredLoginList":
            claims[name] = [item for item in value[1:].split(value[0]) if item] if value else []
    lifetime = options.get("unsecuredLoginLifetimeSeconds", "3600")
    if not lifetime.isdigit():
        raise ValueError(f"unsecuredLoginLifetimeSeconds={lifetime!r}: not a number of seconds")
    claims["iat"] = now_ms / 1000
    claims["exp"] = now_ms / 1000 + int(lifetime)

    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}."


def client_first_message(token: str) -> bytes:
    """RFC 7628's initial client response, with no authorization id."""
    return f"n,,\x01auth=Bearer {token}\x01\x01".encode()

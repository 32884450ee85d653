"""Signed OAUTHBEARER tokens: JWS signatures checked with an OIDC issuer's JSON Web Key Set,
and the claims Kafka's broker checks (its OAuthBearerValidatorCallbackHandler with
BrokerJwtValidator, KIP-768). Pure: the keys and the time are passed in; fetching the
key set is `jwks.py`'s business.

A token is a JWS in compact form (RFC 7515): three base64url parts,

    base64url(JOSE header) "." base64url(claims) "." base64url(signature)

signed over the ASCII bytes of the first two parts and the dot between them. The header's
`alg` says how: RS256/384/512 (RSASSA-PKCS1-v1_5), PS256/384/512 (RSASSA-PSS, salt as long
as the hash) or ES256/384/512 (ECDSA on P-256/P-384/P-521; the signature is r || s, each
as long as the curve's coordinates, not DER). `none` and the HMAC algorithms (HS*) are
refused: a broker holds no shared secret, and an HS256 token "signed" with a public key
is a known forgery. The header's `kid` picks the key from the set (RFC 7517); a token
with no `kid` is tried against every key of its algorithm's type.

The claims, as Kafka checks them (jose4j's defaults, Kafka's settings):

- `exp` (seconds since the epoch) is required and must not have passed, `iat` is
  required and must not be in the future, `nbf`, if present, must have passed; each
  within `sasl.oauthbearer.clock.skew.seconds`;
- `sasl.oauthbearer.expected.issuer`, when set, must equal `iss`;
- `sasl.oauthbearer.expected.audience`, when set, must share a value with `aud` (a
  string or a list);
- the claim named by `sasl.oauthbearer.sub.claim.name` (`sub`) must be a non-empty
  string: the principal;
- the claim named by `sasl.oauthbearer.scope.claim.name` (`scope`) is read, a
  space-separated string or a list of strings (Kafka takes a string as one scope; we
  split it as RFC 8693 writes scopes).

Every refusal is a `SaslAuthenticationError` whose message starts with `invalid_token`,
RFC 6750's error code, which the client sees; an unknown `kid` is the subclass
`UnknownKeyIdError`, so that the caller may refresh the key set and try again.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from moldau.server.security.errors import SaslAuthenticationError

log = logging.getLogger(__name__)

# JWS algorithm -> (key type, hash). RFC 7518 section 3.1.
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
_CURVES: dict[str, tuple[type[ec.EllipticCurve], int]] = {  # crv -> (curve, coordinate bytes)
    "P-256": (ec.SECP256R1, 32), "P-384": (ec.SECP384R1, 48), "P-521": (ec.SECP521R1, 66)}
_ES_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
MIN_RSA_BITS = 2048  # jose4j refuses smaller RSA keys
MAX_KEY_ID_LENGTH = 1000  # Kafka's RefreshingHttpsJwks ignores longer ids


class UnknownKeyIdError(SaslAuthenticationError):
    """The token names a `kid` that the key set does not hold (yet)."""

    def __init__(self, kid: str) -> None:
        shown = kid if len(kid) <= 64 else kid[:64] + "..."
        super().__init__(f"invalid_token: no key with kid {shown!r} in the JWKS")
        self.kid = kid


@dataclass(frozen=True)
class JsonWebKey:
    """One verification key of a JWK set: an RSA or EC public key."""

    kid: str | None
    kty: str  # RSA or EC
    alg: str | None  # the algorithm the key is for, when the set says
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    crv: str | None = None  # EC keys


@dataclass(frozen=True)
class JwtValidatorSettings:
    """The sasl.oauthbearer.* settings of one listener (Kafka's names and defaults)."""

    expected_audience: tuple[str, ...] = ()
    expected_issuer: str | None = None
    sub_claim_name: str = "sub"
    scope_claim_name: str = "scope"
    clock_skew_seconds: int = 30


@dataclass(frozen=True)
class ValidatedToken:
    principal: str
    expires_ms: int
    issued_at_ms: int
    scopes: frozenset[str]


# --- the key set ------------------------------------------------------------------------


def _b64url_int(value: object, what: str) -> int:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} is missing")
    return int.from_bytes(_b64url(value), "big")


def parse_jwk(doc: Mapping[str, Any]) -> JsonWebKey | None:
    """A verification key from one JWK (RFC 7517/7518), None for a key Moldau does not
    verify with (another type, `use` other than sig); ValueError for a broken one."""
    kty, kid, alg = doc.get("kty"), doc.get("kid"), doc.get("alg")
    if doc.get("use") not in (None, "sig"):
        return None
    if kid is not None and not isinstance(kid, str):
        raise ValueError("kid is not a string")
    if alg is not None and alg not in SIGNING_ALGORITHMS:
        return None  # e.g. an encryption key, or an HMAC one
    if kty == "RSA":
        numbers = rsa.RSAPublicNumbers(_b64url_int(doc.get("e"), "RSA e"), _b64url_int(doc.get("n"), "RSA n"))
        key = numbers.public_key()
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"RSA key of {key.key_size} bits: at least {MIN_RSA_BITS} are required")
        return JsonWebKey(kid, "RSA", alg, key)
    if kty == "EC":
        crv = doc.get("crv")
        if crv not in _CURVES:
            raise ValueError(f"EC curve {crv!r} is not one of {', '.join(_CURVES)}")
        curve, _size = _CURVES[crv]
        ec_key = ec.EllipticCurvePublicNumbers(
            _b64url_int(doc.get("x"), "EC x"), _b64url_int(doc.get("y"), "EC y"), curve()).public_key()
        return JsonWebKey(kid, "EC", alg, ec_key, crv)
    return None  # oct (HMAC secrets), OKP: not verification keys here


def parse_jwks(document: bytes) -> tuple[JsonWebKey, ...]:
    """The verification keys of a JWK set document ({"keys": [...]}); ValueError if it is
    not one. A key that cannot be used is logged and left out, as jose4j does."""
    try:
        doc = json.loads(document)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise ValueError('not a JWK set: no "keys" list')
    keys: list[JsonWebKey] = []
    for entry in doc["keys"]:
        if not isinstance(entry, dict):
            raise ValueError("a key of the set is not a JSON object")
        try:
            key = parse_jwk(entry)
        except (ValueError, TypeError, binascii.Error) as exc:
            log.warning("JWKS: key %r left out: %s", entry.get("kid"), exc)
            continue
        if key is not None:
            keys.append(key)
    return tuple(keys)


# --- the token --------------------------------------------------------------------------


def _b64url(part: str) -> bytes:
    if any(c in part for c in "+/= \t\r\n"):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _json_object(part: str, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(_b64url(part))
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise SaslAuthenticationError(f"invalid_token: the {what} is not base64url-encoded JSON") from None
    if not isinstance(doc, dict):
        raise SaslAuthenticationError(f"invalid_token: the {what} is not a JSON object")
    return doc


def _key_fits(key: JsonWebKey, alg: str) -> bool:
    if key.alg is not None and key.alg != alg:
        return False
    if alg[:2] in ("RS", "PS"):
        return key.kty == "RSA"
    return key.kty == "EC" and key.crv == _ES_CURVES[alg]


def _verify(key: JsonWebKey, alg: str, signing_input: bytes, signature: bytes) -> bool:
    hash_alg = _HASHES[alg[2:]]()
    try:
        if alg[:2] in ("RS", "PS"):
            assert isinstance(key.public_key, rsa.RSAPublicKey)
            pad: padding.AsymmetricPadding = (
                padding.PKCS1v15() if alg[:2] == "RS"
                else padding.PSS(mgf=padding.MGF1(hash_alg), salt_length=hash_alg.digest_size))
            key.public_key.verify(signature, signing_input, pad, hash_alg)
            return True
        assert isinstance(key.public_key, ec.EllipticCurvePublicKey) and key.crv is not None
        size = _CURVES[key.crv][1]
        if len(signature) != 2 * size:  # JWS ECDSA signatures are r || s, fixed length
            return False
        r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
        key.public_key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hash_alg))
        return True
    except InvalidSignature:
        return False


def _numeric_date(claims: Mapping[str, Any], name: str, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise SaslAuthenticationError(f"invalid_token: no {name} claim")
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise SaslAuthenticationError(f"invalid_token: the {name} claim is not a number")
    return float(value)


def _scopes(value: object, name: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    items: Iterable[object] = value.split() if isinstance(value, str) else value if isinstance(value, list) else [value]
    scopes = set()
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise SaslAuthenticationError(f"invalid_token: the {name} claim holds something other than scopes")
        scopes.add(item.strip())
    return frozenset(scopes)


def validate_jwt(token: str, keys: Iterable[JsonWebKey], settings: JwtValidatorSettings,
                 now_ms: int) -> ValidatedToken:
    """Check a signed token against the key set and the settings at time ``now_ms``."""
    parts = token.split(".")
    if len(parts) != 3:
        raise SaslAuthenticationError("invalid_token: not a JWS in compact form (header.claims.signature)")
    header = _json_object(parts[0], "JOSE header")
    alg = header.get("alg")
    if alg not in SIGNING_ALGORITHMS:
        raise SaslAuthenticationError(
            f"invalid_token: alg {alg!r} is not accepted (use one of {', '.join(SIGNING_ALGORITHMS)})")
    if header.get("crit") is not None:
        raise SaslAuthenticationError("invalid_token: critical header parameters are not supported")
    kid = header.get("kid")
    if kid is not None and (not isinstance(kid, str) or len(kid) > MAX_KEY_ID_LENGTH):
        raise SaslAuthenticationError("invalid_token: kid is not a string of at most 1000 characters")
    try:
        signature = _b64url(parts[2])
    except (ValueError, binascii.Error):
        raise SaslAuthenticationError("invalid_token: the signature is not base64url") from None
    candidates = [k for k in keys if (kid is None or k.kid == kid)]
    if kid is not None and not candidates:
        raise UnknownKeyIdError(kid)
    candidates = [k for k in candidates if _key_fits(k, alg)]
    if not candidates:
        raise SaslAuthenticationError(f"invalid_token: no {alg} key"
                                      f"{f' with kid {kid!r}' if kid is not None else ''} in the JWKS")
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii", "replace")
    if not any(_verify(k, alg, signing_input, signature) for k in candidates):
        raise SaslAuthenticationError("invalid_token: the signature does not verify")
    claims = _json_object(parts[1], "claims set")
    return check_claims(claims, settings, now_ms)


def check_claims(claims: Mapping[str, Any], settings: JwtValidatorSettings, now_ms: int) -> ValidatedToken:
    """The claims of a token whose signature verified."""
    now, skew = now_ms / 1000, settings.clock_skew_seconds
    exp = _numeric_date(claims, "exp", required=True)
    iat = _numeric_date(claims, "iat", required=True)
    nbf = _numeric_date(claims, "nbf", required=False)
    assert exp is not None and iat is not None
    if exp + skew <= now:
        raise SaslAuthenticationError(f"invalid_token: the token expired at {exp:.0f} (now {now:.0f}, "
                                      f"clock skew {skew} s)")
    if iat - skew > now:
        raise SaslAuthenticationError(f"invalid_token: the token was issued in the future ({iat:.0f}, "
                                      f"now {now:.0f}, clock skew {skew} s)")
    if nbf is not None and nbf - skew > now:
        raise SaslAuthenticationError(f"invalid_token: the token is not valid before {nbf:.0f} (now {now:.0f})")
    if settings.expected_issuer is not None and claims.get("iss") != settings.expected_issuer:
        raise SaslAuthenticationError(f"invalid_token: issuer {claims.get('iss')!r} is not the expected "
                                      f"{settings.expected_issuer!r}")
    if settings.expected_audience:
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if not any(a in settings.expected_audience for a in audiences if isinstance(a, str)):
            raise SaslAuthenticationError(f"invalid_token: audience {aud!r} is none of the expected "
                                          f"{', '.join(settings.expected_audience)}")
    name = settings.sub_claim_name
    sub = claims.get(name)
    if not isinstance(sub, str) or not sub.strip():
        raise SaslAuthenticationError(f"invalid_token: no {name} claim (the principal)")
    return ValidatedToken(sub.strip(), int(exp * 1000), int(iat * 1000),
                          _scopes(claims.get(settings.scope_claim_name), settings.scope_claim_name))

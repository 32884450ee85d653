"""Signed OAUTHBEARER tokens (KIP-768): JWS signatures against a JWK set, and the claims
Kafka's broker checks. No broker, no network: keys and time are passed in."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from moldau.server.security.errors import SaslAuthenticationError
from moldau.server.security.jwks import JwksSettings, RefreshingJwks
from moldau.server.security.jwt_validator import (
    JsonWebKey,
    JwtValidatorSettings,
    UnknownKeyIdError,
    parse_jwks,
    validate_jwt,
)
from tests.oidc import SigningKey, b64url, jwks

NOW = 1_800_000_000  # seconds
NOW_MS = NOW * 1000
RS = SigningKey("rs-1", "RS256")
SETTINGS = JwtValidatorSettings(expected_audience=("moldau",), expected_issuer="https://issuer.test")


def claims(**changes: Any) -> dict[str, Any]:
    base = {"iss": "https://issuer.test", "aud": "moldau", "sub": "alice", "iat": NOW - 10, "exp": NOW + 600,
            "scope": "kafka produce"}
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


def keys(*signing: SigningKey) -> tuple[JsonWebKey, ...]:
    return parse_jwks(jwks(*signing))


def test_a_good_token_names_the_principal_its_expiry_and_scopes() -> None:
    found = validate_jwt(RS.sign(claims()), keys(RS), SETTINGS, NOW_MS)
    assert (found.principal, found.expires_ms, found.issued_at_ms) == ("alice", (NOW + 600) * 1000, (NOW - 10) * 1000)
    assert found.scopes == {"kafka", "produce"}
    # the audience may be a list; without expectations, iss and aud are not looked at
    assert validate_jwt(RS.sign(claims(aud=["other", "moldau"])), keys(RS), SETTINGS, NOW_MS).principal == "alice"
    assert validate_jwt(RS.sign(claims(iss=None, aud=None)), keys(RS), JwtValidatorSettings(), NOW_MS)
    # another claim names the principal, and scopes may be a list
    other = JwtValidatorSettings(sub_claim_name="client_id", scope_claim_name="scp")
    found = validate_jwt(RS.sign(claims(client_id="svc-7", scp=["a", "b"])), keys(RS), other, NOW_MS)
    assert found.principal == "svc-7" and found.scopes == {"a", "b"}


@pytest.mark.parametrize("alg", ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"])
def test_every_signing_algorithm(alg: str) -> None:
    key = SigningKey(f"k-{alg}", alg)
    assert validate_jwt(key.sign(claims()), keys(key), SETTINGS, NOW_MS).principal == "alice"
    forged = SigningKey(f"k-{alg}", alg)  # same kid, another private key
    with pytest.raises(SaslAuthenticationError, match="invalid_token: the signature does not verify"):
        validate_jwt(forged.sign(claims()), keys(key), SETTINGS, NOW_MS)


def test_a_token_without_kid_is_tried_against_the_keys_of_its_type() -> None:
    header = b64url(json.dumps({"alg": "RS256"}).encode())
    body = b64url(json.dumps(claims()).encode())
    signature = RS.private.sign(f"{header}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    token = f"{header}.{body}.{b64url(signature)}"
    assert validate_jwt(token, keys(SigningKey("es", "ES256"), SigningKey("rs-0"), RS), SETTINGS, NOW_MS)


@pytest.mark.parametrize(("token_claims", "error"), [
    (claims(exp=NOW - 31), "expired"),
    (claims(exp=None), "no exp claim"),
    (claims(exp="soon"), "exp claim is not a number"),
    (claims(iat=None), "no iat claim"),
    (claims(iat=NOW + 31), "issued in the future"),
    (claims(nbf=NOW + 31), "not valid before"),
    (claims(aud="someone-else"), "audience 'someone-else' is none of the expected moldau"),
    (claims(aud=None), "audience None"),
    (claims(iss="https://evil.test"), "issuer 'https://evil.test' is not the expected"),
    (claims(sub=None), "no sub claim"),
    (claims(sub=""), "no sub claim"),
    (claims(sub=7), "no sub claim"),
])
def test_bad_claims_are_refused(token_claims: dict[str, Any], error: str) -> None:
    with pytest.raises(SaslAuthenticationError, match=f"invalid_token: .*{error}"):
        validate_jwt(RS.sign(token_claims), keys(RS), SETTINGS, NOW_MS)


def test_clock_skew_applies_both_ways() -> None:
    # the default 30 s: expired 29 s ago and issued 29 s ahead still pass
    assert validate_jwt(RS.sign(claims(exp=NOW - 29, iat=NOW + 29)), keys(RS), SETTINGS, NOW_MS)
    strict = JwtValidatorSettings(clock_skew_seconds=0)
    with pytest.raises(SaslAuthenticationError, match="expired"):
        validate_jwt(RS.sign(claims(exp=NOW)), keys(RS), strict, NOW_MS)


def test_an_unknown_kid_is_its_own_error() -> None:
    stranger = SigningKey("not-published")
    with pytest.raises(UnknownKeyIdError, match="invalid_token: no key with kid 'not-published'") as info:
        validate_jwt(stranger.sign(claims()), keys(RS), SETTINGS, NOW_MS)
    assert info.value.kid == "not-published"


def test_none_hmac_and_mismatched_keys_are_refused() -> None:
    body = b64url(json.dumps(claims()).encode())
    unsecured = f"{b64url(json.dumps({'alg': 'none'}).encode())}.{body}."
    with pytest.raises(SaslAuthenticationError, match="alg 'none' is not accepted"):
        validate_jwt(unsecured, keys(RS), SETTINGS, NOW_MS)
    # HS256 "signed" with the RSA public key as the secret: the classic confusion attack
    import hashlib
    import hmac

    header = b64url(json.dumps({"alg": "HS256", "kid": "rs-1"}).encode())
    mac = hmac.new(json.dumps(RS.jwk()).encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    with pytest.raises(SaslAuthenticationError, match="alg 'HS256' is not accepted"):
        validate_jwt(f"{header}.{body}.{b64url(mac)}", keys(RS), SETTINGS, NOW_MS)
    # an ES256 token whose kid names an RSA key
    es = SigningKey("rs-1", "ES256")
    with pytest.raises(SaslAuthenticationError, match="no ES256 key with kid 'rs-1'"):
        validate_jwt(es.sign(claims()), keys(RS), SETTINGS, NOW_MS)
    # a tampered claims part
    token = RS.sign(claims())
    head, _, sig = token.split(".")
    with pytest.raises(SaslAuthenticationError, match="signature does not verify"):
        validate_jwt(f"{head}.{b64url(json.dumps(claims(sub='admin')).encode())}.{sig}", keys(RS), SETTINGS, NOW_MS)
    for broken in ("", "a.b", "a.b.c.d", "!!!.e30.", f"{head}.%%%.{sig}", f"{head}.{body}.***"):
        with pytest.raises(SaslAuthenticationError, match="invalid_token"):
            validate_jwt(broken, keys(RS), SETTINGS, NOW_MS)


def test_parse_jwks_keeps_usable_verification_keys() -> None:
    es = SigningKey("es", "ES384")
    doc = {"keys": [RS.jwk(), es.jwk(),
                    {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},  # a shared secret: never a verification key
                    {**RS.jwk(), "kid": "enc", "use": "enc"},
                    {"kty": "RSA", "kid": "small", "n": b64url((2**1023 + 1).to_bytes(128, "big")), "e": "AQAB"},
                    {"kty": "RSA", "kid": "broken", "n": "", "e": "AQAB"},
                    {"kty": "EC", "kid": "curve", "crv": "P-192", "x": "AA", "y": "AA"}]}
    assert [k.kid for k in parse_jwks(json.dumps(doc).encode())] == ["rs-1", "es"]
    for bad in (b"nope", b"[]", b'{"keys": 1}', b'{"keys": [1]}'):
        with pytest.raises(ValueError):
            parse_jwks(bad)


def test_refreshing_jwks_keeps_the_last_keys_and_rate_limits_unknown_kids() -> None:
    published = [RS]
    fail = [False]
    loads: list[str] = []
    now = [0]

    def load(url: str) -> tuple[JsonWebKey, ...]:
        loads.append(url)
        if fail[0]:
            raise OSError("connection refused")
        return keys(*published)

    async def scenario() -> None:
        source = RefreshingJwks(JwksSettings("http://issuer.test/jwks", refresh_ms=3_600_000, retry_backoff_ms=1,
                                             retry_backoff_max_ms=5), load, lambda: now[0])
        await source.start()
        assert [k.kid for k in source.keys] == ["rs-1"] and loads == ["http://issuer.test/jwks"]
        # a failing refresh is retried, then the keys fetched before are kept
        fail[0] = True
        assert await source.refresh() is False
        assert len(loads) > 2 and [k.kid for k in source.keys] == ["rs-1"]
        fail[0] = False
        # a rotated key: a token naming it refreshes the set once, and finds it
        rotated = SigningKey("rs-2")
        published.append(rotated)
        now[0] = 10_000
        before = len(loads)
        assert await source.refresh_for_unknown_kid("rs-2") is True and len(loads) == before + 1
        assert await source.refresh_for_unknown_kid("rs-2") is True and len(loads) == before + 1  # known now
        # made-up kids: at most one refresh per second overall, one per minute per kid
        now[0] = 20_000
        assert await source.refresh_for_unknown_kid("made-up-1") is False and len(loads) == before + 2
        assert await source.refresh_for_unknown_kid("made-up-2") is False and len(loads) == before + 2
        now[0] = 21_500
        assert await source.refresh_for_unknown_kid("made-up-1") is False and len(loads) == before + 2
        assert await source.refresh_for_unknown_kid("x" * 1001) is False and len(loads) == before + 2
        now[0] = 81_000
        assert await source.refresh_for_unknown_kid("made-up-1") is False and len(loads) == before + 3
        await source.stop()

    asyncio.run(scenario())


def test_a_first_fetch_that_fails_does_not_stop_the_broker_and_is_retried() -> None:
    attempts = [0]

    def load(url: str) -> tuple[JsonWebKey, ...]:
        attempts[0] += 1
        if attempts[0] <= 3:
            raise OSError("issuer down")
        return keys(RS)

    async def scenario() -> None:
        source = RefreshingJwks(JwksSettings("http://issuer.test/jwks", retry_backoff_ms=1, retry_backoff_max_ms=2),
                                load)
        await source.start()
        assert not source.loaded and not source.keys
        for _ in range(100):
            if source.loaded:
                break
            await asyncio.sleep(0.01)
        assert [k.kid for k in source.keys] == ["rs-1"]
        await source.stop()

    asyncio.run(scenario())


def test_the_key_set_is_refreshed_periodically() -> None:
    published = [RS]

    async def scenario() -> None:
        source = RefreshingJwks(JwksSettings("file:///jwks.json", refresh_ms=5), lambda url: keys(*published))
        await source.start()
        assert [k.kid for k in source.keys] == ["rs-1"]
        published[:] = [SigningKey("rs-2")]  # the issuer retired its key and published another
        for _ in range(100):
            if [k.kid for k in source.keys] == ["rs-2"]:
                break
            await asyncio.sleep(0.01)
        assert [k.kid for k in source.keys] == ["rs-2"]
        await source.stop()

    asyncio.run(scenario())


def test_logins_naming_a_new_kid_together_share_one_refresh() -> None:
    published = [RS]
    loads = [0]

    def load(url: str) -> tuple[JsonWebKey, ...]:
        loads[0] += 1
        time.sleep(0.05)  # in a thread: the event loop goes on meanwhile
        return keys(*published)

    async def scenario() -> None:
        source = RefreshingJwks(JwksSettings("http://issuer.test/jwks"), load)
        await source.start()
        published.append(SigningKey("rs-2"))
        found = await asyncio.gather(*(source.refresh_for_unknown_kid("rs-2") for _ in range(5)))
        assert found == [True] * 5 and loads[0] == 2
        await source.stop()

    asyncio.run(scenario())

"""SASL OAUTHBEARER's unsecured JWS validation and client message (RFC 7628), no broker."""

from __future__ import annotations

import base64
import json

import pytest

from moldau.server.security.errors import SaslAuthenticationError
from moldau.server.security.oauthbearer import (
    UnsecuredValidator,
    authenticate,
    client_first_message,
    parse_client_message,
    unsecured_token,
)

NOW_MS = 1_800_000_000_000


def jws(claims: dict[str, object], header: dict[str, object] | None = None) -> str:
    def part(doc: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()
    return f"{part(header or {'alg': 'none'})}.{part(claims)}."


def message(token: str, authzid: str = "") -> bytes:
    return f"n,{'a=' + authzid if authzid else ''},\x01auth=Bearer {token}\x01\x01".encode()


def test_a_valid_token_names_the_principal() -> None:
    token = jws({"sub": "alice", "exp": NOW_MS // 1000 + 60, "iat": NOW_MS // 1000})
    found = authenticate(message(token, "alice"), UnsecuredValidator(), NOW_MS)
    assert (found.principal, found.expires_ms) == ("alice", NOW_MS + 60_000)
    assert parse_client_message(b"n,,\x01host=h\x01port=9\x01auth=Bearer t.u.\x01\x01") == (None, "t.u.")


@pytest.mark.parametrize(("token", "error"), [
    (jws({"sub": "alice", "exp": NOW_MS // 1000 - 1}), "expired"),
    (jws({"sub": "alice"}), "exp"),
    (jws({"exp": NOW_MS // 1000 + 60}), "sub"),
    (jws({"sub": "a", "exp": NOW_MS // 1000 + 60}, {"alg": "HS256"}), "alg none"),
    (jws({"sub": "a", "exp": NOW_MS // 1000 + 60, "iat": NOW_MS // 1000 + 30}), "future"),
    ("not-a-token", "unsecured JWS"),
    ("e30.e30.c2ln", "unsecured JWS"),
])
def test_bad_tokens_are_refused(token: str, error: str) -> None:
    with pytest.raises(SaslAuthenticationError, match=error):
        authenticate(message(token), UnsecuredValidator(), NOW_MS)


def test_scope_skew_authzid_and_framing() -> None:
    token = jws({"sub": "alice", "exp": NOW_MS // 1000 - 1, "scope": "read write"})
    assert authenticate(message(token), UnsecuredValidator(allowable_clock_skew_ms=5000), NOW_MS).principal == "alice"
    with pytest.raises(SaslAuthenticationError, match="insufficient_scope"):
        authenticate(message(token), UnsecuredValidator(required_scope=("admin",), allowable_clock_skew_ms=5000),
                     NOW_MS)
    with pytest.raises(SaslAuthenticationError, match="authorization id"):
        authenticate(message(jws({"sub": "alice", "exp": NOW_MS // 1000 + 9}), "bob"), UnsecuredValidator(), NOW_MS)
    for bad in (b"", b"n,,\x01auth=Basic x\x01\x01", b"n,,\x01auth=Bearer x\x01", b"\xff"):
        with pytest.raises(SaslAuthenticationError):
            parse_client_message(bad)
    validator = UnsecuredValidator.from_jaas_options({"unsecuredValidatorRequiredScope": "a b",
                                                      "unsecuredValidatorAllowableClockSkewMs": "10"})
    assert validator.required_scope == ("a", "b") and validator.allowable_clock_skew_ms == 10


def test_a_brokers_own_unsecured_token_is_what_the_validator_accepts() -> None:
    """The client side (a broker logging in to the others) builds its token from the login
    module's options, as Kafka's OAuthBearerUnsecuredLoginCallbackHandler does."""
    now = 1_700_000_000_000
    token = unsecured_token({"unsecuredLoginStringClaim_sub": "kafka-broker",
                             "unsecuredLoginListClaim_scope": "|replicate|admin",
                             "unsecuredLoginNumberClaim_n": "7", "unsecuredLoginLifetimeSeconds": "60",
                             "unsecuredValidatorRequiredScope": "replicate"}, now)
    header, claims, signature = token.split(".")
    assert json.loads(base64.urlsafe_b64decode(header + "==")) == {"alg": "none"} and signature == ""
    body = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    assert body == {"sub": "kafka-broker", "scope": ["replicate", "admin"], "n": 7, "iat": now / 1000,
                    "exp": now / 1000 + 60}
    validator = UnsecuredValidator(required_scope=("replicate",))
    accepted = authenticate(client_first_message(token), validator, now + 1000)
    assert accepted.principal == "kafka-broker" and accepted.expires_ms == now + 60_000
    with pytest.raises(SaslAuthenticationError):  # expired a minute later
        authenticate(client_first_message(token), validator, now + 61_000)
    with pytest.raises(ValueError, match="not a number"):
        unsecured_token({"unsecuredLoginNumberClaim_n": "seven"}, now)

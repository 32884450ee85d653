"""SCRAM (RFC 5802/7677) server and client, Kafka's credential strings, and SASL/PLAIN.

The client used against the server here is written from RFC 5802 section 3 in this file,
not taken from moldau, so a mistake shared by our server and our client cannot hide."""
import base64
import hashlib
import hmac

import pytest

from moldau.server.security.errors import SaslAuthenticationError, SaslError
from moldau.server.security.plain import authenticate_plain
from moldau.server.security.scram import (
    SCRAM_SHA_256,
    SCRAM_SHA_512,
    ScramClient,
    ScramCredential,
    ScramMechanism,
    ScramServer,
    decode_saslname,
    encode_saslname,
)

# RFC 7677 section 3: user "user", password "pencil".
RFC_CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_SERVER_FIRST = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
RFC_CLIENT_FINAL = (b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
RFC_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
RFC_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")


def rfc_credential() -> ScramCredential:
    return ScramCredential.from_password(SCRAM_SHA_256, "pencil", iterations=4096, salt=RFC_SALT)


def test_rfc7677_vector_server_side() -> None:
    server = ScramServer(SCRAM_SHA_256, nonce=lambda: RFC_SERVER_NONCE)
    assert server.client_first(RFC_CLIENT_FIRST) == "user"
    assert server.server_first(rfc_credential()) == RFC_SERVER_FIRST
    assert server.client_final(RFC_CLIENT_FINAL) == RFC_SERVER_FINAL
    assert server.complete and server.username == "user"


def test_rfc7677_vector_client_side() -> None:
    client = ScramClient(SCRAM_SHA_256, "user", "pencil", nonce=lambda: "rOprNGfwEbeRWgbNEkqO")
    assert client.first() == RFC_CLIENT_FIRST
    assert client.final(RFC_SERVER_FIRST) == RFC_CLIENT_FINAL
    client.verify(RFC_SERVER_FINAL)
    with pytest.raises(SaslError):
        client.verify(b"v=" + base64.b64encode(b"\x00" * 32))


def rfc_client(mechanism: ScramMechanism, user: str, password: str, server: ScramServer) -> bytes:
    """RFC 5802 section 3, step by step, against `server`; returns the server-final message."""
    h = mechanism.hash_name
    client_nonce = "fyko+d2lbbFgONRv9qkxdawL"
    bare = f"n={user.replace('=', '=3D').replace(',', '=2C')},r={client_nonce}"
    assert server.client_first(f"n,,{bare}".encode()) == user
    server_first = server.server_first(ScramCredential.from_password(mechanism, "s3cret", 4096)).decode()
    attrs = dict(part.split("=", 1) for part in server_first.split(","))
    assert attrs["r"].startswith(client_nonce) and len(attrs["r"]) > len(client_nonce)
    salted = hashlib.pbkdf2_hmac(h, password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
    client_key = hmac.new(salted, b"Client Key", h).digest()
    stored_key = hashlib.new(h, client_key).digest()
    without_proof = f"c=biws,r={attrs['r']}"
    auth_message = f"{bare},{server_first},{without_proof}".encode()
    signature = hmac.new(stored_key, auth_message, h).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    server_final = server.client_final(f"{without_proof},p={base64.b64encode(proof).decode()}".encode())
    server_key = hmac.new(salted, b"Server Key", h).digest()
    assert server_final == b"v=" + base64.b64encode(hmac.new(server_key, auth_message, h).digest())
    return server_final


@pytest.mark.parametrize("mechanism", [SCRAM_SHA_256, SCRAM_SHA_512])
def test_rfc_client_logs_in(mechanism: ScramMechanism) -> None:
    server = ScramServer(mechanism)
    rfc_client(mechanism, "al,i=ce", "s3cret", server)
    assert server.complete and server.username == "al,i=ce"


@pytest.mark.parametrize("mechanism", [SCRAM_SHA_256, SCRAM_SHA_512])
def test_wrong_password_is_refused(mechanism: ScramMechanism) -> None:
    server = ScramServer(mechanism)
    with pytest.raises(SaslError, match="Invalid client credentials"):
        rfc_client(mechanism, "alice", "wrong", server)
    assert server.state == "failed" and not server.complete


def test_our_client_against_our_server_both_mechanisms() -> None:
    for mechanism in (SCRAM_SHA_256, SCRAM_SHA_512):
        server = ScramServer(mechanism)
        client = ScramClient(mechanism, "bob", "pw")
        server.client_first(client.first())
        final = client.final(server.server_first(ScramCredential.from_password(mechanism, "pw", 4096)))
        client.verify(server.client_final(final))


def test_unknown_user_and_few_iterations_fail() -> None:
    server = ScramServer(SCRAM_SHA_256)
    server.client_first(b"n,,n=ghost,r=abc")
    with pytest.raises(SaslError, match="Invalid user credentials"):
        server.server_first(None)
    server = ScramServer(SCRAM_SHA_256)
    server.client_first(b"n,,n=u,r=abc")
    with pytest.raises(SaslError, match="less than the minimum 4096"):
        server.server_first(ScramCredential.from_password(SCRAM_SHA_256, "p", iterations=1000))


def test_authzid_must_be_the_user() -> None:
    server = ScramServer(SCRAM_SHA_256)
    assert server.client_first(b"n,a=user,n=user,r=abc") == "user"
    with pytest.raises(SaslAuthenticationError, match="authorization id that is different"):
        ScramServer(SCRAM_SHA_256).client_first(b"n,a=admin,n=user,r=abc")


@pytest.mark.parametrize("message", [b"p=tls-unique,,n=u,r=abc", b"n,,r=abc", b"n,,n=u", b"garbage",
                                     b"n,,n=a=b,r=abc"])
def test_malformed_client_first(message: bytes) -> None:
    server = ScramServer(SCRAM_SHA_256)
    with pytest.raises(SaslError):
        server.client_first(message)
    assert server.state == "failed"


def test_client_final_checks_nonce_and_channel_binding() -> None:
    def started() -> ScramServer:
        server = ScramServer(SCRAM_SHA_256, nonce=lambda: RFC_SERVER_NONCE)
        server.client_first(RFC_CLIENT_FIRST)
        server.server_first(rfc_credential())
        return server

    with pytest.raises(SaslError, match="nonce"):
        started().client_final(RFC_CLIENT_FINAL.replace(b"rOprNG", b"xOprNG"))
    with pytest.raises(SaslError, match="nonce"):
        started().client_final(RFC_CLIENT_FINAL.replace(b"r=rOprNG", b"r=XrOprNG"))
    with pytest.raises(SaslError, match="channel binding"):
        started().client_final(RFC_CLIENT_FINAL.replace(b"c=biws", b"c=eSws"))
    with pytest.raises(SaslError, match="unexpected client-final"):
        ScramServer(SCRAM_SHA_256).client_final(RFC_CLIENT_FINAL)


def test_librdkafka_before_2_6_1_doubled_client_nonce_is_accepted() -> None:
    """librdkafka#4895: r=<client nonce><client nonce><server nonce>, with a proof over
    exactly that message; Kafka 3.8.1-3.9 accepted it, and Debian's kcat needs it."""
    mechanism = SCRAM_SHA_256
    server = ScramServer(mechanism)
    server.client_first(b"n,,n=u,r=cn")
    server_first = server.server_first(ScramCredential.from_password(mechanism, "pw", 4096)).decode()
    attrs = dict(part.split("=", 1) for part in server_first.split(","))
    salted = mechanism.salted_password("pw", base64.b64decode(attrs["s"]), 4096)
    without_proof = f"c=biws,r=cn{attrs['r']}"
    auth_message = f"n=u,r=cn,{server_first},{without_proof}".encode()
    client_key = mechanism.hmac(salted, b"Client Key")
    proof = bytes(a ^ b for a, b in zip(client_key, mechanism.hmac(mechanism.digest(client_key), auth_message),
                                        strict=True))
    server.client_final(f"{without_proof},p={base64.b64encode(proof).decode()}".encode())
    assert server.complete


def test_kafka_credential_string_round_trip() -> None:
    credential = rfc_credential()
    text = credential.to_kafka()
    assert text.startswith("salt=W22ZaJ0SNY7soEsUEjb6gQ==,stored_key=") and text.endswith(",iterations=4096")
    assert ScramCredential.from_kafka(text) == credential
    with pytest.raises(ValueError, match="invalid SCRAM credential"):
        ScramCredential.from_kafka("salt=xx,iterations=4096")


def test_saslname_encoding() -> None:
    assert encode_saslname("a,b=c") == "a=2Cb=3Dc"
    assert decode_saslname("a=2Cb=3Dc") == "a,b=c"
    with pytest.raises(SaslError):
        decode_saslname("a=4Ab")


USERS = {"alice": "alice-secret", "admin": "admin-secret"}


def test_plain() -> None:
    assert authenticate_plain(b"\x00alice\x00alice-secret", USERS) == "alice"
    assert authenticate_plain(b"alice\x00alice\x00alice-secret", USERS) == "alice"
    for token in (b"\x00alice\x00wrong", b"\x00bob\x00alice-secret"):
        with pytest.raises(SaslAuthenticationError, match="^Authentication failed: Invalid username or password$"):
            authenticate_plain(token, USERS)
    with pytest.raises(SaslAuthenticationError, match="username not specified"):
        authenticate_plain(b"\x00\x00x", USERS)
    with pytest.raises(SaslAuthenticationError, match="password not specified"):
        authenticate_plain(b"\x00alice\x00", USERS)
    with pytest.raises(SaslAuthenticationError, match="authorization id that is different"):
        authenticate_plain(b"admin\x00alice\x00alice-secret", USERS)
    with pytest.raises(SaslError, match="expected 3 tokens, got 2"):
        authenticate_plain(b"alice\x00alice-secret", USERS)

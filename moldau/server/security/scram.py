"""SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka uses them (KIP-84, KIP-554).

Pure: messages in, messages out; the caller fetches credentials and moves bytes.

The exchange (client C, server S)::

    C: n,,n=<user>,r=<client nonce>                     client-first (gs2 header + bare)
    S: r=<client nonce><server nonce>,s=<salt b64>,i=<iterations>          server-first
    C: c=<gs2 header b64>,r=<nonce>,p=<ClientProof b64>                    client-final
    S: v=<ServerSignature b64>                                             server-final

    SaltedPassword  = PBKDF2-HMAC(H, password, salt, iterations)
    ClientKey       = HMAC(SaltedPassword, "Client Key");  StoredKey = H(ClientKey)
    ServerKey       = HMAC(SaltedPassword, "Server Key")
    AuthMessage     = client-first-bare + "," + server-first + "," + client-final-without-proof
    ClientProof     = ClientKey XOR HMAC(StoredKey, AuthMessage)
    ServerSignature = HMAC(ServerKey, AuthMessage)

The server stores only (salt, StoredKey, ServerKey, iterations): Kafka's credential string
`salt=<b64>,stored_key=<b64>,server_key=<b64>,iterations=<n>` (`ScramCredentialUtils`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from moldau.server.security.errors import SaslAuthenticationError, SaslError


@dataclass(frozen=True)
class ScramMechanism:
    name: str
    hash_name: str
    type_id: int  # AlterUserScramCredentials' mechanism code
    min_iterations: int = 4096
    max_iterations: int = 16384

    def digest(self, data: bytes) -> bytes:
        return hashlib.new(self.hash_name, data).digest()

    def hmac(self, key: bytes, data: bytes) -> bytes:
        return hmac.new(key, data, self.hash_name).digest()

    def salted_password(self, password: str, salt: bytes, iterations: int) -> bytes:
        return hashlib.pbkdf2_hmac(self.hash_name, password.encode(), salt, iterations)


SCRAM_SHA_256 = ScramMechanism("SCRAM-SHA-256", "sha256", 1)
SCRAM_SHA_512 = ScramMechanism("SCRAM-SHA-512", "sha512", 2)
MECHANISMS: dict[str, ScramMechanism] = {m.name: m for m in (SCRAM_SHA_256, SCRAM_SHA_512)}
BY_TYPE: dict[int, ScramMechanism] = {m.type_id: m for m in MECHANISMS.values()}


@dataclass(frozen=True)
class ScramCredential:
    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int

    @classmethod
    def from_salted_password(cls, mechanism: ScramMechanism, salted_password: bytes, salt: bytes,
                             iterations: int) -> ScramCredential:
        client_key = mechanism.hmac(salted_password, b"Client Key")
        return cls(salt, mechanism.digest(client_key), mechanism.hmac(salted_password, b"Server Key"), iterations)

    @classmethod
    def from_password(cls, mechanism: ScramMechanism, password: str, iterations: int = 4096,
                      salt: bytes | None = None) -> ScramCredential:
        salt = os.urandom(32) if salt is None else salt
        return cls.from_salted_password(mechanism, mechanism.salted_password(password, salt, iterations), salt,
                                        iterations)

    def to_kafka(self) -> str:
        """Kafka's `ScramCredentialUtils.credentialToString`."""
        b64 = base64.b64encode
        return (f"salt={b64(self.salt).decode()},stored_key={b64(self.stored_key).decode()},"
                f"server_key={b64(self.server_key).decode()},iterations={self.iterations}")

    @classmethod
    def from_kafka(cls, text: str) -> ScramCredential:
        fields = dict(part.split("=", 1) for part in text.split(",") if "=" in part)
        try:
            return cls(base64.b64decode(fields["salt"], validate=True),
                       base64.b64decode(fields["stored_key"], validate=True),
                       base64.b64decode(fields["server_key"], validate=True), int(fields["iterations"]))
        except (KeyError, ValueError) as exc:
            raise ValueError(f"invalid SCRAM credential {text!r}: {exc}") from None


def encode_saslname(username: str) -> str:
    return username.replace("=", "=3D").replace(",", "=2C")


def decode_saslname(saslname: str) -> str:
    if re.search(r"=(?!2C|3D)", saslname):
        raise SaslError(f"invalid username encoding in {saslname!r}")
    return saslname.replace("=2C", ",").replace("=3D", "=")


# client-first: gs2-cbind-flag ("n" or "y"; channel binding "p=" is not supported),
# optional authzid, then n=<saslname>,r=<nonce> and optional extensions.
_CLIENT_FIRST = re.compile(
    r"(?P<gs2>(?P<cbind>[ny]),(?:a=(?P<authzid>[^,]*))?,)"
    r"(?P<bare>n=(?P<saslname>[^,]*),r=(?P<nonce>[\x21-\x2b\x2d-\x7e]+)(?:,[a-zA-Z]+=[^,]*)*)")
_CLIENT_FINAL = re.compile(
    r"(?P<without_proof>c=(?P<cbind>[a-zA-Z0-9/+]+=*),r=(?P<nonce>[\x21-\x2b\x2d-\x7e]+)(?:,[a-z]+=[^,]*)*)"
    r",p=(?P<proof>[a-zA-Z0-9/+]+=*)")
_SERVER_FIRST = re.compile(r"r=(?P<nonce>[\x21-\x2b\x2d-\x7e]+),s=(?P<salt>[a-zA-Z0-9/+]+=*),i=(?P<iterations>\d+)")


def _random_nonce() -> str:
    return secrets.token_urlsafe(24)


class ScramServer:
    """One server-side exchange: `client_first` (→ the username to look up), then
    `server_first(credential)`, then `client_final` (→ server-final); any error ends it."""

    def __init__(self, mechanism: ScramMechanism, nonce: Callable[[], str] = _random_nonce) -> None:
        self.mechanism = mechanism
        self._nonce = nonce
        self.state = "client_first"
        self.username = ""
        self._gs2 = ""
        self._client_first_bare = ""
        self._client_nonce = ""
        self._server_first = ""
        self._credential: ScramCredential | None = None

    @property
    def complete(self) -> bool:
        return self.state == "complete"

    def _fail(self, error: SaslError) -> SaslError:
        self.state = "failed"
        self._credential = None
        return error

    def client_first(self, message: bytes) -> str:
        """Parse the client-first message; returns the username whose credential is needed."""
        if self.state != "client_first":
            raise self._fail(SaslError(f"unexpected client-first message in state {self.state}"))
        m = _CLIENT_FIRST.fullmatch(message.decode("utf-8", "replace"))
        if m is None:
            raise self._fail(SaslError("invalid SCRAM client-first message"))
        try:
            self.username = decode_saslname(m["saslname"])
        except SaslError as exc:
            raise self._fail(exc) from None
        authzid = m["authzid"] or ""
        if authzid and authzid != self.username:
            raise self._fail(SaslAuthenticationError(
                "Authentication failed: Client requested an authorization id that is different from username"))
        self._gs2, self._client_first_bare, self._client_nonce = m["gs2"], m["bare"], m["nonce"]
        self.state = "server_first"
        return self.username

    def server_first(self, credential: ScramCredential | None) -> bytes:
        if self.state != "server_first":
            raise self._fail(SaslError(f"server-first requested in state {self.state}"))
        if credential is None:
            raise self._fail(SaslError(f"Authentication failed: Invalid user credentials for {self.username!r}"))
        if credential.iterations < self.mechanism.min_iterations:
            raise self._fail(SaslError(f"Iterations {credential.iterations} is less than the minimum "
                                        f"{self.mechanism.min_iterations} for {self.mechanism.name}"))
        self._credential = credential
        salt = base64.b64encode(credential.salt).decode()
        self._server_first = f"r={self._client_nonce}{self._nonce()},s={salt},i={credential.iterations}"
        self.state = "client_final"
        return self._server_first.encode()

    def client_final(self, message: bytes) -> bytes:
        """Verify the client's proof; returns the server-final message."""
        credential = self._credential
        if self.state != "client_final" or credential is None:
            raise self._fail(SaslError(f"unexpected client-final message in state {self.state}"))
        m = _CLIENT_FINAL.fullmatch(message.decode("utf-8", "replace"))
        if m is None:
            raise self._fail(SaslError("invalid SCRAM client-final message"))
        nonce = self._server_first[2:].split(",", 1)[0]
        # librdkafka before 2.6.1 (kcat 1.7 on Debian: 2.0.2) sends the client nonce twice
        # (librdkafka#4895); Kafka 3.8.1-3.9 accepted that, Kafka 4 does not. We accept
        # exactly that form: the proof covers it, and it still holds our server nonce.
        if m["nonce"] not in (nonce, self._client_nonce + nonce):
            raise self._fail(SaslError("Invalid client nonce in the final client message."))
        if base64.b64decode(m["cbind"]) != self._gs2.encode():
            raise self._fail(SaslError("channel binding does not match the client-first message"))
        auth_message = f"{self._client_first_bare},{self._server_first},{m['without_proof']}".encode()
        proof = base64.b64decode(m["proof"])
        client_signature = self.mechanism.hmac(credential.stored_key, auth_message)
        if len(proof) != len(client_signature):
            raise self._fail(SaslError("Invalid client credentials"))
        client_key = bytes(a ^ b for a, b in zip(proof, client_signature, strict=True))
        if not hmac.compare_digest(self.mechanism.digest(client_key), credential.stored_key):
            raise self._fail(SaslError("Invalid client credentials"))
        server_signature = self.mechanism.hmac(credential.server_key, auth_message)
        self.state = "complete"
        self._credential = None
        return b"v=" + base64.b64encode(server_signature)


class ScramClient:
    """The client side (a broker logging in to another over the inter-broker listener)."""

    def __init__(self, mechanism: ScramMechanism, username: str, password: str,
                 nonce: Callable[[], str] = _random_nonce) -> None:
        self.mechanism = mechanism
        self.password = password
        self._client_nonce = nonce()
        self._bare = f"n={encode_saslname(username)},r={self._client_nonce}"
        self._server_signature = b""

    def first(self) -> bytes:
        return f"n,,{self._bare}".encode()

    def final(self, server_first: bytes) -> bytes:
        text = server_first.decode("utf-8", "replace")
        m = _SERVER_FIRST.match(text)
        if m is None or not m["nonce"].startswith(self._client_nonce):
            raise SaslError(f"invalid SCRAM server-first message {text!r}")
        iterations = int(m["iterations"])
        if iterations < self.mechanism.min_iterations:
            raise SaslError(f"server asked for {iterations} iterations, below the minimum")
        salted = self.mechanism.salted_password(self.password, base64.b64decode(m["salt"]), iterations)
        without_proof = f"c={base64.b64encode(b'n,,').decode()},r={m['nonce']}"
        auth_message = f"{self._bare},{text},{without_proof}".encode()
        client_key = self.mechanism.hmac(salted, b"Client Key")
        signature = self.mechanism.hmac(self.mechanism.digest(client_key), auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self._server_signature = self.mechanism.hmac(self.mechanism.hmac(salted, b"Server Key"), auth_message)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final: bytes) -> None:
        if not hmac.compare_digest(server_final, b"v=" + base64.b64encode(self._server_signature)):
            raise SaslError("the server's signature is wrong: it does not know our credential")

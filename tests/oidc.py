"""A tiny OAuth/OIDC issuer for tests: signing keys the test generates, JWTs signed with
them, and an HTTP server with a client_credentials token endpoint and a JWKS endpoint.
The identity provider is the test's own; the broker and the clients are real."""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

_CURVES = {"ES256": (ec.SECP256R1, "P-256", 32), "ES384": (ec.SECP384R1, "P-384", 48),
           "ES512": (ec.SECP521R1, "P-521", 66)}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int(n: int, size: int | None = None) -> str:
    return b64url(n.to_bytes(size or (n.bit_length() + 7) // 8, "big"))


@dataclass
class SigningKey:
    """A private key of the issuer: RS*/PS* (RSA 2048) or ES* (the algorithm's curve)."""

    kid: str
    alg: str = "RS256"
    private: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.private is None:
            self.private = (ec.generate_private_key(_CURVES[self.alg][0]()) if self.alg.startswith("ES")
                            else rsa.generate_private_key(public_exponent=65537, key_size=2048))

    def jwk(self) -> dict[str, str]:
        if self.alg.startswith("ES"):
            numbers = self.private.public_key().public_numbers()
            _curve, crv, size = _CURVES[self.alg]
            return {"kty": "EC", "kid": self.kid, "use": "sig", "alg": self.alg, "crv": crv,
                    "x": _int(numbers.x, size), "y": _int(numbers.y, size)}
        rsa_numbers = self.private.public_key().public_numbers()
        return {"kty": "RSA", "kid": self.kid, "use": "sig", "alg": self.alg,
                "n": _int(rsa_numbers.n), "e": _int(rsa_numbers.e)}

    def sign(self, claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
        head = {"alg": self.alg, "typ": "JWT", "kid": self.kid, **(header or {})}
        signing_input = f"{b64url(json.dumps(head).encode())}.{b64url(json.dumps(claims).encode())}"
        hash_alg = _HASHES[self.alg[2:]]()
        data = signing_input.encode()
        if self.alg.startswith("RS"):
            signature = self.private.sign(data, padding.PKCS1v15(), hash_alg)
        elif self.alg.startswith("PS"):
            signature = self.private.sign(data, padding.PSS(padding.MGF1(hash_alg), hash_alg.digest_size), hash_alg)
        else:
            r, s = decode_dss_signature(self.private.sign(data, ec.ECDSA(hash_alg)))
            size = _CURVES[self.alg][2]
            signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
        return f"{signing_input}.{b64url(signature)}"


def jwks(*keys: SigningKey) -> bytes:
    return json.dumps({"keys": [k.jwk() for k in keys]}).encode()


@dataclass
class Client:
    secret: str
    sub: str
    key: SigningKey | None = None  # None: the issuer's current key


class OidcIssuer:
    """POST /token (client_credentials, HTTP basic auth) answers {"access_token",
    "token_type", "expires_in"}; GET /jwks answers the published keys. Counts requests."""

    def __init__(self, key: SigningKey, issuer: str = "https://issuer.test", audience: str = "moldau",
                 lifetime_s: int = 3600) -> None:
        self.key = key  # signs tokens
        self.published: list[SigningKey] = [key]  # in the JWKS
        self.clients: dict[str, Client] = {}
        self.issuer, self.audience, self.lifetime_s = issuer, audience, lifetime_s
        self.jwks_requests = 0
        self.token_requests = 0
        self.tokens_issued: dict[str, int] = {}  # client id -> tokens
        issuer_self = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path != "/jwks":
                    self._answer(404, {"error": "not_found"})
                    return
                issuer_self.jwks_requests += 1
                self._answer(200, {"keys": [k.jwk() for k in issuer_self.published]})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                if self.path != "/token":
                    self._answer(404, {"error": "not_found"})
                    return
                issuer_self.token_requests += 1
                form = parse_qs(body)
                auth = self.headers.get("Authorization", "")
                client_id, _, secret = (base64.b64decode(auth[6:]).decode().partition(":")
                                        if auth.startswith("Basic ") else ("", "", ""))
                client = issuer_self.clients.get(client_id)
                if form.get("grant_type") != ["client_credentials"] or client is None or client.secret != secret:
                    self._answer(401, {"error": "invalid_client"})
                    return
                issuer_self.tokens_issued[client_id] = issuer_self.tokens_issued.get(client_id, 0) + 1
                self._answer(200, {"access_token": issuer_self.token(client, form.get("scope", [""])[0]),
                                   "token_type": "Bearer", "expires_in": issuer_self.lifetime_s})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="oidc-issuer", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def token(self, client: Client, scope: str = "") -> str:
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": self.audience, "sub": client.sub, "iat": now,
                  "exp": now + self.lifetime_s, "scope": scope or "kafka"}
        return (client.key or self.key).sign(claims)

    def __enter__(self) -> OidcIssuer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

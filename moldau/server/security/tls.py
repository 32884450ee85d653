"""TLS contexts from Kafka's `ssl.*` properties, with PEM key and trust stores only.

Kafka 2.7+ (KIP-651) reads PEM: `ssl.keystore.type=PEM` with `ssl.keystore.location` (one
file holding the private key and the certificate chain) or the PEM text inline in
`ssl.keystore.certificate.chain` + `ssl.keystore.key`; `ssl.key.password` decrypts an
encrypted key; `ssl.truststore.type=PEM` with `ssl.truststore.location` or
`ssl.truststore.certificates`. JKS and PKCS12 stores are Java's and are refused.

Python's `ssl` loads keys only from files, so the PEM blocks are checked here first (for
errors that name the property) and written, normalised, to a private temporary file.
"""

from __future__ import annotations

import base64
import os
import re
import ssl
import tempfile
from dataclasses import dataclass

PROTOCOL_VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
CLIENT_AUTH = {"none": ssl.CERT_NONE, "requested": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.S)
_KEY_LABELS = ("PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY")


class TlsConfigError(ValueError):
    """The ssl.* settings cannot make a TLS context; the message names the property."""


@dataclass(frozen=True)
class SslSettings:
    """One listener's ssl.* properties (listener.name.<l>.ssl.* already applied)."""

    keystore_type: str = "PEM"
    keystore_location: str | None = None
    keystore_password: str | None = None
    keystore_certificate_chain: str | None = None
    keystore_key: str | None = None
    key_password: str | None = None
    truststore_type: str = "PEM"
    truststore_location: str | None = None
    truststore_password: str | None = None
    truststore_certificates: str | None = None
    client_auth: str = "none"
    enabled_protocols: tuple[str, ...] = ("TLSv1.2", "TLSv1.3")
    cipher_suites: tuple[str, ...] = ()
    endpoint_identification_algorithm: str = "https"


@dataclass(frozen=True)
class PemBlock:
    label: str
    der: bytes

    def pem(self) -> str:
        body = base64.b64encode(self.der).decode()
        lines = "\n".join(body[i:i + 64] for i in range(0, len(body), 64))
        return f"-----BEGIN {self.label}-----\n{lines}\n-----END {self.label}-----\n"


def pem_blocks(text: str, what: str) -> list[PemBlock]:
    """The PEM blocks in `text`, whatever its line breaks (Kafka accepts a chain written on
    one properties line); headers of legacy encrypted keys are kept out of the base64."""
    blocks: list[PemBlock] = []
    for m in _BLOCK.finditer(text):
        body = m.group(2)
        if "Proc-Type:" in body:
            raise TlsConfigError(f"{what}: the {m.group(1)} is encrypted in the legacy OpenSSL format; "
                                 "convert it to PKCS#8 (openssl pkcs8 -topk8)")
        try:
            der = base64.b64decode("".join(body.split()), validate=True)
        except ValueError:
            raise TlsConfigError(f"{what}: the {m.group(1)} block is not valid base64") from None
        blocks.append(PemBlock(m.group(1), der))
    return blocks


def _read(path: str, prop: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError as exc:
        raise TlsConfigError(f"{prop}: cannot read {path}: {exc.strerror}") from None


def _check_types(s: SslSettings, prefix: str) -> None:
    for prop, value in ((f"{prefix}ssl.keystore.type", s.keystore_type),
                        (f"{prefix}ssl.truststore.type", s.truststore_type)):
        if value.upper() != "PEM":
            raise TlsConfigError(f"{prop}={value} is not supported: Moldau reads PEM only; convert the store to "
                                 f"PEM and set {prop}=PEM")
    if s.keystore_password is not None:
        raise TlsConfigError(f"{prefix}ssl.keystore.password cannot be specified with PEM format, only "
                             f"{prefix}ssl.key.password may be specified")
    if s.truststore_password is not None:
        raise TlsConfigError(f"{prefix}ssl.truststore.password cannot be specified for PEM format")


def _keystore(s: SslSettings, prefix: str) -> tuple[list[PemBlock], PemBlock] | None:
    """The certificate chain and private key, or None when no keystore is configured."""
    inline = s.keystore_certificate_chain is not None or s.keystore_key is not None
    if s.keystore_location and inline:
        raise TlsConfigError(f"{prefix}ssl.keystore.location cannot be combined with "
                             f"{prefix}ssl.keystore.certificate.chain / ssl.keystore.key")
    if s.keystore_location:
        what = f"{prefix}ssl.keystore.location {s.keystore_location}"
        blocks = pem_blocks(_read(s.keystore_location, f"{prefix}ssl.keystore.location"), what)
    elif inline:
        if s.keystore_certificate_chain is None or s.keystore_key is None:
            raise TlsConfigError(f"{prefix}ssl.keystore.certificate.chain and {prefix}ssl.keystore.key "
                                 "must be given together")
        what = f"{prefix}ssl.keystore.certificate.chain/key"
        blocks = (pem_blocks(s.keystore_certificate_chain, f"{prefix}ssl.keystore.certificate.chain")
                  + pem_blocks(s.keystore_key, f"{prefix}ssl.keystore.key"))
    else:
        return None
    keys = [b for b in blocks if b.label in _KEY_LABELS]
    chain = [b for b in blocks if b.label == "CERTIFICATE"]
    if len(keys) != 1:
        raise TlsConfigError(f"{what}: expected one private key (-----BEGIN PRIVATE KEY-----), found {len(keys)}")
    if not chain:
        raise TlsConfigError(f"{what}: no certificate (-----BEGIN CERTIFICATE-----) found")
    if keys[0].label == "ENCRYPTED PRIVATE KEY" and not s.key_password:
        raise TlsConfigError(f"{what}: the private key is encrypted but {prefix}ssl.key.password is not set")
    return chain, keys[0]


def _load_keystore(ctx: ssl.SSLContext, s: SslSettings, prefix: str) -> bool:
    found = _keystore(s, prefix)
    if found is None:
        return False
    chain, key = found
    with tempfile.TemporaryDirectory(prefix="moldau-tls-") as tmp:
        path = os.path.join(tmp, "keystore.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("".join(b.pem() for b in chain) + key.pem())
        try:
            # Always a password (never None): OpenSSL would otherwise prompt on the terminal.
            ctx.load_cert_chain(path, password=s.key_password or "")
        except ssl.SSLError as exc:
            text = str(exc).lower()
            if "mismatch" in text:
                raise TlsConfigError(f"{prefix}ssl.keystore: the private key does not match the certificate") from None
            if key.label == "ENCRYPTED PRIVATE KEY" or "decrypt" in text:  # OpenSSL says only "PEM lib"
                raise TlsConfigError(f"{prefix}ssl.key.password cannot decrypt the private key") from None
            raise TlsConfigError(f"{prefix}ssl.keystore: cannot load the key and certificate ({exc})") from None
    return True


def _load_truststore(ctx: ssl.SSLContext, s: SslSettings, prefix: str) -> bool:
    if s.truststore_location and s.truststore_certificates:
        raise TlsConfigError(f"{prefix}ssl.truststore.location cannot be combined with "
                             f"{prefix}ssl.truststore.certificates")
    if s.truststore_location:
        what = f"{prefix}ssl.truststore.location {s.truststore_location}"
        text = _read(s.truststore_location, f"{prefix}ssl.truststore.location")
    elif s.truststore_certificates:
        what, text = f"{prefix}ssl.truststore.certificates", s.truststore_certificates
    else:
        return False
    certs = [b for b in pem_blocks(text, what) if b.label == "CERTIFICATE"]
    if not certs:
        raise TlsConfigError(f"{what}: no certificate (-----BEGIN CERTIFICATE-----) found")
    try:
        ctx.load_verify_locations(cadata="".join(b.pem() for b in certs))
    except ssl.SSLError as exc:
        raise TlsConfigError(f"{what}: invalid certificate ({exc})") from None
    return True


def _protocols(ctx: ssl.SSLContext, s: SslSettings, prefix: str) -> None:
    unknown = [p for p in s.enabled_protocols if p not in PROTOCOL_VERSIONS]
    if unknown or not s.enabled_protocols:
        raise TlsConfigError(f"{prefix}ssl.enabled.protocols: {', '.join(unknown) or 'empty'} is not one of "
                             f"{', '.join(PROTOCOL_VERSIONS)}")
    versions = sorted(PROTOCOL_VERSIONS[p] for p in s.enabled_protocols)
    ctx.minimum_version, ctx.maximum_version = versions[0], versions[-1]
    if s.cipher_suites:
        try:
            ctx.set_ciphers(":".join(s.cipher_suites))
        except ssl.SSLError:
            raise TlsConfigError(f"{prefix}ssl.cipher.suites: OpenSSL knows none of {', '.join(s.cipher_suites)} "
                                 "(give OpenSSL cipher names, e.g. ECDHE-RSA-AES256-GCM-SHA384)") from None


def server_context(s: SslSettings, prefix: str = "") -> ssl.SSLContext:
    """The context of an SSL or SASL_SSL listener; `prefix` (listener.name.<l>.) is only
    for messages."""
    _check_types(s, prefix)
    if s.client_auth not in CLIENT_AUTH:
        raise TlsConfigError(f"{prefix}ssl.client.auth: {s.client_auth!r} is not one of none, requested, required")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _protocols(ctx, s, prefix)
    if not _load_keystore(ctx, s, prefix):
        raise TlsConfigError(f"an SSL listener needs a key and certificate: set {prefix}ssl.keystore.location "
                             f"(a PEM file with both) or {prefix}ssl.keystore.certificate.chain and "
                             f"{prefix}ssl.keystore.key")
    ctx.verify_mode = CLIENT_AUTH[s.client_auth]
    if ctx.verify_mode != ssl.CERT_NONE and not _load_truststore(ctx, s, prefix):
        ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    return ctx


def client_context(s: SslSettings, prefix: str = "") -> ssl.SSLContext:
    """The context a broker connects to other brokers with (the inter-broker listener's
    settings: its trust store, and its key store as the client certificate)."""
    _check_types(s, prefix)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _protocols(ctx, s, prefix)
    ctx.check_hostname = s.endpoint_identification_algorithm.lower() == "https"
    if not _load_truststore(ctx, s, prefix):
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    _load_keystore(ctx, s, prefix)
    return ctx

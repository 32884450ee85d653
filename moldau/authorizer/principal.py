"""Kafka principals: who a connection is, as ACLs and `super.users` name it.

A principal is `Type:name` (`User:alice`); Kafka's own principal builder only makes `User`
principals. What name a connection gets depends on its listener (Kafka's
DefaultKafkaPrincipalBuilder):

- PLAINTEXT, or SSL without a client certificate: `User:ANONYMOUS`;
- SASL_PLAINTEXT and SASL_SSL: `User:<the SASL authorization id>` (the username);
- SSL with a client certificate: `User:<name>`, the name given by `ssl.principal.mapping.rules`
  (`ssl_principal_mapper.py`) to the certificate subject's distinguished name in RFC 2253
  form (`CN=alice,OU=Eng,O=Acme,C=US`); the default rule keeps the whole DN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from moldau.authorizer.ssl_principal_mapper import SslPrincipalMapper

USER_TYPE = "User"


@dataclass(frozen=True)
class KafkaPrincipal:
    principal_type: str
    name: str

    def __str__(self) -> str:
        return f"{self.principal_type}:{self.name}"


ANONYMOUS = KafkaPrincipal(USER_TYPE, "ANONYMOUS")


def parse_kafka_principal(text: str) -> KafkaPrincipal:
    """`User:alice` -> KafkaPrincipal("User", "alice"); the name may hold colons
    (`User:CN=a:b`). Raise ValueError with Kafka's message (SecurityUtils.parseKafkaPrincipal)."""
    if not text or ":" not in text:
        raise ValueError(f"expected a string in format principalType:principalName but got {text}")
    principal_type, name = text.split(":", 1)
    return KafkaPrincipal(principal_type, name)


def parse_super_users(value: str) -> frozenset[KafkaPrincipal]:
    """`super.users`: principals separated by `;` (`User:alice;User:bob`), each trimmed.

    Like Java's String.split, trailing empty entries are dropped (`User:alice;` is fine)
    while an empty entry in the middle is an error."""
    if not value:
        return frozenset()
    parts = value.split(";")
    while parts and parts[-1] == "":
        parts.pop()
    return frozenset(parse_kafka_principal(part.strip()) for part in parts)


def sasl_principal(authorization_id: str) -> KafkaPrincipal:
    """The principal of a connection that authenticated with SASL (PLAIN, SCRAM-*)."""
    return KafkaPrincipal(USER_TYPE, authorization_id)


# RFC 2253 attribute type keywords Java's X500Principal.getName() writes; other attribute
# types are written as their dotted OID. Keys: the names Python's ssl module gives.
_RFC2253_KEYWORDS = {
    "commonName": "CN",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}
# Attribute types Java knows by OID only: it writes the value as `#` + the hex of its DER
# encoding. emailAddress is an IA5String (DER tag 0x16).
_OID_ONLY = {"emailAddress": ("1.2.840.113549.1.9.1", 0x16)}


def _escape_rfc2253(value: str) -> str:
    out = []
    for i, char in enumerate(value):
        if char in ',+"\\<>;' or (i == 0 and char in "# ") or (i == len(value) - 1 and char == " "):
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def _der_hex(tag: int, value: str) -> str:
    data = value.encode("utf-8")
    if len(data) < 0x80:
        length = bytes([len(data)])
    else:
        size = (len(data).bit_length() + 7) // 8
        length = bytes([0x80 | size]) + len(data).to_bytes(size, "big")
    return "#" + (bytes([tag]) + length + data).hex()


def distinguished_name(subject: Sequence[Sequence[tuple[str, str]]]) -> str:
    """The RFC 2253 distinguished name Java gives for a certificate subject, from the
    subject as Python's `ssl.SSLSocket.getpeercert()["subject"]` gives it (relative
    distinguished names in certificate order, the most general first: C, O, OU, CN).

    RFC 2253 writes the most specific name first: `CN=alice,OU=Eng,O=Acme,C=US`, no spaces;
    the attributes of one multi-valued name are joined with `+`."""
    rdns = []
    for rdn in reversed(subject):
        parts = []
        for attribute, value in rdn:
            if attribute in _OID_ONLY:
                oid, tag = _OID_ONLY[attribute]
                parts.append(f"{oid}={_der_hex(tag, value)}")
            else:
                parts.append(f"{_RFC2253_KEYWORDS.get(attribute, attribute)}={_escape_rfc2253(value)}")
        rdns.append("+".join(parts))
    return ",".join(rdns)


def ssl_principal(mapper: SslPrincipalMapper, subject_dn: str | None) -> KafkaPrincipal:
    """The principal of an SSL connection: `User:ANONYMOUS` without a client certificate,
    else `User:<the mapped name of the certificate subject's DN>`. Raise NoMatchingRule
    when no rule applies (the client then fails authentication)."""
    if subject_dn is None:
        return ANONYMOUS
    return KafkaPrincipal(USER_TYPE, mapper.get_name(subject_dn))

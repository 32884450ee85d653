"""SASL GSSAPI (Kerberos V5, RFC 4752) as Kafka runs it through Java's GssKrb5Server and
GssKrb5Client, on MIT Kerberos through the `gssapi` package (python-gssapi; the optional
extra `moldau[gssapi]`).

The server's side of one login, message by message:

| state    | client sends                        | server does, answers                                |
| -------- | ----------------------------------- | --------------------------------------------------- |
| accept   | a context token (AP-REQ)            | gss_accept_sec_context: its token (AP-REP), or, once |
|          |                                     | the context is established with no token, the offer |
| offer    | an empty token                      | the offer: wrap(0x01 "no security layer", 3-byte    |
|          |                                     | max message size 65536), integrity only             |
| layer    | wrap(chosen layer, max size, authz) | checks the layer is "none"; done, nothing to send   |

The authenticated principal is the context's initiator (`alice@MOLDAU.TEST`); its short
name by `sasl.kerberos.principal.to.local.rules` (kerberos_name.py) is the `User:` principal
ACLs see. The authorization id the client sends is read and logged but, as in Kafka (whose
SaslServerCallbackHandler authorizes the authentication id), never becomes the principal:
kafka-python sends the service's name there (`kafka@localhost`), Java's client its own.

The broker's keys come from its JAAS entry, Kafka's:

    com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true storeKey=true
        keyTab="/etc/kafka/kafka.keytab" principal="kafka/broker1.example.com@EXAMPLE.COM";

Acceptor credentials for that principal are acquired from that keytab when the config is
read, so a missing keytab or a principal it lacks is a startup error. Between brokers the
same entry logs in as a client: initiator credentials from the keytab into one in-memory
credential cache per broker process (so a new connection reuses its tickets, and MIT's
library fetches new ones from the keytab before they expire), the target
`<sasl.kerberos.service.name>@<the other broker's host>`.
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from moldau.server.security.errors import SaslAuthenticationError, SaslError
from moldau.server.security.jaas import LoginModule
from moldau.server.security.kerberos_name import KerberosName, KerberosNameError, KerberosShortNamer

log = logging.getLogger(__name__)

GSSAPI = "GSSAPI"
KRB5_LOGIN_MODULE = "com.sun.security.auth.module.Krb5LoginModule"
INSTALL_HINT = ("SASL GSSAPI needs the Python package gssapi: pip install 'moldau[gssapi]' "
                "(it builds against MIT Kerberos: apt-get install libkrb5-dev gcc)")

# RFC 4752 security layers (the first octet of the offer and of the answer).
NO_SECURITY_LAYER = 0x01
# What Java's GssKrb5Server offers as its maximum receive size (javax.security.sasl.maxbuffer).
MAX_BUFFER = 65536



class GssapiConfigError(ValueError):
    """The GSSAPI settings cannot work; the message says which and why."""


def load_gssapi() -> ModuleType:
    """The gssapi package, or GssapiConfigError naming it when it is not installed."""
    try:
        import gssapi
    except ImportError as exc:
        raise GssapiConfigError(f"{INSTALL_HINT} ({exc})") from None
    return gssapi


def default_realm() -> str:
    """The Kerberos library's default realm (krb5.conf's default_realm), "" if none: what
    the DEFAULT principal.to.local rule compares realms to, as Kafka asks the JVM's."""
    gssapi = load_gssapi()
    try:
        name = gssapi.Name("probe", gssapi.NameType.kerberos_principal).canonicalize(gssapi.MechType.kerberos)
    except gssapi.exceptions.GSSError:
        return ""
    return str(name).partition("@")[2]


@dataclass(frozen=True)
class Krb5Login:
    """Krb5LoginModule's options, as a Kafka broker's JAAS entry gives them."""

    principal: str
    keytab: str
    service_name: str | None = None  # the JAAS `serviceName` option, if set

    @classmethod
    def from_jaas(cls, module: LoginModule, where: str) -> Krb5Login:
        options = module.options
        if module.class_name != KRB5_LOGIN_MODULE:
            raise GssapiConfigError(f"{where}: GSSAPI needs {KRB5_LOGIN_MODULE}, not {module.class_name}")
        if options.get("useKeyTab", "false").lower() != "true" or not options.get("keyTab"):
            raise GssapiConfigError(f'{where}: a broker logs in with a keytab: set useKeyTab=true keyTab="<path>" '
                                    "(a ticket cache is not supported)")
        principal = options.get("principal")
        if not principal:
            raise GssapiConfigError(f'{where}: Krb5LoginModule needs principal="<service>/<host>@<REALM>"')
        keytab = options["keyTab"]
        if not os.path.isfile(keytab) or not os.access(keytab, os.R_OK):
            raise GssapiConfigError(f"{where}: keyTab {keytab} is not a readable file")
        return cls(principal, keytab, options.get("serviceName"))


def service_name(login: Krb5Login, configured: str | None, where: str) -> str:
    """Kafka's rule: the JAAS `serviceName` or sasl.kerberos.service.name, and they must agree."""
    if login.service_name and configured and login.service_name != configured:
        raise GssapiConfigError(f"{where}: conflicting serviceName values found in JAAS and Kafka configs: "
                                f"value in JAAS {login.service_name}, sasl.kerberos.service.name {configured}")
    name = login.service_name or configured
    if not name:
        raise GssapiConfigError(f"{where}: no serviceName defined in either JAAS or Kafka config: set "
                                "sasl.kerberos.service.name (e.g. kafka)")
    return name


@dataclass(frozen=True)
class GssapiServerSettings:
    """One listener's GSSAPI acceptor: its principal's keys and the principal mapping."""

    login: Krb5Login
    service_name: str
    short_namer: KerberosShortNamer
    credentials: Any = field(repr=False, compare=False)  # gssapi.Credentials (usage accept)

    @classmethod
    def build(cls, login: Krb5Login, service: str, short_namer: KerberosShortNamer,
              where: str) -> GssapiServerSettings:
        gssapi = load_gssapi()
        try:
            name = gssapi.Name(login.principal, gssapi.NameType.kerberos_principal)
            credentials = gssapi.Credentials(name=name, usage="accept", store={"keytab": login.keytab})
            credentials.inquire()  # fails now if the keytab holds no key for the principal
        except gssapi.exceptions.GSSError as exc:
            raise GssapiConfigError(f"{where}: cannot use principal {login.principal} from keyTab "
                                    f"{login.keytab}: {_gss_message(exc)}") from None
        return cls(login, service, short_namer, credentials)


def _gss_message(exc: Exception) -> str:
    gen = getattr(exc, "gen_message", None)
    return " ".join(str(exc).split()) if gen is None else " ".join(str(gen()).split())


class GssapiServer:
    """One login's server side (the table above). `evaluate` is blocking (it decrypts the
    ticket with the keytab and may write the replay cache): call it off the event loop."""

    def __init__(self, settings: GssapiServerSettings) -> None:
        gssapi = load_gssapi()
        self._gssapi = gssapi
        self.settings = settings
        self._context = gssapi.SecurityContext(creds=settings.credentials, usage="accept")
        self.state = "accept"
        self.peer: str | None = None  # the authenticated Kerberos principal
        self.authorization_id: str | None = None
        self.short_name: str | None = None  # set once complete

    def evaluate(self, token: bytes) -> bytes | None:
        """The answer to the client's token; None once complete (GssKrb5Server answers nothing)."""
        try:
            if self.state == "accept":
                return self._accept(token)
            if self.state == "offer":
                return self._offer()
            if self.state == "layer":
                self._layer(token)
                return None
        except self._gssapi.exceptions.GSSError as exc:
            raise SaslError(f"GSS context error: {_gss_message(exc)}") from None
        raise SaslError(f"GSSAPI token in state {self.state}")

    def _accept(self, token: bytes) -> bytes:
        answer = self._context.step(token)
        if not self._context.complete:
            return answer or b""
        self.peer = str(self._context.initiator_name)
        self.state = "offer"
        log.debug("GSSAPI context established with %s for %s", self.peer, self._context.target_name)
        return answer if answer else self._offer()

    def _offer(self) -> bytes:
        offer = struct.pack(">I", MAX_BUFFER)  # 3 octets of size after the layer octet
        offer = bytes([NO_SECURITY_LAYER]) + offer[1:]
        self.state = "layer"
        return bytes(self._context.wrap(offer, False).message)

    def _layer(self, token: bytes) -> None:
        message = bytes(self._context.unwrap(token).message)
        if len(message) < 4:
            raise SaslError(f"GSSAPI: the client's security layer answer has {len(message)} octets, not 4 or more")
        if message[0] != NO_SECURITY_LAYER:  # RFC 4752: exactly one of the layers offered
            raise SaslAuthenticationError(f"Authentication failed: client selected unsupported protection "
                                          f"{message[0]} (Kafka offers no security layer)")
        try:
            self.authorization_id = message[4:].decode() or None
        except UnicodeDecodeError:
            raise SaslError("GSSAPI: the authorization id is not UTF-8") from None
        assert self.peer is not None
        try:
            self.short_name = self.settings.short_namer.short_name(KerberosName.parse(self.peer))
        except KerberosNameError as exc:
            raise SaslAuthenticationError(f"Authentication failed: {exc} (sasl.kerberos.principal.to.local.rules)"
                                          ) from None
        if self.authorization_id and self.authorization_id != self.peer:
            log.debug("GSSAPI: %s asked for authorization id %r; the principal stays %s", self.peer,
                      self.authorization_id, self.peer)
        self.state = "complete"


class GssapiClient:
    """A broker's side of a login to another broker (Java's GssKrb5Client): blocking
    (the first step asks the KDC for tickets), so run it off the event loop."""

    def __init__(self, login: Krb5Login, service: str, host: str) -> None:
        gssapi = load_gssapi()
        self._gssapi = gssapi
        self.login = login
        try:
            name = gssapi.Name(login.principal, gssapi.NameType.kerberos_principal)
            credentials = gssapi.Credentials(name=name, usage="initiate", store={
                "client_keytab": login.keytab, "ccache": f"MEMORY:moldau-{os.getpid()}-{login.principal}"})
            target = gssapi.Name(f"{service}@{host}", gssapi.NameType.hostbased_service)
            self._context = gssapi.SecurityContext(name=target, creds=credentials, usage="initiate",
                                                   flags=[gssapi.RequirementFlag.mutual_authentication])
        except gssapi.exceptions.GSSError as exc:
            raise SaslError(f"GSSAPI login as {login.principal}: {_gss_message(exc)}") from None
        self.done = False

    def first(self) -> bytes:
        return self._step(None)

    def evaluate(self, token: bytes) -> bytes:
        """The answer to the server's token (after the context: the security layer answer)."""
        if not self._context.complete:
            return self._step(token)
        try:
            offer = bytes(self._context.unwrap(token).message)
        except self._gssapi.exceptions.GSSError as exc:
            raise SaslError(f"GSSAPI: cannot unwrap the server's offer: {_gss_message(exc)}") from None
        if len(offer) != 4 or not offer[0] & NO_SECURITY_LAYER:
            raise SaslError("GSSAPI: the server offers no 'no security layer' option")
        self.done = True
        answer = bytes([NO_SECURITY_LAYER]) + offer[1:4] + self.login.principal.encode()
        return bytes(self._context.wrap(answer, False).message)

    def _step(self, token: bytes | None) -> bytes:
        try:
            return bytes(self._context.step(token) or b"")
        except self._gssapi.exceptions.GSSError as exc:
            raise SaslError(f"GSSAPI login as {self.login.principal}: {_gss_message(exc)}") from None

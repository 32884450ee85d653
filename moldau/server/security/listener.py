"""What each listener needs for security, and how this broker logs in to the others.

Built once from the broker's properties (`BrokerConfig.from_sources`), so a bad key store
or JAAS text is a config error at startup, never a failure at the first connection:

- per listener: its security protocol (listener.security.protocol.map), a server TLS
  context for SSL and SASL_SSL, and for SASL_* the enabled mechanisms and PLAIN's users
  (the listener's PlainLoginModule `user_<name>` options);
- for inter-broker connections (the controller's, the replica fetchers'): the
  inter-broker listener's protocol, a client TLS context from its ssl.* settings, and
  the mechanism (sasl.mechanism.inter.broker.protocol) with the username and password of
  that listener's JAAS entry for it, as Kafka's brokers take them.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from moldau.server.security.gssapi_mechanism import (
    GSSAPI,
    KRB5_LOGIN_MODULE,
    GssapiConfigError,
    GssapiServerSettings,
    Krb5Login,
    default_realm,
    service_name,
)
from moldau.server.security.jaas import (
    PLAIN_LOGIN_MODULE,
    SCRAM_LOGIN_MODULE,
    JaasError,
    LoginModule,
    parse_single_module,
)
from moldau.server.security.jwks import JwksSettings, RefreshingJwks, SignedValidator, check_url, load_keys
from moldau.server.security.jwt_validator import JwtValidatorSettings
from moldau.server.security.kerberos_name import KerberosNameError, KerberosShortNamer, split_rules
from moldau.server.security.oauth_login import ClientCredentials, ClientCredentialsLogin
from moldau.server.security.oauthbearer import (
    OAUTHBEARER,
    OAUTHBEARER_LOGIN_MODULE,
    UnsecuredValidator,
    unsecured_token,
)
from moldau.server.security.tls import SslSettings, TlsConfigError, client_context, server_context

if TYPE_CHECKING:
    from moldau.server.config import BrokerConfig

LOGIN_MODULES = {"PLAIN": PLAIN_LOGIN_MODULE, "SCRAM-SHA-256": SCRAM_LOGIN_MODULE,
                 "SCRAM-SHA-512": SCRAM_LOGIN_MODULE, OAUTHBEARER: OAUTHBEARER_LOGIN_MODULE,
                 GSSAPI: KRB5_LOGIN_MODULE}
# Kafka's server callback handlers for OAUTHBEARER: the KIP-768 validator of signed tokens
# (its name since Kafka 3.1, and the older one), and the default unsecured validator.
VALIDATOR_CALLBACK_HANDLERS = (
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
    "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerValidatorCallbackHandler",
)
LOGIN_CALLBACK_HANDLER = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler"
UNSECURED_VALIDATOR_CALLBACK_HANDLER = \
    "org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler"


@dataclass(frozen=True)
class ListenerSecurity:
    name: str
    protocol: str  # PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
    ssl_context: ssl.SSLContext | None = None
    mechanisms: tuple[str, ...] = ()  # SASL listeners: the enabled mechanisms
    plain_users: dict[str, str] = field(default_factory=dict, repr=False)
    # OAUTHBEARER: how tokens are checked. Unsecured JWS (Kafka's default) by its login
    # module's options, or signed tokens against an issuer's JWKS (KIP-768).
    oauthbearer: UnsecuredValidator | SignedValidator = field(default_factory=UnsecuredValidator)
    # GSSAPI: the acceptor (keys from the Krb5LoginModule's keytab) and the principal mapping.
    gssapi: GssapiServerSettings | None = None

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")


@dataclass(frozen=True)
class InterBrokerSecurity:
    """How this broker connects to other brokers (and to itself, alone)."""

    listener: str
    protocol: str
    ssl_context: ssl.SSLContext | None = None
    mechanism: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    # OAUTHBEARER: the OAuthBearerLoginModule options this broker builds its unsecured
    # token from, or its login at an OAuth/OIDC issuer (signed tokens).
    login_options: dict[str, str] = field(default_factory=dict, repr=False)
    oauth_login: ClientCredentialsLogin | None = None
    # GSSAPI: this broker's keytab and principal, and the service name of the others.
    kerberos: Krb5Login | None = None
    kerberos_service_name: str | None = None

    @property
    def sasl(self) -> bool:
        return self.mechanism is not None


@dataclass(frozen=True)
class SecurityConfig:
    listeners: dict[str, ListenerSecurity]
    inter_broker: InterBrokerSecurity

    @property
    def jwks_sources(self) -> list[RefreshingJwks]:
        """The JWKS endpoints the listeners validate signed tokens with, each once."""
        found: dict[int, RefreshingJwks] = {}
        for listener in self.listeners.values():
            if isinstance(listener.oauthbearer, SignedValidator):
                found.setdefault(id(listener.oauthbearer.jwks), listener.oauthbearer.jwks)
        return list(found.values())


def _prefix(listener: str) -> str:
    return f"listener.name.{listener.lower()}."


def ssl_settings(config: BrokerConfig, listener: str) -> SslSettings:
    def get(name: str) -> object:
        return config.listener_value(listener, name)

    def as_tuple(value: object) -> tuple[str, ...]:
        return tuple(p.strip() for p in str(value).split(",") if p.strip()) if value else ()

    return SslSettings(
        keystore_type=str(get("ssl.keystore.type")),
        keystore_location=get("ssl.keystore.location"),  # type: ignore[arg-type]
        keystore_password=get("ssl.keystore.password"),  # type: ignore[arg-type]
        keystore_certificate_chain=get("ssl.keystore.certificate.chain"),  # type: ignore[arg-type]
        keystore_key=get("ssl.keystore.key"),  # type: ignore[arg-type]
        key_password=get("ssl.key.password"),  # type: ignore[arg-type]
        truststore_type=str(get("ssl.truststore.type")),
        truststore_location=get("ssl.truststore.location"),  # type: ignore[arg-type]
        truststore_password=get("ssl.truststore.password"),  # type: ignore[arg-type]
        truststore_certificates=get("ssl.truststore.certificates"),  # type: ignore[arg-type]
        client_auth=str(get("ssl.client.auth")),
        enabled_protocols=as_tuple(get("ssl.enabled.protocols")),
        cipher_suites=as_tuple(get("ssl.cipher.suites")),
        endpoint_identification_algorithm=str(get("ssl.endpoint.identification.algorithm") or ""),
    )


def jaas_module(config: BrokerConfig, listener: str, mechanism: str) -> LoginModule | None:
    """listener.name.<l>.<mechanism>.sasl.jaas.config, else sasl.jaas.config, parsed."""
    from moldau.server.config import ConfigError

    specific = config.listener_values.get(listener, {}).get(f"{mechanism.lower()}.sasl.jaas.config")
    name = f"{_prefix(listener)}{mechanism.lower()}.sasl.jaas.config" if specific is not None else "sasl.jaas.config"
    text = specific if specific is not None else config.values.get("sasl.jaas.config")
    if text is None:
        return None
    try:
        module = parse_single_module(str(text))
    except JaasError as exc:
        raise ConfigError(f"{name}: {exc}") from None
    if module.class_name not in LOGIN_MODULES.values():
        raise ConfigError(f"{name}: login module {module.class_name} is not supported "
                          f"(use {PLAIN_LOGIN_MODULE}, {SCRAM_LOGIN_MODULE}, {OAUTHBEARER_LOGIN_MODULE} "
                          f"or {KRB5_LOGIN_MODULE})")
    if specific is not None and module.class_name != LOGIN_MODULES[mechanism]:
        raise ConfigError(f"{name}: {mechanism} needs {LOGIN_MODULES[mechanism]}, not {module.class_name}")
    return module


def _mechanisms(config: BrokerConfig, listener: str) -> tuple[str, ...]:
    raw = config.listener_value(listener, "sasl.enabled.mechanisms") or ""
    return tuple(dict.fromkeys(m.strip().upper() for m in str(raw).split(",") if m.strip()))


def _jaas_name(config: BrokerConfig, listener: str, mechanism: str) -> str:
    specific = config.listener_values.get(listener, {}).get(f"{mechanism.lower()}.sasl.jaas.config")
    return f"{_prefix(listener)}{mechanism.lower()}.sasl.jaas.config" if specific is not None else "sasl.jaas.config"


def krb5_login(config: BrokerConfig, listener: str) -> Krb5Login:
    """The listener's Krb5LoginModule entry, or ConfigError saying what to set."""
    from moldau.server.config import ConfigError

    module = jaas_module(config, listener, GSSAPI)
    where = _jaas_name(config, listener, GSSAPI)
    if module is None or module.class_name != KRB5_LOGIN_MODULE:
        raise ConfigError(
            f"listener {listener} enables GSSAPI but has no Krb5LoginModule: set {_prefix(listener)}gssapi."
            f"sasl.jaas.config (or sasl.jaas.config) to {KRB5_LOGIN_MODULE} required useKeyTab=true "
            'storeKey=true keyTab="/path/kafka.keytab" principal="kafka/<host>@<REALM>";')
    try:
        return Krb5Login.from_jaas(module, where)
    except GssapiConfigError as exc:
        raise ConfigError(str(exc)) from None


def kerberos_service_name(config: BrokerConfig, listener: str, login: Krb5Login) -> str:
    from moldau.server.config import ConfigError

    try:
        return service_name(login, config.listener_value(listener, "sasl.kerberos.service.name"),
                            f"listener {listener}")
    except GssapiConfigError as exc:
        raise ConfigError(str(exc)) from None


def short_namer(config: BrokerConfig, listener: str) -> KerberosShortNamer:
    """`sasl.kerberos.principal.to.local.rules` against the Kerberos library's default realm."""
    from moldau.server.config import ConfigError

    key = "sasl.kerberos.principal.to.local.rules"
    rules = split_rules(str(config.listener_value(listener, key) or "DEFAULT"))
    name = f"{_prefix(listener)}{key}" if key in config.listener_values.get(listener, {}) else key
    try:
        return KerberosShortNamer(default_realm(), rules)
    except GssapiConfigError as exc:
        raise ConfigError(str(exc)) from None
    except KerberosNameError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _gssapi_settings(config: BrokerConfig, listener: str) -> GssapiServerSettings:
    from moldau.server.config import ConfigError

    login = krb5_login(config, listener)
    service = kerberos_service_name(config, listener, login)
    try:
        return GssapiServerSettings.build(login, service, short_namer(config, listener), f"listener {listener}")
    except GssapiConfigError as exc:
        raise ConfigError(str(exc)) from None


def _listener_security(config: BrokerConfig, listener: str, protocol: str,
                       jwks: dict[JwksSettings, RefreshingJwks]) -> ListenerSecurity:
    from moldau.server.config import ConfigError

    context = None
    if protocol in ("SSL", "SASL_SSL"):
        try:
            context = server_context(ssl_settings(config, listener), _prefix(listener))
        except TlsConfigError as exc:
            raise ConfigError(f"listener {listener}: {exc}") from None
    if not protocol.startswith("SASL_"):
        return ListenerSecurity(listener, protocol, context)
    mechanisms = _mechanisms(config, listener)
    if not mechanisms:
        raise ConfigError(f"listener {listener}: sasl.enabled.mechanisms is empty")
    users: dict[str, str] = {}
    if "PLAIN" in mechanisms:
        module = jaas_module(config, listener, "PLAIN")
        if module is None or module.class_name != PLAIN_LOGIN_MODULE:
            raise ConfigError(
                f"listener {listener} enables PLAIN but has no PlainLoginModule: set "
                f"{_prefix(listener)}plain.sasl.jaas.config (or sasl.jaas.config) to "
                f'{PLAIN_LOGIN_MODULE} required user_<name>="<password>" ...;')
        users = module.plain_users
    validator: UnsecuredValidator | SignedValidator = UnsecuredValidator()
    if OAUTHBEARER in mechanisms:
        signed = _signed_validator(config, listener, jwks)
        if signed is not None:
            validator = signed
        else:
            module = jaas_module(config, listener, OAUTHBEARER)
            if module is not None and module.class_name == OAUTHBEARER_LOGIN_MODULE:
                try:
                    validator = UnsecuredValidator.from_jaas_options(module.options)
                except ValueError as exc:
                    raise ConfigError(f"listener {listener}: {exc}") from None
    gssapi = _gssapi_settings(config, listener) if GSSAPI in mechanisms else None
    return ListenerSecurity(listener, protocol, context, mechanisms, users, validator, gssapi)


def _oauthbearer_setting(config: BrokerConfig, listener: str, name: str) -> tuple[str, object]:
    """(the key it was set by, value) of an OAUTHBEARER setting as a listener sees it:
    listener.name.<l>.oauthbearer.<name>, else listener.name.<l>.<name>, else <name>."""
    overrides = config.listener_values.get(listener.upper(), {})
    for key in (f"oauthbearer.{name}", name):
        if key in overrides:
            return f"{_prefix(listener)}{key}", overrides[key]
    return name, config.values.get(name)


def _endpoint_url(config: BrokerConfig, listener: str, name: str, handler_key: str, handler: object,
                  what: str) -> tuple[str, str] | None:
    """(the key it was set by, URL) of an issuer's endpoint for the listener, checked; None
    when unset (a ConfigError when the callback handler that needs it is named)."""
    from moldau.server.config import ConfigError

    url_key, url = _oauthbearer_setting(config, listener, name)
    if not url:
        if handler is not None:
            raise ConfigError(f"{handler_key}={handler} needs {name} (or {_prefix(listener)}oauthbearer.{name}): "
                              f"{what}")
        return None
    try:
        check_url(str(url).strip())
    except ValueError as exc:
        raise ConfigError(f"{url_key}: {exc}") from None
    return url_key, str(url).strip()


def _signed_validator(config: BrokerConfig, listener: str,
                      jwks: dict[JwksSettings, RefreshingJwks]) -> SignedValidator | None:
    """The listener's validator of signed tokens, or None when it takes unsecured ones:
    signed when a JWKS URL applies to it, unless its callback handler is Kafka's unsecured
    validator. `jwks` shares one key set among listeners naming the same endpoint."""
    from moldau.server.config import SERVER_CALLBACK_HANDLER_CLASS, ConfigError

    handler_key = f"{_prefix(listener)}oauthbearer.{SERVER_CALLBACK_HANDLER_CLASS}"
    handler = config.listener_values.get(listener.upper(), {}).get(f"oauthbearer.{SERVER_CALLBACK_HANDLER_CLASS}")
    handler = str(handler).strip() if handler is not None else None
    if handler is not None and handler not in (*VALIDATOR_CALLBACK_HANDLERS, UNSECURED_VALIDATOR_CALLBACK_HANDLER):
        raise ConfigError(f"{handler_key}={handler} is not supported (use {VALIDATOR_CALLBACK_HANDLERS[0]} for "
                          f"signed tokens or {UNSECURED_VALIDATOR_CALLBACK_HANDLER})")
    if handler == UNSECURED_VALIDATOR_CALLBACK_HANDLER:
        return None
    found = _endpoint_url(config, listener, "sasl.oauthbearer.jwks.endpoint.url", handler_key, handler,
                          "the URL of the OAuth/OIDC issuer's JWKS, http(s):// or file:")
    if found is None:
        return None
    url_key, url = found

    def setting(name: str) -> object:
        return _oauthbearer_setting(config, listener, f"sasl.oauthbearer.{name}")[1]

    def number(name: str) -> int:
        value = setting(name)  # parsed and range-checked with the property's definition
        assert isinstance(value, int)
        return value

    settings = JwksSettings(url, number("jwks.endpoint.refresh.ms"), number("jwks.endpoint.retry.backoff.ms"),
                            number("jwks.endpoint.retry.backoff.max.ms"))
    if settings not in jwks:
        keys = None
        if url.startswith("file:"):  # a local file is read now: a missing or broken one is a config error
            try:
                keys = load_keys(url)
            except (OSError, ValueError) as exc:
                raise ConfigError(f"{url_key}={url}: cannot read the JWKS: {exc}") from None
        jwks[settings] = RefreshingJwks(settings, keys=keys)
    audience = setting("expected.audience")
    for name in ("sub.claim.name", "scope.claim.name"):
        if not str(setting(name) or "").strip():
            raise ConfigError(f"{_oauthbearer_setting(config, listener, f'sasl.oauthbearer.{name}')[0]} is empty")
    claims = JwtValidatorSettings(
        expected_audience=tuple(a.strip() for a in str(audience).split(",") if a.strip()) if audience else (),
        expected_issuer=str(setting("expected.issuer")) if setting("expected.issuer") else None,
        sub_claim_name=str(setting("sub.claim.name")).strip(),
        scope_claim_name=str(setting("scope.claim.name")).strip(),
        clock_skew_seconds=number("clock.skew.seconds"),
    )
    return SignedValidator(claims, jwks[settings])


def _inter_broker(config: BrokerConfig, listener: ListenerSecurity) -> InterBrokerSecurity:
    from moldau.server.config import ConfigError

    context = None
    if listener.protocol in ("SSL", "SASL_SSL"):
        try:
            context = client_context(ssl_settings(config, listener.name), _prefix(listener.name))
        except TlsConfigError as exc:
            raise ConfigError(f"inter-broker listener {listener.name}: {exc}") from None
    if not listener.sasl:
        return InterBrokerSecurity(listener.name, listener.protocol, context)
    mechanism = str(config["sasl.mechanism.inter.broker.protocol"])
    if mechanism not in listener.mechanisms:
        raise ConfigError(f"sasl.mechanism.inter.broker.protocol must be included in sasl.enabled.mechanisms "
                          f"when SASL is used for inter-broker communication ({mechanism} is not enabled on "
                          f"listener {listener.name})")
    module = jaas_module(config, listener.name, mechanism)
    if mechanism == OAUTHBEARER:
        login = _oauth_login(config, listener, module)
        if login is not None:
            if not isinstance(listener.oauthbearer, SignedValidator):
                raise ConfigError(f"brokers get signed OAUTHBEARER tokens (sasl.oauthbearer.token.endpoint.url), but "
                                  f"inter-broker listener {listener.name} takes unsecured ones: set "
                                  "sasl.oauthbearer.jwks.endpoint.url for it too")
            return InterBrokerSecurity(listener.name, listener.protocol, context, mechanism, oauth_login=login)
    if mechanism == OAUTHBEARER and isinstance(listener.oauthbearer, SignedValidator):
        raise ConfigError(f"inter-broker listener {listener.name} validates signed OAUTHBEARER tokens "
                          f"(sasl.oauthbearer.jwks.endpoint.url), but brokers log in to each other with unsecured "
                          "tokens: set sasl.oauthbearer.token.endpoint.url and clientId/clientSecret in the "
                          "OAuthBearerLoginModule's options for brokers to get signed ones, or use PLAIN or SCRAM "
                          "between brokers")
    if mechanism == OAUTHBEARER:
        options = dict(module.options) if module else {}
        if not options.get("unsecuredLoginStringClaim_sub"):
            raise ConfigError(f"inter-broker listener {listener.name} uses SASL OAUTHBEARER: its JAAS config "
                              f"({_prefix(listener.name)}oauthbearer.sasl.jaas.config or sasl.jaas.config) needs "
                              'unsecuredLoginStringClaim_sub="<broker principal>" for the token this broker '
                              "logs in to the others with")
        try:
            unsecured_token(options, 0)
        except ValueError as exc:
            raise ConfigError(f"inter-broker listener {listener.name}: {exc}") from None
        return InterBrokerSecurity(listener.name, listener.protocol, context, mechanism, login_options=options)
    if mechanism == GSSAPI:
        kerberos = krb5_login(config, listener.name)
        return InterBrokerSecurity(listener.name, listener.protocol, context, mechanism, kerberos=kerberos,
                                   kerberos_service_name=kerberos_service_name(config, listener.name, kerberos))
    username = module.options.get("username") if module else None
    password = module.options.get("password") if module else None
    if not username or password is None:
        raise ConfigError(f"inter-broker listener {listener.name} uses SASL {mechanism}: its JAAS config "
                          f"({_prefix(listener.name)}{mechanism.lower()}.sasl.jaas.config or sasl.jaas.config) "
                          'needs username="..." and password="..." for this broker to log in to the others')
    return InterBrokerSecurity(listener.name, listener.protocol, context, mechanism, username, password)


def _oauth_login(config: BrokerConfig, listener: ListenerSecurity,
                 module: LoginModule | None) -> ClientCredentialsLogin | None:
    """The broker's client_credentials login when a token endpoint applies to the
    inter-broker listener (Kafka's OAuthBearerLoginCallbackHandler), else None."""
    from moldau.server.config import LOGIN_CALLBACK_HANDLER_CLASS, ConfigError

    name = listener.name
    handler = config.listener_values.get(name.upper(), {}).get(f"oauthbearer.{LOGIN_CALLBACK_HANDLER_CLASS}")
    handler_key = f"{_prefix(name)}oauthbearer.{LOGIN_CALLBACK_HANDLER_CLASS}"
    if handler is not None and str(handler).strip() != LOGIN_CALLBACK_HANDLER:
        raise ConfigError(f"{handler_key}={handler} is not supported (use {LOGIN_CALLBACK_HANDLER})")
    found = _endpoint_url(config, name, "sasl.oauthbearer.token.endpoint.url", handler_key, handler,
                          "the OAuth/OIDC issuer's token endpoint, where this broker gets its tokens")
    if found is None:
        return None
    url_key, url = found
    options = module.options if module is not None else {}
    client_id, client_secret = options.get("clientId"), options.get("clientSecret")
    if not client_id or not client_secret:
        raise ConfigError(f"{url_key} is set for inter-broker listener {name}: its JAAS config "
                          f"({_prefix(name)}oauthbearer.sasl.jaas.config or sasl.jaas.config) needs "
                          f'{OAUTHBEARER_LOGIN_MODULE} required clientId="..." clientSecret="..."; for this broker '
                          "to get its tokens")
    return ClientCredentialsLogin(ClientCredentials(url, client_id, client_secret, options.get("scope") or None))


def _check_store_types(config: BrokerConfig) -> None:
    """JKS and PKCS12 are refused wherever they are set, used by a listener or not."""
    from moldau.server.config import ConfigError

    scopes = [("", config.values)] + [(_prefix(name), values) for name, values in config.listener_values.items()]
    for prefix, values in scopes:
        for key in ("ssl.keystore.type", "ssl.truststore.type"):
            value = values.get(key)
            if value is not None and str(value).upper() != "PEM":
                raise ConfigError(f"{prefix}{key}={value} is not supported: Moldau reads PEM stores only; "
                                  f"convert it to PEM and set {prefix}{key}=PEM")


def build_security(config: BrokerConfig) -> SecurityConfig:
    _check_store_types(config)
    jwks: dict[JwksSettings, RefreshingJwks] = {}
    listeners = {
        lst.name: _listener_security(config, lst.name, config.security_protocol(lst.name), jwks)
        for lst in config.listeners()
    }
    inter_broker = _inter_broker(config, listeners[config.inter_broker_listener_name()])
    return SecurityConfig(listeners, inter_broker)

"""Listeners with security protocols, TLS key/trust stores (PEM only) and SASL settings, as
broker properties: Kafka's names, its rules, and errors that name the property."""
import ssl
from pathlib import Path

import pytest

from moldau.server.config import BrokerConfig, ConfigError, parse_protocol_map
from moldau.server.security.tls import SslSettings, TlsConfigError, client_context, pem_blocks, server_context
from tests.certs import Pki, make_pki

PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" '
              'password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";')


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_protocol_map_default_and_custom() -> None:
    assert parse_protocol_map(None)["SASL_SSL"] == "SASL_SSL"
    assert parse_protocol_map("internal:sasl_plaintext, EXTERNAL:SSL") == {"INTERNAL": "SASL_PLAINTEXT",
                                                                           "EXTERNAL": "SSL"}
    for bad, needle in (("INTERNAL", "NAME:PROTOCOL"), ("A:TLS", "'TLS'"), ("A:SSL,A:SSL", "mapped twice")):
        with pytest.raises(ConfigError, match=needle):
            parse_protocol_map(bad)


def test_listeners_protocols_and_inter_broker_listener() -> None:
    c = BrokerConfig.from_sources({
        "listeners": "INTERNAL://:9094,EXTERNAL://:9092",
        "advertised.listeners": "EXTERNAL://kafka.example.com:19092",
        "listener.security.protocol.map": "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT",
        "inter.broker.listener.name": "internal"})
    assert c.inter_broker_listener_name() == "INTERNAL"
    assert [(lst.name, lst.host, lst.port) for lst in c.advertised_listeners()] == [
        ("INTERNAL", "localhost", 9094), ("EXTERNAL", "kafka.example.com", 19092)]
    assert c.security.inter_broker.protocol == "PLAINTEXT" and not c.security.inter_broker.sasl
    c = BrokerConfig.from_sources({"listeners": "PLAINTEXT://:9092,SASL_PLAINTEXT://:9094",
                                   "security.inter.broker.protocol": "SASL_PLAINTEXT", "sasl.jaas.config": PLAIN_JAAS})
    assert c.inter_broker_listener_name() == "SASL_PLAINTEXT"
    assert (c.security.inter_broker.mechanism, c.security.inter_broker.username) == ("PLAIN", "admin")


@pytest.mark.parametrize(
    "props,needle",
    [
        ({"listeners": "INTERNAL://:9092"}, "no security protocol defined for listener INTERNAL"),
        ({"listeners": "PLAINTEXT://:9092,PLAINTEXT://:9093"}, "PLAINTEXT is given twice"),
        ({"listeners": "PLAINTEXT://:9092", "advertised.listeners": "SSL://h:1"}, "SSL not among the listeners"),
        ({"listeners": "SSL://:9093"}, "inter.broker.listener.name must be a listener name"),
        ({"inter.broker.listener.name": "PLAINTEXT", "security.inter.broker.protocol": "PLAINTEXT"},
         "Only one of inter.broker.listener.name and security.inter.broker.protocol"),
        ({"security.inter.broker.protocol": "TLS"}, "security.inter.broker.protocol"),
        ({"ssl.keystore.type": "JKS"}, "ssl.keystore.type=JKS is not supported.*PEM"),
        ({"listener.name.ssl.ssl.truststore.type": "PKCS12"},
         "listener.name.ssl.ssl.truststore.type=PKCS12 is not supported.*PEM"),
        ({"listener.name.ssl.ssl.nonsense": "1"}, "unknown property 'listener.name.ssl.ssl.nonsense'"),
        ({"listener.name.ssl.kerberos.sasl.jaas.config": "x"}, "unknown property"),
        ({"sasl.enabled.mechanisms": "DIGEST-MD5"},
         "'DIGEST-MD5' is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER, GSSAPI"),
        ({"listeners": "SASL_PLAINTEXT://:9094", "security.inter.broker.protocol": "SASL_PLAINTEXT"},
         "listener SASL_PLAINTEXT enables PLAIN but has no PlainLoginModule"),
        ({"listeners": "SASL_PLAINTEXT://:9094", "security.inter.broker.protocol": "SASL_PLAINTEXT",
          "sasl.jaas.config": "org.apache.kafka.common.security.plain.PlainLoginModule required user_a=\"b\""},
         "sasl.jaas.config: login module .*missing ';'"),
        ({"listeners": "SASL_PLAINTEXT://:9094", "security.inter.broker.protocol": "SASL_PLAINTEXT",
          "sasl.jaas.config": 'com.example.MyModule required user_a="b";'}, "MyModule is not supported"),
        ({"listeners": "PLAINTEXT://:9092,SASL_PLAINTEXT://:9094",
          "listener.name.sasl_plaintext.plain.sasl.jaas.config":
              'org.apache.kafka.common.security.scram.ScramLoginModule required;'},
         "PLAIN needs .*PlainLoginModule"),
        ({"listeners": "SASL_PLAINTEXT://:9094", "security.inter.broker.protocol": "SASL_PLAINTEXT",
          "sasl.jaas.config": 'org.apache.kafka.common.security.plain.PlainLoginModule required user_a="b";'},
         'needs username="..." and password="..."'),
        ({"listeners": "SASL_PLAINTEXT://:9094", "security.inter.broker.protocol": "SASL_PLAINTEXT",
          "sasl.enabled.mechanisms": "SCRAM-SHA-256", "sasl.mechanism.inter.broker.protocol": "PLAIN"},
         "sasl.mechanism.inter.broker.protocol must be included in sasl.enabled.mechanisms"),
        ({"listeners": "PLAINTEXT://:9092,SSL://:9093"}, "listener SSL: an SSL listener needs a key"),
        ({"listeners": "SASL_PLAINTEXT://:9094", "security.inter.broker.protocol": "SASL_PLAINTEXT",
          "sasl.enabled.mechanisms": "OAUTHBEARER", "sasl.mechanism.inter.broker.protocol": "OAUTHBEARER",
          "sasl.jaas.config": "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;"},
         'needs unsecuredLoginStringClaim_sub="<broker principal>"'),
        ({"listeners": "SASL_PLAINTEXT://:9094", "security.inter.broker.protocol": "SASL_PLAINTEXT",
          "sasl.enabled.mechanisms": "OAUTHBEARER", "sasl.mechanism.inter.broker.protocol": "OAUTHBEARER",
          "sasl.jaas.config": "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
                              'unsecuredLoginStringClaim_sub="b" unsecuredLoginLifetimeSeconds="soon";'},
         "unsecuredLoginLifetimeSeconds='soon': not a number of seconds"),
    ],
)
def test_bad_security_settings_name_the_property(props: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        BrokerConfig.from_sources(props)


def test_sasl_listener_settings_with_listener_prefixes() -> None:
    c = BrokerConfig.from_sources({
        "listeners": "PLAINTEXT://:9092,INTERNAL://:9094,SASL_SSL_LESS://:9095",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,INTERNAL:SASL_PLAINTEXT,SASL_SSL_LESS:SASL_PLAINTEXT",
        "inter.broker.listener.name": "INTERNAL",
        "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
        "listener.name.internal.sasl.enabled.mechanisms": "SCRAM-SHA-512,PLAIN",
        "listener.name.internal.scram-sha-512.sasl.jaas.config":
            'org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="pw";',
        "listener.name.internal.plain.sasl.jaas.config": PLAIN_JAAS,
        "sasl.enabled.mechanisms": "PLAIN",
        "sasl.jaas.config": PLAIN_JAAS.replace("user_alice", "user_carol"),
    })
    internal = c.security.listeners["INTERNAL"]
    assert internal.mechanisms == ("SCRAM-SHA-512", "PLAIN") and internal.sasl
    assert internal.plain_users == {"admin": "admin-secret", "alice": "alice-secret"}
    other = c.security.listeners["SASL_SSL_LESS"]
    assert other.mechanisms == ("PLAIN",) and set(other.plain_users) == {"admin", "carol"}
    ib = c.security.inter_broker
    assert (ib.listener, ib.mechanism, ib.username, ib.password) == ("INTERNAL", "SCRAM-SHA-512", "broker", "pw")
    assert not c.security.listeners["PLAINTEXT"].sasl
    # Passwords never show in DescribeConfigs.
    assert c.describe()["sasl.jaas.config"] is None


def test_ssl_listener_context(pki: Pki) -> None:
    c = BrokerConfig.from_sources({
        "listeners": "PLAINTEXT://:9092,SSL://:9093",
        "ssl.keystore.location": str(pki.server),
        "listener.name.ssl.ssl.client.auth": "required",
        "listener.name.ssl.ssl.truststore.location": str(pki.ca),
        "ssl.enabled.protocols": "TLSv1.3",
    })
    context = c.security.listeners["SSL"].ssl_context
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.minimum_version == context.maximum_version == ssl.TLSVersion.TLSv1_3
    assert c.security.inter_broker.ssl_context is None


def test_pem_inline_on_one_line_and_encrypted_key(pki: Pki) -> None:
    chain = pki.server_cert.read_text().replace("\n", " ")  # a properties file may hold it on one line
    key = pki.server_key.read_text().replace("\n", " ")
    assert server_context(SslSettings(keystore_certificate_chain=chain, keystore_key=key))
    assert server_context(SslSettings(keystore_location=str(pki.encrypted_server), key_password="key-secret"))
    context = client_context(SslSettings(truststore_certificates=pki.ca.read_text(), keystore_location=str(pki.client)))
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    assert not client_context(SslSettings(endpoint_identification_algorithm="")).check_hostname


def test_pem_loading_errors(pki: Pki, tmp_path: Path) -> None:
    def refused(needle: str, **kw: object) -> None:
        with pytest.raises(TlsConfigError, match=needle):
            server_context(SslSettings(**kw))  # type: ignore[arg-type]

    refused("cannot read .*nope.pem", keystore_location=str(tmp_path / "nope.pem"))
    refused("no certificate", keystore_location=str(pki.server_key))
    refused("expected one private key .* found 0", keystore_location=str(pki.server_cert))
    refused("encrypted but ssl.key.password is not set", keystore_location=str(pki.encrypted_server))
    refused("ssl.key.password cannot decrypt", keystore_location=str(pki.encrypted_server), key_password="wrong")
    mismatched = tmp_path / "mismatched.pem"
    mismatched.write_text(pki.client_key.read_text() + pki.server_cert.read_text())
    refused("does not match the certificate", keystore_location=str(mismatched))
    refused("must be given together", keystore_certificate_chain=pki.server_cert.read_text())
    refused("cannot be combined", keystore_location=str(pki.server), keystore_key=pki.server_key.read_text())
    refused("keystore.password cannot be specified with PEM", keystore_location=str(pki.server),
            keystore_password="x")
    refused("JKS is not supported", keystore_type="JKS", keystore_location=str(pki.server))
    refused("ssl.enabled.protocols: SSLv3", keystore_location=str(pki.server), enabled_protocols=("SSLv3",))
    refused("ssl.cipher.suites: OpenSSL knows none", keystore_location=str(pki.server), cipher_suites=("BOGUS",))
    refused("ssl.truststore.location .*no certificate", keystore_location=str(pki.server),
            client_auth="required", truststore_location=str(pki.server_key))
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\n!!!notbase64\n-----END CERTIFICATE-----\n")
    refused("not valid base64", keystore_location=str(bad))
    legacy = ("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: x\n\nAAAA\n"
              "-----END RSA PRIVATE KEY-----")
    with pytest.raises(TlsConfigError, match="legacy OpenSSL format"):
        pem_blocks(legacy, "key")


KRB5 = "com.sun.security.auth.module.Krb5LoginModule required"
GSSAPI_LISTENER = {"listeners": "PLAINTEXT://:9092,SASL_PLAINTEXT://:9094", "sasl.enabled.mechanisms": "GSSAPI"}


@pytest.mark.parametrize(
    "props,needle",
    [
        ({}, "listener SASL_PLAINTEXT enables GSSAPI but has no Krb5LoginModule: set "
             "listener.name.sasl_plaintext.gssapi.sasl.jaas.config"),
        ({"sasl.jaas.config": f'{KRB5} principal="kafka/h@R";'}, "a broker logs in with a keytab"),
        ({"sasl.jaas.config": f'{KRB5} useKeyTab=true keyTab="{{keytab}}";'}, 'needs principal="<service>/<host>'),
        ({"sasl.jaas.config": f'{KRB5} useKeyTab=true keyTab="/nonexistent.keytab" principal="kafka/h@R";'},
         "keyTab /nonexistent.keytab is not a readable file"),
        ({"sasl.jaas.config": f'{KRB5} useKeyTab=true keyTab="{{keytab}}" principal="kafka/h@R";'},
         "no serviceName defined in either JAAS or Kafka config: set sasl.kerberos.service.name"),
        ({"sasl.jaas.config": f'{KRB5} useKeyTab=true keyTab="{{keytab}}" principal="kafka/h@R" serviceName="k";',
          "sasl.kerberos.service.name": "kafka"}, "conflicting serviceName values"),
        ({"sasl.jaas.config": f'{KRB5} useKeyTab=true keyTab="{{keytab}}" principal="kafka/h@R";',
          "sasl.kerberos.service.name": "kafka", "sasl.kerberos.principal.to.local.rules": "RULE:[1:$1]/LU"},
         "sasl.kerberos.principal.to.local.rules: Invalid rule: `RULE:\\[1:\\$1\\]/LU`, unmatched substring: `U`"),
        ({"sasl.jaas.config": f'{KRB5} useKeyTab=true keyTab="{{keytab}}" principal="kafka/h@R";',
          "sasl.kerberos.service.name": "kafka"},
         "listener SASL_PLAINTEXT: cannot use principal kafka/h@R from keyTab .*: .*key table"),
    ],
)
def test_bad_gssapi_settings_name_the_property(props: dict[str, str], needle: str, tmp_path: Path) -> None:
    keytab = tmp_path / "not-a.keytab"
    keytab.write_bytes(b"not a keytab")
    props = {k: v.replace("{keytab}", str(keytab)) for k, v in props.items()}
    with pytest.raises(ConfigError, match=needle):
        BrokerConfig.from_sources({**GSSAPI_LISTENER, **props})


def test_gssapi_without_the_package_names_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "gssapi", None)  # as if not installed
    keytab = tmp_path / "kafka.keytab"
    keytab.write_bytes(b"\x05\x02")
    with pytest.raises(ConfigError, match=r"SASL GSSAPI needs the Python package gssapi: "
                                          r"pip install 'moldau\[gssapi\]'"):
        BrokerConfig.from_sources({**GSSAPI_LISTENER, "sasl.kerberos.service.name": "kafka", "sasl.jaas.config":
                                   f'{KRB5} useKeyTab=true keyTab="{keytab}" principal="kafka/h@R";'})


# --- OAUTHBEARER with signed tokens (KIP-768) ---------------------------------------------

OAUTH_LISTENERS = {"listeners": "PLAINTEXT://:9092,SASL_PLAINTEXT://:9094,EXTERNAL://:9095",
                   "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,"
                                                     "EXTERNAL:SASL_PLAINTEXT",
                   "sasl.enabled.mechanisms": "OAUTHBEARER"}
VALIDATOR = "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"


def test_oauthbearer_signed_tokens_by_kafkas_names(tmp_path: Path) -> None:
    from moldau.server.security.jwks import SignedValidator
    from moldau.server.security.oauthbearer import UnsecuredValidator
    from tests.oidc import SigningKey, jwks

    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_bytes(jwks(SigningKey("k1")))
    config = BrokerConfig.from_sources({
        **OAUTH_LISTENERS,
        "sasl.oauthbearer.jwks.endpoint.url": "https://issuer.example/jwks",
        "sasl.oauthbearer.expected.audience": "kafka, moldau",
        "sasl.oauthbearer.expected.issuer": "https://issuer.example",
        "sasl.oauthbearer.sub.claim.name": "client_id",
        "sasl.oauthbearer.jwks.endpoint.refresh.ms": "60000",
        "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class": VALIDATOR,
        "listener.name.sasl_plaintext.oauthbearer.sasl.oauthbearer.clock.skew.seconds": "5",
        # the other listener: its own key set (a file), older handler name, default claims
        "listener.name.external.oauthbearer.sasl.server.callback.handler.class":
            "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerValidatorCallbackHandler",
        "listener.name.external.oauthbearer.sasl.oauthbearer.jwks.endpoint.url": jwks_file.as_uri(),
        "listener.name.external.sasl.oauthbearer.sub.claim.name": "sub",
    })
    internal = config.security.listeners["SASL_PLAINTEXT"].oauthbearer
    external = config.security.listeners["EXTERNAL"].oauthbearer
    assert isinstance(internal, SignedValidator) and isinstance(external, SignedValidator)
    assert internal.settings.expected_audience == ("kafka", "moldau")
    assert internal.settings.expected_issuer == "https://issuer.example"
    assert (internal.settings.sub_claim_name, internal.settings.scope_claim_name) == ("client_id", "scope")
    assert (internal.settings.clock_skew_seconds, external.settings.clock_skew_seconds) == (5, 30)
    assert internal.jwks.settings.url == "https://issuer.example/jwks" and internal.jwks.settings.refresh_ms == 60000
    assert internal.jwks.settings.retry_backoff_ms == 100 and internal.jwks.settings.retry_backoff_max_ms == 10000
    assert not internal.jwks.loaded  # fetched when the broker starts, not when the config is read
    assert external.settings.sub_claim_name == "sub" and [k.kid for k in external.jwks.keys] == ["k1"]
    assert len(config.security.jwks_sources) == 2
    # Without a JWKS URL, OAUTHBEARER stays unsecured (Kafka's default validator); so it
    # does on a listener naming the unsecured handler explicitly, and two listeners naming
    # the same endpoint share one key set.
    plain = BrokerConfig.from_sources(OAUTH_LISTENERS)
    assert isinstance(plain.security.listeners["SASL_PLAINTEXT"].oauthbearer, UnsecuredValidator)
    shared = BrokerConfig.from_sources({
        **OAUTH_LISTENERS, "sasl.oauthbearer.jwks.endpoint.url": "http://127.0.0.1:1/jwks",
        "listener.name.external.oauthbearer.sasl.server.callback.handler.class":
            "org.apache.kafka.common.security.oauthbearer.internals.unsecured."
            "OAuthBearerUnsecuredValidatorCallbackHandler"})
    assert isinstance(shared.security.listeners["EXTERNAL"].oauthbearer, UnsecuredValidator)
    assert len(shared.security.jwks_sources) == 1


def test_brokers_log_in_with_signed_tokens_from_the_issuer() -> None:
    config = BrokerConfig.from_sources({
        **OAUTH_LISTENERS, "inter.broker.listener.name": "SASL_PLAINTEXT",
        "sasl.mechanism.inter.broker.protocol": "OAUTHBEARER",
        "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config":
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
            'clientId="broker-app" clientSecret="broker-secret" scope="kafka cluster";',
        "listener.name.sasl_plaintext.oauthbearer.sasl.login.callback.handler.class":
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler",
        "sasl.oauthbearer.token.endpoint.url": "https://issuer.example/token",
        "sasl.oauthbearer.jwks.endpoint.url": "https://issuer.example/jwks"})
    login = config.security.inter_broker.oauth_login
    assert login is not None and login.credentials.client_id == "broker-app"
    assert (login.credentials.token_endpoint_url, login.credentials.scope) == ("https://issuer.example/token",
                                                                               "kafka cluster")
    assert "broker-secret" not in repr(config.security.inter_broker)


@pytest.mark.parametrize(("props", "needle"), [
    ({"sasl.oauthbearer.jwks.endpoint.url": "ftp://issuer/jwks"},
     "sasl.oauthbearer.jwks.endpoint.url: 'ftp://issuer/jwks' is not an http://, https:// or file: URL"),
    ({"listener.name.external.oauthbearer.sasl.oauthbearer.jwks.endpoint.url": "https:///jwks"},
     "listener.name.external.oauthbearer.sasl.oauthbearer.jwks.endpoint.url: 'https:///jwks' has no host"),
    ({"sasl.oauthbearer.jwks.endpoint.url": "file:///nonexistent/jwks.json"},
     "sasl.oauthbearer.jwks.endpoint.url=file:///nonexistent/jwks.json: cannot read the JWKS"),
    ({"listener.name.external.oauthbearer.sasl.server.callback.handler.class": VALIDATOR},
     "listener.name.external.oauthbearer.sasl.server.callback.handler.class=.* needs "
     "sasl.oauthbearer.jwks.endpoint.url"),
    ({"listener.name.external.oauthbearer.sasl.server.callback.handler.class": "com.example.Handler"},
     "listener.name.external.oauthbearer.sasl.server.callback.handler.class=com.example.Handler is not supported"),
    ({"sasl.oauthbearer.clock.skew.seconds": "-1"}, "sasl.oauthbearer.clock.skew.seconds: -1 is below the minimum"),
    ({"listener.name.external.oauthbearer.sasl.oauthbearer.jwks.endpoint.refresh.ms": "soon"},
     "listener.name.external.oauthbearer.sasl.oauthbearer.jwks.endpoint.refresh.ms: 'soon' is not an integer"),
    ({"sasl.oauthbearer.jwks.endpoint.url": "http://issuer/jwks", "sasl.oauthbearer.sub.claim.name": " "},
     "sasl.oauthbearer.sub.claim.name is empty"),
    ({"listener.name.external.oauthbearer.sasl.oauthbearer.nonsense": "1"},
     "unknown property 'listener.name.external.oauthbearer.sasl.oauthbearer.nonsense'"),
    ({"sasl.server.callback.handler.class": VALIDATOR}, "unknown property 'sasl.server.callback.handler.class'"),
    ({"security.inter.broker.protocol": None, "inter.broker.listener.name": "SASL_PLAINTEXT",
      "sasl.mechanism.inter.broker.protocol": "OAUTHBEARER",
      "sasl.jaas.config": "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
                          'unsecuredLoginStringClaim_sub="broker";',
      "sasl.oauthbearer.jwks.endpoint.url": "http://issuer/jwks"},
     "inter-broker listener SASL_PLAINTEXT validates signed OAUTHBEARER tokens.*sasl.oauthbearer.token.endpoint.url"),
    ({"security.inter.broker.protocol": None, "inter.broker.listener.name": "SASL_PLAINTEXT",
      "sasl.mechanism.inter.broker.protocol": "OAUTHBEARER",
      "sasl.jaas.config": "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
                          'clientId="broker";',
      "sasl.oauthbearer.jwks.endpoint.url": "http://issuer/jwks",
      "sasl.oauthbearer.token.endpoint.url": "http://issuer/token"},
     'sasl.oauthbearer.token.endpoint.url is set for inter-broker listener SASL_PLAINTEXT: .*clientSecret="..."'),
    ({"security.inter.broker.protocol": None, "inter.broker.listener.name": "SASL_PLAINTEXT",
      "sasl.mechanism.inter.broker.protocol": "OAUTHBEARER",
      "sasl.jaas.config": "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
                          'clientId="broker" clientSecret="s";',
      "listener.name.sasl_plaintext.oauthbearer.sasl.oauthbearer.token.endpoint.url": "ldap://issuer/token"},
     "listener.name.sasl_plaintext.oauthbearer.sasl.oauthbearer.token.endpoint.url: 'ldap://issuer/token' is not"),
    ({"security.inter.broker.protocol": None, "inter.broker.listener.name": "SASL_PLAINTEXT",
      "sasl.mechanism.inter.broker.protocol": "OAUTHBEARER",
      "sasl.jaas.config": "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
                          'clientId="broker" clientSecret="s";',
      "sasl.oauthbearer.token.endpoint.url": "http://issuer/token"},
     "inter-broker listener SASL_PLAINTEXT takes unsecured ones: set sasl.oauthbearer.jwks.endpoint.url"),
    ({"listener.name.sasl_plaintext.oauthbearer.sasl.login.callback.handler.class": "com.example.Login",
      "security.inter.broker.protocol": None, "inter.broker.listener.name": "SASL_PLAINTEXT",
      "sasl.mechanism.inter.broker.protocol": "OAUTHBEARER"},
     "listener.name.sasl_plaintext.oauthbearer.sasl.login.callback.handler.class=com.example.Login is not supp"),
])
def test_bad_oauthbearer_settings_name_the_property(props: dict[str, str | None], needle: str) -> None:
    merged = {k: v for k, v in {**OAUTH_LISTENERS, **props}.items() if v is not None}
    with pytest.raises(ConfigError, match=needle):
        BrokerConfig.from_sources(merged)

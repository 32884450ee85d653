"""Broker configuration: Kafka's property names, defaults and validation.

Read from a `server.properties` style file plus `--override key=value`. A property
Moldau does not know is an error naming it; a Kafka property that Moldau accepts but
that has no effect here (thread counts, socket buffers) is logged and ignored, so a
Kafka operator's file still loads.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moldau.authorizer.authorizer import (
    ALLOW_EVERYONE_IF_NO_ACL_FOUND_CONFIG,
    AUTHORIZER_CLASS_NAME_CONFIG,
    SUPER_USERS_CONFIG,
    AuthorizerConfig,
    authorizer_configured,
)
from moldau.authorizer.ssl_principal_mapper import SslPrincipalMapper
from moldau.log.config import LONG_MAX, LogConfig
from moldau.replication.replica_selector import REPLICA_SELECTORS

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A property that is unknown or has an invalid value; the message names it."""


@dataclass(frozen=True)
class Prop:
    name: str
    kind: str  # int, long, string, boolean, list, double, password (a string never shown)
    default: Any
    minimum: int | None = None
    choices: tuple[str, ...] | None = None
    maximum: float | None = None  # doubles only
    dynamic: bool = False  # may be changed at runtime with IncrementalAlterConfigs
    doc: str = ""


def _p(name: str, kind: str, default: Any, **kw: Any) -> Prop:
    return Prop(name, kind, default, **kw)


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI")
# Between brokers: every mechanism Moldau serves (OAUTHBEARER with an unsecured token,
# GSSAPI with the broker's keytab).
INTER_BROKER_SASL_MECHANISMS = SASL_MECHANISMS
# Kafka's default listener.security.protocol.map: each protocol names a listener of its own.
DEFAULT_PROTOCOL_MAP = {p: p for p in SECURITY_PROTOCOLS}
LISTENER_PREFIX = "listener.name."

PROPERTIES: dict[str, Prop] = {
    p.name: p
    for p in (
        _p("broker.id", "int", 0, minimum=-1),
        _p("node.id", "int", None, minimum=0),
        _p("listeners", "string", "PLAINTEXT://:9092"),
        _p("advertised.listeners", "string", None),
        _p("listener.security.protocol.map", "string", None),
        _p("inter.broker.listener.name", "string", None),
        _p("security.inter.broker.protocol", "string", None, choices=SECURITY_PROTOCOLS),
        # Prometheus /metrics (Moldau's own; Kafka exports JMX): off unless one is set.
        _p("metrics.port", "int", None, minimum=0),  # on the first listener's host; 0: any free port
        _p("metrics.listener", "string", None),  # or http://HOST:PORT
        # Security (TLS, SASL): the ones below may also be set per listener, as
        # listener.name.<listener>.<property> (see LISTENER_PROPERTIES).
        _p("sasl.enabled.mechanisms", "list", "PLAIN", choices=SASL_MECHANISMS),  # Kafka: GSSAPI
        _p("sasl.mechanism.inter.broker.protocol", "string", "PLAIN",  # Kafka: GSSAPI
           choices=INTER_BROKER_SASL_MECHANISMS),
        _p("sasl.jaas.config", "password", None),
        # GSSAPI (Kerberos): the service name clients ask tickets for (required with GSSAPI,
        # or the JAAS serviceName option), and principal -> short name rules for ACLs.
        _p("sasl.kerberos.service.name", "string", None),
        _p("sasl.kerberos.principal.to.local.rules", "list", "DEFAULT"),
        _p("connection.failed.authentication.delay.ms", "int", 100, minimum=0),
        _p("connections.max.reauth.ms", "long", 0, minimum=0),  # KIP-368; 0: sessions last as long as connections
        # OAUTHBEARER with signed tokens (KIP-768): with a JWKS URL, OAUTHBEARER listeners
        # validate tokens signed by an OIDC issuer (security/jwt_validator.py, jwks.py).
        _p("sasl.oauthbearer.jwks.endpoint.url", "string", None),
        # ... and brokers log in to each other with the client_credentials grant (oauth_login.py)
        _p("sasl.oauthbearer.token.endpoint.url", "string", None),
        _p("sasl.oauthbearer.jwks.endpoint.refresh.ms", "long", 3600000, minimum=1),
        _p("sasl.oauthbearer.jwks.endpoint.retry.backoff.ms", "long", 100, minimum=0),
        _p("sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms", "long", 10000, minimum=0),
        _p("sasl.oauthbearer.expected.audience", "list", None),
        _p("sasl.oauthbearer.expected.issuer", "string", None),
        _p("sasl.oauthbearer.sub.claim.name", "string", "sub"),
        _p("sasl.oauthbearer.scope.claim.name", "string", "scope"),
        _p("sasl.oauthbearer.clock.skew.seconds", "int", 30, minimum=0),
        _p("ssl.keystore.type", "string", "PEM"),  # Kafka: JKS, which Moldau refuses
        _p("ssl.keystore.location", "string", None),
        _p("ssl.keystore.password", "password", None),
        _p("ssl.keystore.certificate.chain", "password", None),
        _p("ssl.keystore.key", "password", None),
        _p("ssl.key.password", "password", None),
        _p("ssl.truststore.type", "string", "PEM"),  # Kafka: JKS
        _p("ssl.truststore.location", "string", None),
        _p("ssl.truststore.password", "password", None),
        _p("ssl.truststore.certificates", "password", None),
        _p("ssl.client.auth", "string", "none", choices=("none", "requested", "required")),
        _p("ssl.enabled.protocols", "list", "TLSv1.2,TLSv1.3", choices=("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")),
        _p("ssl.cipher.suites", "list", None),
        _p("ssl.endpoint.identification.algorithm", "string", "https"),
        _p("ssl.principal.mapping.rules", "string", "DEFAULT"),
        # Authorization (ACLs): unset authorizer.class.name = none, as in Kafka.
        _p("authorizer.class.name", "string", ""),
        _p("super.users", "string", ""),
        _p("allow.everyone.if.no.acl.found", "boolean", False),
        _p("log.dirs", "string", None),
        _p("log.dir", "string", "/tmp/kafka-logs"),
        _p("num.partitions", "int", 1, minimum=1),
        _p("num.recovery.threads.per.data.dir", "int", 1, minimum=1),
        _p("default.replication.factor", "int", 1, minimum=1),
        _p("auto.create.topics.enable", "boolean", True),
        _p("delete.topic.enable", "boolean", True),
        _p("log.segment.bytes", "int", 1073741824, minimum=14, dynamic=True),
        _p("log.roll.ms", "long", None, minimum=1, dynamic=True),
        _p("log.roll.hours", "int", 168, minimum=1),
        _p("log.retention.ms", "long", None, minimum=-1, dynamic=True),
        _p("log.retention.minutes", "int", None, minimum=-1),
        _p("log.retention.hours", "int", 168, minimum=-1),
        _p("log.retention.bytes", "long", -1, dynamic=True),
        _p("log.retention.check.interval.ms", "long", 300000, minimum=1),
        _p("log.index.interval.bytes", "int", 4096, minimum=0, dynamic=True),
        _p("log.index.size.max.bytes", "int", 10485760, minimum=4, dynamic=True),
        _p("log.flush.interval.messages", "long", LONG_MAX, minimum=1, dynamic=True),
        _p("log.flush.interval.ms", "long", None, minimum=0, dynamic=True),
        _p("log.flush.scheduler.interval.ms", "long", LONG_MAX, minimum=0),
        _p("log.flush.offset.checkpoint.interval.ms", "int", 60000, minimum=0),
        _p("log.message.timestamp.type", "string", "CreateTime",
           choices=("CreateTime", "LogAppendTime"), dynamic=True),
        _p("log.message.timestamp.before.max.ms", "long", LONG_MAX, minimum=0, dynamic=True),
        _p("log.message.timestamp.after.max.ms", "long", LONG_MAX, minimum=0, dynamic=True),
        _p("log.cleanup.policy", "list", "delete", choices=("delete", "compact"), dynamic=True),
        _p("log.segment.delete.delay.ms", "long", 60000, minimum=0),
        _p("log.cleaner.enable", "boolean", True),
        _p("log.cleaner.backoff.ms", "long", 15000, minimum=0),
        _p("log.cleaner.min.cleanable.ratio", "double", 0.5, minimum=0, maximum=1.0, dynamic=True),
        _p("log.cleaner.delete.retention.ms", "long", 86400000, minimum=0, dynamic=True),
        _p("log.cleaner.min.compaction.lag.ms", "long", 0, minimum=0, dynamic=True),
        _p("log.cleaner.max.compaction.lag.ms", "long", LONG_MAX, minimum=1, dynamic=True),
        _p("log.cleaner.dedupe.buffer.size", "long", 134217728, minimum=1, dynamic=True),
        _p("log.cleaner.io.buffer.load.factor", "double", 0.9, minimum=0, maximum=1.0, dynamic=True),
        _p("log.cleaner.io.max.bytes.per.second", "double", 1.7976931348623157e308, minimum=1, dynamic=True),
        _p("message.max.bytes", "int", 1048588, minimum=0, dynamic=True),
        _p("socket.request.max.bytes", "int", 104857600, minimum=1),
        _p("min.insync.replicas", "int", 1, minimum=1, dynamic=True),
        _p("compression.type", "string", "producer",
           choices=("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")),
        _p("unclean.leader.election.enable", "boolean", False, dynamic=True),
        _p("replica.lag.time.max.ms", "long", 30000, minimum=0),
        _p("broker.rack", "string", None),
        # KIP-392: which replica a consumer with client.rack reads from; unset: the leader.
        _p("replica.selector.class", "string", None, choices=REPLICA_SELECTORS),
        _p("zookeeper.connect", "string", None),
        _p("zookeeper.session.timeout.ms", "int", 18000, minimum=1),
        _p("zookeeper.connection.timeout.ms", "int", None, minimum=1),
        _p("offsets.topic.num.partitions", "int", 50, minimum=1),
        _p("offsets.topic.replication.factor", "int", 3, minimum=1),
        _p("offsets.topic.segment.bytes", "int", 104857600, minimum=14),
        _p("producer.id.expiration.ms", "int", 86400000, minimum=1, dynamic=True),
        _p("max.incremental.fetch.session.cache.slots", "int", 1000, minimum=0),
        _p("min.incremental.fetch.session.eviction.ms", "int", 120000, minimum=0),
        _p("producer.id.expiration.check.interval.ms", "int", 600000, minimum=1),
        _p("offsets.retention.minutes", "int", 10080, minimum=1),
        _p("offsets.commit.timeout.ms", "int", 5000, minimum=1),
        _p("offsets.retention.check.interval.ms", "long", 600000, minimum=1),
        _p("offset.metadata.max.bytes", "int", 4096, minimum=0),
        _p("group.initial.rebalance.delay.ms", "int", 3000, minimum=0),
        _p("group.min.session.timeout.ms", "int", 6000, minimum=0),
        _p("group.max.session.timeout.ms", "int", 1800000, minimum=0),
        _p("group.max.size", "int", 2147483647, minimum=1),
        _p("auto.leader.rebalance.enable", "boolean", True),
        _p("leader.imbalance.check.interval.seconds", "long", 300, minimum=1),
        _p("leader.imbalance.per.broker.percentage", "int", 10, minimum=0),
        _p("controlled.shutdown.enable", "boolean", True),
        _p("fetch.max.bytes", "int", 57671680, minimum=0),
        _p("connections.max.idle.ms", "long", 600000),
        # Transactions (KIP-98): the transaction coordinator and __transaction_state.
        _p("transaction.state.log.num.partitions", "int", 50, minimum=1),
        _p("transaction.state.log.replication.factor", "int", 3, minimum=1),
        _p("transaction.state.log.min.isr", "int", 2, minimum=1),
        _p("transaction.state.log.segment.bytes", "int", 104857600, minimum=1),
        _p("transaction.max.timeout.ms", "int", 900000, minimum=1),
        _p("transactional.id.expiration.ms", "int", 604800000, minimum=1),
        _p("transaction.abort.timed.out.transaction.cleanup.interval.ms", "int", 10000, minimum=1),
        _p("transaction.remove.expired.transaction.cleanup.interval.ms", "int", 3600000, minimum=1),
        # How long the coordinator's requests to other brokers (WriteTxnMarkers) and
        # the leader's wait for a marker's replication may take.
        _p("request.timeout.ms", "int", 30000, minimum=0),
        _p("quota.window.num", "int", 11, minimum=1),
        _p("quota.window.size.seconds", "int", 1, minimum=1),
        # Replication quotas (bytes/s; Long.MAX_VALUE: none) for the replicas the topics list
        # in leader/follower.replication.throttled.replicas.
        _p("leader.replication.throttled.rate", "long", LONG_MAX, minimum=0, dynamic=True),
        _p("follower.replication.throttled.rate", "long", LONG_MAX, minimum=0, dynamic=True),
        _p("replication.quota.window.num", "int", 11, minimum=1),
        _p("replication.quota.window.size.seconds", "int", 1, minimum=1),
        _p("replica.fetch.max.bytes", "int", 1048576, minimum=0),
    )
}

# Kafka's GSSAPI (Kerberos) settings, which Kafka updates per broker at runtime (its dynamic
# listener configs); clients set them with AlterConfigs even when no listener uses GSSAPI
# (librdkafka's 0081 does): accepted and stored. Moldau's GSSAPI reads the service name and
# the principal rules when it starts (a runtime change takes effect at the next start); the
# rest belong to Java's login thread and have no effect.
DYNAMIC_WITHOUT_EFFECT = frozenset(
    {
        "sasl.kerberos.service.name",
        "sasl.kerberos.kinit.cmd",
        "sasl.kerberos.ticket.renew.window.factor",
        "sasl.kerberos.ticket.renew.jitter",
        "sasl.kerberos.min.time.before.relogin",
        "sasl.kerberos.principal.to.local.rules",
    }
)

# Kafka properties accepted for compatibility with existing files; they tune things
# Moldau does differently (threads, buffers) and have no effect.
ACCEPTED_WITHOUT_EFFECT = DYNAMIC_WITHOUT_EFFECT | frozenset(
    {
        "num.network.threads",
        "num.io.threads",
        "num.replica.fetchers",
        "socket.send.buffer.bytes",
        "socket.receive.buffer.bytes",
        "queued.max.requests",
        "background.threads",
        "log.cleaner.threads",
        "log.cleaner.io.buffer.size",
        "log.preallocate",
        "replica.socket.timeout.ms",
        "group.coordinator.rebalance.protocols",
        # Deprecated in Kafka 3.x, still accepted by 3.9, removed in 4.0 (as the topic
        # configs message.format.version, ... are: see log/config.py).
        "log.message.format.version",
        "log.message.downconversion.enable",
        "log.message.timestamp.difference.max.ms",
        "inter.broker.protocol.version",
        "ssl.protocol",
        "ssl.keymanager.algorithm",
        "ssl.trustmanager.algorithm",
        "ssl.secure.random.implementation",
        # Java's Kerberos login thread (kinit, ticket renewal): MIT's library gets and renews
        # tickets from the keytab itself.
        "sasl.kerberos.kinit.cmd",
        "sasl.kerberos.min.time.before.relogin",
        "sasl.kerberos.ticket.renew.jitter",
        "sasl.kerberos.ticket.renew.window.factor",
    }
)

# What listener.name.<listener>.<property> may override; and, per SASL mechanism,
# listener.name.<listener>.<mechanism, lower case>.sasl.jaas.config.
OAUTHBEARER_PROPERTIES = frozenset(name for name in PROPERTIES if name.startswith("sasl.oauthbearer."))
LISTENER_PROPERTIES = frozenset(
    name for name in PROPERTIES
    if name.startswith(("ssl.", "sasl.kerberos.")) or name == "sasl.enabled.mechanisms"
    or name in OAUTHBEARER_PROPERTIES)
# Kafka's names for the broker's server and login callback handlers, which it takes only
# with a listener and mechanism prefix: listener.name.<listener>.oauthbearer.<this>.
SERVER_CALLBACK_HANDLER_CLASS = "sasl.server.callback.handler.class"
LOGIN_CALLBACK_HANDLER_CLASS = "sasl.login.callback.handler.class"


def parse_value(prop: Prop, raw: str) -> Any:
    value = raw.strip()
    if prop.kind in ("int", "long"):
        try:
            n = int(value)
        except ValueError:
            raise ConfigError(f"{prop.name}: {raw!r} is not an integer") from None
        if prop.minimum is not None and n < prop.minimum:
            raise ConfigError(f"{prop.name}: {n} is below the minimum {prop.minimum}")
        limit = 2**31 if prop.kind == "int" else 2**63
        if not -limit <= n < limit:
            raise ConfigError(f"{prop.name}: {n} is out of range")
        return n
    if prop.kind == "double":
        try:
            x = float(value)
        except ValueError:
            raise ConfigError(f"{prop.name}: {raw!r} is not a number") from None
        if math.isnan(x):
            raise ConfigError(f"{prop.name}: {raw!r} is not a number")
        if (prop.minimum is not None and x < prop.minimum) or (prop.maximum is not None and x > prop.maximum):
            raise ConfigError(f"{prop.name}: {x} is outside [{prop.minimum}, {prop.maximum}]")
        return x
    if prop.kind == "boolean":
        if value.lower() not in ("true", "false"):
            raise ConfigError(f"{prop.name}: {raw!r} is not true or false")
        return value.lower() == "true"
    if prop.choices is not None:
        parts = [p.strip() for p in value.split(",")] if prop.kind == "list" else [value]
        for part in parts:
            if part not in prop.choices:
                raise ConfigError(
                    f"{prop.name}: {part!r} is not one of {', '.join(prop.choices)}"
                )
    return value


def read_properties(path: Path) -> dict[str, str]:
    """Parse a Java properties file (key=value or key: value, # and ! comments)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    props: dict[str, str] = {}
    pending = ""
    for number, line in enumerate(text.splitlines(), 1):
        line = pending + line.strip()
        pending = ""
        if not line or line[0] in "#!":
            continue
        if line.endswith("\\"):
            pending = line[:-1]
            continue
        sep = min((i for i in (line.find("="), line.find(":")) if i >= 0), default=-1)
        if sep < 0:
            raise ConfigError(f"{path}:{number}: expected key=value, got {line!r}")
        props[line[:sep].strip()] = line[sep + 1 :].strip()
    return props


@dataclass(frozen=True)
class Listener:
    name: str
    host: str
    port: int


def parse_protocol_map(value: str | None) -> dict[str, str]:
    """`listener.security.protocol.map`: NAME:PROTOCOL pairs; Kafka's default when unset."""
    if value is None:
        return dict(DEFAULT_PROTOCOL_MAP)
    out: dict[str, str] = {}
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, protocol = item.partition(":")
        name, protocol = name.strip().upper(), protocol.strip().upper()
        if not sep or not name:
            raise ConfigError(f"listener.security.protocol.map: {item!r} is not of the form NAME:PROTOCOL")
        if protocol not in SECURITY_PROTOCOLS:
            raise ConfigError(f"listener.security.protocol.map: {protocol!r} (for {name}) is not one of "
                              f"{', '.join(SECURITY_PROTOCOLS)}")
        if name in out:
            raise ConfigError(f"listener.security.protocol.map: listener {name} is mapped twice")
        out[name] = protocol
    return out


def parse_listeners(name: str, value: str) -> list[Listener]:
    out: list[Listener] = []
    seen: set[str] = set()
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        scheme, sep, rest = item.partition("://")
        if not sep or ":" not in rest:
            raise ConfigError(f"{name}: {item!r} is not of the form NAME://host:port")
        host, _, port = rest.rpartition(":")
        host = host.strip("[]")
        try:
            port_n = int(port)
        except ValueError:
            raise ConfigError(f"{name}: port {port!r} in {item!r} is not a number") from None
        if not 0 <= port_n <= 65535:
            raise ConfigError(f"{name}: port {port_n} in {item!r} is out of range")
        listener_name = scheme.strip().upper()
        if listener_name in seen:
            raise ConfigError(f"{name}: each listener must have a different name, {listener_name} is given twice")
        seen.add(listener_name)
        out.append(Listener(listener_name, host, port_n))
    if not out:
        raise ConfigError(f"{name}: no listener given")
    return out


def _listener_property(key: str) -> tuple[str, str]:
    """listener.name.<listener>.<property> -> (LISTENER, property), or ConfigError."""
    listener, _, suffix = key[len(LISTENER_PREFIX):].partition(".")
    if listener and suffix in LISTENER_PROPERTIES:
        return listener.upper(), suffix
    mechanism, _, rest = suffix.partition(".")
    if listener and rest == "sasl.jaas.config" and mechanism.upper() in SASL_MECHANISMS:
        return listener.upper(), f"{mechanism.lower()}.sasl.jaas.config"
    if listener and mechanism.lower() == "oauthbearer" and (
            rest in OAUTHBEARER_PROPERTIES or rest in (SERVER_CALLBACK_HANDLER_CLASS, LOGIN_CALLBACK_HANDLER_CLASS)):
        return listener.upper(), f"oauthbearer.{rest}"
    raise ConfigError(f"unknown property {key!r} (listener.name.<listener>. takes ssl.*, sasl.enabled.mechanisms, "
                      "sasl.oauthbearer.*, sasl.kerberos.service.name, sasl.kerberos.principal.to.local.rules, "
                      "<mechanism>.sasl.jaas.config, oauthbearer.sasl.oauthbearer.* and "
                      "oauthbearer.sasl.server/login.callback.handler.class)")


@dataclass
class BrokerConfig:
    values: dict[str, Any] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)
    explicit: set[str] = field(default_factory=set)  # set in the file or an override
    dynamic: set[str] = field(default_factory=set)  # set at runtime (IncrementalAlterConfigs)
    # listener.name.<LISTENER>.<property> overrides, by upper-case listener name.
    listener_values: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The listeners' TLS contexts and SASL settings (security/listener.py), built when
    # the config is read so that a bad key store is a config error.
    security: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def from_sources(
        cls, file_props: Mapping[str, str] | None = None, overrides: Iterable[str] = ()
    ) -> BrokerConfig:
        raw: dict[str, str] = dict(file_props or {})
        for item in overrides:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"--override {item!r}: expected key=value")
            raw[key.strip()] = value
        values = {name: prop.default for name, prop in PROPERTIES.items()}
        ignored: list[str] = []
        listener_values: dict[str, dict[str, Any]] = {}
        for key, value in raw.items():
            if key.startswith(LISTENER_PREFIX):
                listener, suffix = _listener_property(key)
                prop = PROPERTIES.get(suffix.removeprefix("oauthbearer."))
                listener_values.setdefault(listener, {})[suffix] = (
                    parse_value(dataclasses.replace(prop, name=key), value) if prop is not None else value)
                continue
            prop = PROPERTIES.get(key)
            if prop is None:
                if key in ACCEPTED_WITHOUT_EFFECT:
                    ignored.append(key)
                    continue
                raise ConfigError(f"unknown property {key!r}")
            values[key] = parse_value(prop, value)
        config = cls(values, ignored, {k for k in raw if k in PROPERTIES}, listener_values=listener_values)
        config.listeners()  # validate now, not at bind time
        config.advertised_listeners()
        config.inter_broker_listener_name()
        config.metrics_address()
        from moldau.server.security.listener import build_security

        config.security = build_security(config)
        config.authorizer_config()  # validate now: a bad super.users or class is a config error
        config.ssl_principal_mapper()
        return config

    def ssl_principal_mapper(self) -> SslPrincipalMapper:
        """`ssl.principal.mapping.rules`: client certificate DN -> principal name."""
        try:
            return SslPrincipalMapper(self.values["ssl.principal.mapping.rules"])
        except ValueError as exc:
            raise ConfigError(f"ssl.principal.mapping.rules: {exc}") from exc

    def authorizer_config(self) -> AuthorizerConfig | None:
        """The ACL authorizer's settings, or None when `authorizer.class.name` is unset."""
        props = {name: str(self.values[name] or "") for name in (
            AUTHORIZER_CLASS_NAME_CONFIG, SUPER_USERS_CONFIG)}
        props[ALLOW_EVERYONE_IF_NO_ACL_FOUND_CONFIG] = str(self.values[ALLOW_EVERYONE_IF_NO_ACL_FOUND_CONFIG]).lower()
        try:
            if not authorizer_configured(props):
                return None
            return AuthorizerConfig.from_properties(props)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    @property
    def broker_id(self) -> int:
        node_id = self.values["node.id"]
        return int(node_id if node_id is not None else max(self.values["broker.id"], 0))

    @property
    def log_dirs(self) -> list[Path]:
        raw = self.values["log.dirs"] or self.values["log.dir"]
        return [Path(p.strip()) for p in raw.split(",") if p.strip()]

    def listeners(self) -> list[Listener]:
        listeners = parse_listeners("listeners", self.values["listeners"])
        protocols = self.protocol_map()
        for lst in listeners:
            if lst.name not in protocols:
                raise ConfigError(f"listeners: no security protocol defined for listener {lst.name} "
                                  "(add it to listener.security.protocol.map)")
        return listeners

    def metrics_address(self) -> tuple[str, int] | None:
        """Where /metrics is served (host "" = every interface), None when off."""
        port, listener = self.values["metrics.port"], self.values["metrics.listener"]
        if port is not None and listener is not None:
            raise ConfigError("metrics.port and metrics.listener are both set: choose one")
        if listener is not None:
            parsed = parse_listeners("metrics.listener", listener.split(",")[0])[0]
            if parsed.name != "HTTP" or "," in listener.strip(", "):
                raise ConfigError(f"metrics.listener: {listener!r} is not of the form http://host:port")
            return parsed.host, parsed.port
        if port is None:
            return None
        if port > 65535:
            raise ConfigError(f"metrics.port: {port} is out of range")
        return self.listeners()[0].host, port

    def protocol_map(self) -> dict[str, str]:
        return parse_protocol_map(self.values["listener.security.protocol.map"])

    def security_protocol(self, listener: str) -> str:
        return self.protocol_map()[listener]

    def advertised_listeners(self) -> list[Listener]:
        """What each listener advertises, in `listeners` order (by name, as Kafka pairs them)."""
        raw = self.values["advertised.listeners"]
        listeners = self.listeners()
        advertised = {lst.name: lst for lst in parse_listeners("advertised.listeners", raw)} if raw else {}
        unknown = set(advertised) - {lst.name for lst in listeners}
        if unknown:
            raise ConfigError(f"advertised.listeners: {', '.join(sorted(unknown))} not among the listeners "
                              f"({', '.join(lst.name for lst in listeners)})")
        out = [advertised.get(lst.name, lst) for lst in listeners]
        return [Listener(lst.name, lst.host or "localhost", lst.port) if not lst.host else lst for lst in out]

    def inter_broker_listener_name(self) -> str:
        """Kafka's rule: `inter.broker.listener.name`, else the listener named after
        `security.inter.broker.protocol` (default PLAINTEXT); never both."""
        name, protocol = self.values["inter.broker.listener.name"], self.values["security.inter.broker.protocol"]
        if name is not None and protocol is not None:
            raise ConfigError(
                "Only one of inter.broker.listener.name and security.inter.broker.protocol should be set.")
        chosen = name.strip().upper() if name is not None else (protocol or "PLAINTEXT")
        names = [lst.name for lst in self.listeners()]
        if chosen not in names:
            raise ConfigError(f"inter.broker.listener.name must be a listener name defined in advertised.listeners. "
                              f"The valid options based on currently configured listeners are {','.join(names)}"
                              f" (the inter-broker listener is {chosen}; set inter.broker.listener.name or "
                              "security.inter.broker.protocol)")
        return chosen

    def listener_value(self, listener: str, name: str) -> Any:
        """A property as listener `listener` sees it: its listener.name override, else the
        broker-wide value (Kafka's per-key fallback)."""
        overrides = self.listener_values.get(listener.upper(), {})
        return overrides[name] if name in overrides else self.values.get(name)

    @property
    def retention_ms(self) -> int:
        v = self.values
        if v["log.retention.ms"] is not None:
            return int(v["log.retention.ms"])
        if v["log.retention.minutes"] is not None:
            minutes = int(v["log.retention.minutes"])
            return -1 if minutes < 0 else minutes * 60_000
        hours = int(v["log.retention.hours"])
        return -1 if hours < 0 else hours * 3_600_000

    @property
    def roll_ms(self) -> int:
        v = self.values
        return int(v["log.roll.ms"]) if v["log.roll.ms"] is not None else int(v["log.roll.hours"]) * 3_600_000

    @property
    def flush_ms(self) -> int:
        v = self.values
        if v["log.flush.interval.ms"] is not None:
            return int(v["log.flush.interval.ms"])
        return int(v["log.flush.scheduler.interval.ms"])

    def log_config(self) -> LogConfig:
        """The topic-config defaults this broker's properties give."""
        v = self.values
        return LogConfig(
            segment_bytes=v["log.segment.bytes"],
            segment_ms=self.roll_ms,
            segment_index_bytes=v["log.index.size.max.bytes"],
            retention_ms=self.retention_ms,
            retention_bytes=v["log.retention.bytes"],
            index_interval_bytes=v["log.index.interval.bytes"],
            flush_messages=v["log.flush.interval.messages"],
            flush_ms=self.flush_ms,
            max_message_bytes=v["message.max.bytes"],
            message_timestamp_type=v["log.message.timestamp.type"],
            message_timestamp_before_max_ms=v["log.message.timestamp.before.max.ms"],
            message_timestamp_after_max_ms=v["log.message.timestamp.after.max.ms"],
            cleanup_policy=v["log.cleanup.policy"],
            min_insync_replicas=v["min.insync.replicas"],
            delete_retention_ms=v["log.cleaner.delete.retention.ms"],
            min_compaction_lag_ms=v["log.cleaner.min.compaction.lag.ms"],
            max_compaction_lag_ms=v["log.cleaner.max.compaction.lag.ms"],
            min_cleanable_dirty_ratio=v["log.cleaner.min.cleanable.ratio"],
        )

    def set_dynamic(self, name: str, value: str | None) -> None:
        """Apply an IncrementalAlterConfigs change to a dynamic broker property."""
        if name in DYNAMIC_WITHOUT_EFFECT:
            return
        prop = PROPERTIES.get(name)
        if prop is None:
            raise ConfigError(f"unknown property {name!r}")
        if not prop.dynamic:
            raise ConfigError(f"{name} cannot be changed while the broker runs")
        self.values[name] = prop.default if value is None else parse_value(prop, value)
        if value is None:
            self.dynamic.discard(name)
        else:
            self.dynamic.add(name)

    def describe(self) -> dict[str, str | None]:
        """Every known property as a string (None for unset and for passwords), for DescribeConfigs."""
        out: dict[str, str | None] = {}
        for name, value in self.values.items():
            if value is None or PROPERTIES[name].kind == "password":
                out[name] = None
            elif isinstance(value, bool):
                out[name] = "true" if value else "false"
            else:
                out[name] = str(value)
        return out

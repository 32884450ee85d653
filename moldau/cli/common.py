"""What every console tool shares: connection flags, client configuration, and errors.

Expected failures (a missing topic, an unreachable broker, a bad input line) are raised
as `CliError` and printed by `moldau.cli.main` as one line, `moldau: error: ...`, never
as a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import ClusterMetadata

DEFAULT_BOOTSTRAP_SERVER = "localhost:9092"
DEFAULT_TIMEOUT_S = 15.0

# librdkafka errors that mean "we never got an answer from the cluster", as opposed to
# an answer that says no.
CONNECTION_ERROR_CODES = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._RESOLVE,
        KafkaError._MSG_TIMED_OUT,
        KafkaError.REQUEST_TIMED_OUT,
    }
)


class CliError(Exception):
    """An expected failure: main prints `moldau: error: <message>` and exits `exit_code`."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def warn(message: str) -> None:
    print(f"moldau: warning: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- flags


def connection_parent() -> argparse.ArgumentParser:
    """A parent parser with the flags every command that talks to a cluster takes."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("connection")
    group.add_argument(
        "--bootstrap-server",
        metavar="HOST:PORT",
        default=None,
        help=f"broker(s) to connect to, comma-separated (default: {DEFAULT_BOOTSTRAP_SERVER})",
    )
    group.add_argument(
        "--command-config",
        metavar="FILE",
        default=None,
        help="client properties file (key=value lines, as for Kafka's tools)",
    )
    group.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=positive_float,
        default=DEFAULT_TIMEOUT_S,
        help="give up on the cluster after this many seconds (default: %(default)s)",
    )
    group.add_argument(
        "--verbose",
        action="store_true",
        help="show the client library's own log on stderr",
    )
    return parent


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def positive_int(text: str) -> int:
    value = non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def key_value(text: str) -> tuple[str, str]:
    """argparse type for `k=v`: split at the first `=`; the value may be empty."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def unescape(text: str) -> str:
    r"""Turn `\t`, `\n` and friends typed on a command line into the characters."""
    try:
        return text.encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError:
        return text


# ---------------------------------------------------------------------- client config


def read_properties(path: str) -> dict[str, str]:
    """Parse a Java-style properties file: `key=value` or `key: value`, `#`/`!` comments."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise CliError(f"cannot read --command-config {path!r}: {e.strerror}") from None
    props: dict[str, str] = {}
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        cuts = [i for i in (line.find("="), line.find(":")) if i > 0]
        if not cuts:
            raise CliError(f"{path}:{number}: expected key=value, got {raw!r}")
        cut = min(cuts)
        props[line[:cut].strip()] = line[cut + 1 :].strip()
    return props


class ConnectionWatch:
    """librdkafka's error_cb: remembers the latest connection-level error for messages."""

    def __init__(self) -> None:
        self.last_error: KafkaError | None = None

    def __call__(self, err: KafkaError) -> None:
        # "1/1 brokers are down" says less than the connect error that preceded it.
        if err.code() == KafkaError._ALL_BROKERS_DOWN and self.last_error is not None:
            return
        self.last_error = err


def _librdkafka_logger(verbose: bool) -> logging.Logger:
    logger = logging.getLogger("moldau.cli.librdkafka")
    logger.propagate = False
    if not logger.handlers:
        handler: logging.Handler = logging.StreamHandler(sys.stderr) if verbose else logging.NullHandler()
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.CRITICAL + 1)
    return logger


def bootstrap_server(args: argparse.Namespace) -> str:
    if args.bootstrap_server:
        return str(args.bootstrap_server)
    if args.command_config:
        props = read_properties(args.command_config)
        if "bootstrap.servers" in props:
            return props["bootstrap.servers"]
    return DEFAULT_BOOTSTRAP_SERVER


def client_config(
    args: argparse.Namespace, overrides: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], ConnectionWatch]:
    """Client configuration for a short-lived command.

    Precedence, lowest first: our defaults, --command-config, the command's own flags
    (`overrides`), --bootstrap-server.
    """
    timeout_ms = int(args.timeout * 1000)
    watch = ConnectionWatch()
    conf: dict[str, Any] = {
        "bootstrap.servers": DEFAULT_BOOTSTRAP_SERVER,
        "client.id": "moldau-cli",
        # Bound every request and connection attempt by --timeout so nothing hangs.
        "socket.timeout.ms": max(timeout_ms, 2000),
        "socket.connection.setup.timeout.ms": max(timeout_ms, 1000),
        # Never create topics as a side effect of looking them up.
        "allow.auto.create.topics": False,
        "logger": _librdkafka_logger(args.verbose),
        "error_cb": watch,
    }
    if args.command_config:
        conf.update(read_properties(args.command_config))
    if overrides:
        conf.update(overrides)
    conf["bootstrap.servers"] = bootstrap_server(args)
    return conf, watch


def make_client(factory: Any, conf: dict[str, Any]) -> Any:
    """Construct a confluent-kafka client, turning a bad property into a CliError."""
    try:
        return factory(conf)
    except (KafkaException, ValueError, TypeError) as e:
        raise CliError(f"invalid client configuration: {exception_text(e)}") from None


# --------------------------------------------------------------------------- errors


def kafka_error(exc: BaseException) -> KafkaError | None:
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    return None


def error_name(err: KafkaError) -> str:
    """Kafka's name of a broker's error code (librdkafka shortens some:
    UNKNOWN_TOPIC_OR_PART for UNKNOWN_TOPIC_OR_PARTITION, MSG_SIZE_TOO_LARGE...);
    librdkafka's own name for its local errors (negative codes: _TRANSPORT...)."""
    code = err.code()
    if code >= -1:  # -1 is Kafka's UNKNOWN_SERVER_ERROR
        from moldau.protocol.errors import ErrorCode  # Kafka's table; only on this error path

        try:
            return ErrorCode(code).name.upper()
        except ValueError:  # a code newer than the table
            pass
    return str(err.name())


def error_text(err: KafkaError) -> str:
    """`Unknown topic or partition (UNKNOWN_TOPIC_OR_PARTITION)`: the reason, then the name."""
    reason = err.str()
    for prefix in ("Broker: ", "Local: "):
        if reason.startswith(prefix):
            reason = reason[len(prefix) :]
    return f"{reason} ({error_name(err)})"


def exception_text(exc: BaseException) -> str:
    err = kafka_error(exc)
    return error_text(err) if err is not None else str(exc)


def is_connection_error(err: KafkaError) -> bool:
    return err.code() in CONNECTION_ERROR_CODES


def unreachable(args: argparse.Namespace, watch: ConnectionWatch | None = None) -> CliError:
    detail = ""
    if watch is not None and watch.last_error is not None:
        detail = f": {watch.last_error.str()}"
    return CliError(f"cannot reach bootstrap server {bootstrap_server(args)} within {args.timeout:g}s{detail}")


def fetch_metadata(client: Any, args: argparse.Namespace, watch: ConnectionWatch) -> ClusterMetadata:
    """All topics' metadata. Never asks for one topic by name, which could auto-create it."""
    try:
        metadata: ClusterMetadata = client.list_topics(timeout=args.timeout)
    except KafkaException as e:
        err = kafka_error(e)
        if err is not None and is_connection_error(err):
            client.poll(0)  # serve error_cb, which knows why (refused, unresolvable...)
            raise unreachable(args, watch) from None
        raise CliError(f"cannot fetch metadata: {exception_text(e)}") from None
    return metadata


def wait_future(future: Future[Any], args: argparse.Namespace, what: str) -> Any:
    """Result of an admin future, bounded by --timeout (plus slack for the broker's own)."""
    try:
        return future.result(timeout=args.timeout + 5)
    except TimeoutError:
        raise CliError(f"{what}: no answer within {args.timeout:g}s") from None


def require_topic(metadata: ClusterMetadata, topic: str) -> Any:
    info = metadata.topics.get(topic)
    if info is None or (info.error is not None and info.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
        raise CliError(f"topic '{topic}' does not exist (UNKNOWN_TOPIC_OR_PARTITION)")
    return info


# ---------------------------------------------------------------------------- topic


def add_topic_args(parser: argparse.ArgumentParser) -> None:
    """TOPIC positionally or as --topic, as Kafka's console tools spell it."""
    parser.add_argument("topic_positional", metavar="TOPIC", nargs="?", help="topic name")
    parser.add_argument("--topic", metavar="TOPIC", default=None, help="same as TOPIC")
    parser.set_defaults(_parser=parser)


def resolve_topic(args: argparse.Namespace) -> str:
    positional: str | None = args.topic_positional
    flag: str | None = args.topic
    if positional is None and flag is None:
        args._parser.error("a topic is required (TOPIC or --topic)")
    if positional is not None and flag is not None and positional != flag:
        args._parser.error(f"two different topics given: {positional!r} and {flag!r}")
    topic = positional if positional is not None else flag
    assert topic is not None
    return topic

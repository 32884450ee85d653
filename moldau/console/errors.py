"""What can go wrong in the console, as messages meant for the page (never a traceback)."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException


class ConsoleError(Exception):
    """An expected failure, shown in the page with `status` as the HTTP status."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadInput(ConsoleError):
    """The user typed something the console or the cluster cannot accept."""

    status = 400


class NotFound(ConsoleError):
    status = 404


class ClusterTimeout(ConsoleError):
    """The cluster did not answer in time."""

    status = 504


class ClusterError(ConsoleError):
    """The cluster answered with an error."""

    status = 502


def kafka_error_text(exc: BaseException) -> str:
    """`Topic already exists (TOPIC_ALREADY_EXISTS)`: librdkafka's reason, then Kafka's name."""
    err = exc.args[0] if isinstance(exc, KafkaException) and exc.args else exc
    if isinstance(err, KafkaError):
        reason = err.str()
        for prefix in ("Broker: ", "Local: "):
            if reason.startswith(prefix):
                reason = reason[len(prefix) :]
        return f"{reason} ({err.name()})"
    return str(exc) or type(exc).__name__


TIMEOUT_CODES = frozenset(
    {
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._MSG_TIMED_OUT,
        KafkaError.REQUEST_TIMED_OUT,
    }
)


NOT_FOUND_CODES = frozenset({KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError.GROUP_ID_NOT_FOUND})
# Answers that mean the request itself was wrong: the user can fix it.
BAD_REQUEST_CODES = frozenset(
    {
        KafkaError.INVALID_PARTITIONS,
        KafkaError.INVALID_REPLICATION_FACTOR,
        KafkaError.INVALID_REPLICA_ASSIGNMENT,
        KafkaError.INVALID_CONFIG,
        KafkaError.TOPIC_EXCEPTION,  # Kafka's INVALID_TOPIC_EXCEPTION
        KafkaError.TOPIC_ALREADY_EXISTS,
        KafkaError.INVALID_REQUEST,
        KafkaError.POLICY_VIOLATION,
        KafkaError.NON_EMPTY_GROUP,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.GROUP_SUBSCRIBED_TO_TOPIC,
        KafkaError.REASSIGNMENT_IN_PROGRESS,
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_RECORD,
    }
)


def from_kafka(exc: BaseException, what: str) -> ConsoleError:
    """A ConsoleError for a confluent-kafka exception raised while doing `what`."""
    err = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    if isinstance(err, KafkaError):
        if err.code() in TIMEOUT_CODES:
            return ClusterTimeout(f"{what}: the cluster did not answer ({kafka_error_text(exc)})")
        if err.code() in NOT_FOUND_CODES:
            return NotFound(f"{what}: {kafka_error_text(exc)}")
        if err.code() in BAD_REQUEST_CODES:
            return BadInput(f"{what}: {kafka_error_text(exc)}")
    if isinstance(exc, ValueError | TypeError):
        return BadInput(f"{what}: {exc}")
    return ClusterError(f"{what}: {kafka_error_text(exc)}")

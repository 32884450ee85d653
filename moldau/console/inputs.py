"""Form and query fields, parsed and checked: a bad field is a `BadInput` naming it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime

from moldau.console.errors import BadInput

# Kafka's rule for topic names (kafka.common.internals.Topic).
TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]+")
MAX_TOPIC_NAME_LENGTH = 249


def field(form: Mapping[str, str], name: str, default: str = "") -> str:
    return str(form.get(name, default)).strip()


def integer(text: str, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise BadInput(f"{name}: not a whole number: {text!r}") from None
    if minimum is not None and value < minimum:
        raise BadInput(f"{name}: must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise BadInput(f"{name}: must be at most {maximum}, got {value}")
    return value


def optional_integer(text: str, name: str, minimum: int | None = None) -> int | None:
    return None if not text.strip() else integer(text, name, minimum)


def topic_name(text: str) -> str:
    name = text.strip()
    if not name:
        raise BadInput("topic name: required")
    if name in (".", ".."):
        raise BadInput(f"topic name: {name!r} is not allowed")
    if len(name) > MAX_TOPIC_NAME_LENGTH:
        raise BadInput(f"topic name: longer than {MAX_TOPIC_NAME_LENGTH} characters")
    if not TOPIC_NAME.fullmatch(name):
        raise BadInput(f"topic name: {name!r} may contain only ASCII letters, digits, '.', '_' and '-'")
    return name


def key_values(text: str, name: str) -> list[tuple[str, str]]:
    """`key=value` lines (blank lines skipped); the value may be empty or contain `=`."""
    pairs: list[tuple[str, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"{name}, line {number}: expected key=value, got {line!r}")
        pairs.append((key.strip(), value.strip()))
    return pairs


def timestamp_ms(text: str, name: str = "timestamp") -> int:
    """Epoch milliseconds, or an ISO 8601 date-time (UTC when it names no zone)."""
    value = text.strip()
    if not value:
        raise BadInput(f"{name}: required")
    if value.lstrip("-").isdigit():
        ms = int(value)
        if ms < 0:
            raise BadInput(f"{name}: must not be negative")
        return ms
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(
            f"{name}: expected epoch milliseconds or a date-time like 2024-05-01T12:00:00Z, got {value!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def format_timestamp(ms: int | None) -> str:
    if ms is None or ms < 0:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"

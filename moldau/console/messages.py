"""The message browser: what to read (a `BrowseQuery` from the page's fields), where each
partition starts, how a record is shown (text, JSON, hex), search, and export."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from moldau.console import inputs
from moldau.console.errors import BadInput

MAX_LIMIT = 1000
DEFAULT_LIMIT = 50
# A search reads at most this many records per partition, so it answers in bounded time.
MAX_SCAN_PER_PARTITION = 10_000


class Position(Enum):
    BEGINNING = "beginning"
    END = "end"
    OFFSET = "offset"
    TIMESTAMP = "timestamp"


class Format(Enum):
    TEXT = "text"
    JSON = "json"
    HEX = "hex"


class SearchIn(Enum):
    ANY = "any"
    KEY = "key"
    VALUE = "value"
    HEADER = "header"


@dataclass(frozen=True)
class BrowseQuery:
    partition: int | None  # None: every partition
    position: Position
    offset: int | None
    timestamp_ms: int | None
    limit: int
    format: Format
    search: str
    search_in: SearchIn


def _choice(enum: type[Enum], text: str, name: str, default: Enum) -> Enum:
    if not text:
        return default
    try:
        return enum(text)
    except ValueError:
        allowed = ", ".join(str(e.value) for e in enum)
        raise BadInput(f"{name}: expected one of {allowed}, got {text!r}") from None


def parse_browse_query(params: Mapping[str, str], partitions: int) -> BrowseQuery:
    partition_text = inputs.field(params, "partition")
    partition = None
    if partition_text and partition_text != "all":
        partition = inputs.integer(partition_text, "partition", 0)
        if partition >= partitions:
            raise BadInput(f"partition: the topic has partitions 0..{partitions - 1}, not {partition}")
    position = _choice(Position, inputs.field(params, "position"), "from", Position.END)
    assert isinstance(position, Position)
    offset = timestamp = None
    if position is Position.OFFSET:
        offset = inputs.integer(inputs.field(params, "offset"), "offset", 0)
    elif position is Position.TIMESTAMP:
        timestamp = inputs.timestamp_ms(inputs.field(params, "timestamp"))
    limit_text = inputs.field(params, "limit")
    limit = DEFAULT_LIMIT if not limit_text else inputs.integer(limit_text, "limit", 1, MAX_LIMIT)
    fmt = _choice(Format, inputs.field(params, "format"), "format", Format.TEXT)
    search_in = _choice(SearchIn, inputs.field(params, "search_in"), "search in", SearchIn.ANY)
    assert isinstance(fmt, Format) and isinstance(search_in, SearchIn)
    return BrowseQuery(partition, position, offset, timestamp, limit, fmt, str(params.get("search", "")), search_in)


@dataclass(frozen=True)
class ReadRange:
    """Read partition from `start` (inclusive) to `stop` (exclusive: the high watermark
    when the query began), keeping at most `keep` records."""

    partition: int
    start: int
    stop: int
    keep: int


def read_ranges(
    query: BrowseQuery,
    partitions: Sequence[int],
    log_start: Mapping[int, int],
    high_watermark: Mapping[int, int],
    by_timestamp: Mapping[int, int] | None = None,
) -> list[ReadRange]:
    """Where each partition's read starts and stops. `by_timestamp`: the offset of the
    first record at or after the query's timestamp (ListOffsets; -1 when none)."""
    searching = bool(query.search)
    ranges = []
    for p in partitions if query.partition is None else [query.partition]:
        first, stop = log_start.get(p, 0), high_watermark.get(p, 0)
        span = MAX_SCAN_PER_PARTITION if searching else query.limit
        if query.position is Position.BEGINNING:
            start = first
        elif query.position is Position.END:
            start = max(first, stop - span)
        elif query.position is Position.OFFSET:
            assert query.offset is not None
            start = min(max(first, query.offset), stop)
        else:
            found = (by_timestamp or {}).get(p, -1)
            start = stop if found < 0 else max(first, found)
        stop = min(stop, start + span)
        if start < stop:
            ranges.append(ReadRange(p, start, stop, query.limit))
    return ranges


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()


def render(data: bytes | None, fmt: Format) -> str:
    """Bytes as the page shows them; JSON that does not parse is shown as text."""
    if data is None:
        return ""
    if fmt is Format.HEX:
        return data.hex(" ")
    text = data.decode("utf-8", errors="replace")
    if fmt is Format.JSON:
        try:
            return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError:
            return text
    return text


def _contains(data: bytes | None, needle: bytes) -> bool:
    return data is not None and needle in data


def matches(message: Message, needle: str, where: SearchIn) -> bool:
    """Case-sensitive substring search in the raw bytes (UTF-8 of the needle); a header
    matches by its name or its value."""
    if not needle:
        return True
    raw = needle.encode()
    if where in (SearchIn.ANY, SearchIn.KEY) and _contains(message.key, raw):
        return True
    if where in (SearchIn.ANY, SearchIn.VALUE) and _contains(message.value, raw):
        return True
    if where in (SearchIn.ANY, SearchIn.HEADER):
        return any(raw in name.encode() or _contains(value, raw) for name, value in message.headers)
    return False


def select(messages: Iterable[Message], query: BrowseQuery) -> list[Message]:
    """The matching records in (timestamp, partition, offset) order, cut to the limit:
    the newest ones when reading from the end, else the oldest."""
    found = [m for m in messages if matches(m, query.search, query.search_in)]
    found.sort(key=lambda m: (m.timestamp_ms or 0, m.partition, m.offset))
    if query.position is Position.END:
        return found[-query.limit :]
    return found[: query.limit]


def export_rows(messages: Sequence[Message], fmt: Format) -> list[dict[str, object]]:
    """Records as plain data; key and value rendered in `fmt` (JSON as text), None for null."""
    return [
        {
            "topic": m.topic,
            "partition": m.partition,
            "offset": m.offset,
            "timestamp": m.timestamp_ms,
            "key": None if m.key is None else render(m.key, Format.HEX if fmt is Format.HEX else Format.TEXT),
            "value": None if m.value is None else render(m.value, Format.HEX if fmt is Format.HEX else Format.TEXT),
            "headers": {name: render(value, Format.TEXT) for name, value in m.headers},
        }
        for m in messages
    ]


def export_json(messages: Sequence[Message], fmt: Format) -> str:
    return json.dumps(export_rows(messages, fmt), ensure_ascii=False, indent=1)


def export_csv(messages: Sequence[Message], fmt: Format) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["topic", "partition", "offset", "timestamp", "key", "value", "headers"])
    for row in export_rows(messages, fmt):
        writer.writerow(
            [
                row["topic"],
                row["partition"],
                row["offset"],
                row["timestamp"],
                row["key"],
                row["value"],
                json.dumps(row["headers"], ensure_ascii=False),
            ]
        )
    return out.getvalue()

"""The history of a chaos run: one JSON object per line, in the order things happened.

Every operation is recorded twice, Jepsen's way: an `invoke` when a client starts it and
a completion when it ends, with the same `process` (one client) and `f` (what it does):

    {"time": 1.25, "process": "producer-0", "type": "invoke", "f": "send", "value": "0-17"}
    {"time": 1.31, "process": "producer-0", "type": "ok", "f": "send", "value": "0-17",
     "partition": 2, "offset": 40}

`time` is seconds since the run started (a monotonic clock). A completion's `type` is

* `ok`: the operation took effect (a send acknowledged, a commit accepted);
* `fail`: it definitely did not take effect (the broker refused it before doing anything);
* `info`: nobody knows (a timeout, a lost connection): indeterminate, never a failure.

Operations (`f`) and their fields:

* `send` (producer): `value` (unique in the run); on `ok` `partition` and `offset`.
* `poll` (consumer): `ok` only, `records`: ``[[partition, offset, value], ...]`` in the
  order the consumer returned them.
* `assign` (consumer): `ok` only, `partitions`: the consumer's assignment from now on (a
  rebalance); positions may legitimately go back to the committed offsets here.
* `commit` (consumer): `group`, `offsets` ``{partition: offset}`` (the next offset to read).
* `committed` (a reader of a group's committed offsets, OffsetFetch): `group`; on `ok`
  `offsets` ``{partition: offset}``.
* `final-read` (after every fault healed): `ok` only, `partition`, `values`: every value
  in the partition from its start to its high watermark, in offset order, and `offsets`
  alongside. Lost writes are judged against it.
* `fault` (the nemesis): `type` `info`, `value` the fault's name, `action` `start` or
  `heal` (recorded when the heal begins); `expect` ``"no-acks"`` on a start means no
  send may be acknowledged from `grace` seconds after it until its heal (e.g. the leader cut off from
  ZooKeeper, the ISR below min.insync.replicas).

JSON object keys are strings: partitions in `offsets` are written as strings and read
back as ints by `offsets_of`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

Op = Mapping[str, Any]

INVOKE = "invoke"
OK = "ok"
FAIL = "fail"
INFO = "info"
TYPES = frozenset({INVOKE, OK, FAIL, INFO})


class HistoryError(ValueError):
    """A line that is not an operation; the message names the line."""


def offsets_of(op: Op) -> dict[int, int]:
    """An op's `offsets` with int partitions."""
    return {int(p): int(o) for p, o in (op.get("offsets") or {}).items()}


def validate(op: Any, line: int = 0) -> Op:
    if not isinstance(op, dict):
        raise HistoryError(f"line {line}: not a JSON object")
    for key in ("time", "process", "type", "f"):
        if key not in op:
            raise HistoryError(f"line {line}: no {key!r}")
    if op["type"] not in TYPES:
        raise HistoryError(f"line {line}: type {op['type']!r} is not one of {sorted(TYPES)}")
    if not isinstance(op["time"], int | float):
        raise HistoryError(f"line {line}: time is not a number")
    return op


def parse(lines: Iterable[str]) -> Iterator[Op]:
    """Operations from JSON lines (blank lines skipped); HistoryError on a bad line."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            op = json.loads(line)
        except json.JSONDecodeError as e:
            raise HistoryError(f"line {number}: {e}") from None
        yield validate(op, number)


def read(path: Path) -> list[Op]:
    with open(path) as f:
        return list(parse(f))


def dumps(op: Op) -> str:
    return json.dumps(op, separators=(",", ":"), sort_keys=True)


class HistoryWriter:
    """Appends operations to a JSON-lines file, one flushed line each (a crash of the
    harness leaves every line written so far readable)."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out

    def write(self, op: Op) -> None:
        self._out.write(dumps(op) + "\n")
        self._out.flush()

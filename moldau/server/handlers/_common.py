"""What every API handler shares: the kio types of a negotiated version, and time fields."""
from __future__ import annotations

import datetime
import sys
from functools import cache
from types import ModuleType

from moldau.protocol.apis import response_type

NO_THROTTLE = datetime.timedelta(0)


@cache
def response_types(api_key: int, api_version: int) -> ModuleType:
    """The kio module holding every response entity of this API version."""
    return sys.modules[response_type(api_key, api_version).__module__]


def timestamp_field(ms: int) -> datetime.datetime | None:
    """kio's TZAware timestamps: -1 (none) is None."""
    if ms < 0:
        return None
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)


def timeout_seconds(timeout: datetime.timedelta | int) -> float:
    """A request's timeout field (kio gives a timedelta) in seconds, at least a second."""
    seconds = timeout.total_seconds() if isinstance(timeout, datetime.timedelta) else timeout / 1000
    return max(seconds, 1.0)

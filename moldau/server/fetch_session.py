"""Fetch sessions (KIP-227): a consumer fetching many partitions sends them all once, then
only what changed; the broker remembers the rest and answers only the partitions with
something new (data, an error, a moved high watermark or log start offset).

A request's (session id, epoch) says what it is:

- (0, -1): a full fetch without a session (librdkafka, followers);
- (0, 0): a full fetch that asks for a new session; the answer carries its id (or 0 when
  the cache is full);
- (id, -1): close session ``id``, then a full fetch without a session;
- (id, 0): close session ``id`` and start a new one;
- (id, n > 0): an incremental fetch in session ``id``, which must be at epoch ``n``
  (FETCH_SESSION_ID_NOT_FOUND / INVALID_FETCH_SESSION_EPOCH otherwise).

The cache holds at most ``max.incremental.fetch.session.cache.slots`` sessions; when it
is full, a session idle for ``min.incremental.fetch.session.eviction.ms`` makes room,
else the new one is not cached (Kafka's rule, without its size-based priorities).
Pure: the clock is passed in.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass, field

FINAL_EPOCH = -1
INITIAL_EPOCH = 0
INT32_MAX = 2**31 - 1

TopicPartition = tuple[str, int]


def next_epoch(epoch: int) -> int:
    return 1 if epoch >= INT32_MAX else epoch + 1


@dataclass
class SessionPartition:
    """What the client asked for, and what it was last told."""

    fetch_offset: int
    max_bytes: int
    current_leader_epoch: int = -1
    sent_high_watermark: int = -1
    sent_log_start_offset: int = -1

    # The attribute names of a Fetch request's partition, so reads treat both alike.
    @property
    def partition_max_bytes(self) -> int:
        return self.max_bytes


@dataclass
class FetchSession:
    id: int
    epoch: int
    partitions: OrderedDict[TopicPartition, SessionPartition] = field(default_factory=OrderedDict)
    last_used: float = 0.0

    def update(self, changed: dict[TopicPartition, SessionPartition], forgotten: list[TopicPartition]) -> None:
        """An incremental request: partitions added or with new fetch positions, and
        partitions the client no longer wants."""
        for tp, wanted in changed.items():
            current = self.partitions.get(tp)
            if current is None:
                self.partitions[tp] = wanted
            else:
                current.fetch_offset = wanted.fetch_offset
                current.max_bytes = wanted.max_bytes
                current.current_leader_epoch = wanted.current_leader_epoch
        for tp in forgotten:
            self.partitions.pop(tp, None)

    def must_respond(self, tp: TopicPartition, error: bool, has_data: bool, high_watermark: int,
                     log_start_offset: int) -> bool:
        """Whether an incremental answer includes this partition; records what it sends."""
        entry = self.partitions[tp]
        changed = (error or has_data or high_watermark != entry.sent_high_watermark
                   or log_start_offset != entry.sent_log_start_offset)
        if changed:
            entry.sent_high_watermark = high_watermark
            entry.sent_log_start_offset = log_start_offset
        return changed


class SessionError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


FETCH_SESSION_ID_NOT_FOUND = 70
INVALID_FETCH_SESSION_EPOCH = 71


class FetchSessionCache:
    def __init__(self, max_slots: int = 1000, eviction_s: float = 120.0) -> None:
        self.max_slots = max_slots
        self.eviction_s = eviction_s
        self._sessions: OrderedDict[int, FetchSession] = OrderedDict()  # least recently used first
        self._ids = itertools.count(1)

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, partitions: OrderedDict[TopicPartition, SessionPartition], now: float) -> FetchSession | None:
        """A new session at epoch 1 (the client's next epoch), or None when there is no room."""
        if self.max_slots <= 0:
            return None
        if len(self._sessions) >= self.max_slots:
            oldest_id, oldest = next(iter(self._sessions.items()))
            if now - oldest.last_used < self.eviction_s:
                return None
            del self._sessions[oldest_id]
        session_id = next(self._ids)
        while session_id in self._sessions or session_id == 0:
            session_id = next(self._ids) & INT32_MAX
        session = FetchSession(session_id, next_epoch(INITIAL_EPOCH), partitions, now)
        self._sessions[session_id] = session
        return session

    def close(self, session_id: int) -> None:
        self._sessions.pop(session_id, None)

    def incremental(self, session_id: int, epoch: int, now: float) -> FetchSession:
        """The session an incremental request (epoch > 0) continues; SessionError if none
        or at another epoch. Its epoch moves on."""
        session = self._sessions.get(session_id)
        if session is None:
            raise SessionError(FETCH_SESSION_ID_NOT_FOUND)
        if epoch != session.epoch:
            raise SessionError(INVALID_FETCH_SESSION_EPOCH)
        session.epoch = next_epoch(epoch)
        session.last_used = now
        self._sessions.move_to_end(session_id)
        return session

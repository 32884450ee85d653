"""Delayed operations (Kafka's DelayedOperation and DelayedOperationPurgatory).

A request that cannot be answered yet (a produce with acks=all waiting for the ISR, a
fetch waiting for ``min_bytes``) becomes a `DelayedOperation` watched under the keys of
its partitions. Whatever may let it complete (an append, a high watermark that moved, a
change of leadership) calls `Purgatory.check_and_complete(key)`; an operation not done
by its deadline expires. Each operation completes exactly once, by whichever comes
first, and calls its ``on_complete`` then.

No asyncio here: time comes from a `Scheduler` (the event loop's ``call_later`` in the
broker, a manual clock in tests), so expiry is deterministic in unit tests.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterable
from typing import Protocol


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """Runs a callback after a delay (asyncio's ``loop.call_later`` has this shape)."""

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Cancellable: ...


class DelayedOperation(ABC):
    """An operation that completes when `try_complete` finds it can, or at its deadline.

    Subclasses implement `try_complete` (return `force_complete()` when done, else
    False), `on_complete` (send the answer) and may override `on_expiration`."""

    def __init__(self, delay_ms: int) -> None:
        self.delay_ms = delay_ms
        self.completed = False
        self._timer: Cancellable | None = None
        self._unwatch: Callable[[], None] | None = None  # set by the purgatory watching it

    def force_complete(self) -> bool:
        """Complete now unless already completed; True if this call completed it."""
        if self.completed:
            return False
        self.completed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.on_complete()
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        return True

    def _expire(self) -> None:
        self._timer = None
        if not self.completed:
            self.on_expiration()
            self.force_complete()

    @abstractmethod
    def try_complete(self) -> bool: ...

    @abstractmethod
    def on_complete(self) -> None: ...

    def on_expiration(self) -> None:  # noqa: B027 (optional hook)
        """Called once before `on_complete` when the deadline passed first."""


PURGE_AFTER = 1000


class Purgatory:
    """Delayed operations of one kind, watched by key (a topic-partition)."""

    def __init__(self, name: str, scheduler: Scheduler) -> None:
        self.name = name
        self._scheduler = scheduler
        self._watchers: dict[Hashable, list[DelayedOperation]] = {}
        # Operations completed but still in some key's list: purged lazily, all at once
        # past PURGE_AFTER (Kafka's purgeInterval), so completing n operations costs O(n),
        # not O(n) each.
        self._completed_watched = 0

    def try_complete_else_watch(self, operation: DelayedOperation, keys: Iterable[Hashable]) -> bool:
        """Complete the operation now if it can; otherwise watch it under `keys` and arm
        its deadline. True if it completed now."""
        if operation.try_complete():
            return True
        keys = list(keys)
        for key in keys:
            self._watchers.setdefault(key, []).append(operation)
        operation._unwatch = self._completed_one
        operation._timer = self._scheduler.call_later(max(operation.delay_ms, 0) / 1000, operation._expire)
        return False

    def check_and_complete(self, key: Hashable) -> int:
        """Try every operation watching `key`; the number that completed."""
        watchers = self._watchers.get(key)
        if not watchers:
            return 0
        done = 0
        for operation in list(watchers):
            if not operation.completed and operation.try_complete():
                done += 1
        self._purge([key])
        return done

    def watched(self, key: Hashable | None = None) -> int:
        """Operations not yet completed, under `key` or in all."""
        if key is not None:
            return sum(1 for op in self._watchers.get(key, ()) if not op.completed)
        return len({id(op) for ops in self._watchers.values() for op in ops if not op.completed})

    def _completed_one(self) -> None:
        self._completed_watched += 1
        if self._completed_watched >= PURGE_AFTER:
            self._purge(list(self._watchers))
            self._completed_watched = 0

    def _purge(self, keys: Iterable[Hashable]) -> None:
        for key in keys:
            ops = self._watchers.get(key)
            if ops is None:
                continue
            alive = [op for op in ops if not op.completed]
            if alive:
                self._watchers[key] = alive
            else:
                del self._watchers[key]

    def expire_all(self) -> None:
        """Shutdown: every waiting operation expires now (an acks=all produce is answered
        REQUEST_TIMED_OUT, never as if its followers had the batch)."""
        for ops in list(self._watchers.values()):
            for op in list(ops):
                op._expire()
        self._watchers.clear()

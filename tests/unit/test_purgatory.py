"""Delayed operations: completed once, by an event or by the deadline (manual clock)."""
from __future__ import annotations

from moldau.replication.purgatory import DelayedOperation, Purgatory
from tests.unit.replication_fakes import ManualClock, ManualScheduler


class Waiter(DelayedOperation):
    def __init__(self, delay_ms: int, ready: list[bool]) -> None:
        super().__init__(delay_ms)
        self.ready = ready
        self.completions: list[str] = []
        self.expired = False

    def try_complete(self) -> bool:
        return self.force_complete() if self.ready[0] else False

    def on_expiration(self) -> None:
        self.expired = True

    def on_complete(self) -> None:
        self.completions.append("expired" if self.expired else "done")


def setup() -> tuple[ManualScheduler, Purgatory]:
    scheduler = ManualScheduler(ManualClock())
    return scheduler, Purgatory("test", scheduler)


def test_completes_at_once_when_it_can() -> None:
    _, purgatory = setup()
    op = Waiter(100, [True])
    assert purgatory.try_complete_else_watch(op, ["a"])
    assert op.completions == ["done"]
    assert purgatory.watched() == 0


def test_completes_on_an_event_of_one_of_its_keys_and_only_once() -> None:
    scheduler, purgatory = setup()
    ready = [False]
    op = Waiter(100, ready)
    assert not purgatory.try_complete_else_watch(op, ["a", "b"])
    assert purgatory.watched("a") == 1 and purgatory.watched("b") == 1
    assert purgatory.check_and_complete("a") == 0  # not ready yet
    ready[0] = True
    assert purgatory.check_and_complete("b") == 1
    assert op.completions == ["done"]
    assert purgatory.watched() == 0 and purgatory.watched("a") == 0  # unwatched from every key
    scheduler.advance(1000)  # its timer was cancelled
    assert purgatory.check_and_complete("a") == 0
    assert op.completions == ["done"]


def test_expires_at_its_deadline_not_before() -> None:
    scheduler, purgatory = setup()
    op = Waiter(100, [False])
    purgatory.try_complete_else_watch(op, ["a"])
    scheduler.advance(99)
    assert op.completions == []
    scheduler.advance(1)
    assert op.completions == ["expired"]
    assert purgatory.watched() == 0


def test_expire_all_expires_every_waiting_operation() -> None:
    _, purgatory = setup()
    ops = [Waiter(100, [False]) for _ in range(3)]
    for i, op in enumerate(ops):
        purgatory.try_complete_else_watch(op, [f"k{i % 2}"])
    purgatory.expire_all()
    assert [op.completions for op in ops] == [["expired"]] * 3
    assert purgatory.watched() == 0


def test_completed_operations_are_purged_from_every_key_in_bulk() -> None:
    scheduler, purgatory = setup()
    ready = [False]
    ops = [Waiter(60_000, ready) for _ in range(2500)]
    for op in ops:
        purgatory.try_complete_else_watch(op, ["a", "b"])
    ready[0] = True
    assert purgatory.check_and_complete("a") == 2500
    assert purgatory.watched() == 0
    # Key "b" was never checked: its completed operations went in the bulk purges.
    assert len(purgatory._watchers.get("b", [])) < 1000

"""The transaction state table: Kafka's ids, names and validPreviousStates."""

from __future__ import annotations

import pytest

from moldau.transactions.state import (
    VALID_PREVIOUS_STATES,
    IllegalStateTransition,
    TransactionState,
    can_transition,
    check_transition,
    parse_state,
)

S = TransactionState


def test_ids_and_names_are_kafkas() -> None:
    assert [(s.id, s.value) for s in S] == [
        (0, "Empty"),
        (1, "Ongoing"),
        (2, "PrepareCommit"),
        (3, "PrepareAbort"),
        (4, "CompleteCommit"),
        (5, "CompleteAbort"),
        (6, "Dead"),
        (7, "PrepareEpochFence"),
    ]
    for s in S:
        assert S.from_id(s.id) is s
        assert parse_state(s.value) is s
    with pytest.raises(ValueError):
        S.from_id(8)
    assert parse_state("ongoing") is None  # Kafka's fromName is exact


def test_the_table_covers_every_state() -> None:
    assert set(VALID_PREVIOUS_STATES) == set(S)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.EMPTY, S.ONGOING),
        (S.ONGOING, S.ONGOING),
        (S.ONGOING, S.PREPARE_COMMIT),
        (S.ONGOING, S.PREPARE_ABORT),
        (S.ONGOING, S.PREPARE_EPOCH_FENCE),
        (S.PREPARE_EPOCH_FENCE, S.PREPARE_ABORT),
        (S.PREPARE_COMMIT, S.COMPLETE_COMMIT),
        (S.PREPARE_ABORT, S.COMPLETE_ABORT),
        (S.COMPLETE_COMMIT, S.EMPTY),
        (S.COMPLETE_ABORT, S.ONGOING),
        (S.COMPLETE_COMMIT, S.DEAD),
        (S.EMPTY, S.EMPTY),
    ],
)
def test_legal(current: S, target: S) -> None:
    assert can_transition(current, target)
    check_transition("t", current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.EMPTY, S.PREPARE_COMMIT),  # nothing to commit
        (S.EMPTY, S.PREPARE_ABORT),  # TV2 only
        (S.PREPARE_COMMIT, S.PREPARE_ABORT),
        (S.PREPARE_COMMIT, S.ONGOING),  # markers first
        (S.PREPARE_ABORT, S.COMPLETE_COMMIT),
        (S.ONGOING, S.DEAD),  # an open transaction never expires
        (S.ONGOING, S.EMPTY),
        (S.DEAD, S.EMPTY),
        (S.PREPARE_EPOCH_FENCE, S.PREPARE_COMMIT),
    ],
)
def test_illegal(current: S, target: S) -> None:
    assert not can_transition(current, target)
    with pytest.raises(IllegalStateTransition):
        check_transition("t", current, target)


def test_expiration_allowed() -> None:
    assert {s for s in S if s.expiration_allowed} == {S.EMPTY, S.COMPLETE_COMMIT, S.COMPLETE_ABORT}

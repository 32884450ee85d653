"""Transitions prepared on one transactional id: every field Kafka's
TransactionMetadata sets, and the state table guarding them."""

from __future__ import annotations

import pytest

from moldau.transactions.metadata import TransactionMetadata, TxnTransitMetadata, is_epoch_exhausted
from moldau.transactions.records import TopicPartitions, TransactionLogValue
from moldau.transactions.state import IllegalStateTransition, TransactionState

S = TransactionState


def ongoing(epoch: int = 3) -> TransactionMetadata:
    value = TransactionLogValue(9, epoch, 1000, S.ONGOING, (TopicPartitions("t", (0,)),), 50, 40)
    return TransactionMetadata.from_value("x", value)


def test_epoch_exhaustion() -> None:
    assert not is_epoch_exhausted(32765)
    assert is_epoch_exhausted(32766)
    assert is_epoch_exhausted(32767)


def test_a_new_id_starts_empty_without_epoch_and_bumps_to_0() -> None:
    m = TransactionMetadata.new("x", 5, 1000, now_ms=10)
    assert (m.state, m.producer_epoch) == (S.EMPTY, -1)
    transit = m.prepare_increment_producer_epoch(2000, None, now_ms=20)
    assert transit is not None
    assert (transit.producer_epoch, transit.last_producer_epoch, transit.txn_timeout_ms) == (0, -1, 2000)
    assert transit.txn_last_update_timestamp == 20 and transit.txn_start_timestamp == -1
    assert m.producer_epoch == -1  # nothing changes until applied
    m.complete_transition(transit)
    assert m.current == transit


def test_fence_bumps_the_epoch_and_aborts() -> None:
    m = ongoing()
    transit = m.prepare_fence_producer_epoch_and_abort(now_ms=99)
    assert (transit.state, transit.producer_epoch, transit.last_producer_epoch) == (S.PREPARE_ABORT, 4, -1)
    assert transit.topic_partitions == {("t", 0)} and transit.txn_start_timestamp == 40
    with pytest.raises(RuntimeError):
        ongoing(32767).prepare_fence_producer_epoch_and_abort(0)
    with pytest.raises(IllegalStateTransition):
        TransactionMetadata.new("x", 5, 1000, 0).prepare_fence_producer_epoch_and_abort(0)


def test_complete_clears_partitions_and_keeps_the_epoch() -> None:
    m = ongoing()
    m.complete_transition(m.prepare_abort_or_commit(S.PREPARE_COMMIT, 60))
    done = m.prepare_complete(70)
    assert (done.state, done.topic_partitions, done.producer_epoch, done.txn_start_timestamp) == (
        S.COMPLETE_COMMIT, frozenset(), 3, 40)
    with pytest.raises(ValueError):
        m.prepare_abort_or_commit(S.COMPLETE_COMMIT, 0)


def test_illegal_transitions_raise() -> None:
    m = TransactionMetadata.new("x", 5, 1000, 0)
    with pytest.raises(IllegalStateTransition):
        m.prepare_abort_or_commit(S.PREPARE_COMMIT, 0)
    with pytest.raises(IllegalStateTransition):
        ongoing().prepare_dead()
    with pytest.raises(IllegalStateTransition):
        ongoing().prepare_increment_producer_epoch(1000, None, 0)
    with pytest.raises(RuntimeError):
        TransactionMetadata.from_value(
            "x", TransactionLogValue(9, 32766, 1000, S.EMPTY, None, 0, -1)
        ).prepare_increment_producer_epoch(1000, None, 0)


def test_dead_and_epoch_fence_are_never_written() -> None:
    m = TransactionMetadata.new("x", 5, 1000, 0)
    with pytest.raises(ValueError):
        m.prepare_dead().to_value()


def test_value_round_trip_keeps_everything_but_the_last_epoch() -> None:
    m = ongoing()
    value = m.current.to_value()
    assert TxnTransitMetadata.from_value(value) == m.current
    assert value.transaction_partitions == (TopicPartitions("t", (0,)),)

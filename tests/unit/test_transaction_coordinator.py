"""The pure transaction coordinator: Kafka's answers for InitProducerId,
AddPartitionsToTxn, AddOffsetsToTxn and EndTxn, markers, expiry, and replay of
``__transaction_state`` giving back the state the live coordinator held."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moldau.protocol.errors import ErrorCode
from moldau.transactions.config import TransactionConfig
from moldau.transactions.control import ControlRecordType
from moldau.transactions.coordinator import (
    CoordinatorAppendError,
    ProducerIdAllocationError,
    TransactionCoordinator,
    TxnMarkers,
    fenced_error_for_version,
)
from moldau.transactions.metadata import TxnTransitMetadata
from moldau.transactions.records import (
    TransactionLogValue,
    decode_key,
    decode_value,
    partition_for,
    transaction_record,
)
from moldau.transactions.state import TransactionState

E = ErrorCode
S = TransactionState
TXN = "txn-1"
T0 = 1_000_000


class FakeLog:
    """``__transaction_state`` partitions in memory; ``fail_with`` makes the next
    appends raise."""

    def __init__(self) -> None:
        self.partitions: dict[int, list[tuple[bytes, bytes | None]]] = {}
        self.fail_with: Exception | None = None

    def append(self, partition: int, records: list[tuple[bytes, bytes | None]]) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.partitions.setdefault(partition, []).extend(records)

    def last_value(self, transactional_id: str, partitions: int = 50) -> TransactionLogValue | None:
        for key, value in reversed(self.partitions.get(partition_for(transactional_id, partitions), [])):
            if decode_key(key) == transactional_id:
                return None if value is None else decode_value(value)
        raise AssertionError(f"no record of {transactional_id}")


class Allocator:
    def __init__(self, start: int = 1000) -> None:
        self.next = start
        self.error: ErrorCode | None = None

    def __call__(self) -> int:
        if self.error is not None:
            raise ProducerIdAllocationError(self.error)
        self.next += 1
        return self.next - 1


def make(config: TransactionConfig | None = None) -> tuple[TransactionCoordinator, FakeLog, Allocator]:
    fake_log = FakeLog()
    allocator = Allocator()
    coordinator = TransactionCoordinator(config or TransactionConfig(), fake_log.append, allocator)
    for p in range(coordinator.config.transaction_log_partitions):
        coordinator.load_partition(p, 7, [], T0)
    return coordinator, fake_log, allocator


def state(c: TransactionCoordinator, txn: str = TXN) -> TxnTransitMetadata:
    m = c.transaction(txn)
    assert m is not None
    return m.current


def replayed(c: TransactionCoordinator, fake_log: FakeLog) -> TransactionCoordinator:
    """A new coordinator that loaded every partition from what ``c`` wrote."""
    other = TransactionCoordinator(c.config, FakeLog().append, Allocator(10**9))
    for p in range(c.config.transaction_log_partitions):
        other.load_partition(p, 8, list(fake_log.partitions.get(p, [])), T0)
    return other


def assert_replay_matches(c: TransactionCoordinator, fake_log: FakeLog) -> None:
    other = replayed(c, fake_log)
    for p in c.loaded_partitions:
        live = {t: replace(m.current, last_producer_epoch=-1) for t, m in c._partitions[p].transactions.items()}
        loaded = {t: m.current for t, m in other._partitions[p].transactions.items()}
        assert live == loaded
        for t, m in c._partitions[p].transactions.items():
            assert other._partitions[p].transactions[t].pending_state == m.pending_state


def begin(c: TransactionCoordinator, now: int = T0, timeout: int = 60000) -> tuple[int, int]:
    r = c.init_producer_id(TXN, timeout, now)
    assert r.error is E.none
    return r.producer_id, r.producer_epoch


# --- InitProducerId ----------------------------------------------------------------------


def test_init_producer_id_new_id_then_fencing_bumps() -> None:
    c, fake_log, _ = make()
    r = c.init_producer_id(TXN, 60000, T0)
    assert (r.error, r.producer_id, r.producer_epoch) == (E.none, 1000, 0)
    value = fake_log.last_value(TXN)
    assert value is not None
    assert (value.producer_id, value.producer_epoch, value.transaction_status) == (1000, 0, S.EMPTY)
    assert value.transaction_timeout_ms == 60000 and value.transaction_partitions is None
    # a second instance with the same transactional id: same producer id, next epoch
    r2 = c.init_producer_id(TXN, 30000, T0 + 5)
    assert (r2.error, r2.producer_id, r2.producer_epoch) == (E.none, 1000, 1)
    assert state(c).txn_timeout_ms == 30000
    assert_replay_matches(c, fake_log)


def test_init_producer_id_without_transactional_id_is_idempotence_only() -> None:
    c, fake_log, _ = make()
    r = c.init_producer_id(None, 0, T0)
    assert (r.error, r.producer_id, r.producer_epoch) == (E.none, 1000, 0)
    assert fake_log.partitions == {}


@pytest.mark.parametrize("timeout", [0, -1, 900001])
def test_invalid_transaction_timeout(timeout: int) -> None:
    c, _, _ = make()
    assert c.init_producer_id(TXN, timeout, T0).error is E.invalid_transaction_timeout
    assert c.init_producer_id(TXN, 900000, T0).error is E.none


def test_init_producer_id_bad_requests() -> None:
    c, _, allocator = make()
    assert c.init_producer_id("", 1000, T0).error is E.invalid_request
    assert c.init_producer_id(TXN, 1000, T0, producer_id=5).error is E.invalid_request
    c.unload_partition(c.partition_for(TXN))
    assert c.init_producer_id(TXN, 1000, T0).error is E.not_coordinator
    c2, _, allocator = make()
    allocator.error = E.coordinator_load_in_progress
    assert c2.init_producer_id(TXN, 1000, T0).error is E.coordinator_load_in_progress
    assert c2.transaction(TXN) is None


def test_kip360_recovery_with_expected_producer_id_and_epoch() -> None:
    c, fake_log, _ = make()
    pid, epoch = begin(c)
    # the producer recovers (e.g. after UNKNOWN_PRODUCER_ID): same producer id, epoch + 1
    r = c.init_producer_id(TXN, 60000, T0, producer_id=pid, producer_epoch=epoch)
    assert (r.error, r.producer_id, r.producer_epoch) == (E.none, pid, epoch + 1)
    assert state(c).last_producer_epoch == epoch
    # its answer was lost: the retry with the old epoch gets the same epoch again, no bump
    again = c.init_producer_id(TXN, 60000, T0, producer_id=pid, producer_epoch=epoch)
    assert (again.error, again.producer_epoch) == (E.none, epoch + 1)
    # an epoch that is neither current nor last: fenced
    assert c.init_producer_id(TXN, 60000, T0, producer_id=pid, producer_epoch=epoch + 5).error is E.producer_fenced
    # another producer id: fenced
    assert c.init_producer_id(TXN, 60000, T0, producer_id=pid + 1, producer_epoch=0).error is E.producer_fenced
    # a new instance (no expected epoch) fences the recovered one; its retry is fenced then
    assert c.init_producer_id(TXN, 60000, T0).producer_epoch == epoch + 2
    assert c.init_producer_id(TXN, 60000, T0, producer_id=pid, producer_epoch=epoch).error is E.producer_fenced


def test_kip360_an_expired_id_gives_a_recovering_producer_a_new_producer_id() -> None:
    c, _, _ = make()
    r = c.init_producer_id(TXN, 60000, T0, producer_id=77, producer_epoch=3)
    assert (r.error, r.producer_id, r.producer_epoch) == (E.none, 1000, 0)


def test_an_exhausted_epoch_answers_a_retry_and_fences_the_stale() -> None:
    c, _, _ = make()
    pid, _ = begin(c)
    p = c.partition_for(TXN)
    m = c.transaction(TXN)
    assert m is not None
    m.current = replace(m.current, producer_epoch=32765, last_producer_epoch=32764)
    bumped = c.init_producer_id(TXN, 60000, T0, producer_id=pid, producer_epoch=32765)
    assert (bumped.error, bumped.producer_epoch) == (E.none, 32766)  # the last usable epoch
    retry = c.init_producer_id(TXN, 60000, T0, producer_id=pid, producer_epoch=32765)
    assert (retry.error, retry.producer_id, retry.producer_epoch) == (E.none, pid, 32766)
    stale = c.init_producer_id(TXN, 60000, T0, producer_id=pid, producer_epoch=100)
    assert stale.error is E.producer_fenced
    assert c.coordinator_epoch(p) == 7


def test_exhausted_epoch_rotates_the_producer_id() -> None:
    c, fake_log, _ = make()
    value = TransactionLogValue(500, 32766, 60000, S.COMPLETE_COMMIT, (), T0, T0)
    p = c.partition_for(TXN)
    c.load_partition(p, 7, [transaction_record(TXN, value)], T0)
    r = c.init_producer_id(TXN, 60000, T0 + 1, producer_id=500, producer_epoch=32766)
    assert (r.error, r.producer_id, r.producer_epoch) == (E.none, 1000, 0)
    assert state(c).previous_producer_id == 500
    assert state(c).last_producer_epoch == 32766
    # its answer was lost; the retry (the previous producer id with an exhausted epoch,
    # which is the last epoch) gets the same producer id and epoch, no new bump
    retry = c.init_producer_id(TXN, 60000, T0 + 2, producer_id=500, producer_epoch=32766)
    assert (retry.error, retry.producer_id, retry.producer_epoch) == (E.none, 1000, 0)
    assert_replay_matches(c, fake_log)
    # without an expected epoch, the last epoch is not kept
    other = "rotated-blind"
    c.load_partition(c.partition_for(other), 7, [transaction_record(other, value)], T0)
    assert c.init_producer_id(other, 60000, T0).producer_epoch == 0
    assert c.transaction(other).current.last_producer_epoch == -1  # type: ignore[union-attr]


# --- AddPartitionsToTxn / AddOffsetsToTxn -----------------------------------------------


def test_add_partitions() -> None:
    c, fake_log, _ = make()
    pid, epoch = begin(c)
    assert c.add_partitions_to_txn(TXN, pid + 1, epoch, [("t", 0)], T0) is E.invalid_producer_id_mapping
    assert c.add_partitions_to_txn("other", pid, epoch, [("t", 0)], T0) is E.invalid_producer_id_mapping
    assert c.add_partitions_to_txn(TXN, pid, epoch + 1, [("t", 0)], T0) is E.producer_fenced
    assert c.add_partitions_to_txn("", pid, epoch, [("t", 0)], T0) is E.invalid_request
    assert c.add_partitions_to_txn(TXN, pid, epoch, [("t", 0), ("t", 1)], T0 + 10) is E.none
    s = state(c)
    assert (s.state, s.topic_partitions, s.txn_start_timestamp) == (S.ONGOING, {("t", 0), ("t", 1)}, T0 + 10)
    writes = len(fake_log.partitions[c.partition_for(TXN)])
    # partitions already in the transaction: answered at once, nothing written
    assert c.add_partitions_to_txn(TXN, pid, epoch, [("t", 1)], T0 + 20) is E.none
    assert len(fake_log.partitions[c.partition_for(TXN)]) == writes
    # more partitions: the start timestamp stays
    assert c.add_partitions_to_txn(TXN, pid, epoch, [("u", 3)], T0 + 30) is E.none
    s = state(c)
    assert s.topic_partitions == {("t", 0), ("t", 1), ("u", 3)} and s.txn_start_timestamp == T0 + 10
    value = fake_log.last_value(TXN)
    assert value is not None and value.partitions() == {("t", 0), ("t", 1), ("u", 3)}
    assert_replay_matches(c, fake_log)


def test_verify_partitions_in_transaction() -> None:
    c, fake_log, _ = make()
    pid, epoch = begin(c)
    c.add_partitions_to_txn(TXN, pid, epoch, [("t", 0)], T0)
    writes = len(fake_log.partitions[c.partition_for(TXN)])
    assert c.verify_partitions_in_transaction(TXN, pid, epoch, [("t", 0), ("t", 1)]) == {
        ("t", 0): E.none, ("t", 1): E.transaction_abortable}
    assert c.verify_partitions_in_transaction(TXN, pid, epoch + 1, [("t", 0)]) == {("t", 0): E.producer_fenced}
    assert c.verify_partitions_in_transaction(TXN, pid + 1, epoch, [("t", 0)]) == {
        ("t", 0): E.invalid_producer_id_mapping}
    assert c.verify_partitions_in_transaction("", pid, epoch, [("t", 0)]) == {("t", 0): E.invalid_request}
    assert len(fake_log.partitions[c.partition_for(TXN)]) == writes
    c.end_txn(TXN, pid, epoch, True, T0)
    assert c.verify_partitions_in_transaction(TXN, pid, epoch, [("t", 0)]) == {("t", 0): E.concurrent_transactions}


def test_transaction_topic_configs() -> None:
    configs = TransactionConfig().topic_configs()
    assert configs["cleanup.policy"] == "compact"
    assert configs["min.insync.replicas"] == "2"
    assert configs["compression.type"] == "uncompressed"


def test_add_offsets_adds_the_groups_offsets_partition() -> None:
    c, _, _ = make()
    pid, epoch = begin(c)
    assert c.add_offsets_to_txn(TXN, pid, epoch, "my-group", T0) is E.none
    assert state(c).topic_partitions == {("__consumer_offsets", partition_for("my-group", 50))}


def test_fenced_error_by_version() -> None:
    fenced = E.producer_fenced
    assert fenced_error_for_version(fenced, 24, 1) is E.invalid_producer_epoch  # AddPartitionsToTxn v1
    assert fenced_error_for_version(fenced, 24, 2) is fenced
    assert fenced_error_for_version(fenced, 25, 1) is E.invalid_producer_epoch  # AddOffsetsToTxn
    assert fenced_error_for_version(fenced, 26, 1) is E.invalid_producer_epoch  # EndTxn
    assert fenced_error_for_version(fenced, 26, 2) is fenced
    assert fenced_error_for_version(fenced, 22, 3) is E.invalid_producer_epoch  # InitProducerId
    assert fenced_error_for_version(fenced, 22, 4) is fenced
    assert fenced_error_for_version(E.concurrent_transactions, 24, 0) is E.concurrent_transactions


# --- EndTxn and markers ----------------------------------------------------------------


def test_commit_writes_prepare_then_markers_then_complete() -> None:
    c, fake_log, _ = make()
    pid, epoch = begin(c)
    c.add_partitions_to_txn(TXN, pid, epoch, [("t", 0), ("u", 1)], T0)
    r = c.end_txn(TXN, pid, epoch, True, T0 + 100)
    assert (r.error, r.producer_id, r.producer_epoch) == (E.none, pid, epoch)
    assert r.markers == TxnMarkers(TXN, pid, epoch, 7, ControlRecordType.COMMIT, frozenset({("t", 0), ("u", 1)}))
    value = fake_log.last_value(TXN)
    assert value is not None and value.transaction_status is S.PREPARE_COMMIT
    assert_replay_matches(c, fake_log)  # the new coordinator would also be waiting for markers
    # while the markers are written, the transaction is busy
    assert c.end_txn(TXN, pid, epoch, True, T0).error is E.concurrent_transactions
    assert c.add_partitions_to_txn(TXN, pid, epoch, [("t", 0)], T0) is E.concurrent_transactions
    assert c.init_producer_id(TXN, 60000, T0).error is E.concurrent_transactions
    assert c.complete_markers(r.markers, T0 + 200) is E.none
    s = state(c)
    assert (s.state, s.topic_partitions, s.producer_epoch) == (S.COMPLETE_COMMIT, frozenset(), epoch)
    assert c.complete_markers(r.markers, T0 + 200) is E.invalid_txn_state  # once only
    # a retried EndTxn: answered NONE; the other outcome is INVALID_TXN_STATE
    assert c.end_txn(TXN, pid, epoch, True, T0).error is E.none
    assert c.end_txn(TXN, pid, epoch, False, T0).error is E.invalid_txn_state
    # the next transaction starts from CompleteCommit
    assert c.add_partitions_to_txn(TXN, pid, epoch, [("v", 0)], T0 + 300) is E.none
    assert state(c).txn_start_timestamp == T0 + 300
    assert_replay_matches(c, fake_log)


def test_abort() -> None:
    c, fake_log, _ = make()
    pid, epoch = begin(c)
    c.add_partitions_to_txn(TXN, pid, epoch, [("t", 0)], T0)
    r = c.end_txn(TXN, pid, epoch, False, T0)
    assert r.markers is not None and r.markers.result is ControlRecordType.ABORT
    assert r.markers.marker().control_type is ControlRecordType.ABORT
    assert c.end_txn(TXN, pid, epoch, True, T0).error is E.concurrent_transactions
    assert c.complete_markers(r.markers, T0) is E.none
    assert state(c).state is S.COMPLETE_ABORT
    assert c.end_txn(TXN, pid, epoch, False, T0).error is E.none
    assert c.end_txn(TXN, pid, epoch, True, T0).error is E.invalid_txn_state


def test_end_txn_errors() -> None:
    c, _, _ = make()
    pid, epoch = begin(c)
    assert c.end_txn(TXN, pid, epoch, True, T0).error is E.invalid_txn_state  # Empty: nothing to end
    assert c.end_txn(TXN, pid + 1, epoch, True, T0).error is E.invalid_producer_id_mapping
    assert c.end_txn(TXN, pid, epoch - 1, True, T0).error is E.producer_fenced
    assert c.end_txn("unknown", pid, epoch, True, T0).error is E.invalid_producer_id_mapping
    assert c.end_txn("", pid, epoch, True, T0).error is E.invalid_request


def test_init_producer_id_fences_an_ongoing_transaction() -> None:
    c, fake_log, _ = make()
    pid, epoch = begin(c)
    c.add_partitions_to_txn(TXN, pid, epoch, [("t", 0)], T0)
    r = c.init_producer_id(TXN, 60000, T0 + 1)
    assert r.error is E.concurrent_transactions
    assert r.markers == TxnMarkers(TXN, pid, epoch + 1, 7, ControlRecordType.ABORT, frozenset({("t", 0)}))
    value = fake_log.last_value(TXN)
    assert value is not None and (value.transaction_status, value.producer_epoch) == (S.PREPARE_ABORT, epoch + 1)
    # the old producer is fenced at once
    assert c.add_partitions_to_txn(TXN, pid, epoch, [("u", 0)], T0) is E.producer_fenced
    assert c.end_txn(TXN, pid, epoch, True, T0).error is E.producer_fenced
    # the new one retries until the abort completed
    assert c.init_producer_id(TXN, 60000, T0 + 2).error is E.concurrent_transactions
    assert c.complete_markers(r.markers, T0 + 3) is E.none
    again = c.init_producer_id(TXN, 60000, T0 + 4)
    assert (again.error, again.producer_id, again.producer_epoch) == (E.none, pid, epoch + 2)
    assert_replay_matches(c, fake_log)


# --- failures --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (CoordinatorAppendError(E.not_leader_or_follower), E.not_coordinator),
        (CoordinatorAppendError(E.not_enough_replicas), E.coordinator_not_available),
        (CoordinatorAppendError(E.request_timed_out), E.coordinator_not_available),
        (CoordinatorAppendError(E.record_list_too_large), E.unknown_server_error),
        (OSError("disk"), E.coordinator_not_available),
    ],
)
def test_a_failed_append_changes_nothing(raised: Exception, expected: ErrorCode) -> None:
    c, fake_log, _ = make()
    pid, epoch = begin(c)
    c.add_partitions_to_txn(TXN, pid, epoch, [("t", 0)], T0)
    before = state(c)
    fake_log.fail_with = raised
    assert c.add_partitions_to_txn(TXN, pid, epoch, [("u", 0)], T0) is expected
    assert c.end_txn(TXN, pid, epoch, True, T0).error is expected
    assert c.init_producer_id(TXN, 60000, T0).error is expected
    assert state(c) == before and c.transaction(TXN) is not None
    assert c.transaction(TXN).pending_state is None  # type: ignore[union-attr]
    fake_log.fail_with = None
    r = c.end_txn(TXN, pid, epoch, True, T0)
    assert r.error is E.none and r.markers is not None
    fake_log.fail_with = raised
    assert c.complete_markers(r.markers, T0) is expected
    assert state(c).state is S.PREPARE_COMMIT  # still waiting: the caller retries
    fake_log.fail_with = None
    assert c.complete_markers(r.markers, T0) is E.none
    assert_replay_matches(c, fake_log)


def test_a_failed_first_write_leaves_no_transactional_id() -> None:
    c, fake_log, _ = make()
    fake_log.fail_with = CoordinatorAppendError(E.not_enough_replicas)
    assert c.init_producer_id(TXN, 60000, T0).error is E.coordinator_not_available
    assert c.transaction(TXN) is None


# --- time ------------------------------------------------------------------------------


def test_a_timed_out_transaction_is_aborted_with_an_epoch_bump() -> None:
    c, fake_log, _ = make()
    pid, epoch = begin(c, timeout=5000)
    c.add_partitions_to_txn(TXN, pid, epoch, [("t", 0)], T0 + 100)
    assert c.tick(T0 + 100) == []  # first tick runs the checks: nothing due
    assert c.abort_timed_out_transactions(T0 + 5100) == []  # start + timeout is not yet past
    markers = c.tick(T0 + 100 + 10000)
    assert markers == [TxnMarkers(TXN, pid, epoch + 1, 7, ControlRecordType.ABORT, frozenset({("t", 0)}))]
    assert state(c).state is S.PREPARE_ABORT
    assert c.end_txn(TXN, pid, epoch, True, T0).error is E.producer_fenced
    assert c.abort_timed_out_transactions(T0 + 10**9) == []  # pending: not aborted twice
    assert c.complete_markers(markers[0], T0 + 20000) is E.none
    assert state(c).state is S.COMPLETE_ABORT
    assert_replay_matches(c, fake_log)


def test_the_abort_check_runs_at_its_interval() -> None:
    c, _, _ = make(TransactionConfig(abort_timed_out_transactions_interval_ms=10000))
    pid, epoch = begin(c, timeout=1000)
    c.add_partitions_to_txn(TXN, pid, epoch, [("t", 0)], T0)
    assert c.tick(T0) == []
    assert c.tick(T0 + 5000) == []  # due, but the next check is at T0 + 10000
    assert len(c.tick(T0 + 10000)) == 1


def test_idle_transactional_ids_expire() -> None:
    config = TransactionConfig(transactional_id_expiration_ms=1000)
    c, fake_log, _ = make(config)
    pid, epoch = begin(c, now=T0)
    assert c.init_producer_id("busy", 60000, T0).error is E.none
    busy = c.transaction("busy")
    assert busy is not None
    c.add_partitions_to_txn("busy", busy.producer_id, busy.producer_epoch, [("t", 0)], T0)
    assert c.expire_transactional_ids(T0 + 999) == []
    assert c.expire_transactional_ids(T0 + 1000) == [TXN]  # an Ongoing transaction never expires
    assert c.transaction(TXN) is None
    assert fake_log.last_value(TXN) is None  # the tombstone
    assert c.add_partitions_to_txn(TXN, pid, epoch, [("t", 0)], T0) is E.invalid_producer_id_mapping
    assert c.describe_transaction(TXN).error is E.transactional_id_not_found
    assert_replay_matches(c, fake_log)


def test_expiry_keeps_ids_when_the_tombstone_fails() -> None:
    c, fake_log, _ = make(TransactionConfig(transactional_id_expiration_ms=1000))
    begin(c)
    fake_log.fail_with = CoordinatorAppendError(E.not_enough_replicas)
    assert c.expire_transactional_ids(T0 + 5000) == []
    assert c.transaction(TXN) is not None


# --- failover --------------------------------------------------------------------------


def test_a_new_coordinator_finishes_a_prepared_commit() -> None:
    c, fake_log, _ = make()
    pid, epoch = begin(c)
    c.add_partitions_to_txn(TXN, pid, epoch, [("t", 0)], T0)
    old = c.end_txn(TXN, pid, epoch, True, T0).markers
    assert old is not None
    p = c.partition_for(TXN)
    c.unload_partition(p, 7)
    assert c.complete_markers(old, T0) is E.not_coordinator
    new = c.load_partition(p, 8, fake_log.partitions[p], T0 + 50)
    assert new == [replace(old, coordinator_epoch=8)]
    assert c.complete_markers(old, T0) is E.not_coordinator  # the old term's markers
    assert c.complete_markers(new[0], T0 + 60) is E.none
    assert state(c).state is S.COMPLETE_COMMIT


def test_unload_of_an_older_epoch_is_ignored() -> None:
    c, _, _ = make()
    p = c.partition_for(TXN)
    c.load_partition(p, 9, [], T0)
    c.unload_partition(p, 8)
    assert c.coordinator_epoch(p) == 9
    c.unload_partition(p)
    assert c.coordinator_epoch(p) is None


def test_load_skips_foreign_and_undecodable_records() -> None:
    c, _, _ = make()
    p = c.partition_for(TXN)
    good = transaction_record(TXN, TransactionLogValue(5, 1, 1000, S.EMPTY, None, T0, -1))
    records = [(b"\x00\x05\x00\x01x", b""), (good[0], b"\x00\x07garbage"), good]
    assert c.load_partition(p, 1, records, T0) == []
    assert state(c).producer_id == 5


def test_describe_and_list() -> None:
    c, _, _ = make()
    pid, epoch = begin(c)
    c.add_partitions_to_txn(TXN, pid, epoch, [("t", 0)], T0 + 5)
    d = c.describe_transaction(TXN)
    assert (d.error, d.state, d.producer_id, d.transaction_start_time_ms, d.partitions) == (
        E.none, "Ongoing", pid, T0 + 5, frozenset({("t", 0)}))
    assert c.init_producer_id("other", 1000, T0).error is E.none
    listed, unknown = c.list_transactions(["Ongoing", "Nope"])
    assert listed == [(TXN, pid, "Ongoing")] and unknown == ["Nope"]
    assert len(c.list_transactions()[0]) == 2
    assert c.list_transactions(producer_id_filters=[pid])[0] == [(TXN, pid, "Ongoing")]
    # only transactions running longer than the duration; Kafka compares with the start
    # timestamp, which is -1 for an id without a transaction, so those always pass
    assert c.list_transactions(duration_filter_ms=100, now_ms=T0 + 50)[0] == [("other", 1001, "Empty")]
    assert (TXN, pid, "Ongoing") in c.list_transactions(duration_filter_ms=100, now_ms=T0 + 200)[0]


# --- replay, for any sequence of requests ----------------------------------------------

_ops = st.lists(
    st.tuples(
        st.sampled_from(["init", "recover", "add", "offsets", "commit", "abort", "markers", "tick", "expire", "fail",
                         "failover"]),
        st.sampled_from(["a", "b", "c"]),
        st.integers(0, 3),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(_ops)
def test_replay_rebuilds_the_live_state(ops: list[tuple[str, str, int]]) -> None:
    config = TransactionConfig(transaction_log_partitions=3, transactional_id_expiration_ms=50_000)
    c, fake_log, _ = make(config)
    now = T0
    outstanding: dict[str, TxnMarkers] = {}
    for op, txn, n in ops:
        now += 1000 * n
        m = c.transaction(txn)
        pid, epoch = (m.producer_id, m.producer_epoch) if m else (0, 0)
        fake_log.fail_with = None
        if op == "init":
            r = c.init_producer_id(txn, 3000, now)
            if r.markers:
                outstanding[txn] = r.markers
        elif op == "recover":
            c.init_producer_id(txn, 3000, now, producer_id=pid, producer_epoch=max(epoch - n % 2, 0))
        elif op == "add":
            c.add_partitions_to_txn(txn, pid, epoch, [("t", n)], now)
        elif op == "offsets":
            c.add_offsets_to_txn(txn, pid, epoch, f"g{n}", now)
        elif op in ("commit", "abort"):
            r2 = c.end_txn(txn, pid, epoch, op == "commit", now)
            if r2.markers:
                outstanding[txn] = r2.markers
        elif op == "markers" and txn in outstanding:
            c.complete_markers(outstanding.pop(txn), now)
        elif op == "tick":
            for markers in c.tick(now):
                outstanding[markers.transactional_id] = markers
        elif op == "expire":
            c.expire_transactional_ids(now + 60_000)
        elif op == "failover":
            # another broker becomes coordinator of the partition: reload, higher epoch
            p = c.partition_for(txn)
            epoch_before = c.coordinator_epoch(p) or 0
            c.unload_partition(p)
            for markers in c.load_partition(p, epoch_before + 1, list(fake_log.partitions.get(p, [])), now):
                outstanding[markers.transactional_id] = markers
        elif op == "fail":
            fake_log.fail_with = CoordinatorAppendError(E.not_enough_replicas)
            c.add_partitions_to_txn(txn, pid, epoch, [("x", n)], now)
            c.end_txn(txn, pid, epoch, True, now)
        for meta in (c.transaction(t) for t in "abc"):
            if meta is not None:
                assert meta.producer_epoch >= 0
        assert_replay_matches(c, fake_log)

"""Transactions in the log: control batches end a producer's transaction, the last stable
offset, and the per-segment aborted-transaction index (``.txnindex``), kept through
rolls, truncation, deletion and recovery."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from moldau.log.config import LogConfig
from moldau.log.log import Log
from moldau.log.producer_state import InvalidProducerEpochError, TransactionCoordinatorFencedError
from moldau.log.transaction_index import ABORTED_TXN, AbortedTxn, TransactionIndex
from moldau.protocol.records import RecordInput, build_batch, validate_batches
from moldau.transactions.control import ControlRecordType, EndTransactionMarker, build_end_txn_marker


class Writer:
    """Appends to a log as a leader, keeping each producer's next sequence."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.sequences: dict[int, int] = {}

    def data(self, pid: int, count: int = 1, *, epoch: int = 0, transactional: bool = True) -> int:
        seq = self.sequences.get(pid, 0)
        self.sequences[pid] = seq + count
        buf = bytearray(build_batch([RecordInput(b"v%d" % i) for i in range(count)], producer_id=pid,
                                    producer_epoch=epoch, base_sequence=seq, timestamp=1000,
                                    transactional=transactional))
        return self.log.append(buf, validate_batches(buf), leader_epoch=0, now_ms=1000).first_offset

    def marker(self, pid: int, commit: bool, *, epoch: int = 0, coordinator_epoch: int = 0) -> int:
        control = ControlRecordType.COMMIT if commit else ControlRecordType.ABORT
        buf = bytearray(build_end_txn_marker(EndTransactionMarker(pid, epoch, control, coordinator_epoch), 1000))
        return self.log.append(buf, validate_batches(buf), leader_epoch=0, now_ms=1000).first_offset


def open_log(directory: Path, recover: bool = False, **config: int) -> Log:
    return Log.open(directory, LogConfig(**config), now_ms=0, recover=recover)


def aborted(log: Log) -> list[tuple[int, int, int]]:
    return [(t.producer_id, t.first_offset, t.last_offset)
            for t in log.collect_aborted_transactions(log.log_start_offset, log.log_end_offset)]


def test_the_last_stable_offset_stops_at_the_first_open_transaction(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    w = Writer(log)
    w.data(1, transactional=False)  # 0: no transaction
    assert w.data(7, 2) == 1  # 1-2: producer 7's transaction
    w.data(8)  # 3: producer 8's
    log.update_high_watermark(log.log_end_offset)
    assert log.last_stable_offset == 1
    assert w.marker(7, commit=True) == 4
    # The marker is not replicated yet: the transaction still holds the LSO back.
    assert log.last_stable_offset == 1
    log.update_high_watermark(log.log_end_offset)
    assert log.last_stable_offset == 3  # producer 8's transaction
    assert w.marker(8, commit=False) == 5
    log.update_high_watermark(log.log_end_offset)
    assert log.last_stable_offset == 6 == log.high_watermark
    assert aborted(log) == [(8, 3, 5)]
    assert log.collect_aborted_transactions(0, 3) == []  # ends before the aborted one starts
    assert aborted(log) == [(8, 3, 5)]


def test_an_empty_aborted_transaction_covers_only_its_marker(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    w = Writer(log)
    w.marker(3, commit=False)
    log.update_high_watermark(log.log_end_offset)
    assert aborted(log) == [(3, 0, 0)]
    assert log.last_stable_offset == 1


def test_sequences_continue_across_markers_of_one_epoch(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    w = Writer(log)
    w.data(5, 2)
    w.marker(5, commit=True)
    assert w.data(5) == 3  # sequence 2 after the marker: in order


def test_markers_are_fenced_by_producer_and_coordinator_epochs(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    w = Writer(log)
    w.data(5, epoch=3)
    w.marker(5, commit=False, epoch=3, coordinator_epoch=2)
    with pytest.raises(InvalidProducerEpochError):
        w.marker(5, commit=False, epoch=2, coordinator_epoch=2)
    with pytest.raises(TransactionCoordinatorFencedError):
        w.marker(5, commit=False, epoch=3, coordinator_epoch=1)
    # A fencing abort bumps the epoch: the old epoch's batches are refused afterwards.
    w.marker(5, commit=False, epoch=4, coordinator_epoch=2)
    with pytest.raises(InvalidProducerEpochError):
        w.data(5, epoch=3)


def test_an_aborted_transaction_spanning_segments_is_indexed_in_the_markers_segment(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", segment_bytes=300)
    w = Writer(log)
    for _ in range(6):
        w.data(9, 2)
    w.marker(9, commit=False)
    bases = log.segment_base_offsets()
    assert len(bases) > 2
    marker_segment = log.segments_in_range(12, 13)[0]
    assert [t.first_offset for t in marker_segment.txn_index.entries] == [0]
    assert (tmp_path / "t-0" / f"{marker_segment.base_offset:020d}.txnindex").exists()
    assert not (tmp_path / "t-0" / f"{bases[0]:020d}.txnindex").exists()
    log.update_high_watermark(log.log_end_offset)
    # A read of the first segment only still learns that its records were aborted.
    assert [(t.first_offset, t.last_offset) for t in log.collect_aborted_transactions(0, 2)] == [(0, 12)]


def test_the_index_file_holds_kafkas_34_byte_entries(tmp_path: Path) -> None:
    index = TransactionIndex(tmp_path / "00000000000000000000.txnindex")
    index.append(AbortedTxn(7, 3, 9, 10))
    index.append(AbortedTxn(8, 4, 12, 13))
    data = (tmp_path / "00000000000000000000.txnindex").read_bytes()
    assert len(data) == 68
    assert ABORTED_TXN.unpack_from(data, 34) == (0, 8, 4, 12, 13)
    with pytest.raises(ValueError):
        index.append(AbortedTxn(9, 1, 12, 13))
    assert TransactionIndex(index.path).entries == index.entries
    index.truncate_to(12)
    assert TransactionIndex(index.path).entries == [AbortedTxn(7, 3, 9, 10)]


def test_truncation_and_retention_take_index_entries_with_them(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", segment_bytes=250)
    w = Writer(log)
    w.data(1)
    w.marker(1, commit=False)  # 1
    w.data(2)
    w.marker(2, commit=False)  # 3
    w.data(3)  # 4: open
    assert [t[0] for t in aborted(log)] == [1, 2]
    log.truncate_to(3)
    assert [t[0] for t in aborted(log)] == [1]
    # Producer 2's transaction is open again (its marker is gone), producer 3's is gone.
    log.update_high_watermark(log.log_end_offset)
    assert log.last_stable_offset == 2
    w.marker(2, commit=True)
    log.update_high_watermark(log.log_end_offset)
    log.roll(2000)
    log.delete_records_before(log.log_end_offset)
    log.delete_old_segments(3000)
    assert not list((tmp_path / "t-0").glob("*.txnindex"))


@pytest.mark.parametrize("clean", [True, False])
def test_reopening_keeps_open_transactions_and_the_index(tmp_path: Path, clean: bool) -> None:
    log = open_log(tmp_path / "t-0", segment_bytes=300)
    w = Writer(log)
    w.data(1, 2)
    w.data(2, 3)
    w.marker(1, commit=False)
    for _ in range(4):
        w.data(3)  # producer 3's transaction spans the rolls
    w.data(4, transactional=False)
    w.marker(2, commit=False)
    expected = aborted(log)
    end = log.log_end_offset
    if clean:
        log.close()
    else:  # a crash: no snapshot at close, every index rebuilt from the batches
        log.close(snapshot=False)
        for path in (tmp_path / "t-0").glob("*.txnindex"):
            os.truncate(path, 5)  # torn
    log = open_log(tmp_path / "t-0", recover=not clean, segment_bytes=300)
    assert log.log_end_offset == end
    assert aborted(log) == expected == [(1, 0, 5), (2, 2, 11)]
    log.update_high_watermark(end)
    assert log.last_stable_offset == 6  # producer 3's transaction is still open


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[str, int]]:
    ops = st.one_of(
        st.tuples(st.just("data"), st.integers(1, 3)),
        st.tuples(st.just("plain"), st.just(9)),
        st.tuples(st.just("commit"), st.integers(1, 3)),
        st.tuples(st.just("abort"), st.integers(1, 3)),
        st.tuples(st.just("hw"), st.integers(0, 100)),
        st.tuples(st.just("reopen"), st.integers(0, 1)),
    )
    return draw(st.lists(ops, max_size=40))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=histories())
# A crash after a commit whose marker is not replicated, with producer snapshots after it
# (rolls): the recovered state must still hold the LSO at the transaction's first offset.
@example(history=[("data", 1), *[("plain", 9)] * 8, ("commit", 1), ("hw", 10), ("plain", 9), ("reopen", 0)])
def test_last_stable_offset_and_aborted_transactions_follow_a_model(tmp_path_factory: pytest.TempPathFactory,
                                                                     history: list[tuple[str, int]]) -> None:
    directory = tmp_path_factory.mktemp("txn") / "t-0"
    log = open_log(directory, segment_bytes=400)
    w = Writer(log)
    open_txns: dict[int, int] = {}  # pid -> first offset
    completed: list[tuple[int, int, int, bool]] = []  # pid, first, marker offset, aborted
    replicated_before = 0
    try:
        for op, arg in history:
            if op == "data":
                offset = w.data(arg)
                open_txns.setdefault(arg, offset)
            elif op == "plain":
                w.data(arg, transactional=False)
            elif op in ("commit", "abort"):
                offset = w.marker(arg, commit=op == "commit")
                completed.append((arg, open_txns.pop(arg, offset), offset, op == "abort"))
            elif op == "hw":
                # The high watermark only moves forward (but for truncation).
                log.update_high_watermark(max(log.high_watermark, log.log_end_offset * arg // 100))
            else:
                hw = log.high_watermark
                log.close(snapshot=bool(arg))
                log = open_log(directory, recover=not arg, segment_bytes=400)
                log.update_high_watermark(hw)
                w.log = log
                if arg:
                    # As in Kafka, a snapshot keeps open transactions, not completed ones
                    # whose marker is not replicated yet (the index has their aborts).
                    replicated_before = log.log_end_offset
                else:  # recovery replays every batch: completed transactions are known again
                    replicated_before = 0
            hw = log.high_watermark
            unstable = list(open_txns.values()) + [first for _, first, last, _ in completed
                                                   if last >= max(hw, replicated_before)]
            assert log.last_stable_offset == min([hw, *unstable])
            assert aborted(log) == [(pid, first, last) for pid, first, last, is_aborted in completed if is_aborted]
    finally:
        log.close()


def test_a_marker_voids_a_verification_started_before_it(tmp_path: Path) -> None:
    """KIP-890 part 1's guard: the leader verifies a producer's first batch of a
    transaction with the coordinator; a marker written meanwhile ends that transaction,
    so the batch must not be appended as if it were still open."""
    log = open_log(tmp_path / "t-0")
    w = Writer(log)
    state = log.producer_state
    assert state.needs_verification(5, 0)
    token = state.start_verification(5)
    assert state.verification_holds(5, token)
    w.data(5)
    assert not state.needs_verification(5, 0)  # its transaction is open here now
    assert state.needs_verification(5, 1)  # another epoch: a new transaction
    late = state.start_verification(5)
    w.marker(5, commit=False)
    assert not state.verification_holds(5, late)
    assert state.needs_verification(5, 0)

"""Idempotent producer state: duplicates, epochs, sequences, snapshots."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moldau.log.producer_state import (
    INT32_MAX,
    CorruptSnapshotError,
    InvalidProducerEpochError,
    OutOfOrderSequenceError,
    ProducerBatch,
    ProducerEntry,
    ProducerStateManager,
    decode_snapshot,
    encode_snapshot,
    in_sequence,
    increment_sequence,
)


def write(state: ProducerStateManager, batch: ProducerBatch, first_offset: int, ts: int = 0) -> None:
    """What the leader does: check, then (if new) record the written batch."""
    assert state.check(batch) is None
    state.update(batch, first_offset, first_offset + batch.last_offset_delta, ts)


def test_sequences_wrap_at_int32_max() -> None:
    assert increment_sequence(5, 3) == 8
    assert increment_sequence(INT32_MAX, 1) == 0
    assert increment_sequence(INT32_MAX - 1, 3) == 1
    assert in_sequence(4, 5) and in_sequence(INT32_MAX, 0)
    assert not in_sequence(4, 6) and not in_sequence(4, 4) and not in_sequence(INT32_MAX, 1)
    assert ProducerBatch(1, 0, INT32_MAX, 2).last_sequence == 1


def test_an_unknown_producer_may_start_at_any_sequence(tmp_path: Path) -> None:
    state = ProducerStateManager(tmp_path)
    assert state.check(ProducerBatch(7, 0, 0, 4)) is None
    assert state.check(ProducerBatch(7, 3, 1234, 4)) is None  # expired or deleted state (KIP-360)


def test_in_sequence_batches_are_accepted_and_gaps_refused(tmp_path: Path) -> None:
    state = ProducerStateManager(tmp_path)
    write(state, ProducerBatch(7, 0, 0, 4), 100)
    write(state, ProducerBatch(7, 0, 5, 1), 105)
    assert state.producers[7].last_sequence == 6
    assert state.producers[7].last_offset == 106
    with pytest.raises(OutOfOrderSequenceError) as err:
        state.check(ProducerBatch(7, 0, 8, 0))  # 7 is missing
    assert err.value.error_code == 45
    with pytest.raises(OutOfOrderSequenceError):
        state.check(ProducerBatch(7, 0, 3, 3))  # overlaps, not equal to a written batch


def test_a_retried_batch_is_a_duplicate_with_its_first_offsets(tmp_path: Path) -> None:
    state = ProducerStateManager(tmp_path)
    for i in range(6):
        write(state, ProducerBatch(7, 0, i * 10, 9), 1000 + i * 10)
    dup = state.check(ProducerBatch(7, 0, 50, 9))
    assert dup is not None and (dup.first_offset, dup.last_offset) == (1050, 1059)
    dup = state.check(ProducerBatch(7, 0, 10, 9))  # the oldest of the last five
    assert dup is not None and dup.first_offset == 1010
    with pytest.raises(OutOfOrderSequenceError):
        state.check(ProducerBatch(7, 0, 0, 9))  # six batches back: no longer remembered


def test_epochs(tmp_path: Path) -> None:
    state = ProducerStateManager(tmp_path)
    write(state, ProducerBatch(7, 3, 0, 0), 0)
    write(state, ProducerBatch(7, 3, 1, 0), 1)
    with pytest.raises(InvalidProducerEpochError) as err:
        state.check(ProducerBatch(7, 2, 2, 0))
    assert err.value.error_code == 47
    with pytest.raises(OutOfOrderSequenceError):
        state.check(ProducerBatch(7, 4, 2, 0))  # a new epoch starts at 0
    write(state, ProducerBatch(7, 4, 0, 0), 2)
    assert state.producers[7].producer_epoch == 4
    assert len(state.producers[7].batches) == 1  # the old epoch's batches are gone
    with pytest.raises(InvalidProducerEpochError):
        state.check(ProducerBatch(7, 3, 1, 0))  # a retry from the old epoch is not a duplicate


def test_pending_updates_check_a_request_with_several_batches(tmp_path: Path) -> None:
    state = ProducerStateManager(tmp_path)
    write(state, ProducerBatch(7, 0, 0, 0), 0)
    pending: dict[int, ProducerEntry] = {}
    first, second = ProducerBatch(7, 0, 1, 0), ProducerBatch(7, 0, 2, 0)
    assert state.check(first, pending) is None
    state.applied(first, 1, 1, 0, into=pending)
    assert state.check(second, pending) is None
    assert state.producers[7].last_sequence == 0  # nothing applied yet
    with pytest.raises(OutOfOrderSequenceError):
        state.check(second)
    state.commit(pending)
    assert state.producers[7].last_sequence == 1
    state.applied(second, 2, 2, 0, into={})
    assert state.producers[7].last_sequence == 1  # a discarded pending update changes nothing


def test_non_idempotent_batches_leave_no_state(tmp_path: Path) -> None:
    state = ProducerStateManager(tmp_path)
    state.update(ProducerBatch(-1, -1, -1, 10), 0, 10, 0)
    assert state.producers == {}


def test_expiry(tmp_path: Path) -> None:
    state = ProducerStateManager(tmp_path, producer_id_expiration_ms=1000)
    write(state, ProducerBatch(1, 0, 0, 0), 0, ts=100)
    write(state, ProducerBatch(2, 0, 0, 0), 1, ts=900)
    assert state.remove_expired(now_ms=1099) == 0
    assert state.remove_expired(now_ms=1100) == 1
    assert set(state.producers) == {2}


def test_snapshot_round_trip_keeps_each_producers_last_batch(tmp_path: Path) -> None:
    state = ProducerStateManager(tmp_path)
    write(state, ProducerBatch(1, 2, 0, 4), 10, ts=5)
    write(state, ProducerBatch(1, 2, 5, 4), 15, ts=6)
    write(state, ProducerBatch(9, 0, INT32_MAX - 1, 3), 20, ts=7)  # wraps: last sequence 1
    state.take_snapshot(24)
    assert state.snapshot_offsets() == [24]
    assert (tmp_path / "00000000000000000024.snapshot").exists()
    fresh = ProducerStateManager(tmp_path)
    assert fresh.load_latest_snapshot(up_to=100) == 24
    assert set(fresh.producers) == {1, 9}
    one = fresh.producers[1]
    assert (one.producer_epoch, one.last_sequence, one.last_offset, one.last_timestamp) == (2, 9, 19, 6)
    assert fresh.check(ProducerBatch(1, 2, 5, 4)) is not None  # the last batch is still a duplicate
    assert fresh.check(ProducerBatch(1, 2, 10, 0)) is None
    nine = fresh.producers[9].batches[-1]
    assert (nine.first_sequence, nine.last_sequence, nine.first_offset) == (INT32_MAX - 1, 1, 20)


def test_load_picks_the_newest_snapshot_at_or_below_and_skips_corrupt_ones(tmp_path: Path) -> None:
    state = ProducerStateManager(tmp_path)
    write(state, ProducerBatch(1, 0, 0, 0), 0)
    state.take_snapshot(1)
    write(state, ProducerBatch(1, 0, 1, 0), 1)
    state.take_snapshot(2)
    write(state, ProducerBatch(1, 0, 2, 0), 2)
    state.take_snapshot(3)
    data = bytearray(state.snapshot_path(3).read_bytes())
    data[-1] ^= 0xFF
    state.snapshot_path(3).write_bytes(bytes(data))
    fresh = ProducerStateManager(tmp_path)
    assert fresh.load_latest_snapshot(up_to=10) == 2  # 3 is corrupt: deleted, 2 is used
    assert fresh.snapshot_offsets() == [1, 2]
    assert fresh.producers[1].last_sequence == 1
    assert fresh.load_latest_snapshot(up_to=1) == 1
    assert fresh.producers[1].last_sequence == 0
    assert fresh.load_latest_snapshot(up_to=0) is None
    assert fresh.producers == {}
    fresh.delete_snapshots(below=2)
    assert fresh.snapshot_offsets() == [2]
    fresh.delete_snapshots(above=1)
    assert fresh.snapshot_offsets() == []


def test_a_snapshot_that_cannot_be_read_is_not_taken_for_corrupt(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """EMFILE or EIO reading a snapshot is raised, and the snapshot kept: it was deleted as
    if corrupt, and a log opened with the process near its open-file limit came back
    without its producers (the compacted-log state machine, in a full suite run)."""
    import errno

    state = ProducerStateManager(tmp_path)
    write(state, ProducerBatch(7, 0, 0, 0), 0)
    state.take_snapshot(1)
    real = Path.read_bytes

    def emfile(path: Path) -> bytes:
        if path.suffix == ".snapshot":
            raise OSError(errno.EMFILE, "Too many open files", str(path))
        return real(path)

    monkeypatch.setattr(Path, "read_bytes", emfile)
    with pytest.raises(OSError, match="Too many open files"):
        ProducerStateManager(tmp_path).load_latest_snapshot(up_to=1)
    monkeypatch.setattr(Path, "read_bytes", real)
    assert state.snapshot_offsets() == [1]
    fresh = ProducerStateManager(tmp_path)
    assert fresh.load_latest_snapshot(up_to=1) == 1 and fresh.producers[7].last_sequence == 0


def test_decode_refuses_damaged_snapshots() -> None:
    good = encode_snapshot([])
    assert decode_snapshot(good) == []
    with pytest.raises(CorruptSnapshotError):
        decode_snapshot(good[:3])
    with pytest.raises(CorruptSnapshotError):
        decode_snapshot(b"\x00\x02" + good[2:])  # version 2
    with pytest.raises(CorruptSnapshotError):
        decode_snapshot(good + b"\x00")


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(0, 20)), max_size=40))
def test_snapshot_then_load_gives_the_same_last_batches(ops: list[tuple[int, int, int]]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        state = ProducerStateManager(Path(d))
        offset = 0
        seqs: dict[tuple[int, int], int] = {}
        for pid, epoch, count in ops:
            seq = seqs.get((pid, epoch), 0)
            batch = ProducerBatch(pid, epoch, seq, count)
            state.update(batch, offset, offset + count, offset)
            seqs[(pid, epoch)] = increment_sequence(seq, count + 1)
            offset += count + 1
        state.take_snapshot(offset)
        fresh = ProducerStateManager(Path(d))
        assert fresh.load_latest_snapshot(offset) == offset
        assert {p: (e.producer_epoch, e.batches[-1]) for p, e in fresh.producers.items()} == {
            p: (e.producer_epoch, e.batches[-1]) for p, e in state.producers.items()}

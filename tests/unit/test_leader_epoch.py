"""LeaderEpochCache: Kafka's LeaderEpochFileCache semantics (cases from its
LeaderEpochFileCacheTest) and the leader-epoch-checkpoint file."""

import os
from pathlib import Path

import pytest

from moldau.log.checkpoint import LEADER_EPOCH_CHECKPOINT, LeaderEpochCheckpointFile
from moldau.log.errors import CheckpointError
from moldau.log.leader_epoch import (
    UNDEFINED_EPOCH,
    UNDEFINED_EPOCH_OFFSET,
    EpochEntry,
    LeaderEpochCache,
)

UNDEFINED = (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / LEADER_EPOCH_CHECKPOINT


@pytest.fixture
def cache(path: Path) -> LeaderEpochCache:
    return LeaderEpochCache(path)


def three(cache: LeaderEpochCache) -> LeaderEpochCache:
    cache.assign(2, 6)
    cache.assign(3, 8)
    cache.assign(4, 11)
    return cache


def on_disk(path: Path) -> list[EpochEntry]:
    return LeaderEpochCache.load(path).entries()


# --- assign ----------------------------------------------------------------------------


def test_assign_adds_an_entry(cache: LeaderEpochCache) -> None:
    assert cache.assign(2, 10)
    assert cache.latest_epoch() == 2
    assert cache.entries() == [EpochEntry(2, 10)]
    assert cache.end_offset_for(2, 11) == (2, 11)


def test_same_epoch_later_offset_is_ignored(cache: LeaderEpochCache) -> None:
    cache.assign(2, 6)
    assert not cache.assign(2, 10)
    assert not cache.assign(2, 7)
    assert cache.entries() == [EpochEntry(2, 6)]


def test_same_epoch_earlier_offset_replaces_it(cache: LeaderEpochCache) -> None:
    cache.assign(5, 11)
    cache.assign(6, 12)
    cache.assign(7, 13)
    assert cache.assign(7, 12)  # epoch 7 starts earlier: epoch 6 held nothing
    assert cache.entries() == [EpochEntry(5, 11), EpochEntry(7, 12)]
    assert cache.end_offset_for(5, 0) == (5, 12)
    assert cache.end_offset_for(6, 0) == (5, 12)


def test_new_epoch_at_the_same_offset_replaces_the_latest(cache: LeaderEpochCache) -> None:
    cache.assign(2, 9)
    cache.assign(3, 9)
    assert cache.entries() == [EpochEntry(3, 9)]


def test_new_epoch_at_a_lower_offset_removes_the_conflicting_entry(cache: LeaderEpochCache) -> None:
    cache.assign(2, 6)
    cache.assign(3, 5)
    assert cache.entries() == [EpochEntry(3, 5)]


def test_older_epoch_removes_the_later_entries(cache: LeaderEpochCache) -> None:
    """Kafka's shouldEnforceMonotonicallyIncreasingEpochs: epochs and offsets must both
    increase, so an assignment in the past truncates the entries it conflicts with."""
    cache.assign(1, 5)
    cache.assign(2, 6)
    assert cache.assign(1, 7)
    assert cache.latest_epoch() == 1
    assert cache.entries() == [EpochEntry(1, 7)]
    assert cache.end_offset_for(1, 8) == (1, 8)
    assert cache.end_offset_for(2, 8) == UNDEFINED


def test_negative_epoch_or_offset_is_rejected(cache: LeaderEpochCache) -> None:
    with pytest.raises(ValueError):
        cache.assign(-1, 0)
    with pytest.raises(ValueError):
        cache.assign(0, -1)
    assert cache.entries() == []


def test_epochs_as_leaders_change_many_times(cache: LeaderEpochCache) -> None:
    cache.assign(0, 0)
    cache.assign(1, 0)
    assert cache.latest_epoch() == 1
    assert cache.end_offset_for(1, 0) == (1, 0)
    assert cache.end_offset_for(0, 0) == (0, 0)
    assert cache.end_offset_for(1, 5) == (1, 5)
    cache.assign(2, 5)
    assert cache.end_offset_for(2, 10) == (2, 10)
    assert cache.end_offset_for(1, 10) == (1, 5)
    assert cache.end_offset_for(0, 10) == (0, 0)


def test_epochs_as_a_follower_receives_batches(cache: LeaderEpochCache) -> None:
    for epoch, offsets in ((0, (0, 1, 2)), (1, (3, 4, 5)), (2, (6, 7, 8))):
        for offset in offsets:
            cache.assign(epoch, offset)
    assert cache.entries() == [EpochEntry(0, 0), EpochEntry(1, 3), EpochEntry(2, 6)]
    assert cache.end_offset_for(2, 9) == (2, 9)
    assert cache.end_offset_for(0, 9) == (0, 3)
    assert cache.end_offset_for(1, 9) == (1, 6)


# --- end_offset_for --------------------------------------------------------------------


def test_end_offset_of_an_empty_cache_is_undefined(cache: LeaderEpochCache) -> None:
    assert cache.latest_epoch() is None
    assert cache.end_offset_for(0, 0) == UNDEFINED
    assert cache.end_offset_for(7, 0) == UNDEFINED
    assert cache.end_offset_for(UNDEFINED_EPOCH, 73) == UNDEFINED


def test_undefined_epoch_requested(cache: LeaderEpochCache) -> None:
    cache.assign(2, 11)
    cache.assign(3, 12)
    assert cache.end_offset_for(UNDEFINED_EPOCH, 0) == UNDEFINED


def test_latest_epoch_ends_at_the_log_end(cache: LeaderEpochCache) -> None:
    cache.assign(2, 11)
    cache.assign(2, 12)
    assert cache.end_offset_for(2, 14) == (2, 14)


def test_epoch_above_the_latest_is_undefined(cache: LeaderEpochCache) -> None:
    cache.assign(2, 100)
    assert cache.end_offset_for(3, 100) == UNDEFINED


def test_earlier_epoch_ends_where_the_next_starts(cache: LeaderEpochCache) -> None:
    for epoch, offset in ((1, 11), (1, 12), (2, 13), (2, 14), (3, 15), (3, 16)):
        cache.assign(epoch, offset)
    assert cache.end_offset_for(2, 17) == (2, 15)
    assert cache.end_offset_for(1, 17) == (1, 13)


def test_missing_epoch_answers_with_the_largest_below(cache: LeaderEpochCache) -> None:
    cache.assign(0, 10)
    cache.assign(2, 13)
    cache.assign(4, 17)
    assert cache.end_offset_for(1, 0) == (0, 13)
    assert cache.end_offset_for(2, 0) == (2, 17)
    assert cache.end_offset_for(3, 0) == (2, 17)
    assert cache.end_offset_for(4, 20) == (4, 20)


def test_epoch_below_the_first_ends_where_the_first_starts(cache: LeaderEpochCache) -> None:
    """Kafka returns the requested epoch and the first entry's start offset: the data
    before it is gone from the leader, and the follower must truncate to there."""
    cache.assign(5, 11)
    cache.assign(6, 12)
    cache.assign(7, 13)
    assert cache.end_offset_for(4, 0) == (4, 11)
    assert cache.end_offset_for(0, 0) == (0, 11)


def test_epochs_need_not_start_at_zero(cache: LeaderEpochCache) -> None:
    cache.assign(2, 6)
    assert cache.end_offset_for(2, 7) == (2, 7)
    assert cache.entries() == [EpochEntry(2, 6)]


# --- epoch_for_offset, earliest/latest ---------------------------------------------------


def test_epoch_for_offset(cache: LeaderEpochCache) -> None:
    assert cache.epoch_for_offset(0) is None
    cache.assign(0, 10)
    cache.assign(1, 20)
    cache.assign(5, 30)
    assert cache.epoch_for_offset(25) == 1
    assert cache.epoch_for_offset(20) == 1
    assert cache.epoch_for_offset(19) == 0
    assert cache.epoch_for_offset(30) == 5
    assert cache.epoch_for_offset(50) == 5
    assert cache.epoch_for_offset(5) is None
    assert cache.earliest_entry() == EpochEntry(0, 10)
    assert cache.latest_entry() == EpochEntry(5, 30)


# --- truncate_from_end -----------------------------------------------------------------


def test_truncate_from_end_on_an_epoch_boundary(cache: LeaderEpochCache) -> None:
    three(cache)
    assert cache.truncate_from_end(8) == [EpochEntry(3, 8), EpochEntry(4, 11)]
    assert cache.entries() == [EpochEntry(2, 6)]


def test_truncate_from_end_between_boundaries(cache: LeaderEpochCache) -> None:
    three(cache)
    cache.truncate_from_end(9)
    assert cache.latest_epoch() == 3
    assert cache.entries() == [EpochEntry(2, 6), EpochEntry(3, 8)]


def test_truncate_from_end_above_everything_or_undefined_does_nothing(cache: LeaderEpochCache) -> None:
    three(cache)
    assert cache.truncate_from_end(12) == []
    assert cache.truncate_from_end(UNDEFINED_EPOCH_OFFSET) == []
    assert len(cache) == 3


def test_truncate_from_end_to_the_first_start_empties(cache: LeaderEpochCache) -> None:
    three(cache)
    cache.truncate_from_end(6)
    assert cache.entries() == []
    assert cache.latest_epoch() is None


def test_truncate_from_end_moves_the_previous_epoch(cache: LeaderEpochCache) -> None:
    cache.assign(2, 10)
    cache.assign(4, 15)
    cache.assign(10, 20)
    cache.truncate_from_end(18)
    assert cache.entries() == [EpochEntry(2, 10), EpochEntry(4, 15)]
    assert cache.end_offset_for(4, 18) == (4, 18)


# --- truncate_from_start ---------------------------------------------------------------


def test_truncate_from_start_on_an_epoch_boundary(cache: LeaderEpochCache) -> None:
    three(cache)
    cache.truncate_from_start(8)
    assert cache.entries() == [EpochEntry(3, 8), EpochEntry(4, 11)]


def test_truncate_from_start_between_boundaries_raises_the_start(cache: LeaderEpochCache) -> None:
    three(cache)
    assert cache.truncate_from_start(9) == [EpochEntry(2, 6), EpochEntry(3, 8)]
    assert cache.entries() == [EpochEntry(3, 9), EpochEntry(4, 11)]


def test_truncate_from_start_inside_the_first_epoch(cache: LeaderEpochCache) -> None:
    cache.assign(0, 0)
    cache.assign(1, 7)
    cache.assign(2, 10)
    cache.truncate_from_start(5)
    assert cache.entries() == [EpochEntry(0, 5), EpochEntry(1, 7), EpochEntry(2, 10)]


@pytest.mark.parametrize("offset", [1, 6, UNDEFINED_EPOCH_OFFSET])
def test_truncate_from_start_at_or_below_the_first_does_nothing(cache: LeaderEpochCache, offset: int) -> None:
    three(cache)
    assert cache.truncate_from_start(offset) == []
    assert cache.entries() == [EpochEntry(2, 6), EpochEntry(3, 8), EpochEntry(4, 11)]


def test_truncate_from_start_keeps_the_latest(cache: LeaderEpochCache) -> None:
    three(cache)
    cache.truncate_from_start(11)
    assert cache.entries() == [EpochEntry(4, 11)]


def test_truncate_from_start_beyond_the_latest_moves_it(cache: LeaderEpochCache) -> None:
    three(cache)
    cache.truncate_from_start(15)
    assert cache.entries() == [EpochEntry(4, 15)]


def test_truncations_of_an_empty_cache(cache: LeaderEpochCache, path: Path) -> None:
    assert cache.truncate_from_start(7) == []
    assert cache.truncate_from_end(7) == []
    cache.clear()
    assert cache.entries() == []
    assert not path.exists()  # nothing changed, nothing written


def test_clear(cache: LeaderEpochCache, path: Path) -> None:
    three(cache)
    cache.clear()
    assert cache.entries() == []
    assert on_disk(path) == []


# --- the checkpoint file ---------------------------------------------------------------


def test_checkpoint_is_kafkas_format(cache: LeaderEpochCache, path: Path) -> None:
    three(cache)
    assert path.read_text() == "0\n3\n2 6\n3 8\n4 11\n"
    assert not path.with_name(path.name + ".tmp").exists()


def test_every_change_is_written(cache: LeaderEpochCache, path: Path) -> None:
    cache.assign(2, 6)
    assert on_disk(path) == [EpochEntry(2, 6)]
    mtime = path.stat().st_mtime_ns
    os.utime(path, ns=(0, 0))
    cache.assign(2, 9)  # no change: no write
    assert path.stat().st_mtime_ns == 0
    os.utime(path, ns=(mtime, mtime))
    three(cache)
    cache.truncate_from_end(11)
    assert on_disk(path) == [EpochEntry(2, 6), EpochEntry(3, 8)]
    cache.truncate_from_start(7)
    assert on_disk(path) == [EpochEntry(2, 7), EpochEntry(3, 8)]
    cache.truncate_from_start(8)
    assert on_disk(path) == [EpochEntry(3, 8)]


def test_persists_between_instances(cache: LeaderEpochCache, path: Path) -> None:
    cache.assign(2, 6)
    cache.assign(5, 20)
    again = LeaderEpochCache.load(path)
    assert again.entries() == [EpochEntry(2, 6), EpochEntry(5, 20)]
    assert again.path == path


def test_missing_checkpoint_loads_empty(path: Path) -> None:
    assert LeaderEpochCheckpointFile(path).read() is None
    assert LeaderEpochCache.load(path).entries() == []


def test_empty_checkpoint_round_trip(path: Path) -> None:
    LeaderEpochCheckpointFile(path).write([])
    assert path.read_text() == "0\n0\n"
    assert LeaderEpochCheckpointFile(path).read() == []


def test_loading_normalises_non_monotonic_entries(path: Path) -> None:
    """As Kafka does, the file's entries are assigned in order."""
    path.write_text("0\n3\n2 6\n3 4\n3 9\n")
    assert LeaderEpochCache.load(path).entries() == [EpochEntry(3, 4)]


def test_in_memory_cache_writes_nothing(tmp_path: Path) -> None:
    cache = LeaderEpochCache(None, [(1, 0), (2, 5)])
    cache.assign(3, 9)
    cache.truncate_from_end(5)
    assert cache.entries() == [EpochEntry(1, 0)]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0\n",
        "1\n0\n",
        "0\n2\n1 0\n",
        "0\n1\n1 0 7\n",
        "0\n1\nx 0\n",
        "0\n1\n1 -5\n",
        "0\n1\n-1 5\n",
        "zero\n1\n1 0\n",
    ],
)
def test_corrupt_checkpoint_raises(path: Path, text: str) -> None:
    path.write_text(text)
    with pytest.raises(CheckpointError):
        LeaderEpochCache.load(path)


def test_binary_garbage_raises(path: Path) -> None:
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(CheckpointError):
        LeaderEpochCheckpointFile(path).read()

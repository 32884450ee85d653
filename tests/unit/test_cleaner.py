"""The log cleaner: offset map, retention rule, grouping, which log is due, cleaning
real logs (latest value per key, tombstones, the dedupe buffer bound), the swap and its
crash safety, and a hypothesis property over random keyed appends."""

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moldau.log.cleaner import (
    CleaningRound,
    OffsetMap,
    SegmentSnapshot,
    clean_log,
    delete_horizon_ms,
    group_segments_by_size,
    offset_map_capacity,
    should_retain,
)
from moldau.log.cleaner_manager import filthiest_log, log_to_clean
from moldau.log.config import LogConfig
from moldau.log.log import Log
from moldau.log.manager import LogManager
from moldau.log.segment import CLEANED_SUFFIX, SWAP_SUFFIX
from moldau.protocol.records import (
    Compression,
    RawRecord,
    Record,
    RecordInput,
    build_batch,
    iter_batches,
    iter_records,
    validate_batches,
)

BIG = 10**9
T0 = 1_700_000_000_000  # the mtime tests give segments
COMPACT = LogConfig(cleanup_policy="compact", segment_bytes=400, index_interval_bytes=100,
                    min_cleanable_dirty_ratio=0.0)

Pair = tuple[bytes | None, bytes | None]


def kv_batch(pairs: list[Pair], ts: int = 1000, codec: int = Compression.NONE) -> bytes:
    return build_batch([RecordInput(value, key, timestamp=ts + i) for i, (key, value) in enumerate(pairs)],
                       compression=codec)


def append_kv(log: Log, pairs: list[Pair], *, codec: int = Compression.NONE, now_ms: int = 0) -> None:
    buf = bytearray(kv_batch(pairs, codec=codec))
    log.append(buf, validate_batches(buf), leader_epoch=0, now_ms=now_ms)
    log.update_high_watermark(log.log_end_offset)


def read_all(log: Log) -> list[Record]:
    data = log.read(log.log_start_offset, BIG)
    if data:
        validate_batches(data, from_producer=False)  # every CRC holds
    return [r for _, batch in iter_batches(data) for r in iter_records(batch) if r.offset >= log.log_start_offset]


def last_values(records: list[Record]) -> dict[bytes | None, bytes | None]:
    return {r.key: r.value for r in records}


def set_mtimes(log: Log, ms: int) -> None:
    for segment in log.segments_in_range(0, log.log_end_offset + 1):
        segment.set_last_modified_ms(ms)


def clean(log: Log, capacity: int = 10**6, now_ms: int = T0) -> int:
    todo = log_to_clean(log, now_ms)
    return clean_log(log, todo.first_dirty_offset, todo.first_uncleanable_offset, capacity)


def updates_log(
    directory: Path, config: LogConfig = COMPACT, rounds: int = 12, roll_every: int = 0
) -> tuple[Log, dict[bytes, bytes]]:
    """Keys k0-k3 updated ``rounds`` times, two records a batch; rolled past the last
    (and every ``roll_every`` batches)."""
    log = Log.open(directory, config, now_ms=0)
    latest: dict[bytes, bytes] = {}
    for i in range(rounds):
        pairs: list[Pair] = [(b"k%d" % ((2 * i + j) % 4), b"v%03d" % (2 * i + j)) for j in range(2)]
        append_kv(log, pairs)
        latest.update({k: v for k, v in pairs if k is not None and v is not None})
        if roll_every and (i + 1) % roll_every == 0:
            log.roll(0)
    log.roll(0)
    set_mtimes(log, T0)
    return log, latest


# --- pure pieces --------------------------------------------------------------------


def raw(offset: int, key: bytes | None, value: bool = True) -> RawRecord:
    return RawRecord(0, 0, offset, key, value, memoryview(b""))


def mapped(pairs: dict[bytes, int], start: int, end: int) -> OffsetMap:
    offset_map = OffsetMap(100, start)
    batch = build_batch([RecordInput(b"v", key) for key in pairs], base_offset=start)
    offset_map.add_batch(batch, validate_batches(batch)[0], end)
    offset_map._offsets.update(pairs)
    offset_map.end_offset = end
    return offset_map


def test_retention_rule() -> None:
    offset_map = mapped({b"a": 10, b"t": 12}, 8, 15)
    assert not should_retain(raw(3, b"a"), offset_map, True)  # superseded
    assert should_retain(raw(10, b"a"), offset_map, True)  # the latest
    assert should_retain(raw(4, b"b"), offset_map, True)  # key not in the dirty section
    assert not should_retain(raw(5, None), offset_map, True)  # no key
    assert should_retain(raw(15, b"a"), offset_map, True)  # past the map: not this cleaning's business
    assert should_retain(raw(16, None), offset_map, True)
    assert should_retain(raw(12, b"t", value=False), offset_map, True)  # tombstone within the horizon
    assert not should_retain(raw(12, b"t", value=False), offset_map, False)  # past it


def test_offset_map_stops_at_the_batch_that_does_not_fit() -> None:
    offset_map = OffsetMap(3, 0)
    first = build_batch([RecordInput(b"1", b"a"), RecordInput(b"2", b"b"), RecordInput(b"3", b"a")])
    assert offset_map.add_batch(first, validate_batches(first)[0], 100)
    assert (len(offset_map), offset_map.get(b"a"), offset_map.end_offset) == (2, 2, 3)
    second = build_batch([RecordInput(b"4", b"c"), RecordInput(b"5", b"d")], base_offset=3)
    assert not offset_map.add_batch(second, validate_batches(second)[0], 100)  # 4 keys > 3
    assert (len(offset_map), offset_map.end_offset) == (2, 3)
    again = build_batch([RecordInput(b"6", b"b"), RecordInput(b"7", b"c")], base_offset=7)
    assert not offset_map.add_batch(again, validate_batches(again)[0], 8)  # reaches the end
    assert offset_map.add_batch(again, validate_batches(again)[0], 9)
    assert (offset_map.get(b"b"), offset_map.get(b"c"), offset_map.end_offset) == (7, 8, 9)
    assert offset_map_capacity(24 * 1000, 0.5) == 500


def snap(base: int, size: int, index: int = 0, mtime: int = 0) -> SegmentSnapshot:
    return SegmentSnapshot(None, base, Path("x"), size, mtime, index, index)  # type: ignore[arg-type]


def test_grouping_by_size_index_and_relative_offsets() -> None:
    segments = [snap(0, 100), snap(10, 100), snap(20, 250), snap(30, 10), snap(40, 10)]
    groups = group_segments_by_size(segments, 300, 1000, 50)
    assert [[s.base_offset for s in g] for g in groups] == [[0, 10], [20, 30, 40]]
    by_index = group_segments_by_size([snap(0, 1, 60), snap(10, 1, 60)], 300, 100, 50)
    assert [len(g) for g in by_index] == [1, 1]
    far = group_segments_by_size([snap(0, 1), snap(10, 1), snap(2**31 + 5, 1)], 300, 100, 2**31 + 10)
    assert [[s.base_offset for s in g] for g in far] == [[0], [10, 2**31 + 5]]
    assert group_segments_by_size([], 300, 100, 0) == []


def test_delete_horizon() -> None:
    assert delete_horizon_ms([], 1000) == 0
    assert delete_horizon_ms([snap(0, 1, mtime=5000), snap(1, 1, mtime=9000)], 1000) == 8000


# --- which log is due ---------------------------------------------------------------


def test_dirty_section_ends_at_the_active_segment_and_the_high_watermark(tmp_path: Path) -> None:
    log, _ = updates_log(tmp_path / "t-0")
    todo = log_to_clean(log, T0)
    assert todo.first_dirty_offset == 0
    assert todo.first_uncleanable_offset == log.active_segment.base_offset == 24
    assert todo.clean_bytes == 0 and todo.cleanable_bytes == log.size_in_bytes
    assert todo.due
    log.update_high_watermark(9)
    assert log_to_clean(log, T0).first_uncleanable_offset == 9
    log.update_high_watermark(24)
    log.first_dirty_offset = 24
    assert not log_to_clean(log, T0).due  # nothing dirty
    log.first_dirty_offset = 99  # past the end (a truncation): start over at the log start
    assert log_to_clean(log, T0).first_dirty_offset == 0


def test_min_cleanable_dirty_ratio(tmp_path: Path) -> None:
    log, _ = updates_log(tmp_path / "t-0", LogConfig(cleanup_policy="compact", segment_bytes=400,
                                                     min_cleanable_dirty_ratio=0.5))
    assert clean(log) == 24
    assert not log_to_clean(log, T0).due  # all clean
    append_kv(log, [(b"k0", b"new")])
    log.roll(0)
    todo = log_to_clean(log, T0)
    assert 0 < todo.cleanable_ratio < 0.5 and not todo.due
    assert filthiest_log([log], T0) is None
    log.update_config(LogConfig(cleanup_policy="compact", segment_bytes=400, min_cleanable_dirty_ratio=0.01))
    assert filthiest_log([log], T0) is not None
    log.update_config(LogConfig(cleanup_policy="delete", segment_bytes=400, min_cleanable_dirty_ratio=0.01))
    assert filthiest_log([log], T0) is None  # not compacted


def test_min_compaction_lag_keeps_recent_segments_dirty(tmp_path: Path) -> None:
    config = LogConfig(cleanup_policy="compact", segment_bytes=400, min_cleanable_dirty_ratio=0.0,
                       min_compaction_lag_ms=10_000)
    log = Log.open(tmp_path / "t-0", config, now_ms=0)
    for ts in (1000, 1000, 1000, 50_000, 50_000, 50_000):
        buf = bytearray(kv_batch([(b"k", b"x" * 100)], ts=ts))
        log.append(buf, validate_batches(buf), leader_epoch=0, now_ms=0)
    log.roll(0)
    log.update_high_watermark(log.log_end_offset)
    recent = next(s.base_offset for s in log.segments_in_range(0, BIG) if s.max_timestamp >= 50_000)
    assert log_to_clean(log, 55_000).first_uncleanable_offset == recent
    assert log_to_clean(log, 70_000).first_uncleanable_offset == log.active_segment.base_offset


def test_max_compaction_lag_forces_a_cleaning(tmp_path: Path) -> None:
    config = LogConfig(cleanup_policy="compact", segment_bytes=400, min_cleanable_dirty_ratio=0.99,
                       max_compaction_lag_ms=60_000)
    log, _ = updates_log(tmp_path / "t-0", config)
    clean(log)
    append_kv(log, [(b"k", b"x")])  # first batch timestamp 1000
    log.roll(0)
    assert log_to_clean(log, 1000 + 61_000).cleanable_ratio < 0.99
    assert not log_to_clean(log, 1000 + 59_000).due
    todo = log_to_clean(log, 1000 + 61_000)
    assert todo.compaction_delay_ms == 1000 and todo.due


# --- cleaning real logs -------------------------------------------------------------


@pytest.mark.parametrize("codec", [Compression.NONE, Compression.ZSTD, Compression.SNAPPY])
def test_cleaning_keeps_the_latest_value_of_every_key(tmp_path: Path, codec: int) -> None:
    log = Log.open(tmp_path / "t-0", COMPACT, now_ms=0)
    latest: dict[bytes, bytes] = {}
    for i in range(30):
        pairs: list[Pair] = [(b"k%d" % ((i + j) % 5), b"v%03d-%d" % (i, j)) for j in range(3)]
        append_kv(log, pairs, codec=codec)
        latest.update({k: v for k, v in pairs if k and v})
    log.roll(0)
    before_segments = len(log.segment_base_offsets())
    end = log.log_end_offset
    assert clean(log) == end
    records = read_all(log)
    assert last_values(records) == latest
    assert len(records) == len(latest)  # nothing obsolete is left
    assert [r.offset for r in records] == sorted({r.offset for r in records})
    assert log.log_end_offset == end
    assert log.first_dirty_offset == end
    # Groups are formed by the sizes before cleaning (Kafka's rule): full segments stay
    # apart the first time, and the small segments they became merge in the next round.
    assert len(log.segment_base_offsets()) == before_segments
    clean(log)
    assert len(log.segment_base_offsets()) == 2  # one cleaned segment and the active one
    assert read_all(log) == records
    data = log.read(0, BIG)
    log.close()
    reopened = Log.open(log.directory, COMPACT, now_ms=0, recover=True)
    assert reopened.read(0, BIG) == data
    assert not list(log.directory.glob(f"*{CLEANED_SUFFIX}")) and not list(log.directory.glob(f"*{SWAP_SUFFIX}"))


def test_a_cleaned_log_is_not_rewritten_for_nothing_and_appends_continue(tmp_path: Path) -> None:
    log, latest = updates_log(tmp_path / "t-0")
    clean(log)
    append_kv(log, [(b"k1", b"after"), (b"k9", b"new")])
    latest.update({b"k1": b"after", b"k9": b"new"})
    assert last_values(read_all(log)) == latest
    log.roll(0)
    clean(log)
    assert last_values(read_all(log)) == latest
    assert len(read_all(log)) == len(latest)


def test_keyless_records_are_dropped(tmp_path: Path) -> None:
    log = Log.open(tmp_path / "t-0", COMPACT, now_ms=0)
    append_kv(log, [(None, b"no key"), (b"k", b"v")])
    log.roll(0)
    clean(log)
    assert [(r.key, r.value) for r in read_all(log)] == [(b"k", b"v")]


def test_tombstones_survive_one_cleaning_then_go_after_delete_retention(tmp_path: Path) -> None:
    config = LogConfig(cleanup_policy="compact", segment_bytes=400, delete_retention_ms=60_000,
                       min_cleanable_dirty_ratio=0.0)
    log, latest = updates_log(tmp_path / "t-0", config)
    append_kv(log, [(b"k0", None), (b"k2", None)])
    log.roll(0)
    set_mtimes(log, T0)
    clean(log)  # no cleaned segment before: the horizon is 0
    assert last_values(read_all(log)) == {**latest, b"k0": None, b"k2": None}
    # A big segment (not merged with the small cleaned ones), last modified 90 s later.
    append_kv(log, [(b"k1", b"x" * 300)])
    log.roll(0)
    log.segments_in_range(0, BIG)[-2].set_last_modified_ms(T0 + 90_000)
    clean(log)  # the horizon is T0 - 60 s: the tombstones (T0) stay
    assert last_values(read_all(log))[b"k0"] is None
    append_kv(log, [(b"k3", b"y" * 300)])
    log.roll(0)
    log.segments_in_range(0, BIG)[-2].set_last_modified_ms(T0 + 95_000)
    clean(log)  # the horizon is T0 + 90 s - 60 s: the tombstones' segment (T0) is past it
    assert last_values(read_all(log)) == {b"k1": b"x" * 300, b"k3": b"y" * 300}


def test_a_full_offset_map_cleans_a_prefix_and_the_next_round_the_rest(tmp_path: Path) -> None:
    log = Log.open(tmp_path / "t-0", COMPACT, now_ms=0)
    latest: dict[bytes, bytes] = {}
    for i in range(20):
        pairs: list[Pair] = [(b"key-%02d" % (2 * i + j), b"a") for j in range(2)]  # 40 distinct keys
        append_kv(log, pairs)
        latest.update({k: v for k, v in pairs if k and v})
    for i in range(20):
        pairs = [(b"key-%02d" % (2 * i + j), b"b") for j in range(2)]
        append_kv(log, pairs)
        latest.update({k: v for k, v in pairs if k and v})
    log.roll(0)
    end = clean(log, capacity=11)
    assert 0 < end < log.log_end_offset and end % 2 == 0  # a batch boundary: whole batches mapped
    assert log.first_dirty_offset == end
    assert last_values(read_all(log)) == latest
    with pytest.raises(Exception, match="dedupe"):
        clean(log, capacity=1)  # not even one batch fits
    while (todo := log_to_clean(log, T0)).cleanable_bytes:
        assert clean(log, capacity=25) > todo.first_dirty_offset
    assert last_values(read_all(log)) == latest
    assert len(read_all(log)) == 40


def test_follower_replicates_a_compacted_leader_byte_for_byte(tmp_path: Path) -> None:
    leader, latest = updates_log(tmp_path / "t-0")
    clean(leader)
    append_kv(leader, [(b"k7", b"new")])
    follower = Log.open(tmp_path / "f" / "t-0", LogConfig(cleanup_policy="compact", segment_bytes=300), now_ms=0)
    while follower.log_end_offset < leader.log_end_offset:
        data = leader.read(follower.log_end_offset, 120)
        follower.append_as_follower(data, validate_batches(data, from_producer=False))
    assert follower.read(0, BIG) == leader.read(0, BIG)
    assert last_values(read_all(follower)) == {**latest, b"k7": b"new"}


# --- the swap -----------------------------------------------------------------------


def round_for(log: Log) -> CleaningRound:
    todo = log_to_clean(log, T0)
    return CleaningRound(log, todo.first_dirty_offset, todo.first_uncleanable_offset, 10**6)


@pytest.mark.parametrize("change", ["truncate", "retention", "delete_records", "close"])
def test_a_swap_is_aborted_when_the_log_changed_under_the_cleaner(tmp_path: Path, change: str) -> None:
    log, _ = updates_log(tmp_path / "t-0", LogConfig(cleanup_policy="compact,delete", segment_bytes=400,
                                                     retention_ms=1000))
    before = log.read(0, BIG)
    cleaning = round_for(log)
    offset_map = cleaning.build_offset_map()
    group = cleaning.groups(offset_map)[0]
    cleaned = cleaning.clean_group(group, offset_map)
    assert cleaned.log_path.exists()
    if change == "truncate":
        log.truncate_to(20)
        log.update_high_watermark(20)
    elif change == "retention":
        set_mtimes(log, 0)
        assert log.delete_old_segments(now_ms=T0) > 0
    elif change == "delete_records":
        bases = log.segment_base_offsets()
        log.delete_records_before(bases[bases.index(group[-1].base_offset) + 1])
    else:
        log.close()
    assert cleaning.log_changed()  # a read error now is no reason to call the log uncleanable
    assert not cleaning.swap(cleaned, group)
    assert not list(log.directory.glob(f"*{CLEANED_SUFFIX}"))
    if change == "truncate":
        assert log.read(0, BIG) == before[: len(log.read(0, BIG))]


def test_the_rounds_own_swaps_are_not_a_change_of_the_log(tmp_path: Path) -> None:
    log, _ = updates_log(tmp_path / "t-0", LogConfig(cleanup_policy="compact", segment_bytes=400))
    cleaning = round_for(log)
    offset_map = cleaning.build_offset_map()
    groups = cleaning.groups(offset_map)
    assert len(groups) >= 2
    assert not cleaning.log_changed()
    assert cleaning.swap(cleaning.clean_group(groups[0], offset_map), groups[0])
    assert not cleaning.log_changed()  # a corrupt batch in a later group still marks the log uncleanable


def test_a_cleaning_may_run_while_the_log_is_appended_to(tmp_path: Path) -> None:
    log, latest = updates_log(tmp_path / "t-0")
    cleaning = round_for(log)
    offset_map = cleaning.build_offset_map()
    for i in range(20):  # appends and rolls meanwhile
        append_kv(log, [(b"k%d" % (i % 6), b"during-%d" % i)])
        latest[b"k%d" % (i % 6)] = b"during-%d" % i
    for group in cleaning.groups(offset_map):
        assert cleaning.swap(cleaning.clean_group(group, offset_map), group)
    assert last_values(read_all(log)) == latest


class Crash(BaseException):
    """The process dies: nothing after this file operation happens."""


ROLLED = LogConfig(cleanup_policy="compact", segment_bytes=100_000, index_interval_bytes=100,
                   min_cleanable_dirty_ratio=0.0)


def file_operations(patch: pytest.MonkeyPatch, crash_at: int | None) -> list[str]:
    """Count os.rename and os.unlink calls (the swap's steps); raise Crash instead of
    the one numbered ``crash_at``."""
    done: list[str] = []

    def counted(real: Callable[..., Any]) -> Callable[..., Any]:
        def operation(*args: Any, **kwargs: Any) -> Any:
            if crash_at is not None and len(done) >= crash_at:
                raise Crash
            done.append(f"{real.__name__} {args[0]}")
            return real(*args, **kwargs)

        return operation

    patch.setattr(os, "rename", counted(os.rename))
    patch.setattr(os, "unlink", counted(os.unlink))
    return done


def prepared_swap(directory: Path) -> tuple[Log, dict[bytes, bytes], CleaningRound, Any, list[SegmentSnapshot]]:
    log, latest = updates_log(directory, ROLLED, roll_every=3)  # four segments, cleaned into one
    cleaning = round_for(log)
    offset_map = cleaning.build_offset_map()
    (group,) = cleaning.groups(offset_map)
    assert len(group) == 4
    return log, latest, cleaning, cleaning.clean_group(group, offset_map), group


def test_a_crash_at_any_step_of_a_swap_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log, _, cleaning, cleaned, group = prepared_swap(tmp_path / "count" / "t-0")
    with monkeypatch.context() as patch:
        operations = file_operations(patch, None)
        assert cleaning.swap(cleaned, group)
    # Three renames to .swap, three deletions per old segment, three renames to the final names.
    assert len(operations) == 3 + 3 * 4 + 3, operations
    for n in range(len(operations) + 1):
        directory = tmp_path / f"crash{n}" / "t-0"
        log, latest, cleaning, cleaned, group = prepared_swap(directory)
        before = read_all(log)
        with monkeypatch.context() as patch:
            file_operations(patch, n)
            try:
                cleaning.swap(cleaned, group)
                crashed = False
            except Crash:
                crashed = True
        assert crashed == (n < len(operations))
        # The process is gone and its files stay as they are: start again from them.
        copy = tmp_path / f"reopen{n}" / "t-0"
        shutil.copytree(directory, copy)
        reopened = Log.open(copy, ROLLED, now_ms=0, recover=True)
        after = read_all(reopened)
        assert last_values(after) == latest, n
        assert reopened.log_end_offset == log.log_end_offset, n
        # The old records (the swap was not decided: .log.swap did not exist yet) or the
        # cleaned ones, never anything else.
        cleaned_records = [r for r in before if latest.get(r.key) == r.value]  # type: ignore[arg-type]
        assert after == (before if n < 3 else cleaned_records), n
        assert not [p for p in copy.iterdir() if p.name.endswith((CLEANED_SUFFIX, SWAP_SUFFIX))], n
        reopened.close()
        clean_shutdown = Log.open(copy, ROLLED, now_ms=0, recover=False)  # indexes trusted now
        assert read_all(clean_shutdown) == after
        clean_shutdown.close()


# --- the cleaner checkpoint ---------------------------------------------------------


def test_first_dirty_offsets_are_checkpointed_and_lowered_by_truncation(tmp_path: Path) -> None:
    manager = LogManager([tmp_path / "logs"], COMPACT)
    manager.load(now_ms=0)
    log = manager.create("t", 0, COMPACT, now_ms=0)
    for i in range(12):
        append_kv(log, [(b"k%d" % (i % 3), b"v%d" % i)])
    log.roll(0)
    todo = manager.filthiest_log(T0)
    assert todo is not None and todo.log is log
    assert manager.filthiest_log(T0, skip={("t", 0)}) is None
    clean(log)
    manager.checkpoint_cleaner_offsets(log)
    text = (tmp_path / "logs" / "cleaner-offset-checkpoint").read_text()
    assert text == "0\n1\nt 0 12\n"
    manager.shutdown()
    manager = LogManager([tmp_path / "logs"], COMPACT)
    manager.load(now_ms=0)
    reloaded = manager.get("t", 0)
    assert reloaded is not None and reloaded.first_dirty_offset == 12
    reloaded.truncate_to(7)
    assert reloaded.first_dirty_offset == 7
    manager.shutdown()


# --- the property -------------------------------------------------------------------

KEYS = [b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"h"]
appends = st.lists(
    st.tuples(
        st.lists(st.tuples(st.sampled_from(KEYS), st.one_of(st.none(), st.binary(min_size=1, max_size=30))),
                 min_size=1, max_size=4),
        st.sampled_from([Compression.NONE, Compression.GZIP, Compression.LZ4]),
        st.booleans(),  # roll after this batch
    ),
    min_size=1,
    max_size=25,
)


def check_against_model(log: Log, model: dict[bytes | None, bytes | None], end: int, segments: int) -> None:
    records = read_all(log)
    values = last_values(records)
    for key, value in model.items():
        if value is not None:
            assert values[key] == value
        else:
            assert values.get(key) is None  # a tombstone, or nothing once it expired
    offsets = [r.offset for r in records]
    assert offsets == sorted(set(offsets))
    assert log.log_end_offset == end
    assert len(log.segment_base_offsets()) <= segments


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(appends, st.integers(min_value=4, max_value=12), st.booleans())
def test_cleaning_random_appends_keeps_the_latest_value_per_key(
    tmp_path_factory: pytest.TempPathFactory,
    batches: list[tuple[list[Pair], int, bool]],
    capacity: int,
    tombstones_expire: bool,
) -> None:
    directory = tmp_path_factory.mktemp("prop") / "p-0"
    config = LogConfig(cleanup_policy="compact", segment_bytes=300, index_interval_bytes=64,
                       delete_retention_ms=0 if tombstones_expire else 10**12, min_cleanable_dirty_ratio=0.0)
    log = Log.open(directory, config, now_ms=0)
    model: dict[bytes | None, bytes | None] = {}
    last_offset: dict[bytes | None, int] = {}
    for pairs, codec, roll in batches:
        first = log.log_end_offset
        append_kv(log, pairs, codec=codec)
        for i, (key, value) in enumerate(pairs):
            model[key] = value
            last_offset[key] = first + i
        if roll:
            log.roll(0)
    set_mtimes(log, T0)
    end, segments = log.log_end_offset, len(log.segment_base_offsets())
    rounds = 0
    while log_to_clean(log, T0).cleanable_bytes:  # the map holds ``capacity`` keys: maybe several rounds
        clean(log, capacity)
        check_against_model(log, model, end, segments)
        rounds += 1
        assert rounds <= len(batches)
    clean(log, capacity)  # once more: the tombstones' segments are now behind the cleaned ones
    check_against_model(log, model, end, segments)
    values = last_values(read_all(log))
    uncleanable = log.active_segment.base_offset
    for key, value in model.items():
        if value is None:
            expired = tombstones_expire and last_offset[key] < uncleanable
            assert (key in values) == (not expired)
    data = log.read(0, BIG)
    log.close()
    assert Log.open(directory, config, now_ms=0, recover=True).read(0, BIG) == data
    shutil.rmtree(directory.parent)


def test_the_last_batch_of_a_live_idempotent_producer_is_kept_empty(tmp_path: Path) -> None:
    log = Log.open(tmp_path / "t-0", COMPACT, now_ms=0)
    for sequence, value in ((0, b"1"), (1, b"2")):
        buf = bytearray(build_batch([RecordInput(value, b"k")], producer_id=7, producer_epoch=0,
                                    base_sequence=sequence))
        log.append(buf, validate_batches(buf), leader_epoch=0, now_ms=0)
    append_kv(log, [(b"k", b"plain")])  # supersedes both
    log.roll(0)
    clean(log)
    headers = [h for h, _ in iter_batches(log.read(0, BIG))]
    assert [(h.base_offset, h.producer_id, h.records_count) for h in headers] == [(1, 7, 0), (2, -1, 1)]
    assert [r.value for r in read_all(log)] == [b"plain"]
    log.close()
    for snapshot in tmp_path.glob("t-0/*.snapshot"):
        snapshot.unlink()  # the producer state must come back from the log alone
    reopened = Log.open(tmp_path / "t-0", COMPACT, now_ms=0, recover=True)
    assert reopened.producer_state.producers[7].last_sequence == 1


def test_cleaning_io_goes_through_the_throttler(tmp_path: Path) -> None:
    from moldau.log.throttler import Throttler

    log, latest = updates_log(tmp_path / "t-0")
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    def clock() -> float:
        now[0] += 0.001  # every batch "takes" 1 ms
        return now[0]

    throttler = Throttler(50_000.0, clock=clock, sleep=sleep, period_s=0.01)
    todo = log_to_clean(log, T0)
    size = log.size_in_bytes
    cleaning = CleaningRound(log, todo.first_dirty_offset, todo.first_uncleanable_offset, 10**6, throttler)
    offset_map = cleaning.build_offset_map()
    for group in cleaning.groups(offset_map):
        assert cleaning.swap(cleaning.clean_group(group, offset_map), group)
    assert slept, "reading and writing the log faster than 50 kB/s must sleep"
    assert now[0] >= size / 50_000 * 0.9  # at least the dirty bytes read, at the rate
    assert last_values(read_all(log)) == latest



# --- transactions -------------------------------------------------------------------


def test_compaction_keeps_markers_the_index_and_committed_values_under_aborted_ones(tmp_path: Path) -> None:
    from moldau.transactions.control import ControlRecordType, EndTransactionMarker, build_end_txn_marker

    log = Log.open(tmp_path / "t-0", COMPACT, now_ms=0)
    sequences: dict[int, int] = {}

    def append(data: bytes) -> None:
        buf = bytearray(data)
        log.append(buf, validate_batches(buf), leader_epoch=0, now_ms=0)
        log.update_high_watermark(log.log_end_offset)

    def txn(pid: int, key: bytes, value: bytes) -> None:
        seq = sequences.get(pid, 0)
        sequences[pid] = seq + 1
        append(build_batch([RecordInput(value, key, timestamp=1000)], producer_id=pid, producer_epoch=0,
                           base_sequence=seq, transactional=True))

    def end(pid: int, control: ControlRecordType) -> None:
        append(build_end_txn_marker(EndTransactionMarker(pid, 0, control, 0), 1000))

    append_kv(log, [(b"k", b"committed-1")])  # 0
    txn(1, b"k", b"aborted")  # 1
    end(1, ControlRecordType.ABORT)  # 2
    txn(2, b"j", b"committed-2")  # 3
    end(2, ControlRecordType.COMMIT)  # 4
    log.roll(0)
    txn(3, b"k", b"open")  # 5: still open, so past the last stable offset
    log.roll(0)
    set_mtimes(log, T0)
    assert log_to_clean(log, T0).first_uncleanable_offset == 5  # the LSO, not the high watermark (6)
    aborted_before = log.collect_aborted_transactions(0, log.log_end_offset)
    assert clean(log) >= 0
    records = read_all(log)
    # The aborted record did not push out the committed value before it.
    assert [(r.offset, r.value) for r in records if r.key == b"k"] == [(0, b"committed-1"), (1, b"aborted"),
                                                                       (5, b"open")]
    # Markers stay (a reader needs the ABORT to stop skipping), and so does the index.
    assert [h.base_offset for h, _ in iter_batches(log.read(0, BIG)) if h.is_control] == [2, 4]
    assert log.collect_aborted_transactions(0, log.log_end_offset) == aborted_before
    assert [(t.producer_id, t.first_offset, t.last_offset) for t in aborted_before] == [(1, 1, 2)]
    log.close()
    reopened = Log.open(tmp_path / "t-0", COMPACT, now_ms=0)
    assert reopened.collect_aborted_transactions(0, reopened.log_end_offset) == aborted_before
    reopened.close()

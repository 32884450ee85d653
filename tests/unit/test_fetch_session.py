"""Fetch sessions (KIP-227): the cache and what an incremental answer includes."""

from __future__ import annotations

from collections import OrderedDict

import pytest

from moldau.server.fetch_session import (
    FETCH_SESSION_ID_NOT_FOUND,
    INT32_MAX,
    INVALID_FETCH_SESSION_EPOCH,
    FetchSessionCache,
    SessionError,
    SessionPartition,
    next_epoch,
)


def parts(*names: str) -> OrderedDict[tuple[str, int], SessionPartition]:
    return OrderedDict(((n, 0), SessionPartition(0, 1 << 20)) for n in names)


def test_epochs_run_from_1_and_wrap_past_int32_max_to_1() -> None:
    assert next_epoch(0) == 1 and next_epoch(5) == 6 and next_epoch(INT32_MAX) == 1


def test_a_session_continues_only_at_its_epoch() -> None:
    cache = FetchSessionCache()
    session = cache.create(parts("a", "b"), now=0.0)
    assert session is not None and session.id != 0 and session.epoch == 1
    assert cache.incremental(session.id, 1, now=1.0) is session
    assert session.epoch == 2
    with pytest.raises(SessionError) as err:
        cache.incremental(session.id, 1, now=2.0)  # a replay of epoch 1
    assert err.value.code == INVALID_FETCH_SESSION_EPOCH
    with pytest.raises(SessionError) as err:
        cache.incremental(session.id + 1000, 1, now=2.0)
    assert err.value.code == FETCH_SESSION_ID_NOT_FOUND
    cache.close(session.id)
    with pytest.raises(SessionError):
        cache.incremental(session.id, 2, now=3.0)


def test_updates_and_forgotten_partitions() -> None:
    session = FetchSessionCache().create(parts("a", "b"), now=0.0)
    assert session is not None
    session.update({("a", 0): SessionPartition(42, 100), ("c", 0): SessionPartition(7, 100)}, [("b", 0)])
    assert list(session.partitions) == [("a", 0), ("c", 0)]
    assert (session.partitions[("a", 0)].fetch_offset, session.partitions[("a", 0)].max_bytes) == (42, 100)


def test_an_incremental_answer_holds_only_what_changed() -> None:
    session = FetchSessionCache().create(parts("a"), now=0.0)
    assert session is not None
    tp = ("a", 0)
    assert session.must_respond(tp, error=False, has_data=False, high_watermark=10, log_start_offset=0)
    assert not session.must_respond(tp, error=False, has_data=False, high_watermark=10, log_start_offset=0)
    assert session.must_respond(tp, error=False, has_data=True, high_watermark=10, log_start_offset=0)
    assert session.must_respond(tp, error=False, has_data=False, high_watermark=11, log_start_offset=0)
    assert session.must_respond(tp, error=False, has_data=False, high_watermark=11, log_start_offset=5)
    assert session.must_respond(tp, error=True, has_data=False, high_watermark=11, log_start_offset=5)


def test_a_full_cache_evicts_only_idle_sessions() -> None:
    cache = FetchSessionCache(max_slots=2, eviction_s=60.0)
    first = cache.create(parts("a"), now=0.0)
    second = cache.create(parts("b"), now=10.0)
    assert first is not None and second is not None
    assert cache.create(parts("c"), now=30.0) is None  # nobody idle for 60 s: not cached
    cache.incremental(first.id, 1, now=50.0)  # first is used again: second is now the oldest
    third = cache.create(parts("c"), now=75.0)
    assert third is not None and len(cache) == 2
    with pytest.raises(SessionError):
        cache.incremental(second.id, 1, now=76.0)  # evicted
    assert FetchSessionCache(max_slots=0).create(parts("a"), now=0.0) is None

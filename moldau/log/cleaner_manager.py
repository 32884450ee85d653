"""Which compacted log to clean next, and how far (Kafka's ``LogCleanerManager``).

For each log whose ``cleanup.policy`` holds ``compact``:

- the *first dirty offset* is where the last cleaning ended (the log's
  ``first_dirty_offset``, kept in the log dir's ``cleaner-offset-checkpoint``), or the
  log start offset when that is unknown, below the log start, or past the log end;
- the *first uncleanable offset* is the smallest of: the active segment's base offset,
  the high watermark (nothing a follower or consumer may not have yet), and the base
  offset of the first dirty segment holding a record newer than
  ``min.compaction.lag.ms``;
- the *dirty ratio* is the bytes of the segments in [first dirty, first uncleanable)
  over those of every segment below the first uncleanable offset.

A log is due when its ratio is above ``min.cleanable.dirty.ratio``, or when its oldest
dirty record is older than ``max.compaction.lag.ms`` and it has cleanable bytes; the
filthiest due log is cleaned first. Pure: time is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from moldau.log.log import Log
from moldau.log.time_index import NO_TIMESTAMP


@dataclass(frozen=True)
class LogToClean:
    log: Log
    first_dirty_offset: int
    first_uncleanable_offset: int
    clean_bytes: int
    cleanable_bytes: int
    compaction_delay_ms: int  # > 0: max.compaction.lag.ms has passed this long ago

    @property
    def total_bytes(self) -> int:
        return self.clean_bytes + self.cleanable_bytes

    @property
    def cleanable_ratio(self) -> float:
        return self.cleanable_bytes / self.total_bytes if self.total_bytes else 0.0

    @property
    def due(self) -> bool:
        if self.total_bytes == 0 or self.cleanable_bytes == 0:
            return False
        return self.compaction_delay_ms > 0 or self.cleanable_ratio > self.log.config.min_cleanable_dirty_ratio


def first_dirty_offset(log: Log) -> int:
    checkpointed = log.first_dirty_offset
    if checkpointed is None or not log.log_start_offset <= checkpointed <= log.log_end_offset:
        return log.log_start_offset
    return checkpointed


def log_to_clean(log: Log, now_ms: int) -> LogToClean:
    """Where the log's dirty section starts and ends, and how dirty it is."""
    config = log.config
    dirty = first_dirty_offset(log)
    active_base = log.active_segment.base_offset
    # Kafka: never past the last stable offset, so that an open transaction's records are
    # not compacted before its marker decides whether they count.
    uncleanable = min(active_base, log.last_stable_offset)
    dirty_non_active = log.segments_in_range(dirty, active_base)
    if config.min_compaction_lag_ms > 0:
        recent = next(
            (s for s in dirty_non_active if s.largest_timestamp() > now_ms - config.min_compaction_lag_ms), None
        )
        if recent is not None:
            uncleanable = min(uncleanable, recent.base_offset)
    delay = 0
    if config.max_compaction_lag_ms < 2**63 - 1 and dirty_non_active:
        stamps = [t for t in (s.first_batch_timestamp() for s in dirty_non_active) if t > NO_TIMESTAMP]
        clean_until = now_ms - config.max_compaction_lag_ms
        if stamps and min(stamps) < clean_until:
            delay = clean_until - min(stamps)
    clean_bytes = sum(s.size for s in log.segments_in_range(log.log_start_offset, min(dirty, uncleanable)))
    cleanable_bytes = sum(s.size for s in log.segments_in_range(dirty, uncleanable))
    return LogToClean(log, dirty, uncleanable, clean_bytes, cleanable_bytes, delay)


def filthiest_log(logs: Iterable[Log], now_ms: int) -> LogToClean | None:
    """The compacted log most in need of cleaning, if any is due."""
    due = [c for c in (log_to_clean(log, now_ms) for log in logs if log.config.compact and not log.closed) if c.due]
    return max(due, key=lambda c: c.cleanable_ratio, default=None)

"""Errors the log raises; the server maps them to Kafka error codes."""

from __future__ import annotations


class LogError(Exception):
    """Something is wrong with a partition's log or a log dir (KAFKA_STORAGE_ERROR)."""


class OffsetOutOfRangeError(LogError):
    """A fetch offset outside [log_start_offset, log_end_offset] (OFFSET_OUT_OF_RANGE)."""


class RecordTooLargeError(LogError):
    """A batch larger than max.message.bytes or segment.bytes (MESSAGE_TOO_LARGE)."""


class LogDirLockedError(LogError):
    """Another process holds the log dir's ``.lock``: two brokers on one directory."""


class CorruptIndexError(LogError):
    """An index file fails its sanity check; the caller rebuilds it from the log."""


class CheckpointError(LogError):
    """A checkpoint file that does not parse."""

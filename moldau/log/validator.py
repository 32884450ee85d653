"""What a leader checks before it appends a producer's batches (Kafka's LogValidator).

Pure: bytes and a topic's config in, batch headers or a `RecordValidationError` (with
Kafka's error code, message and per-record errors) out. The checks, in Kafka's order:

* framing, magic v2, CRC-32C (CORRUPT_MESSAGE), record counts and codecs
  (INVALID_RECORD): `records.validate_batches`;
* each batch against ``max.message.bytes`` (MESSAGE_TOO_LARGE) and the whole set
  against ``segment.bytes`` (RECORD_LIST_TOO_LARGE);
* a compacted topic refuses records without a key (INVALID_RECORD), naming every such
  record by its index in its batch (the produce response's ``record_errors``);
* with ``message.timestamp.type=CreateTime``, a record whose timestamp is more than
  ``message.timestamp.before.max.ms`` before ``now`` or ``message.timestamp.after.max.ms``
  after it is refused (INVALID_TIMESTAMP, per record, KIP-937); a producer's batch that
  claims LogAppendTime is refused where Kafka refuses it.

Only topics that compact or bound timestamps pay for decoding records.

Idempotence (sequence numbers, epochs, retries) is checked by `Log.append` against the
partition's producer state, since it needs that state.
"""

from __future__ import annotations

from dataclasses import dataclass

from moldau.log.config import LONG_MAX, LogConfig
from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import (
    NO_TIMESTAMP,
    BatchHeader,
    CorruptRecordError,
    InvalidRecordError,
    iter_raw_records,
    validate_batches,
)


@dataclass(frozen=True, slots=True)
class RecordError:
    """One refused record: its index inside its batch, and why (Kafka's RecordError)."""

    batch_index: int
    message: str


class RecordValidationError(Exception):
    """A produce refused by validation, with Kafka's error code and message."""

    def __init__(self, code: ErrorCode, message: str, record_errors: tuple[RecordError, ...] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.record_errors = record_errors


def validate_producer_batches(buf: bytes | bytearray, config: LogConfig, topic: str,
                              partition: int, now_ms: int, *, from_coordinator: bool = False) -> list[BatchHeader]:
    """Check a producer's record set for one partition at ``now_ms`` (wall clock); its
    batch headers if accepted. Control batches (transaction markers) come only from the
    transaction coordinator (WriteTxnMarkers), never from a client (Kafka's INVALID_RECORD)."""
    if not buf:
        raise RecordValidationError(ErrorCode.invalid_record, "produce request without records")
    try:
        headers = validate_batches(buf)
    except CorruptRecordError as exc:
        raise RecordValidationError(ErrorCode.corrupt_message, str(exc)) from None
    except InvalidRecordError as exc:
        raise RecordValidationError(ErrorCode.invalid_record, str(exc)) from None
    for h in headers:
        if h.is_control and not from_coordinator:
            raise RecordValidationError(ErrorCode.invalid_record, "Clients are not allowed to write control records")
        if h.size > config.max_message_bytes:
            raise RecordValidationError(
                ErrorCode.message_too_large,
                f"batch of {h.size} bytes exceeds max.message.bytes {config.max_message_bytes}")
    if len(buf) > config.segment_bytes:
        raise RecordValidationError(
            ErrorCode.record_list_too_large, f"{len(buf)} bytes exceed segment.bytes {config.segment_bytes}")
    if config.compact:
        errors = keyless_record_errors(buf, headers, topic, partition)
        if errors:
            raise RecordValidationError(ErrorCode.invalid_record, _summary(errors), errors)
    create_time = config.message_timestamp_type == "CreateTime"
    bounded = config.message_timestamp_before_max_ms != LONG_MAX or config.message_timestamp_after_max_ms != LONG_MAX
    if (create_time and bounded) or (not create_time and any(h.is_log_append_time for h in headers)):
        errors = timestamp_errors(buf, headers, config, now_ms)
        if errors:
            raise RecordValidationError(
                ErrorCode.invalid_timestamp, "One or more records have been rejected due to invalid timestamp",
                errors)
    return headers


def timestamp_errors(buf: bytes | bytearray, headers: list[BatchHeader], config: LogConfig,
                     now_ms: int) -> tuple[RecordError, ...]:
    """Kafka's LogValidator.validateTimestamp for every record: out of the topic's window
    (CreateTime), or a producer's batch claiming LogAppendTime where the record has no
    timestamp of its own or the topic appends its own."""
    earliest = now_ms - config.message_timestamp_before_max_ms
    latest = now_ms + config.message_timestamp_after_max_ms
    create_time = config.message_timestamp_type == "CreateTime"
    errors: list[RecordError] = []
    position = 0
    view = memoryview(buf)
    for header in headers:
        if not header.is_control:
            try:
                for index, record in enumerate(iter_raw_records(view[position:position + header.size])):
                    timestamp = header.base_timestamp + record.timestamp_delta
                    if create_time and timestamp != NO_TIMESTAMP:
                        if not earliest <= timestamp <= latest:
                            errors.append(RecordError(index, (
                                f"Timestamp {timestamp} of message with offset {record.offset} is out of range. "
                                f"The timestamp should be within [{earliest}, {latest}]")))
                    elif header.is_log_append_time:
                        errors.append(RecordError(index, (
                            f"Invalid timestamp type in message with offset {record.offset}. Producer should "
                            "not set timestamp type to LogAppendTime.")))
            except CorruptRecordError as exc:
                raise RecordValidationError(ErrorCode.corrupt_message, str(exc)) from None
        position += header.size
    return tuple(errors)


def keyless_record_errors(buf: bytes | bytearray, headers: list[BatchHeader], topic: str,
                          partition: int) -> tuple[RecordError, ...]:
    """Every record without a key, by its index in its batch (Kafka stops at none: the
    response lists them all)."""
    message = f"Compacted topic cannot accept message without key in topic partition {topic}-{partition}."
    errors: list[RecordError] = []
    position = 0
    view = memoryview(buf)
    for header in headers:
        if not header.is_control:
            try:
                for index, record in enumerate(iter_raw_records(view[position:position + header.size])):
                    if record.key is None:
                        errors.append(RecordError(index, message))
            except CorruptRecordError as exc:
                raise RecordValidationError(ErrorCode.corrupt_message, str(exc)) from None
        position += header.size
    return tuple(errors)


def _summary(errors: tuple[RecordError, ...]) -> str:
    """Kafka's top-level message for a batch refused by per-record errors."""
    shown = ", ".join(f"RecordError(batchIndex={e.batch_index}, message='{e.message}')" for e in errors[:3])
    return (f"One or more records have been rejected due to {len(errors)} record errors in total, and only "
            f"showing the first three errors at most: [{shown}]")

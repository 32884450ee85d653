"""Idempotent producers' state in one partition (Kafka's ProducerStateManager).

An idempotent producer stamps each batch with its producer id, producer epoch and the
sequence number of its first record. The partition leader keeps, per producer id, the
metadata of the producer's last five batches (librdkafka and the Java client keep at
most five requests in flight), and checks every new batch against it before the append:

- a batch equal (same epoch, first and last sequence) to one of those five is a
  **duplicate**, a retry of a batch already written: it is not written again and the
  producer gets the offsets of the first write;
- an epoch older than the producer's current one is refused (``INVALID_PRODUCER_EPOCH``);
- a new epoch must start at sequence 0, and within an epoch each batch must follow the
  last one (sequence numbers wrap from 2^31 - 1 to 0), else ``OUT_OF_ORDER_SEQUENCE_NUMBER``;
- a producer id with no state here (new, or expired, or its records deleted) may start
  at any sequence (Kafka since KIP-360).

Followers apply the same batches without checks, so a new leader knows the producers
of its partitions. The state is rebuilt after a restart from a snapshot plus the
batches after it. Snapshots are Kafka's ``<offset>.snapshot`` files: a 2-byte version
(1), a CRC32C of what follows, then an int32 count of entries, each::

    producer_id int64, producer_epoch int16, last_sequence int32, last_offset int64,
    offset_delta int32, timestamp int64, coordinator_epoch int32,
    current_txn_first_offset int64

(``offset_delta`` = last sequence - first sequence of the producer's last batch). Only
the last batch of each producer survives a snapshot, as in Kafka. The snapshot at
offset N describes the log up to (not including) N.

Pure except for snapshot file I/O; time is always passed in.
"""

from __future__ import annotations

import os
import struct
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import crc32c

from moldau.log.checkpoint import write_atomically
from moldau.log.errors import LogError

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
NO_SEQUENCE = -1
INT32_MAX = 2**31 - 1
MAX_BATCHES_PER_PRODUCER = 5  # Kafka's NUM_BATCHES_TO_RETAIN
SNAPSHOT_SUFFIX = ".snapshot"
SNAPSHOT_VERSION = 1

_HEAD = struct.Struct(">hI")
_COUNT = struct.Struct(">i")
_ENTRY = struct.Struct(">qhiqiqiq")


class ProducerStateError(LogError):
    """A batch the producer state refuses; ``error_code`` is Kafka's code for it."""

    error_code = 0


class OutOfOrderSequenceError(ProducerStateError):
    """OUT_OF_ORDER_SEQUENCE_NUMBER (45)."""

    error_code = 45


class InvalidProducerEpochError(ProducerStateError):
    """INVALID_PRODUCER_EPOCH (47): a batch from an epoch older than the producer's."""

    error_code = 47


class TransactionCoordinatorFencedError(ProducerStateError):
    """TRANSACTION_COORDINATOR_FENCED (52): a marker from an older coordinator epoch."""

    error_code = 52


@dataclass(frozen=True)
class CompletedTxn:
    """A transaction a COMMIT/ABORT marker ended: its first offset in the partition (the
    marker's own offset for a transaction that wrote nothing here) and the marker's."""

    producer_id: int
    first_offset: int
    last_offset: int
    is_aborted: bool


class CorruptSnapshotError(LogError):
    """A producer snapshot file that fails its version or CRC check."""


def increment_sequence(sequence: int, increment: int) -> int:
    """``sequence + increment``, wrapping past 2^31 - 1 to 0 as producers do."""
    if sequence > INT32_MAX - increment:
        return increment - (INT32_MAX - sequence) - 1
    return sequence + increment


def in_sequence(last_sequence: int, next_sequence: int) -> bool:
    return next_sequence == last_sequence + 1 or (next_sequence == 0 and last_sequence == INT32_MAX)


@dataclass(frozen=True)
class BatchMetadata:
    """What a producer's batch was written as."""

    first_sequence: int
    last_sequence: int
    first_offset: int
    last_offset: int
    timestamp: int


@dataclass
class ProducerEntry:
    producer_id: int
    producer_epoch: int = NO_PRODUCER_EPOCH
    batches: deque[BatchMetadata] = field(default_factory=lambda: deque(maxlen=MAX_BATCHES_PER_PRODUCER))
    last_timestamp: int = -1
    coordinator_epoch: int = -1
    # The first offset of this producer's ongoing transaction in the partition, if any.
    current_txn_first_offset: int | None = None

    @property
    def last_sequence(self) -> int:
        return self.batches[-1].last_sequence if self.batches else NO_SEQUENCE

    @property
    def last_offset(self) -> int:
        return self.batches[-1].last_offset if self.batches else -1

    def find_duplicate(self, epoch: int, first_sequence: int, last_sequence: int) -> BatchMetadata | None:
        if epoch != self.producer_epoch:
            return None
        for batch in self.batches:
            if batch.first_sequence == first_sequence and batch.last_sequence == last_sequence:
                return batch
        return None

    def copy(self) -> ProducerEntry:
        return ProducerEntry(self.producer_id, self.producer_epoch, deque(self.batches, MAX_BATCHES_PER_PRODUCER),
                             self.last_timestamp, self.coordinator_epoch, self.current_txn_first_offset)


@dataclass(frozen=True)
class ProducerBatch:
    """The producer fields of one batch, as its header carries them."""

    producer_id: int
    producer_epoch: int
    base_sequence: int
    last_offset_delta: int
    is_transactional: bool = False

    @property
    def last_sequence(self) -> int:
        return increment_sequence(self.base_sequence, self.last_offset_delta)


class ProducerStateManager:
    """The producers of one partition, and their snapshots in ``directory``."""

    def __init__(self, directory: Path, producer_id_expiration_ms: int = 86_400_000) -> None:
        self.directory = directory
        self.expiration_ms = producer_id_expiration_ms
        self.producers: dict[int, ProducerEntry] = {}
        # The newest snapshot on disk, as far as this object knows (None: none or unknown).
        self.latest_snapshot_offset: int | None = None
        # Completed transactions whose marker is not below the high watermark yet:
        # read_committed readers may not pass their first offset until it is.
        self.unreplicated_txns: list[CompletedTxn] = []
        # KIP-890 part 1: the verification a leader started for a producer's first batch of
        # a transaction here; a marker for the producer voids it (Kafka's VerificationGuard).
        self._verifications: dict[int, object] = {}

    # --- checking and applying batches ----------------------------------------------------

    def check(self, batch: ProducerBatch, pending: dict[int, ProducerEntry] | None = None, *,
              check_sequence: bool = True) -> BatchMetadata | None:
        """Check a batch a producer sent to the leader, before it is written. Returns the
        metadata of the earlier write if it is a duplicate, None if it may be appended;
        raises ProducerStateError if it must be refused. ``pending`` holds entries updated
        by earlier batches of the same request, not applied yet. Without
        ``check_sequence`` (a coordinator's write in a producer's name: transactional
        offset commits) only the epoch is checked, as Kafka does for that origin."""
        entry = (pending or {}).get(batch.producer_id) or self.producers.get(batch.producer_id)
        if entry is None:
            return None  # unknown producer: any sequence (KIP-360)
        if not check_sequence:
            if batch.producer_epoch < entry.producer_epoch:
                raise InvalidProducerEpochError(
                    f"Epoch of producer {batch.producer_id} is {batch.producer_epoch}, "
                    f"which is smaller than the last seen epoch {entry.producer_epoch}")
            return None
        duplicate = entry.find_duplicate(batch.producer_epoch, batch.base_sequence, batch.last_sequence)
        if duplicate is not None:
            return duplicate
        if batch.producer_epoch < entry.producer_epoch:
            raise InvalidProducerEpochError(
                f"Epoch of producer {batch.producer_id} at offset is {batch.producer_epoch}, "
                f"which is smaller than the last seen epoch {entry.producer_epoch}")
        if batch.producer_epoch != entry.producer_epoch:
            if batch.base_sequence != 0 and entry.producer_epoch != NO_PRODUCER_EPOCH:
                raise OutOfOrderSequenceError(
                    f"Invalid sequence number for new epoch of producer {batch.producer_id}: "
                    f"{batch.producer_epoch} (request epoch), {batch.base_sequence} (seq. number), "
                    f"{entry.producer_epoch} (current producer epoch)")
        elif entry.batches and not in_sequence(entry.last_sequence, batch.base_sequence):
            raise OutOfOrderSequenceError(
                f"Out of order sequence number for producer {batch.producer_id}: "
                f"{batch.base_sequence} (incoming seq. number), {entry.last_sequence} (current end sequence number)")
        return None

    def applied(self, batch: ProducerBatch, first_offset: int, last_offset: int, timestamp: int,
                into: dict[int, ProducerEntry] | None = None) -> ProducerEntry:
        """The producer's entry once this (written) batch is added; stored in ``into`` if
        given (a pending update), else in the manager."""
        target = self.producers if into is None else into
        current = target.get(batch.producer_id)
        if current is None:
            found = self.producers.get(batch.producer_id)
            current = found.copy() if found is not None and into is not None else found
        if current is None:
            current = ProducerEntry(batch.producer_id)
        if batch.producer_epoch != current.producer_epoch:
            current.batches.clear()
            current.producer_epoch = batch.producer_epoch
        current.batches.append(BatchMetadata(batch.base_sequence, batch.last_sequence, first_offset,
                                             last_offset, timestamp))
        current.last_timestamp = max(current.last_timestamp, timestamp)
        if batch.is_transactional and current.current_txn_first_offset is None:
            current.current_txn_first_offset = first_offset
        target[batch.producer_id] = current
        return current

    # --- transactions ---------------------------------------------------------------------

    def check_marker(self, producer_id: int, producer_epoch: int, coordinator_epoch: int) -> None:
        """Check a COMMIT/ABORT marker before the leader writes it (Kafka's
        checkProducerEpoch and checkCoordinatorEpoch for control batches)."""
        entry = self.producers.get(producer_id)
        if entry is None:
            return
        if producer_epoch < entry.producer_epoch:
            raise InvalidProducerEpochError(
                f"Epoch of producer {producer_id} in a transaction marker is {producer_epoch}, "
                f"which is smaller than the last seen epoch {entry.producer_epoch}")
        if coordinator_epoch < entry.coordinator_epoch:
            raise TransactionCoordinatorFencedError(
                f"Transaction marker for producer {producer_id} from coordinator epoch {coordinator_epoch}, "
                f"older than the last seen {entry.coordinator_epoch}")

    def needs_verification(self, producer_id: int, producer_epoch: int) -> bool:
        """Whether a transactional batch of this producer would start a transaction here
        (no transaction of this epoch is open in the partition): the leader then asks
        the coordinator first (KIP-890 part 1)."""
        entry = self.producers.get(producer_id)
        return entry is None or entry.current_txn_first_offset is None or entry.producer_epoch != producer_epoch

    def start_verification(self, producer_id: int) -> object:
        token = self._verifications[producer_id] = object()
        return token

    def verification_holds(self, producer_id: int, token: object) -> bool:
        """Whether no marker of the producer was written since the verification started
        (else the transaction it verified may be over: the batch must not start a new one)."""
        return self._verifications.get(producer_id) is token

    def complete_txn(self, producer_id: int, producer_epoch: int, coordinator_epoch: int, offset: int,
                     timestamp: int, is_aborted: bool) -> CompletedTxn:
        """A marker was written at ``offset``: the producer's ongoing transaction ends (a
        marker may end an empty transaction: its first offset is then the marker's)."""
        self._verifications.pop(producer_id, None)
        entry = self.producers.get(producer_id)
        if entry is None:
            entry = self.producers[producer_id] = ProducerEntry(producer_id)
        if producer_epoch != entry.producer_epoch:
            entry.batches.clear()
            entry.producer_epoch = producer_epoch
        entry.coordinator_epoch = max(entry.coordinator_epoch, coordinator_epoch)
        entry.last_timestamp = max(entry.last_timestamp, timestamp)
        first = entry.current_txn_first_offset
        entry.current_txn_first_offset = None
        completed = CompletedTxn(producer_id, offset if first is None else first, offset, is_aborted)
        self.unreplicated_txns.append(completed)
        return completed

    def first_unstable_offset(self) -> int | None:
        """The first offset a read_committed reader may not read yet: the oldest first
        offset of an ongoing transaction or of a completed one whose marker is not
        replicated (below the high watermark) yet."""
        firsts = [e.current_txn_first_offset for e in self.producers.values()
                  if e.current_txn_first_offset is not None]
        firsts.extend(t.first_offset for t in self.unreplicated_txns)
        return min(firsts) if firsts else None

    def last_stable_offset_after(self, completed: CompletedTxn) -> int:
        """The last stable offset an aborted transaction's index entry records: the first
        offset of the oldest transaction still open, else the marker's offset + 1."""
        firsts = [e.current_txn_first_offset for e in self.producers.values()
                  if e.current_txn_first_offset is not None]
        return min(firsts) if firsts else completed.last_offset + 1

    def on_high_watermark_updated(self, high_watermark: int) -> None:
        if self.unreplicated_txns:
            self.unreplicated_txns = [t for t in self.unreplicated_txns if t.last_offset >= high_watermark]

    def commit(self, pending: dict[int, ProducerEntry]) -> None:
        self.producers.update(pending)

    def update(self, batch: ProducerBatch, first_offset: int, last_offset: int, timestamp: int) -> None:
        """Record a written batch without checks (followers, recovery, replay)."""
        if batch.producer_id == NO_PRODUCER_ID:
            return
        self.applied(batch, first_offset, last_offset, timestamp)

    def remove_expired(self, now_ms: int) -> int:
        """Forget producers silent for ``producer.id.expiration.ms``; returns how many."""
        expired = [pid for pid, e in self.producers.items()
                   if now_ms - e.last_timestamp >= self.expiration_ms and e.current_txn_first_offset is None]
        for pid in expired:
            del self.producers[pid]
        return len(expired)

    def clear(self) -> None:
        self.producers.clear()
        self.unreplicated_txns.clear()

    # --- snapshots ------------------------------------------------------------------------

    def snapshot_offsets(self) -> list[int]:
        """Offsets of the snapshot files on disk, ascending."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        out = []
        for name in names:
            if name.endswith(SNAPSHOT_SUFFIX) and name[: -len(SNAPSHOT_SUFFIX)].isdigit():
                out.append(int(name[: -len(SNAPSHOT_SUFFIX)]))
        return sorted(out)

    def snapshot_path(self, offset: int) -> Path:
        return self.directory / f"{offset:020d}{SNAPSHOT_SUFFIX}"

    def take_snapshot(self, offset: int) -> None:
        """Write the state as of ``offset`` (the log end offset) to ``<offset>.snapshot``."""
        write_atomically(self.snapshot_path(offset), encode_snapshot(self.producers.values()))
        if self.latest_snapshot_offset is None or offset >= self.latest_snapshot_offset:
            self.latest_snapshot_offset = offset

    def load_latest_snapshot(self, up_to: int) -> int | None:
        """Replace the state with the newest readable snapshot at or below ``up_to``;
        returns its offset (the caller replays batches from there), or None when there
        is none (the state is then empty and the caller replays the whole log). Snapshots
        that do not parse are deleted (Kafka's CorruptSnapshotException); any other error
        reading one (EMFILE, EIO) is raised: a snapshot that could not be read is not
        corrupt, and deleting it would lose what it holds."""
        for offset in reversed(self.snapshot_offsets()):
            if offset > up_to:
                continue
            try:
                entries = decode_snapshot(self.snapshot_path(offset).read_bytes())
            except FileNotFoundError:
                continue
            except CorruptSnapshotError:
                self.snapshot_path(offset).unlink(missing_ok=True)
                continue
            self.producers = {e.producer_id: e for e in entries}
            self.latest_snapshot_offset = offset
            self.unreplicated_txns = []
            return offset
        self.producers = {}
        self.latest_snapshot_offset = None
        self.unreplicated_txns = []
        return None

    def delete_snapshots(self, *, below: int | None = None, above: int | None = None) -> None:
        """Delete snapshot files at offsets < ``below`` and/or > ``above``."""
        for offset in self.snapshot_offsets():
            if (below is not None and offset < below) or (above is not None and offset > above):
                self.snapshot_path(offset).unlink(missing_ok=True)
                if offset == self.latest_snapshot_offset:
                    self.latest_snapshot_offset = None  # unknown: a close takes a new one


def encode_snapshot(entries: Iterable[ProducerEntry]) -> bytes:
    body = bytearray()
    count = 0
    for e in entries:
        if not e.batches:
            if e.coordinator_epoch < 0:
                continue
            # Only markers so far (a producer whose transactions all ended here empty):
            # kept for its epoch and coordinator epoch, as Kafka keeps it.
            body += _ENTRY.pack(e.producer_id, e.producer_epoch, NO_SEQUENCE, -1, 0, e.last_timestamp,
                                e.coordinator_epoch, -1 if e.current_txn_first_offset is None
                                else e.current_txn_first_offset)
            count += 1
            continue
        last = e.batches[-1]
        offset_delta = last.last_offset - last.first_offset
        body += _ENTRY.pack(e.producer_id, e.producer_epoch, last.last_sequence, last.last_offset,
                            offset_delta, e.last_timestamp, e.coordinator_epoch,
                            -1 if e.current_txn_first_offset is None else e.current_txn_first_offset)
        count += 1
    payload = _COUNT.pack(count) + bytes(body)
    return _HEAD.pack(SNAPSHOT_VERSION, crc32c.crc32c(payload)) + payload


def decode_snapshot(data: bytes) -> list[ProducerEntry]:
    if len(data) < _HEAD.size + _COUNT.size:
        raise CorruptSnapshotError("producer snapshot too short")
    version, crc = _HEAD.unpack_from(data, 0)
    if version != SNAPSHOT_VERSION:
        raise CorruptSnapshotError(f"producer snapshot version {version}, expected {SNAPSHOT_VERSION}")
    payload = memoryview(data)[_HEAD.size :]
    if crc32c.crc32c(payload) != crc:
        raise CorruptSnapshotError("producer snapshot CRC mismatch")
    (count,) = _COUNT.unpack_from(payload, 0)
    if count < 0 or _COUNT.size + count * _ENTRY.size != len(payload):
        raise CorruptSnapshotError(f"producer snapshot holds {len(payload)} bytes for {count} entries")
    out = []
    for i in range(count):
        pid, epoch, last_seq, last_offset, offset_delta, ts, coordinator_epoch, txn_first = _ENTRY.unpack_from(
            payload, _COUNT.size + i * _ENTRY.size)
        entry = ProducerEntry(pid, epoch, last_timestamp=ts, coordinator_epoch=coordinator_epoch,
                              current_txn_first_offset=None if txn_first < 0 else txn_first)
        out.append(entry)
        if last_offset < 0:
            continue  # markers only, no batch
        first_seq = last_seq - offset_delta
        if first_seq < 0:  # the batch wrapped past 2^31 - 1
            first_seq += INT32_MAX + 1
        entry.batches.append(BatchMetadata(first_seq, last_seq, last_offset - offset_delta, last_offset, ts))
    return out

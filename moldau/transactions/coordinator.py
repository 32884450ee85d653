"""The transaction coordinator (KIP-98), pure: InitProducerId, AddPartitionsToTxn,
AddOffsetsToTxn, EndTxn, and the expiry of transactions and transactional ids.

It serves the transactional ids whose ``__transaction_state`` partition is loaded here
(:meth:`TransactionCoordinator.load_partition` replays that partition). It does no I/O:
records are written through the ``append`` callable it is given, producer ids come
from the ``allocate_producer_id`` callable, and time comes in as ``now_ms`` arguments.

Decide, then act: an operation prepares the transactional id's next state from the
current one (:mod:`moldau.transactions.metadata`), appends its record, and applies it only
once the append returned; an append that raises leaves the state as it was and answers
with Kafka's mapping of the append error. Applying a transition replaces the state by the
record's content, which is also what loading does, so a coordinator that loads the
partition after a failover holds the same state (but ``last_producer_epoch``, which
Kafka's record has no field for either).

Markers are not written here. EndTxn (and InitProducerId fencing an open transaction,
and the abort of a timed-out one) returns :class:`TxnMarkers`: the server writes a
COMMIT/ABORT control batch (:mod:`moldau.transactions.control`) to each listed partition,
through WriteTxnMarkers to its leader, and calls :meth:`TransactionCoordinator.complete_markers`
once all are written, which records CompleteCommit/CompleteAbort. Until then the
transaction is in PrepareCommit/PrepareAbort with a pending completion, and requests for
it get CONCURRENT_TRANSACTIONS, as in Kafka.

Only transaction version 0/1 semantics (no epoch bump per transaction, KIP-890 part 2)
and AddPartitionsToTxn v0-3 (no broker-side verification, KIP-890 part 1) are
implemented.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from moldau.log.errors import LogError, RecordTooLargeError
from moldau.protocol.errors import ErrorCode
from moldau.transactions.config import TransactionConfig
from moldau.transactions.control import ControlRecordType, EndTransactionMarker
from moldau.transactions.metadata import (
    TopicPartition,
    TransactionMetadata,
    TxnTransitMetadata,
    is_epoch_exhausted,
)
from moldau.transactions.records import (
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    TRANSACTION_STATE_TOPIC,
    RecordDecodeError,
    UnknownRecordType,
    decode_key,
    decode_value,
    partition_for,
    transaction_record,
)
from moldau.transactions.state import (
    COMPLETE_ABORT,
    COMPLETE_COMMIT,
    DEAD,
    EMPTY,
    ONGOING,
    PREPARE_ABORT,
    PREPARE_COMMIT,
    TransactionState,
    parse_state,
)

__all__ = [
    "AppendFn",
    "CoordinatorAppendError",
    "EndTxnResult",
    "InitProducerIdResult",
    "ProducerIdAllocationError",
    "TransactionConfig",
    "TransactionCoordinator",
    "TransactionDescription",
    "TxnMarkers",
    "fenced_error_for_version",
]

log = logging.getLogger(__name__)

Record = tuple[bytes, bytes | None]
AppendFn = Callable[[int, list[Record]], None]
"""Append records to a ``__transaction_state`` partition (acks=all); raise on failure."""
ProducerIdAllocator = Callable[[], int]
"""A new producer id; raise :class:`ProducerIdAllocationError` when there is none."""

GROUP_METADATA_TOPIC = "__consumer_offsets"


class CoordinatorAppendError(Exception):
    """What an ``append`` callable raises to say which Kafka error the write hit."""

    def __init__(self, error: ErrorCode, message: str = "") -> None:
        super().__init__(message or error.name)
        self.error = error


class ProducerIdAllocationError(Exception):
    """What the producer id allocator raises (e.g. COORDINATOR_LOAD_IN_PROGRESS while
    its next block is not there yet)."""

    def __init__(self, error: ErrorCode) -> None:
        super().__init__(error.name)
        self.error = error


def transaction_append_error(error: ErrorCode) -> ErrorCode:
    """Kafka's mapping of a ``__transaction_state`` append error to the client's error
    (``TransactionStateManager.appendTransactionToLog``)."""
    if error in (ErrorCode.unknown_topic_or_partition, ErrorCode.not_enough_replicas,
                 ErrorCode.not_enough_replicas_after_append, ErrorCode.request_timed_out):
        return ErrorCode.coordinator_not_available
    if error in (ErrorCode.not_leader_or_follower, ErrorCode.kafka_storage_error):
        return ErrorCode.not_coordinator
    if error in (ErrorCode.message_too_large, ErrorCode.record_list_too_large):
        return ErrorCode.unknown_server_error
    return error


def _append_error(exc: Exception) -> ErrorCode:
    if isinstance(exc, CoordinatorAppendError):
        return transaction_append_error(exc.error)
    if isinstance(exc, RecordTooLargeError):
        return ErrorCode.unknown_server_error
    if isinstance(exc, LogError):
        return ErrorCode.not_coordinator
    return ErrorCode.coordinator_not_available


# API keys whose older versions cannot read PRODUCER_FENCED (KIP-588), with the first
# version that can: InitProducerId 4, AddPartitionsToTxn 2, AddOffsetsToTxn 2, EndTxn 2.
_PRODUCER_FENCED_SINCE = {22: 4, 24: 2, 25: 2, 26: 2}


def fenced_error_for_version(error: ErrorCode, api_key: int, api_version: int) -> ErrorCode:
    """PRODUCER_FENCED as an older client understands it: INVALID_PRODUCER_EPOCH below the
    versions that know it (KafkaApis does this in each handler)."""
    since = _PRODUCER_FENCED_SINCE.get(api_key)
    if error is ErrorCode.producer_fenced and since is not None and api_version < since:
        return ErrorCode.invalid_producer_epoch
    return error


# --- results ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TxnMarkers:
    """Markers to write: one control batch of ``result`` with the producer id and epoch
    and the coordinator epoch, in each partition. Once all are written, call
    :meth:`TransactionCoordinator.complete_markers` with this object."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    coordinator_epoch: int
    result: ControlRecordType
    partitions: frozenset[TopicPartition]

    def marker(self) -> EndTransactionMarker:
        return EndTransactionMarker(self.producer_id, self.producer_epoch, self.result, self.coordinator_epoch)


@dataclass(frozen=True)
class InitProducerIdResult:
    """InitProducerId's answer. ``markers`` is set when an open transaction was fenced:
    the client gets CONCURRENT_TRANSACTIONS and retries once the abort completed."""

    error: ErrorCode
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH
    markers: TxnMarkers | None = None


@dataclass(frozen=True)
class EndTxnResult:
    error: ErrorCode
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH
    markers: TxnMarkers | None = None


@dataclass(frozen=True)
class TransactionDescription:
    """DescribeTransactions' answer for one transactional id."""

    transactional_id: str
    error: ErrorCode
    state: str = ""
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH
    transaction_timeout_ms: int = 0
    transaction_start_time_ms: int = -1
    partitions: frozenset[TopicPartition] = frozenset()


@dataclass
class _LoadedPartition:
    coordinator_epoch: int
    transactions: dict[str, TransactionMetadata] = field(default_factory=dict)


_RESULT_OF = {PREPARE_COMMIT: ControlRecordType.COMMIT, PREPARE_ABORT: ControlRecordType.ABORT}
_COMPLETION_OF = {PREPARE_COMMIT: COMPLETE_COMMIT, PREPARE_ABORT: COMPLETE_ABORT}


class TransactionCoordinator:
    """Transactional ids of the loaded ``__transaction_state`` partitions.
    Single-threaded: call it from one event loop."""

    def __init__(self, config: TransactionConfig, append: AppendFn, allocate_producer_id: ProducerIdAllocator) -> None:
        self.config = config
        self._append = append
        self._allocate_producer_id = allocate_producer_id
        self._partitions: dict[int, _LoadedPartition] = {}
        self._next_abort_check_ms: int | None = None
        self._next_expiry_check_ms: int | None = None

    # ==================================================================================
    # partitions
    # ==================================================================================

    def partition_for(self, transactional_id: str) -> int:
        return partition_for(transactional_id, self.config.transaction_log_partitions)

    def is_loaded(self, transactional_id: str) -> bool:
        return self.partition_for(transactional_id) in self._partitions

    @property
    def loaded_partitions(self) -> frozenset[int]:
        return frozenset(self._partitions)

    def coordinator_epoch(self, partition: int) -> int | None:
        loaded = self._partitions.get(partition)
        return None if loaded is None else loaded.coordinator_epoch

    def transaction(self, transactional_id: str) -> TransactionMetadata | None:
        """The state of a transactional id, if loaded here (for tests and tools)."""
        loaded = self._partitions.get(self.partition_for(transactional_id))
        return None if loaded is None else loaded.transactions.get(transactional_id)

    def load_partition(
        self, partition: int, coordinator_epoch: int, records: Iterable[Record], now_ms: int
    ) -> list[TxnMarkers]:
        """Become the coordinator of a partition: replay its records in offset order
        (the last record of an id wins, a tombstone removes it) at ``coordinator_epoch``
        (the partition's leader epoch). Returns the markers of transactions found in
        PrepareCommit/PrepareAbort, which the new coordinator must finish writing."""
        states: dict[str, TransactionMetadata] = {}
        for key_bytes, value_bytes in records:
            try:
                transactional_id = decode_key(key_bytes)
                if value_bytes is None:
                    states.pop(transactional_id, None)
                else:
                    value = decode_value(value_bytes)
                    states[transactional_id] = TransactionMetadata.from_value(transactional_id, value)
            except UnknownRecordType as e:
                log.warning("%s-%d: skipping record with key version %d", TRANSACTION_STATE_TOPIC, partition, e.version)
            except RecordDecodeError as e:
                log.error("%s-%d: skipping undecodable record: %s", TRANSACTION_STATE_TOPIC, partition, e)
        self._partitions[partition] = _LoadedPartition(coordinator_epoch, states)
        markers = []
        for metadata in states.values():
            if metadata.state in _COMPLETION_OF:
                metadata.pending_state = _COMPLETION_OF[metadata.state]
                markers.append(self._markers(metadata, coordinator_epoch))
        return markers

    def unload_partition(self, partition: int, coordinator_epoch: int | None = None) -> None:
        """Stop serving a partition (become follower, StopReplica). With an epoch, only if
        it is the one loaded (a late unload of an older term leaves a newer load alone)."""
        loaded = self._partitions.get(partition)
        if loaded is None:
            return
        if coordinator_epoch is not None and coordinator_epoch < loaded.coordinator_epoch:
            return
        del self._partitions[partition]

    def _lookup(self, transactional_id: str) -> tuple[ErrorCode, _LoadedPartition | None]:
        loaded = self._partitions.get(self.partition_for(transactional_id))
        if loaded is None:
            return ErrorCode.not_coordinator, None
        return ErrorCode.none, loaded

    def _write(self, transactional_id: str, records: list[Record]) -> ErrorCode:
        try:
            self._append(self.partition_for(transactional_id), records)
        except Exception as e:  # the append callable is the outside world: any failure is an error code
            log.warning("transactional id %s: append to %s failed: %r", transactional_id, TRANSACTION_STATE_TOPIC, e)
            return _append_error(e)
        return ErrorCode.none

    def _transition(self, metadata: TransactionMetadata, transit: TxnTransitMetadata) -> ErrorCode:
        """Write the record of ``transit``; apply it once written."""
        record = transaction_record(metadata.transactional_id, transit.to_value(), self.config.log_value_version)
        error = self._write(metadata.transactional_id, [record])
        if error is ErrorCode.none:
            metadata.complete_transition(transit)
        return error

    @staticmethod
    def _markers(metadata: TransactionMetadata, coordinator_epoch: int) -> TxnMarkers:
        return TxnMarkers(
            transactional_id=metadata.transactional_id,
            producer_id=metadata.producer_id,
            producer_epoch=metadata.producer_epoch,
            coordinator_epoch=coordinator_epoch,
            result=_RESULT_OF[metadata.state],
            partitions=metadata.topic_partitions,
        )

    def _validate_timeout(self, transaction_timeout_ms: int) -> bool:
        return 0 < transaction_timeout_ms <= self.config.transaction_max_timeout_ms

    def _new_producer_id(self) -> tuple[ErrorCode, int]:
        try:
            return ErrorCode.none, self._allocate_producer_id()
        except ProducerIdAllocationError as e:
            return e.error, NO_PRODUCER_ID

    # ==================================================================================
    # InitProducerId
    # ==================================================================================

    def init_producer_id(
        self,
        transactional_id: str | None,
        transaction_timeout_ms: int,
        now_ms: int,
        producer_id: int = NO_PRODUCER_ID,
        producer_epoch: int = NO_PRODUCER_EPOCH,
    ) -> InitProducerIdResult:
        """InitProducerId. Without a transactional id: a new producer id at epoch 0
        (idempotence only). With one: the id's producer id and its next epoch, fencing
        every older producer instance; ``producer_id``/``producer_epoch`` are the
        expected ones of KIP-360 (a producer recovering from an error keeps its id)."""
        if (producer_id == NO_PRODUCER_ID) != (producer_epoch == NO_PRODUCER_EPOCH):
            return InitProducerIdResult(ErrorCode.invalid_request)
        if transactional_id is None:
            error, new_id = self._new_producer_id()
            if error is not ErrorCode.none:
                return InitProducerIdResult(error)
            return InitProducerIdResult(ErrorCode.none, new_id, 0)
        if not transactional_id:
            return InitProducerIdResult(ErrorCode.invalid_request)
        if not self._validate_timeout(transaction_timeout_ms):
            return InitProducerIdResult(ErrorCode.invalid_transaction_timeout)
        error, loaded = self._lookup(transactional_id)
        if loaded is None:
            return InitProducerIdResult(error)
        metadata = loaded.transactions.get(transactional_id)
        created = metadata is None
        if metadata is None:
            error, new_id = self._new_producer_id()
            if error is not ErrorCode.none:
                return InitProducerIdResult(error)
            # Not in the cache until its first record is written (Kafka caches it at once;
            # a failed write then leaves an unwritten id behind).
            metadata = TransactionMetadata.new(transactional_id, new_id, transaction_timeout_ms, now_ms)
        expected = None if producer_id == NO_PRODUCER_ID else (producer_id, producer_epoch)

        if metadata.pending_transition_in_progress:
            return InitProducerIdResult(ErrorCode.concurrent_transactions)
        if expected is not None and not self._is_valid_producer_id(metadata, *expected):
            return InitProducerIdResult(ErrorCode.producer_fenced)
        state = metadata.state
        if state in (PREPARE_COMMIT, PREPARE_ABORT):
            return InitProducerIdResult(ErrorCode.concurrent_transactions)
        if state is ONGOING:
            # Fence the current producer and abort its transaction; the client retries
            # (CONCURRENT_TRANSACTIONS) and gets the epoch after that one.
            error = self._transition(metadata, metadata.prepare_fence_producer_epoch_and_abort(now_ms))
            if error is not ErrorCode.none:
                return InitProducerIdResult(error)
            metadata.pending_state = COMPLETE_ABORT
            return InitProducerIdResult(
                ErrorCode.concurrent_transactions, markers=self._markers(metadata, loaded.coordinator_epoch)
            )
        if state not in (EMPTY, COMPLETE_COMMIT, COMPLETE_ABORT):
            raise RuntimeError(f"transactional id {transactional_id!r} found in state {state}")
        if metadata.is_producer_epoch_exhausted and (expected is None or expected[1] == metadata.producer_epoch):
            error, new_id = self._new_producer_id()
            if error is not ErrorCode.none:
                return InitProducerIdResult(error)
            transit: TxnTransitMetadata | None = metadata.prepare_producer_id_rotation(
                new_id, transaction_timeout_ms, now_ms, record_last_epoch=expected is not None
            )
        else:
            transit = metadata.prepare_increment_producer_epoch(
                transaction_timeout_ms, None if expected is None else expected[1], now_ms
            )
        if transit is None:
            log.info("transactional id %s: expected epoch %s is neither the current nor the last one",
                     transactional_id, producer_epoch)
            return InitProducerIdResult(ErrorCode.producer_fenced)
        error = self._transition(metadata, transit)
        if error is not ErrorCode.none:
            return InitProducerIdResult(error)
        if created:
            loaded.transactions[transactional_id] = metadata
        log.info("transactional id %s: producer id %d, epoch %d", transactional_id, metadata.producer_id,
                 metadata.producer_epoch)
        return InitProducerIdResult(ErrorCode.none, metadata.producer_id, metadata.producer_epoch)

    @staticmethod
    def _is_valid_producer_id(metadata: TransactionMetadata, producer_id: int, producer_epoch: int) -> bool:
        """KIP-360: an expected producer id is valid when the id was just created (no
        epoch yet: a producer whose id expired), when it is the current one (the epoch is
        checked by the bump), or when it is the previous one and its epoch was exhausted
        (a retry of a rotation whose answer was lost)."""
        return (
            metadata.producer_epoch == NO_PRODUCER_EPOCH
            or producer_id == metadata.producer_id
            or (producer_id == metadata.current.previous_producer_id and is_epoch_exhausted(producer_epoch))
        )

    # ==================================================================================
    # AddPartitionsToTxn, AddOffsetsToTxn
    # ==================================================================================

    def add_partitions_to_txn(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: Iterable[TopicPartition],
        now_ms: int,
    ) -> ErrorCode:
        """AddPartitionsToTxn v0-3 for one transaction: the same error for every partition.
        The handler checks first that the partitions exist (UNKNOWN_TOPIC_OR_PARTITION,
        the others OPERATION_NOT_ATTEMPTED) and maps PRODUCER_FENCED for old versions
        (:func:`fenced_error_for_version`)."""
        if not transactional_id:
            return ErrorCode.invalid_request
        error, loaded = self._lookup(transactional_id)
        if loaded is None:
            return error
        metadata = loaded.transactions.get(transactional_id)
        if metadata is None or metadata.producer_id != producer_id:
            return ErrorCode.invalid_producer_id_mapping
        if metadata.producer_epoch != producer_epoch:
            return ErrorCode.producer_fenced
        if metadata.pending_transition_in_progress or metadata.state in (PREPARE_COMMIT, PREPARE_ABORT):
            return ErrorCode.concurrent_transactions
        added = frozenset(partitions)
        if metadata.state is ONGOING and added <= metadata.topic_partitions:
            return ErrorCode.none
        return self._transition(metadata, metadata.prepare_add_partitions(added, now_ms))

    def verify_partitions_in_transaction(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: Iterable[TopicPartition],
    ) -> dict[TopicPartition, ErrorCode]:
        """AddPartitionsToTxn v4+ with ``verify_only`` (KIP-890 part 1, a partition leader
        asking before it appends a transactional batch): NONE for each partition already in
        the ongoing transaction, TRANSACTION_ABORTABLE for the others; one error for all
        when the producer does not match or the transaction is completing. Writes nothing
        (and, as in Kafka, does not look at a pending transition)."""
        wanted = list(partitions)
        if not transactional_id:
            return dict.fromkeys(wanted, ErrorCode.invalid_request)
        error, loaded = self._lookup(transactional_id)
        if loaded is None:
            return dict.fromkeys(wanted, error)
        metadata = loaded.transactions.get(transactional_id)
        if metadata is None or metadata.producer_id != producer_id:
            return dict.fromkeys(wanted, ErrorCode.invalid_producer_id_mapping)
        if metadata.producer_epoch != producer_epoch:
            return dict.fromkeys(wanted, ErrorCode.producer_fenced)
        if metadata.state in (PREPARE_COMMIT, PREPARE_ABORT):
            return dict.fromkeys(wanted, ErrorCode.concurrent_transactions)
        return {
            tp: ErrorCode.none if tp in metadata.topic_partitions else ErrorCode.transaction_abortable
            for tp in wanted
        }

    def group_offsets_partition(self, group_id: str) -> TopicPartition:
        """The ``__consumer_offsets`` partition of a group (what AddOffsetsToTxn adds)."""
        return GROUP_METADATA_TOPIC, partition_for(group_id, self.config.offsets_topic_partitions)

    def add_offsets_to_txn(
        self, transactional_id: str, producer_id: int, producer_epoch: int, group_id: str, now_ms: int
    ) -> ErrorCode:
        """AddOffsetsToTxn: the group's ``__consumer_offsets`` partition joins the
        transaction, so that its offset commits get the transaction's marker."""
        return self.add_partitions_to_txn(
            transactional_id, producer_id, producer_epoch, [self.group_offsets_partition(group_id)], now_ms
        )

    # ==================================================================================
    # EndTxn and the markers
    # ==================================================================================

    def end_txn(
        self, transactional_id: str, producer_id: int, producer_epoch: int, committed: bool, now_ms: int
    ) -> EndTxnResult:
        """EndTxn (transaction version 0/1): PrepareCommit or PrepareAbort is written and
        the markers to write are returned; the client is answered NONE at once (Kafka
        answers once the Prepare record is written, before the markers)."""
        if not transactional_id:
            return EndTxnResult(ErrorCode.invalid_request)
        error, loaded = self._lookup(transactional_id)
        if loaded is None:
            return EndTxnResult(error)
        metadata = loaded.transactions.get(transactional_id)
        if metadata is None or metadata.producer_id != producer_id:
            return EndTxnResult(ErrorCode.invalid_producer_id_mapping)
        if metadata.producer_epoch != producer_epoch:
            return EndTxnResult(ErrorCode.producer_fenced)
        if metadata.pending_transition_in_progress:
            return EndTxnResult(ErrorCode.concurrent_transactions)
        state = metadata.state
        if state is ONGOING:
            target = PREPARE_COMMIT if committed else PREPARE_ABORT
            error = self._transition(metadata, metadata.prepare_abort_or_commit(target, now_ms))
            if error is not ErrorCode.none:
                return EndTxnResult(error)
            metadata.pending_state = _COMPLETION_OF[target]
            return EndTxnResult(
                ErrorCode.none,
                metadata.producer_id,
                metadata.producer_epoch,
                self._markers(metadata, loaded.coordinator_epoch),
            )
        done = COMPLETE_COMMIT if committed else COMPLETE_ABORT
        in_progress = PREPARE_COMMIT if committed else PREPARE_ABORT
        if state is done:  # a retry of an EndTxn that completed
            return EndTxnResult(ErrorCode.none, metadata.producer_id, metadata.producer_epoch)
        if state is in_progress:
            return EndTxnResult(ErrorCode.concurrent_transactions)
        log.debug("transactional id %s: EndTxn(committed=%s) in state %s", transactional_id, committed, state)
        return EndTxnResult(ErrorCode.invalid_txn_state)

    def complete_markers(self, markers: TxnMarkers, now_ms: int) -> ErrorCode:
        """Every marker of ``markers`` is written: record CompleteCommit/CompleteAbort.

        NOT_COORDINATOR when the partition moved or was reloaded at another epoch since
        (the new coordinator sends the markers again); on an append error the transaction
        stays pending and the caller retries (Kafka retries on COORDINATOR_NOT_AVAILABLE)."""
        loaded = self._partitions.get(self.partition_for(markers.transactional_id))
        if loaded is None or loaded.coordinator_epoch != markers.coordinator_epoch:
            return ErrorCode.not_coordinator
        metadata = loaded.transactions.get(markers.transactional_id)
        if metadata is None or metadata.producer_id != markers.producer_id:
            return ErrorCode.invalid_producer_id_mapping
        if metadata.producer_epoch != markers.producer_epoch:
            return ErrorCode.producer_fenced
        if metadata.state not in _COMPLETION_OF or metadata.pending_state is not _COMPLETION_OF[metadata.state]:
            return ErrorCode.invalid_txn_state
        if _RESULT_OF[metadata.state] is not markers.result:
            return ErrorCode.invalid_txn_state
        transit = metadata.prepare_complete(now_ms)
        record = transaction_record(metadata.transactional_id, transit.to_value(), self.config.log_value_version)
        error = self._write(metadata.transactional_id, [record])
        if error is ErrorCode.none:
            metadata.complete_transition(transit)
        return error

    # ==================================================================================
    # time
    # ==================================================================================

    def tick(self, now_ms: int) -> list[TxnMarkers]:
        """Run what is due: the abort of timed-out transactions (every
        ``transaction.abort.timed.out.transaction.cleanup.interval.ms``) and the removal of
        expired transactional ids (every
        ``transaction.remove.expired.transaction.cleanup.interval.ms``). Returns the
        markers of the aborts."""
        markers: list[TxnMarkers] = []
        if self._next_abort_check_ms is None or now_ms >= self._next_abort_check_ms:
            self._next_abort_check_ms = now_ms + self.config.abort_timed_out_transactions_interval_ms
            markers = self.abort_timed_out_transactions(now_ms)
        if self._next_expiry_check_ms is None or now_ms >= self._next_expiry_check_ms:
            self._next_expiry_check_ms = now_ms + self.config.remove_expired_transactional_ids_interval_ms
            self.expire_transactional_ids(now_ms)
        return markers

    def abort_timed_out_transactions(self, now_ms: int) -> list[TxnMarkers]:
        """Abort every Ongoing transaction open longer than its timeout: the producer's
        epoch is bumped (fencing it: its next request gets PRODUCER_FENCED) and
        PrepareAbort written; returns the ABORT markers to write."""
        markers = []
        for loaded in self._partitions.values():
            for metadata in list(loaded.transactions.values()):
                if metadata.pending_transition_in_progress or metadata.state is not ONGOING:
                    continue
                if metadata.current.txn_start_timestamp + metadata.current.txn_timeout_ms >= now_ms:
                    continue
                log.info("transactional id %s: transaction timed out, aborting", metadata.transactional_id)
                transit = metadata.prepare_fence_producer_epoch_and_abort(now_ms)
                if self._transition(metadata, transit) is not ErrorCode.none:
                    continue  # tried again at the next check
                metadata.pending_state = COMPLETE_ABORT
                markers.append(self._markers(metadata, loaded.coordinator_epoch))
        return markers

    def expire_transactional_ids(self, now_ms: int) -> list[str]:
        """Remove the transactional ids with no open transaction and no update for
        ``transactional.id.expiration.ms``: one tombstone each, one append per partition.
        Returns the ids removed."""
        removed: list[str] = []
        horizon = now_ms - self.config.transactional_id_expiration_ms
        for loaded in self._partitions.values():
            expired = [
                m for m in loaded.transactions.values()
                if not m.pending_transition_in_progress and m.state.expiration_allowed
                and m.current.txn_last_update_timestamp <= horizon
            ]
            if not expired:
                continue
            for m in expired:
                m.prepare_dead()  # checks the table
            records = [transaction_record(m.transactional_id, None) for m in expired]
            if self._write(expired[0].transactional_id, records) is not ErrorCode.none:
                continue
            for m in expired:
                m.current = m.prepare_dead()
                del loaded.transactions[m.transactional_id]
                removed.append(m.transactional_id)
        if removed:
            log.info("expired transactional ids %s", removed)
        return removed

    # ==================================================================================
    # DescribeTransactions, ListTransactions
    # ==================================================================================

    def describe_transaction(self, transactional_id: str) -> TransactionDescription:
        if not transactional_id:
            return TransactionDescription(transactional_id, ErrorCode.invalid_request)
        error, loaded = self._lookup(transactional_id)
        if loaded is None:
            return TransactionDescription(transactional_id, error)
        metadata = loaded.transactions.get(transactional_id)
        if metadata is None or metadata.state is DEAD:
            return TransactionDescription(transactional_id, ErrorCode.transactional_id_not_found)
        return TransactionDescription(
            transactional_id,
            ErrorCode.none,
            state=metadata.state.value,
            producer_id=metadata.producer_id,
            producer_epoch=metadata.producer_epoch,
            transaction_timeout_ms=metadata.current.txn_timeout_ms,
            transaction_start_time_ms=metadata.current.txn_start_timestamp,
            partitions=metadata.topic_partitions,
        )

    def list_transactions(
        self,
        state_filters: Iterable[str] = (),
        producer_id_filters: Iterable[int] = (),
        duration_filter_ms: int = -1,
        now_ms: int = 0,
    ) -> tuple[list[tuple[str, int, str]], list[str]]:
        """(transactional id, producer id, state name) of the loaded ids that pass the
        filters, and the state filters that name no state (Kafka's ``unknownStateFilters``)."""
        names = list(state_filters)
        states: set[TransactionState] = set()
        unknown: list[str] = []
        for name in names:
            state = parse_state(name)
            if state is None:
                unknown.append(name)
            else:
                states.add(state)
        producer_ids = set(producer_id_filters)
        out = []
        for loaded in self._partitions.values():
            for m in loaded.transactions.values():
                if m.state is DEAD:
                    continue
                if producer_ids and m.producer_id not in producer_ids:
                    continue
                if names and m.state not in states:
                    continue
                if duration_filter_ms >= 0 and now_ms - m.current.txn_start_timestamp <= duration_filter_ms:
                    continue
                out.append((m.transactional_id, m.producer_id, m.state.value))
        return out, unknown

"""One transactional id's state (Kafka's ``TransactionMetadata``) and the transitions
the coordinator may prepare on it (``TxnTransitMetadata``).

A transition is prepared from the current state (``prepare_*``), written to
``__transaction_state`` as the record of :meth:`TxnTransitMetadata.to_value`, and only
then applied with :meth:`TransactionMetadata.complete_transition`, which replaces every
field by the transition's: the same thing :meth:`TransactionMetadata.from_value` does when
a partition is replayed. Replay therefore rebuilds what the live coordinator held, with
one exception that is Kafka's too: ``last_producer_epoch`` (the epoch before the last
InitProducerId bump, for KIP-360 retries) has no field in the record and loads as -1.

``pending_state`` is in memory only: the state a transaction is on its way to while
something outside must happen first. Here that is CompleteCommit/CompleteAbort while the
markers of a PrepareCommit/PrepareAbort are written (Kafka sets it at the same point).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from moldau.transactions.records import (
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    TransactionLogValue,
    group_partitions,
)
from moldau.transactions.state import (
    COMPLETE_ABORT,
    COMPLETE_COMMIT,
    DEAD,
    EMPTY,
    ONGOING,
    PREPARE_ABORT,
    PREPARE_COMMIT,
    PREPARE_EPOCH_FENCE,
    TransactionState,
    check_transition,
)

TopicPartition = tuple[str, int]

MAX_PRODUCER_EPOCH = 2**15 - 1  # Short.MaxValue


def is_epoch_exhausted(producer_epoch: int) -> bool:
    """Kafka's ``isEpochExhausted``: a producer never gets Short.MaxValue, so that the
    coordinator can always bump once more to fence it."""
    return producer_epoch >= MAX_PRODUCER_EPOCH - 1


@dataclass(frozen=True)
class TxnTransitMetadata:
    """A transactional id's state after a transition: a record's content plus
    ``last_producer_epoch``."""

    producer_id: int
    previous_producer_id: int
    next_producer_id: int
    producer_epoch: int
    last_producer_epoch: int
    txn_timeout_ms: int
    state: TransactionState
    topic_partitions: frozenset[TopicPartition]
    txn_start_timestamp: int
    txn_last_update_timestamp: int

    def to_value(self) -> TransactionLogValue:
        if self.state in (DEAD, PREPARE_EPOCH_FENCE):
            raise ValueError(f"{self.state} is never written to __transaction_state")
        return TransactionLogValue(
            producer_id=self.producer_id,
            producer_epoch=self.producer_epoch,
            transaction_timeout_ms=self.txn_timeout_ms,
            transaction_status=self.state,
            transaction_partitions=None if self.state is EMPTY else group_partitions(self.topic_partitions),
            transaction_last_update_timestamp_ms=self.txn_last_update_timestamp,
            transaction_start_timestamp_ms=self.txn_start_timestamp,
            previous_producer_id=self.previous_producer_id,
            next_producer_id=self.next_producer_id,
        )

    @staticmethod
    def from_value(value: TransactionLogValue) -> TxnTransitMetadata:
        return TxnTransitMetadata(
            producer_id=value.producer_id,
            previous_producer_id=value.previous_producer_id,
            next_producer_id=value.next_producer_id,
            producer_epoch=value.producer_epoch,
            last_producer_epoch=NO_PRODUCER_EPOCH,
            txn_timeout_ms=value.transaction_timeout_ms,
            state=value.transaction_status,
            topic_partitions=value.partitions(),
            txn_start_timestamp=value.transaction_start_timestamp_ms,
            txn_last_update_timestamp=value.transaction_last_update_timestamp_ms,
        )


class TransactionMetadata:
    """The coordinator's view of one transactional id. Mutated only by
    :meth:`complete_transition` (after the record is written) and ``pending_state``."""

    def __init__(self, transactional_id: str, current: TxnTransitMetadata) -> None:
        self.transactional_id = transactional_id
        self.current = current
        self.pending_state: TransactionState | None = None

    @staticmethod
    def new(transactional_id: str, producer_id: int, txn_timeout_ms: int, now_ms: int) -> TransactionMetadata:
        """A transactional id seen for the first time: Empty, no epoch yet (the first
        InitProducerId bumps it to 0). Not written until that bump."""
        return TransactionMetadata(
            transactional_id,
            TxnTransitMetadata(
                producer_id=producer_id,
                previous_producer_id=NO_PRODUCER_ID,
                next_producer_id=NO_PRODUCER_ID,
                producer_epoch=NO_PRODUCER_EPOCH,
                last_producer_epoch=NO_PRODUCER_EPOCH,
                txn_timeout_ms=txn_timeout_ms,
                state=EMPTY,
                topic_partitions=frozenset(),
                txn_start_timestamp=-1,
                txn_last_update_timestamp=now_ms,
            ),
        )

    @staticmethod
    def from_value(transactional_id: str, value: TransactionLogValue) -> TransactionMetadata:
        """The state a record says (loading a partition)."""
        return TransactionMetadata(transactional_id, TxnTransitMetadata.from_value(value))

    # --- reading ------------------------------------------------------------------------

    @property
    def state(self) -> TransactionState:
        return self.current.state

    @property
    def producer_id(self) -> int:
        return self.current.producer_id

    @property
    def producer_epoch(self) -> int:
        return self.current.producer_epoch

    @property
    def topic_partitions(self) -> frozenset[TopicPartition]:
        return self.current.topic_partitions

    @property
    def pending_transition_in_progress(self) -> bool:
        return self.pending_state is not None

    @property
    def is_producer_epoch_exhausted(self) -> bool:
        return is_epoch_exhausted(self.current.producer_epoch)

    def __repr__(self) -> str:
        return f"TransactionMetadata({self.transactional_id!r}, {self.current}, pending={self.pending_state})"

    # --- preparing transitions (nothing changes here) ------------------------------------

    def _to(self, state: TransactionState, now_ms: int, **changes: object) -> TxnTransitMetadata:
        check_transition(self.transactional_id, self.current.state, state)
        return replace(self.current, state=state, txn_last_update_timestamp=now_ms, **changes)  # type: ignore[arg-type]

    def prepare_increment_producer_epoch(
        self, txn_timeout_ms: int, expected_producer_epoch: int | None, now_ms: int
    ) -> TxnTransitMetadata | None:
        """InitProducerId on an id with no open transaction: Empty with the next epoch.

        Without an expected epoch (a new producer instance): epoch + 1, no last epoch.
        With one (KIP-360, a producer recovering): epoch + 1 when it matches the current
        epoch (or there is none yet), remembering the current as the last; the same epoch
        again when it matches the last one (a retry of a bump whose answer was lost);
        None otherwise: the producer is fenced.
        """
        epoch = self.current.producer_epoch
        last = self.current.last_producer_epoch
        if expected_producer_epoch is None:
            new_epoch, new_last = epoch + 1, NO_PRODUCER_EPOCH
        elif epoch == NO_PRODUCER_EPOCH or expected_producer_epoch == epoch:
            new_epoch, new_last = epoch + 1, epoch
        elif expected_producer_epoch == last:
            new_epoch, new_last = epoch, last
        else:
            return None
        if new_epoch != epoch and self.is_producer_epoch_exhausted:
            # The coordinator rotates the producer id instead (Kafka checks before deciding,
            # so its retry of a bump to the last usable epoch fails with an internal error).
            raise RuntimeError(f"no producer epoch left for producer id {self.producer_id}")
        return self._to(
            EMPTY,
            now_ms,
            producer_epoch=new_epoch,
            last_producer_epoch=new_last,
            previous_producer_id=self.current.producer_id,
            next_producer_id=NO_PRODUCER_ID,
            txn_timeout_ms=txn_timeout_ms,
            topic_partitions=frozenset(),
            txn_start_timestamp=-1,
        )

    def prepare_producer_id_rotation(
        self, new_producer_id: int, txn_timeout_ms: int, now_ms: int, record_last_epoch: bool
    ) -> TxnTransitMetadata:
        """InitProducerId when the epoch is exhausted: a new producer id at epoch 0."""
        if new_producer_id < 0:
            raise ValueError(f"illegal new producer id {new_producer_id}")
        return self._to(
            EMPTY,
            now_ms,
            producer_id=new_producer_id,
            previous_producer_id=self.current.producer_id,
            next_producer_id=NO_PRODUCER_ID,
            producer_epoch=0,
            last_producer_epoch=self.current.producer_epoch if record_last_epoch else NO_PRODUCER_EPOCH,
            txn_timeout_ms=txn_timeout_ms,
            topic_partitions=frozenset(),
            txn_start_timestamp=-1,
        )

    def prepare_add_partitions(self, partitions: frozenset[TopicPartition], now_ms: int) -> TxnTransitMetadata:
        """Ongoing with more partitions; a transaction starts (its start timestamp is set)
        when the first partitions are added after Empty/CompleteCommit/CompleteAbort."""
        starts = self.current.state in (EMPTY, COMPLETE_COMMIT, COMPLETE_ABORT)
        return self._to(
            ONGOING,
            now_ms,
            topic_partitions=self.current.topic_partitions | partitions,
            txn_start_timestamp=now_ms if starts else self.current.txn_start_timestamp,
        )

    def prepare_abort_or_commit(self, state: TransactionState, now_ms: int) -> TxnTransitMetadata:
        """PrepareCommit or PrepareAbort, same epoch (transaction version 0/1)."""
        if state not in (PREPARE_COMMIT, PREPARE_ABORT):
            raise ValueError(f"{state} is not PrepareCommit or PrepareAbort")
        return self._to(state, now_ms)

    def prepare_fence_producer_epoch_and_abort(self, now_ms: int) -> TxnTransitMetadata:
        """Fence the producer of an Ongoing transaction and abort it (a new producer
        instance called InitProducerId, or the transaction timed out): PrepareAbort with the
        epoch bumped, through PrepareEpochFence (which is never written)."""
        if self.current.producer_epoch == MAX_PRODUCER_EPOCH:
            raise RuntimeError("cannot fence a producer at epoch Short.MaxValue")
        check_transition(self.transactional_id, self.current.state, PREPARE_EPOCH_FENCE)
        check_transition(self.transactional_id, PREPARE_EPOCH_FENCE, PREPARE_ABORT)
        return replace(
            self.current,
            state=PREPARE_ABORT,
            producer_epoch=self.current.producer_epoch + 1,
            last_producer_epoch=NO_PRODUCER_EPOCH,
            txn_last_update_timestamp=now_ms,
        )

    def prepare_complete(self, now_ms: int) -> TxnTransitMetadata:
        """CompleteCommit/CompleteAbort once every marker is written: no partitions left."""
        target = COMPLETE_COMMIT if self.current.state is PREPARE_COMMIT else COMPLETE_ABORT
        return self._to(
            target,
            now_ms,
            topic_partitions=frozenset(),
            next_producer_id=NO_PRODUCER_ID,
        )

    def prepare_dead(self) -> TxnTransitMetadata:
        """Dead: the id expired; what is written is a tombstone, not this state."""
        check_transition(self.transactional_id, self.current.state, DEAD)
        return replace(self.current, state=DEAD, topic_partitions=frozenset())

    # --- applying -----------------------------------------------------------------------

    def complete_transition(self, transit: TxnTransitMetadata) -> None:
        """Apply a transition whose record was written. Replaces every field, as replay
        does."""
        check_transition(self.transactional_id, self.current.state, transit.state)
        self.current = transit
        self.pending_state = None

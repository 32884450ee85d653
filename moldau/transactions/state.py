"""A transactional id's state machine: its states and THE table of allowed transitions.

Everything that decides whether a transaction may move from one state to another lives
here (Kafka: ``TransactionState``). The coordinator changes a transaction's state only
through :func:`check_transition`, so an illegal move is a bug that raises.

The id of each state is the byte Kafka writes as ``TransactionStatus`` in
``__transaction_state``; the name is what DescribeTransactions/ListTransactions show.

=================  ==  ==========================================  =======================================
state              id  what happens in it                          entered from (and why)
=================  ==  ==========================================  =======================================
Empty               0  no transaction open; InitProducerId bumps   Empty, CompleteCommit, CompleteAbort
                       the epoch; the id may expire                (InitProducerId)
Ongoing             1  partitions are being added                  Ongoing, Empty, CompleteCommit,
                                                                   CompleteAbort (AddPartitions/AddOffsets)
PrepareCommit       2  decided to commit; markers being written    Ongoing (EndTxn commit)
PrepareAbort        3  decided to abort; markers being written     Ongoing (EndTxn abort, timeout abort),
                                                                   PrepareEpochFence (InitProducerId fencing
                                                                   an ongoing transaction)
CompleteCommit      4  all COMMIT markers written; may expire      PrepareCommit
CompleteAbort       5  all ABORT markers written; may expire       PrepareAbort
Dead                6  the id is being removed (tombstone)         Empty, CompleteCommit, CompleteAbort
PrepareEpochFence   7  bumping the epoch to fence a producer       Ongoing
                       (in memory only: never written)
=================  ==  ==========================================  =======================================

This is the table of Kafka 3.x (transaction version 0/1). Transaction version 2
(KIP-890 part 2) also lets Empty, CompleteCommit and CompleteAbort go to PrepareAbort;
Moldau does not implement TV2 yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum


class TransactionState(Enum):
    """A transaction's state; ``id`` is Kafka's status byte, ``value`` its name."""

    EMPTY = "Empty"
    ONGOING = "Ongoing"
    PREPARE_COMMIT = "PrepareCommit"
    PREPARE_ABORT = "PrepareAbort"
    COMPLETE_COMMIT = "CompleteCommit"
    COMPLETE_ABORT = "CompleteAbort"
    DEAD = "Dead"
    PREPARE_EPOCH_FENCE = "PrepareEpochFence"

    def __str__(self) -> str:
        return self.value

    @property
    def id(self) -> int:
        """The ``TransactionStatus`` byte of ``__transaction_state``."""
        return _IDS[self]

    @property
    def expiration_allowed(self) -> bool:
        """Whether a transactional id in this state may expire
        (``transactional.id.expiration.ms``)."""
        return self in (EMPTY, COMPLETE_COMMIT, COMPLETE_ABORT)

    @staticmethod
    def from_id(status: int) -> TransactionState:
        """The state of a status byte; ValueError for an unknown one (Kafka refuses it)."""
        try:
            return _BY_ID[status]
        except KeyError:
            raise ValueError(f"unknown transaction state id {status}") from None


EMPTY = TransactionState.EMPTY
ONGOING = TransactionState.ONGOING
PREPARE_COMMIT = TransactionState.PREPARE_COMMIT
PREPARE_ABORT = TransactionState.PREPARE_ABORT
COMPLETE_COMMIT = TransactionState.COMPLETE_COMMIT
COMPLETE_ABORT = TransactionState.COMPLETE_ABORT
DEAD = TransactionState.DEAD
PREPARE_EPOCH_FENCE = TransactionState.PREPARE_EPOCH_FENCE

_IDS: Mapping[TransactionState, int] = {
    EMPTY: 0,
    ONGOING: 1,
    PREPARE_COMMIT: 2,
    PREPARE_ABORT: 3,
    COMPLETE_COMMIT: 4,
    COMPLETE_ABORT: 5,
    DEAD: 6,
    PREPARE_EPOCH_FENCE: 7,
}
_BY_ID: Mapping[int, TransactionState] = {i: s for s, i in _IDS.items()}

VALID_PREVIOUS_STATES: Mapping[TransactionState, frozenset[TransactionState]] = {
    EMPTY: frozenset({EMPTY, COMPLETE_COMMIT, COMPLETE_ABORT}),
    ONGOING: frozenset({ONGOING, EMPTY, COMPLETE_COMMIT, COMPLETE_ABORT}),
    PREPARE_COMMIT: frozenset({ONGOING}),
    PREPARE_ABORT: frozenset({ONGOING, PREPARE_EPOCH_FENCE}),
    COMPLETE_COMMIT: frozenset({PREPARE_COMMIT}),
    COMPLETE_ABORT: frozenset({PREPARE_ABORT}),
    DEAD: frozenset({EMPTY, COMPLETE_COMMIT, COMPLETE_ABORT}),
    PREPARE_EPOCH_FENCE: frozenset({ONGOING}),
}
"""For each state, the states a transaction may enter it from (Kafka's ``validPreviousStates``)."""


class IllegalStateTransition(RuntimeError):
    """A transition the table does not allow: a coordinator bug."""

    def __init__(self, transactional_id: str, current: TransactionState, target: TransactionState) -> None:
        super().__init__(f"transactional id {transactional_id!r}: illegal transition {current} -> {target}")
        self.current = current
        self.target = target


def can_transition(current: TransactionState, target: TransactionState) -> bool:
    return current in VALID_PREVIOUS_STATES[target]


def check_transition(transactional_id: str, current: TransactionState, target: TransactionState) -> None:
    """Raise :class:`IllegalStateTransition` unless ``current -> target`` is in the table."""
    if not can_transition(current, target):
        raise IllegalStateTransition(transactional_id, current, target)


def parse_state(name: str) -> TransactionState | None:
    """A state from its Kafka name (ListTransactions' state filter is case-sensitive in
    Kafka: ``TransactionState.fromName``)."""
    for state in TransactionState:
        if state.value == name:
            return state
    return None

"""Transactions (KIP-98): the transaction coordinator's state machine, the records of
``__transaction_state``, and the COMMIT/ABORT control batches written to data
partitions. Pure logic: no sockets, no files, no clock; see
:mod:`moldau.transactions.coordinator`."""

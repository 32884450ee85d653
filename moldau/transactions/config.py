"""The transaction coordinator's settings, with the defaults of Kafka's broker properties."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TransactionConfig:
    """Coordinator settings; each field names the Kafka property it stands for.

    ``log_value_version`` has no property of its own: Kafka writes TransactionLogValue v0
    while the ``transaction.version`` feature is 0 and v1 (flexible, with the previous
    producer id as a tagged field) from 1 on. Moldau writes v1 by default so that the
    previous producer id survives a coordinator failover (KIP-360 retries).
    """

    transactional_id_expiration_ms: int = 7 * 24 * 3600 * 1000  # transactional.id.expiration.ms
    transaction_max_timeout_ms: int = 900000  # transaction.max.timeout.ms
    transaction_log_partitions: int = 50  # transaction.state.log.num.partitions
    # transaction.abort.timed.out.transaction.cleanup.interval.ms
    abort_timed_out_transactions_interval_ms: int = 10000
    # transaction.remove.expired.transaction.cleanup.interval.ms
    remove_expired_transactional_ids_interval_ms: int = 3600000
    offsets_topic_partitions: int = 50  # offsets.topic.num.partitions (AddOffsetsToTxn's group partition)
    log_value_version: int = 1
    transaction_log_replication_factor: int = 3  # transaction.state.log.replication.factor
    transaction_log_min_isr: int = 2  # transaction.state.log.min.isr
    transaction_log_segment_bytes: int = 104857600  # transaction.state.log.segment.bytes

    def topic_configs(self) -> dict[str, str]:
        """The topic configs ``__transaction_state`` is created with (Kafka's
        ``transactionTopicConfigs``): compacted, uncompressed, no unclean election."""
        return {
            "cleanup.policy": "compact",
            "compression.type": "uncompressed",
            "unclean.leader.election.enable": "false",
            "min.insync.replicas": str(self.transaction_log_min_isr),
            "segment.bytes": str(self.transaction_log_segment_bytes),
        }

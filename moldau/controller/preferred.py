"""Which partitions the automatic leader rebalance should move back to their preferred
replica (``auto.leader.rebalance.enable``, ``leader.imbalance.per.broker.percentage``).

Kafka's ``KafkaController.checkAndTriggerAutoLeaderRebalance``, as a pure function: the
controller calls it every ``leader.imbalance.check.interval.seconds`` and runs
:func:`moldau.controller.election.preferred_election` on what it returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from moldau.controller.coordination import LeaderAndIsr

__all__ = ["TopicPartition", "imbalanced_partitions"]

TopicPartition = tuple[str, int]


def imbalanced_partitions(
    assignments: Mapping[TopicPartition, Sequence[int]],
    states: Mapping[TopicPartition, LeaderAndIsr],
    live: set[int],
    imbalance_percentage: int = 10,
) -> dict[int, list[TopicPartition]]:
    """Per preferred broker, the partitions a preferred-leader election should move to it.

    For every broker that is the preferred replica (first of the assignment) of some
    partitions: the *imbalance ratio* is the share of those partitions that have a state
    and are not led by it. When the ratio is above ``imbalance_percentage`` %, the
    partitions not led by it whose preferred replica can lead (live and in the ISR) are
    returned, sorted; brokers with nothing to move are left out.

    Partitions without a state (not created yet) count in the denominator only, as in
    Kafka. Leave topics queued for deletion out of ``assignments``.
    """
    by_preferred: dict[int, list[TopicPartition]] = {}
    for tp, replicas in assignments.items():
        if replicas:
            by_preferred.setdefault(replicas[0], []).append(tp)

    result: dict[int, list[TopicPartition]] = {}
    for broker, partitions in by_preferred.items():
        not_preferred = [tp for tp in partitions if tp in states and states[tp].leader != broker]
        # ratio > percentage / 100, in integers
        if len(not_preferred) * 100 <= imbalance_percentage * len(partitions):
            continue
        if broker not in live:
            continue
        candidates = sorted(tp for tp in not_preferred if broker in states[tp].isr)
        if candidates:
            result[broker] = candidates
    return result

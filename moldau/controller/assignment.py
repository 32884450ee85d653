"""Replica assignment for new topics and new partitions (pure: no I/O).

Kafka's algorithm (``AdminUtils.assignReplicasToBrokers``), so a Moldau cluster spreads
replicas the way a Kafka cluster with the same brokers would:

* rack-unaware (no broker has a rack): the first replica of partition ``p`` goes to broker
  ``(p + start_index) % n`` of the id-sorted broker list (round robin from a random
  position); the other replicas follow it with a shift that grows by one every ``n``
  partitions, so partitions led by one broker spread their followers over the others;
* rack-aware (every broker has a rack): the same round robin over a *rack-alternated*
  broker list (one broker of each rack in turn), and followers skip brokers whose rack
  already holds a replica until every rack has one;
* some brokers with a rack and some without: an error, as in Kafka.

Randomness: Kafka draws the start index and the shift at random. Here they are
parameters (``fixed_start_index``, ``start_shift``) so tests and callers can be
deterministic; when they are ``None`` they are drawn from ``rng`` (a fresh
``random.Random()`` when none is given).

The errors carry Kafka's error code (``error_code``) so the request handlers can answer
CreateTopics/CreatePartitions directly, and messages worded like Kafka's.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import ClassVar

from kio.schema.errors import ErrorCode

__all__ = [
    "AssignmentError",
    "BrokerNotAvailable",
    "IncompleteRackInfo",
    "InvalidPartitions",
    "InvalidReplicaAssignment",
    "InvalidReplicationFactor",
    "add_partitions_assignment",
    "assign_replicas",
    "rack_alternated_brokers",
    "validate_assignment",
]


class AssignmentError(Exception):
    """A topic's partitions cannot be assigned as asked. ``error_code`` is Kafka's answer."""

    error_code: ClassVar[ErrorCode] = ErrorCode.unknown_server_error


class InvalidPartitions(AssignmentError):
    """Kafka's ``InvalidPartitionsException`` (INVALID_PARTITIONS)."""

    error_code = ErrorCode.invalid_partitions


class InvalidReplicationFactor(AssignmentError):
    """Kafka's ``InvalidReplicationFactorException`` (INVALID_REPLICATION_FACTOR)."""

    error_code = ErrorCode.invalid_replication_factor


class InvalidReplicaAssignment(AssignmentError):
    """Kafka's ``InvalidReplicaAssignmentException`` (INVALID_REPLICA_ASSIGNMENT)."""

    error_code = ErrorCode.invalid_replica_assignment


class IncompleteRackInfo(InvalidReplicaAssignment):
    """Some brokers have a rack and some do not (Kafka: ``AdminOperationException``, which
    Kafka answers as UNKNOWN_SERVER_ERROR; we answer INVALID_REPLICA_ASSIGNMENT)."""


class PolicyViolation(AssignmentError):
    """Kafka's ``PolicyViolationException`` (POLICY_VIOLATION)."""

    error_code = ErrorCode.policy_violation


# The most partitions one CreateTopics or CreatePartitions request may create (its topics
# together). Kafka's controller refuses an operation of more than 10,000 records
# (QuorumController.MAX_RECORDS_PER_USER_OP) with POLICY_VIOLATION, and since KAFKA-17870
# checks the partition count before placing any replica: an absurd count (a fuzzed
# 6,142,254) is refused before anything is allocated per partition.
MAX_PARTITIONS_PER_REQUEST = 10_000


def check_partitions_per_request(count: int) -> None:
    """PolicyViolation if one request would create more than MAX_PARTITIONS_PER_REQUEST."""
    if count > MAX_PARTITIONS_PER_REQUEST:
        raise PolicyViolation(
            f"Unable to perform excessively large batch operation: {count} partitions in one request, "
            f"more than the {MAX_PARTITIONS_PER_REQUEST} allowed.")


class BrokerNotAvailable(AssignmentError):
    """Kafka's ``BrokerNotAvailableException`` (BROKER_NOT_AVAILABLE)."""

    error_code = ErrorCode.broker_not_available


# --------------------------------------------------------------------------------------
# automatic assignment
# --------------------------------------------------------------------------------------


def assign_replicas(
    n_partitions: int,
    replication_factor: int,
    brokers: Mapping[int, str | None],
    *,
    start_partition: int = 0,
    fixed_start_index: int | None = None,
    start_shift: int | None = None,
    rng: random.Random | None = None,
) -> dict[int, list[int]]:
    """Assign ``n_partitions`` partitions, numbered from ``start_partition``, to ``brokers``
    (broker id -> rack or None). Returns partition -> replicas, preferred leader first.

    ``fixed_start_index`` is the position (in the broker list: id-sorted, or
    rack-alternated when rack-aware) of partition 0's first replica; ``start_shift`` the
    initial follower shift. Kafka uses one fixed value for both, so ``start_shift``
    defaults to ``fixed_start_index``; when both are None, both are random.

    Raises InvalidPartitions (``n_partitions`` < 1), InvalidReplicationFactor (< 1 or more
    than the brokers), IncompleteRackInfo (only some brokers have a rack).
    """
    if n_partitions <= 0:
        raise InvalidPartitions("Number of partitions must be larger than 0.")
    if replication_factor <= 0:
        raise InvalidReplicationFactor("Replication factor must be larger than 0.")
    if replication_factor > len(brokers):
        raise InvalidReplicationFactor(
            f"Replication factor: {replication_factor} larger than available brokers: {len(brokers)}."
        )
    if fixed_start_index is not None and fixed_start_index < 0:
        raise ValueError(f"fixed_start_index must be >= 0, got {fixed_start_index}")
    if start_shift is not None and start_shift < 0:
        raise ValueError(f"start_shift must be >= 0, got {start_shift}")

    racks = {broker: rack for broker, rack in brokers.items() if rack is not None}
    if not racks:
        broker_list = sorted(brokers)
        rack_of: dict[int, str] | None = None
    elif len(racks) != len(brokers):
        raise IncompleteRackInfo("Not all brokers have rack information for replica rack aware assignment.")
    else:
        broker_list = rack_alternated_brokers(racks)
        rack_of = racks

    n = len(broker_list)
    # Kafka draws the start index first, then the shift.
    draw = rng if rng is not None else random.Random()
    start_index = fixed_start_index if fixed_start_index is not None else draw.randrange(n)
    if start_shift is not None:
        shift = start_shift
    elif fixed_start_index is not None:
        shift = fixed_start_index
    else:
        shift = draw.randrange(n)

    if rack_of is None:
        return _assign_rack_unaware(n_partitions, replication_factor, broker_list, start_index, shift, start_partition)
    return _assign_rack_aware(
        n_partitions, replication_factor, broker_list, rack_of, start_index, shift, start_partition
    )


def _replica_index(first_replica_index: int, shift: int, replica_index: int, n_brokers: int) -> int:
    """Kafka's ``AdminUtils.replicaIndex``: the follower position, never the leader's."""
    offset = 1 + (shift + replica_index) % (n_brokers - 1)
    return (first_replica_index + offset) % n_brokers


def _assign_rack_unaware(
    n_partitions: int,
    replication_factor: int,
    broker_list: Sequence[int],
    start_index: int,
    shift: int,
    start_partition: int,
) -> dict[int, list[int]]:
    n = len(broker_list)
    result: dict[int, list[int]] = {}
    partition = max(0, start_partition)
    for _ in range(n_partitions):
        if partition > 0 and partition % n == 0:
            shift += 1
        first = (partition + start_index) % n
        replicas = [broker_list[first]]
        replicas.extend(broker_list[_replica_index(first, shift, j, n)] for j in range(replication_factor - 1))
        result[partition] = replicas
        partition += 1
    return result


def _assign_rack_aware(
    n_partitions: int,
    replication_factor: int,
    broker_list: Sequence[int],
    rack_of: Mapping[int, str],
    start_index: int,
    shift: int,
    start_partition: int,
) -> dict[int, list[int]]:
    n = len(broker_list)
    n_racks = len(set(rack_of.values()))
    result: dict[int, list[int]] = {}
    partition = max(0, start_partition)
    for _ in range(n_partitions):
        if partition > 0 and partition % n == 0:
            shift += 1
        first = (partition + start_index) % n
        leader = broker_list[first]
        replicas = [leader]
        racks_used = {rack_of[leader]}
        brokers_used = {leader}
        k = 0
        for _ in range(replication_factor - 1):
            while True:
                broker = broker_list[_replica_index(first, shift * n_racks, k, n)]
                rack = rack_of[broker]
                k += 1
                # Skip a broker whose rack already has a replica while some rack has none,
                # and a broker that already has a replica while some broker has none.
                rack_ok = rack not in racks_used or len(racks_used) == n_racks
                broker_ok = broker not in brokers_used or len(brokers_used) == n
                if rack_ok and broker_ok:
                    replicas.append(broker)
                    racks_used.add(rack)
                    brokers_used.add(broker)
                    break
        result[partition] = replicas
        partition += 1
    return result


def rack_alternated_brokers(racks: Mapping[int, str]) -> list[int]:
    """Brokers ordered one rack at a time (racks sorted by name, brokers by id within a
    rack): racks ``a: 0 1 2``, ``b: 3 4 5`` give ``0 3 1 4 2 5`` (Kafka's
    ``getRackAlternatedBrokerList``)."""
    by_rack: dict[str, list[int]] = {}
    for broker, rack in racks.items():
        by_rack.setdefault(rack, []).append(broker)
    queues = [sorted(by_rack[rack]) for rack in sorted(by_rack)]
    result: list[int] = []
    depth = 0
    while len(result) < len(racks):
        for queue in queues:
            if depth < len(queue):
                result.append(queue[depth])
        depth += 1
    return result


# --------------------------------------------------------------------------------------
# explicit assignments
# --------------------------------------------------------------------------------------


def _check_replica_list(partition: int, replicas: Sequence[int], known_brokers: set[int]) -> None:
    """One partition of a manual assignment: not empty, known brokers, no broker twice
    (the checks and wording of Kafka's ``validateManualPartitionAssignment``)."""
    if not replicas:
        raise InvalidReplicaAssignment(
            f"The manual partition assignment includes an empty replica list (partition {partition})."
        )
    seen: set[int] = set()
    for broker in sorted(replicas):
        if broker not in known_brokers:
            raise InvalidReplicaAssignment(
                f"The manual partition assignment includes broker {broker}, but no such broker is registered."
            )
        if broker in seen:
            raise InvalidReplicaAssignment(
                f"The manual partition assignment includes the broker {broker} more than once."
            )
        seen.add(broker)


def validate_assignment(assignment: Mapping[int, Sequence[int]], live_brokers: set[int]) -> None:
    """Check an explicit CreateTopics assignment (partition -> replicas): partitions are
    0..n-1, every list is non-empty, names only live (registered) brokers, names no broker
    twice, and all lists have the same length. Raises InvalidReplicaAssignment."""
    if not assignment:
        raise InvalidReplicaAssignment("The manual partition assignment has no partitions.")
    replication_factor: int | None = None
    for partition in sorted(assignment):
        replicas = assignment[partition]
        _check_replica_list(partition, replicas, live_brokers)
        if replication_factor is None:
            replication_factor = len(replicas)
        elif len(replicas) != replication_factor:
            raise InvalidReplicaAssignment(
                f"The manual partition assignment includes a partition with {len(replicas)} replica(s), "
                f"but this is not consistent with previous partitions, which have {replication_factor} replica(s)."
            )
    if sorted(assignment) != list(range(len(assignment))):
        raise InvalidReplicaAssignment("partitions should be a consecutive 0-based integer sequence")


def add_partitions_assignment(
    existing: Mapping[int, Sequence[int]],
    new_total: int,
    brokers: Mapping[int, str | None],
    *,
    assignments: Sequence[Sequence[int]] | None = None,
    start_shift: int | None = None,
) -> dict[int, list[int]]:
    """The replicas of the partitions CreatePartitions adds to a topic whose current
    assignment is ``existing``, to reach ``new_total`` partitions. Returns only the new
    partitions (``len(existing)`` .. ``new_total - 1``).

    ``assignments``: the request's explicit replica lists, one per new partition, checked
    like Kafka's. Otherwise the automatic assignment continues where the topic left off,
    as Kafka does: same replication factor as partition 0, partition numbers from
    ``len(existing)``, and the start index is the position of the first broker (by id)
    whose id is >= partition 0's first replica; Kafka uses that index as the shift too,
    ``start_shift`` overrides it.
    """
    if 0 not in existing:
        raise AssignmentError(
            f"Unexpected existing replica assignment, partition id 0 is missing. Assignment: {dict(existing)}"
        )
    partition0 = list(existing[0])
    old_total = len(existing)
    increment = new_total - old_total
    if increment < 0:
        raise InvalidPartitions(
            f"Topic currently has {old_total} partitions, which is higher than the requested {new_total}."
        )
    if increment == 0:
        raise InvalidPartitions(f"Topic already has {old_total} partitions.")

    all_brokers = set(brokers)
    if assignments is not None:
        unknown = sorted({b for replicas in assignments for b in replicas} - all_brokers)
        if unknown:
            raise InvalidReplicaAssignment(f"Unknown broker(s) in replica assignment: {', '.join(map(str, unknown))}.")
        if len(assignments) != increment:
            raise InvalidReplicaAssignment(
                f"Increasing the number of partitions by {increment} but {len(assignments)} assignments provided."
            )
        proposed = {old_total + i: list(replicas) for i, replicas in enumerate(assignments)}
        _validate_new_partitions(proposed, len(partition0), all_brokers)
        return proposed

    if not partition0:
        raise AssignmentError("Unexpected existing replica assignment: partition 0 has no replicas.")
    sorted_ids = sorted(brokers)
    start_index = next((i for i, b in enumerate(sorted_ids) if b >= partition0[0]), 0)
    return assign_replicas(
        increment,
        len(partition0),
        brokers,
        start_partition=old_total,
        fixed_start_index=start_index,
        start_shift=start_shift,
    )


def _validate_new_partitions(
    proposed: Mapping[int, Sequence[int]], expected_replication_factor: int, available: set[int]
) -> None:
    """Kafka's ``AdminZkClient.validateReplicaAssignment`` for CreatePartitions."""
    bad: list[tuple[int, int]] = []
    for partition in sorted(proposed):
        replicas = proposed[partition]
        if not replicas:
            raise InvalidReplicaAssignment(f"Cannot have replication factor of 0 for partition id {partition}.")
        if len(set(replicas)) != len(replicas):
            raise InvalidReplicaAssignment(
                "Duplicate brokers not allowed in replica assignment: "
                f"{', '.join(map(str, replicas))} for partition id {partition}."
            )
        if not set(replicas) <= available:
            raise BrokerNotAvailable(
                f"Some brokers specified for partition id {partition} are not available. "
                f"Specified brokers: {', '.join(map(str, replicas))}, "
                f"available brokers: {', '.join(map(str, sorted(available)))}."
            )
        if len(replicas) != expected_replication_factor:
            bad.append((partition, len(replicas)))
    if bad:
        raise InvalidReplicaAssignment(
            "Inconsistent replication factor between partitions, "
            f"partition 0 has {expected_replication_factor} while partitions "
            f"[{', '.join(str(p) for p, _ in bad)}] have replication factors "
            f"[{', '.join(str(rf) for _, rf in bad)}], respectively."
        )

"""Which replica a consumer should fetch from (KIP-392, Kafka's ReplicaSelector), pure.

A partition's leader decides, for a consumer's Fetch v11+ that names the consumer's rack
(``client.rack``), whether a follower should serve it instead: the answer goes back as
``preferred_read_replica`` and the consumer fetches from that broker until it errs or
its metadata changes.

Kafka's rules (ReplicaManager.findPreferredReadReplica, RackAwareReplicaSelector):

* Only a leader decides, only for consumers, and only with ``replica.selector.class``
  set; without it every consumer reads from the leader.
* Candidates are the leader and the followers that are in the ISR, live, and hold the
  fetch offset (log start <= fetch offset <= log end): a lagging follower is never
  chosen, or a consumer sent there would fall behind the producers for good.
* No client rack, or no candidate in it: the leader. The leader in the client's rack:
  the leader. Otherwise the most caught-up candidate of the rack (largest log end
  offset, then the shortest time since it was last caught up; Moldau breaks a remaining
  tie by the lowest broker id, Kafka arbitrarily).
* When the choice is the leader, the leader serves the fetch itself and answers
  ``preferred_read_replica`` = -1.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from moldau.replication.leader_state import LeaderState

# The one selector Kafka ships (`replica.selector.class`); unset means leader only.
RACK_AWARE_REPLICA_SELECTOR = "org.apache.kafka.common.replica.RackAwareReplicaSelector"
REPLICA_SELECTORS = (RACK_AWARE_REPLICA_SELECTOR,)


@dataclass(frozen=True, slots=True)
class ReplicaView:
    """One candidate replica, as Kafka's ReplicaView shows it to a selector."""

    broker_id: int
    rack: str | None
    log_end_offset: int
    time_since_caught_up_ms: int


def select_rack_aware(client_rack: str | None, leader: ReplicaView, replicas: Collection[ReplicaView]) -> ReplicaView:
    """RackAwareReplicaSelector: the replica (the leader among ``replicas`` or not) a
    client in ``client_rack`` should read from."""
    if not client_rack:
        return leader
    same_rack = [r for r in replicas if r.rack == client_rack]
    if not same_rack or any(r.broker_id == leader.broker_id for r in same_rack):
        return leader
    return max(same_rack, key=lambda r: (r.log_end_offset, -r.time_since_caught_up_ms, -r.broker_id))


def preferred_read_replica(state: LeaderState, leader_log_end_offset: int, fetch_offset: int,
                           client_rack: str | None, live_racks: Mapping[int, str | None], now_ms: int) -> int | None:
    """The follower a consumer in ``client_rack`` fetching from ``fetch_offset`` should
    read from, or None when the leader should serve it. ``live_racks``: the live brokers
    and their ``broker.rack``."""
    leader = ReplicaView(state.local_id, live_racks.get(state.local_id), leader_log_end_offset, 0)
    candidates = [leader]
    for broker_id, follower in state.followers.items():
        if (broker_id in state.isr and broker_id in live_racks
                and follower.log_start_offset <= fetch_offset <= follower.log_end_offset):
            candidates.append(ReplicaView(broker_id, live_racks[broker_id], follower.log_end_offset,
                                          max(now_ms - follower.last_caught_up_ms, 0)))
    chosen = select_rack_aware(client_rack, leader, candidates)
    return None if chosen.broker_id == leader.broker_id else chosen.broker_id

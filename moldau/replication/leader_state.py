"""A leader's view of one partition's followers: follower progress, the high watermark and
the in-sync replica set. Pure: time is passed in, nothing here does I/O.

Kafka's rules (Partition.scala / Replica.scala):

* A follower's log end offset is the fetch offset of its latest Fetch: it asks for what it
  does not have yet, so everything below is on its disk.
* A follower is *caught up* at time T if it fetched at or past the leader's log end
  offset as of its previous fetch; it leaves the ISR when it has not been caught up for
  `replica.lag.time.max.ms`.
* The high watermark is the smallest log end offset among the ISR (leader included); it
  never moves back while one leader serves.
* A follower rejoins the ISR once its log end offset reaches the high watermark (and the
  start of the current leader epoch, so it has truncated to this leader's history).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FollowerState:
    broker_id: int
    log_end_offset: int = -1  # unknown until it fetches
    last_caught_up_ms: int = 0
    last_fetch_ms: int = 0
    leader_leo_at_last_fetch: int = 0
    log_start_offset: int = -1  # as its latest Fetch said (-1: unknown)


@dataclass
class LeaderState:
    topic: str
    partition: int
    local_id: int
    leader_epoch: int
    partition_epoch: int  # the state znode version the ISR was read at (AlterPartition's CAS)
    replicas: list[int]
    isr: set[int]
    high_watermark: int
    leader_epoch_start_offset: int
    lag_time_max_ms: int
    followers: dict[int, FollowerState] = field(default_factory=dict)
    pending_isr: set[int] | None = None  # an AlterPartition in flight (one at a time)

    @classmethod
    def become_leader(
        cls,
        topic: str,
        partition: int,
        local_id: int,
        leader_epoch: int,
        partition_epoch: int,
        replicas: list[int],
        isr: list[int],
        high_watermark: int,
        log_end_offset: int,
        lag_time_max_ms: int,
        now_ms: int,
    ) -> LeaderState:
        """New leadership. Followers are presumed caught up now (Kafka gives every ISR member
        a fresh lag clock when it becomes leader)."""
        state = cls(topic, partition, local_id, leader_epoch, partition_epoch, list(replicas), set(isr),
                    min(high_watermark, log_end_offset), log_end_offset, lag_time_max_ms)
        for b in replicas:
            if b != local_id:
                state.followers[b] = FollowerState(b, -1, now_ms if b in isr else 0, 0, log_end_offset)
        return state

    @property
    def effective_isr(self) -> set[int]:
        """While an ISR change is in flight, the high watermark uses the larger of the two
        sets, as Kafka's maximal ISR does: never advance on a smaller set not yet committed."""
        return self.isr | (self.pending_isr or set())

    def on_follower_fetch(self, follower_id: int, fetch_offset: int, leader_leo: int, now_ms: int,
                          log_start_offset: int = -1) -> None:
        f = self.followers.get(follower_id)
        if f is None:
            return
        f.log_start_offset = log_start_offset
        if fetch_offset >= leader_leo:
            f.last_caught_up_ms = now_ms
        elif fetch_offset >= f.leader_leo_at_last_fetch:
            f.last_caught_up_ms = max(f.last_caught_up_ms, f.last_fetch_ms)
        f.log_end_offset = fetch_offset
        f.leader_leo_at_last_fetch = leader_leo
        f.last_fetch_ms = now_ms

    def maybe_advance_high_watermark(self, leader_leo: int) -> bool:
        """Move the high watermark to the smallest log end offset in the ISR; True if it moved."""
        offsets = [leader_leo]
        for b in self.effective_isr:
            if b == self.local_id:
                continue
            f = self.followers.get(b)
            offsets.append(f.log_end_offset if f is not None else -1)
        new = min(offsets)
        if new > self.high_watermark:
            self.high_watermark = new
            return True
        return False

    def out_of_sync(self, now_ms: int) -> set[int]:
        """ISR followers that have not caught up within replica.lag.time.max.ms."""
        return {
            b for b in self.isr
            if b != self.local_id and now_ms - self.followers[b].last_caught_up_ms > self.lag_time_max_ms
        }

    def ready_to_join(self, now_ms: int) -> set[int]:
        """Followers out of the ISR that are fetching (within replica.lag.time.max.ms) and
        whose log has reached the high watermark and this leader epoch's start. One that
        stopped fetching never rejoins, even with nothing missing: when another follower
        rejoins, it must not come along (Kafka expands the ISR only by the follower that
        fetched)."""
        return {
            b for b, f in self.followers.items()
            if b not in self.isr and b in self.replicas
            and now_ms - f.last_fetch_ms <= self.lag_time_max_ms
            and f.log_end_offset >= self.high_watermark
            and f.log_end_offset >= self.leader_epoch_start_offset
        }

    def proposed_isr(self, now_ms: int) -> set[int] | None:
        """The ISR this leader should ask the controller for, or None if unchanged or a
        change is already in flight."""
        if self.pending_isr is not None:
            return None
        new = (self.isr - self.out_of_sync(now_ms)) | self.ready_to_join(now_ms)
        new.add(self.local_id)
        return new if new != self.isr else None

"""ReplicaManager and Partition with in-memory seams: acks, min.insync.replicas, the ISR,
delayed produce and fetch on a manual clock, the lease, leader epochs, fetch limits."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from moldau.log.config import LogConfig
from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import RecordInput, build_batch, iter_batches
from moldau.replication.replica_manager import (
    FetchParams,
    FetchPartitionRequest,
    FetchResults,
    ProduceResults,
    ReplicaManager,
)
from moldau.replication.seams import LeaderAndIsrState
from tests.unit.replication_fakes import Cluster, ControllerState, FakeController, ManualClock, ManualScheduler

TP = ("t", 0)


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


def make_cluster(tmp_path: Path, replicas: tuple[int, ...] = (0, 1, 2), min_isr: int = 1,
                 lag_ms: int = 10_000) -> Cluster:
    clock = ManualClock()
    controller = FakeController()
    cluster = Cluster(tmp_path, LogConfig(min_insync_replicas=min_isr), clock, ManualScheduler(clock), controller,
                      lag_ms)
    controller.states[TP] = ControllerState(replicas[0], 0, replicas, replicas)
    for b in replicas:
        cluster.start(b)
    cluster.send_leader_and_isr(TP)
    return cluster


def records(n: int = 1, size: int = 10) -> bytes:
    return build_batch([RecordInput(b"x" * size, f"k{i}".encode()) for i in range(n)], timestamp=1)


def produce(rm: ReplicaManager, acks: int, data: bytes, timeout_ms: int = 1000,
            tp: tuple[str, int] = TP) -> list[ProduceResults]:
    out: list[ProduceResults] = []
    rm.append_records(acks, timeout_ms, [(tp, data)], out.append)
    return out


async def replicate(cluster: Cluster, rounds: int = 3, followers: tuple[int, ...] = (1, 2)) -> None:
    for _ in range(rounds):
        for b in followers:
            rm = cluster.brokers.get(b)
            if rm is not None:
                for fetcher in list(rm.fetchers.values()):
                    await fetcher.do_work(cluster.clock() / 1000)
        await asyncio.sleep(0)  # AlterPartition tasks


def test_acks_1_is_answered_at_once_and_acks_all_when_every_isr_member_has_the_batch(tmp_path: Path) -> None:
    async def test() -> None:
        cluster = make_cluster(tmp_path)
        leader = cluster.brokers[0]
        one = produce(leader, 1, records())
        assert one and one[0][TP].error == ErrorCode.none and one[0][TP].base_offset == 0
        everyone = produce(leader, -1, records())
        assert everyone == []  # waiting for the followers
        await replicate(cluster, 1, followers=(1,))
        assert everyone == []  # broker 2 has not fetched yet
        await replicate(cluster)
        assert everyone and everyone[0][TP].error == ErrorCode.none and everyone[0][TP].base_offset == 1
        assert leader.partitions[TP].high_watermark == 2
        for b in (1, 2):  # followers copied the leader's bytes
            assert cluster.brokers[b].logs.get(*TP).read(0, 1 << 20) == leader.logs.get(*TP).read(0, 1 << 20)
    run(test)


def test_acks_all_times_out_on_the_manual_clock(tmp_path: Path) -> None:
    async def test() -> None:
        cluster = make_cluster(tmp_path)
        out = produce(cluster.brokers[0], -1, records(), timeout_ms=500)
        cluster.scheduler.advance(499)
        assert out == []
        cluster.scheduler.advance(1)
        assert out[0][TP].error == ErrorCode.request_timed_out and out[0][TP].base_offset == -1
    run(test)


def test_min_insync_replicas_before_and_after_the_append(tmp_path: Path) -> None:
    async def test() -> None:
        cluster = make_cluster(tmp_path, min_isr=2, lag_ms=1000)
        leader = cluster.brokers[0]
        await replicate(cluster)
        pending = produce(leader, -1, records(), timeout_ms=60_000)
        cluster.clock.now_ms += 2000
        await replicate(cluster, followers=(1,))  # broker 2 stopped fetching
        leader.check_isr(cluster.clock())
        await asyncio.sleep(0)
        assert cluster.controller.states[TP].isr == (0, 1)
        assert pending and pending[0][TP].error == ErrorCode.none
        # Broker 1 falls behind too: the ISR is the leader alone, below min.insync.replicas.
        waiting = produce(leader, -1, records(), timeout_ms=60_000)
        cluster.clock.now_ms += 2000
        leader.check_isr(cluster.clock())
        await asyncio.sleep(0)
        assert cluster.controller.states[TP].isr == (0,)
        assert waiting and waiting[0][TP].error == ErrorCode.not_enough_replicas_after_append
        refused = produce(leader, -1, records())
        assert refused[0][TP].error == ErrorCode.not_enough_replicas
        assert "insufficient to satisfy the min.isr requirement of 2" in (refused[0][TP].message or "")
        assert produce(leader, 1, records())[0][TP].error == ErrorCode.none  # acks=1 is not refused
        # A follower that catches up rejoins the ISR.
        await replicate(cluster, followers=(1,))
        assert cluster.controller.states[TP].isr == (0, 1)
    run(test)


def test_a_consumer_fetch_waits_for_the_high_watermark(tmp_path: Path) -> None:
    async def test() -> None:
        cluster = make_cluster(tmp_path, replicas=(0, 1))
        leader = cluster.brokers[0]
        out: list[FetchResults] = []
        params = FetchParams(-1, 500, 1, 1 << 20, ((TP, FetchPartitionRequest(0, 1 << 20)),))
        leader.fetch_records(params, out.append)
        assert out == []
        produce(leader, 1, records())
        assert out == []  # appended, but not committed: consumers read below the high watermark
        await replicate(cluster, followers=(1,))
        assert out and out[0][0][1].error == ErrorCode.none and out[0][0][1].records
        # Nothing new: the fetch expires at max_wait with an empty answer.
        later: list[FetchResults] = []
        leader.fetch_records(FetchParams(-1, 500, 1, 1 << 20, ((TP, FetchPartitionRequest(1, 1 << 20)),)),
                             later.append)
        cluster.scheduler.advance(500)
        assert later and later[0][0][1].records == b"" and later[0][0][1].high_watermark == 1
    run(test)


def test_fetch_max_bytes_bounds_the_answer_across_partitions(tmp_path: Path) -> None:
    async def test() -> None:
        cluster = make_cluster(tmp_path, replicas=(0,))
        tp1 = ("t", 1)
        cluster.controller.states[tp1] = ControllerState(0, 0, (0,), (0,))
        cluster.send_leader_and_isr(tp1)
        leader = cluster.brokers[0]
        for tp in (TP, tp1):
            for _ in range(3):
                produce(leader, 1, records(1, 1000), tp=tp)
        batch = len(records(1, 1000))
        out: list[FetchResults] = []
        leader.fetch_records(FetchParams(-1, 0, 1, 500, ((TP, FetchPartitionRequest(0, 1 << 20)),
                                                         (tp1, FetchPartitionRequest(0, 1 << 20)))), out.append)
        (first, r0), (second, r1) = out[0]
        assert len(r0.records) == batch  # one whole batch over the limit, so the consumer progresses
        assert r1.records == b""
        out.clear()
        leader.fetch_records(FetchParams(-1, 0, 1, 2 * batch + 10, ((TP, FetchPartitionRequest(0, 1 << 20)),
                                                                    (tp1, FetchPartitionRequest(0, 1 << 20)))),
                             out.append)
        assert [len(r.records) for _, r in out[0]] == [2 * batch, 0]
    run(test)


def test_no_leadership_without_the_lease_and_stale_epochs_are_refused(tmp_path: Path) -> None:
    async def test() -> None:
        cluster = make_cluster(tmp_path, replicas=(0, 1))
        leader = cluster.brokers[0]
        cluster.leases[0].ok = False
        assert produce(leader, 1, records())[0][TP].error == ErrorCode.not_leader_or_follower
        cluster.leases[0].ok = True
        assert produce(leader, 1, records())[0][TP].error == ErrorCode.none
        assert produce(cluster.brokers[1], 1, records())[0][TP].error == ErrorCode.not_leader_or_follower
        assert produce(leader, 1, records(), tp=("nope", 0))[0][("nope", 0)].error == \
            ErrorCode.unknown_topic_or_partition
        # Leadership moves to broker 1 at epoch 1; an old LeaderAndIsr at epoch 0 is refused.
        cluster.controller.states[TP] = ControllerState(1, 1, (0, 1), (0, 1))
        cluster.send_leader_and_isr(TP)
        old = LeaderAndIsrState(0, 0, (0, 1), (0, 1), 0)
        assert leader.become_leader_or_follower([(TP, old, cluster.config)], 0) == \
            [(TP, ErrorCode.stale_controller_epoch)]
        assert not leader.partitions[TP].is_leader and cluster.brokers[1].partitions[TP].is_leader
        # A fetch that knows an older epoch is fenced, a newer one unknown (KIP-320).
        rm1 = cluster.brokers[1]
        for epoch, code in ((0, ErrorCode.fenced_leader_epoch), (2, ErrorCode.unknown_leader_epoch)):
            out: list[FetchResults] = []
            rm1.fetch_records(FetchParams(-1, 0, 1, 1 << 20, ((TP, FetchPartitionRequest(0, 1 << 20, epoch)),)),
                              out.append)
            assert out[0][0][1].error == code
    run(test)


def test_a_pending_acks_all_produce_fails_when_leadership_moves(tmp_path: Path) -> None:
    async def test() -> None:
        cluster = make_cluster(tmp_path, replicas=(0, 1))
        pending = produce(cluster.brokers[0], -1, records(), timeout_ms=60_000)
        cluster.controller.states[TP] = ControllerState(1, 1, (0, 1), (0, 1))
        cluster.send_leader_and_isr(TP)
        assert pending and pending[0][TP].error == ErrorCode.not_leader_or_follower
    run(test)


def test_roles_sent_after_shutdown_are_refused(tmp_path: Path) -> None:
    async def test() -> None:
        cluster = make_cluster(tmp_path, replicas=(0, 1))
        follower = cluster.brokers[1]
        assert follower.fetchers
        pending = produce(cluster.brokers[0], -1, records(), timeout_ms=60_000)
        await cluster.brokers[0].shutdown()
        assert pending and pending[0][TP].error == ErrorCode.request_timed_out  # answered, not left hanging
        await follower.shutdown()
        assert follower.fetchers == {}
        state = LeaderAndIsrState(0, 1, (0, 1), (0, 1), 1)
        assert follower.become_leader_or_follower([(TP, state, cluster.config)], 0) == \
            [(TP, ErrorCode.not_leader_or_follower)]
        assert follower.fetchers == {}
    run(test)


def test_a_leader_without_a_known_address_is_followed_once_the_metadata_names_it(tmp_path: Path) -> None:
    async def test() -> None:
        clock = ManualClock()
        controller = FakeController()
        cluster = Cluster(tmp_path, LogConfig(), clock, ManualScheduler(clock), controller)
        controller.states[TP] = ControllerState(0, 0, (0, 1), (0, 1))
        cluster.start(0)
        follower = cluster.start(1)
        cluster.unknown_addresses.add(0)  # LeaderAndIsr before the UpdateMetadata naming broker 0
        cluster.send_leader_and_isr(TP)
        assert not follower.fetchers
        produce(cluster.brokers[0], 1, records())
        cluster.unknown_addresses.clear()
        follower.follow_unreached_leaders()
        await replicate(cluster, followers=(1,))
        assert follower.logs.get(*TP).log_end_offset == 1
    run(test)


def test_read_committed_fetches_stop_at_the_last_stable_offset_and_name_aborted_transactions(tmp_path: Path) -> None:
    from moldau.replication.replica_manager import READ_COMMITTED
    from moldau.transactions.control import ControlRecordType, EndTransactionMarker, build_end_txn_marker

    def txn(pid: int, seq: int) -> bytes:
        return build_batch([RecordInput(b"t%d" % pid)], producer_id=pid, producer_epoch=0, base_sequence=seq,
                           timestamp=1, transactional=True)

    def marker(pid: int, control: ControlRecordType) -> bytes:
        return build_end_txn_marker(EndTransactionMarker(pid, 0, control, 0), 1)

    def fetch(rm: ReplicaManager, isolation: int, max_wait_ms: int = 0, offset: int = 0) -> list[FetchResults]:
        out: list[FetchResults] = []
        rm.fetch_records(FetchParams(-1, max_wait_ms, 1, 1 << 20, ((TP, FetchPartitionRequest(offset, 1 << 20)),),
                                     isolation), out.append)
        return out

    async def test() -> None:
        cluster = make_cluster(tmp_path)
        leader = cluster.brokers[0]
        assert produce(leader, 1, records())[0][TP].error == ErrorCode.none  # 0
        produce(leader, 1, txn(7, 0))  # 1: producer 7's transaction, to be aborted
        produce(leader, 1, txn(8, 0))  # 2: producer 8's, to be committed
        # A client may not write markers.
        assert produce(leader, 1, marker(7, ControlRecordType.ABORT))[0][TP].error == ErrorCode.invalid_record
        await replicate(cluster)
        uncommitted = fetch(leader, 0)[0][0][1]
        assert (uncommitted.high_watermark, uncommitted.last_stable_offset) == (3, 1)
        assert uncommitted.aborted_transactions is None and len(list(iter_batches(uncommitted.records))) == 3
        waiting = fetch(leader, READ_COMMITTED, max_wait_ms=500, offset=1)
        assert waiting == []  # nothing stable past offset 1: the fetch waits for the LSO to move
        out: list[ProduceResults] = []
        leader.append_records(-1, 1000, [(TP, marker(7, ControlRecordType.ABORT))], out.append,
                              from_coordinator=True)
        assert out == []  # a marker is acknowledged once replicated, like any acks=all write
        await replicate(cluster)
        assert out and out[0][TP].error == ErrorCode.none and out[0][TP].base_offset == 3
        assert waiting and waiting[0][0][1].aborted_transactions == ((7, 1),)  # completed by the LSO move
        assert [h.base_offset for h, _ in iter_batches(waiting[0][0][1].records)] == [1]
        committed = fetch(leader, READ_COMMITTED)[0][0][1]
        assert committed.last_stable_offset == 2  # producer 8's transaction is still open
        assert [h.base_offset for h, _ in iter_batches(committed.records)] == [0, 1]
        assert committed.aborted_transactions == ((7, 1),)
        leader.append_records(-1, 1000, [(TP, marker(8, ControlRecordType.COMMIT))], out.append,
                              from_coordinator=True)
        await replicate(cluster)
        done = fetch(leader, READ_COMMITTED)[0][0][1]
        assert done.last_stable_offset == done.high_watermark == 5
        assert done.aborted_transactions == ((7, 1),)
        # The followers hold the same index: a new leader answers the same.
        assert cluster.brokers[1].logs.get(*TP).collect_aborted_transactions(0, 5) == \
            leader.logs.get(*TP).collect_aborted_transactions(0, 5)


def test_a_follower_that_stopped_fetching_does_not_rejoin_the_isr_with_another(tmp_path: Path) -> None:
    """Seen in a 3-broker cluster: one follower killed, the other briefly behind; when the
    live one rejoined, the ISR became [0, 1, 2] with the dead one in it again (it had
    nothing missing), and acks=all waited for it until it was dropped once more."""
    async def test() -> None:
        cluster = make_cluster(tmp_path, lag_ms=1000)
        leader = cluster.brokers[0]
        produce(leader, 1, records())
        await replicate(cluster)
        cluster.clock.now_ms += 2000  # neither follower fetched: both leave the ISR
        leader.check_isr(cluster.clock())
        await asyncio.sleep(0)
        assert cluster.controller.states[TP].isr == (0,)
        await replicate(cluster, followers=(1,))  # broker 1 is back; broker 2 is gone
        assert cluster.controller.states[TP].isr == (0, 1)
    run(test)


def test_the_periodic_isr_check_visits_only_partitions_led_with_followers(tmp_path: Path) -> None:
    """Issue 9: idle partitions cost no CPU. A partition with no other replica has no ISR to
    shrink, and one this broker follows is checked by its leader: neither is visited;
    the ISR of a led partition with followers still shrinks on time."""
    async def test() -> None:
        cluster = make_cluster(tmp_path, lag_ms=1000)
        leader = cluster.brokers[0]
        solo = ("solo", 0)
        cluster.controller.states[solo] = ControllerState(0, 0, (0,), (0,))
        cluster.send_leader_and_isr(solo)
        other = ("other", 0)  # led by broker 1, followed by broker 0
        cluster.controller.states[other] = ControllerState(1, 0, (1, 0), (1, 0))
        cluster.send_leader_and_isr(other)
        visited: list[tuple[str, int]] = []
        for tp, partition in leader.partitions.items():
            state = partition.leader_state
            if state is not None:
                def out_of_sync(now_ms: int, tp: tuple[str, int] = tp, real: Callable[[int], set[int]]
                                = state.out_of_sync) -> set[int]:
                    visited.append(tp)
                    return real(now_ms)
                state.out_of_sync = out_of_sync  # type: ignore[method-assign]
        await replicate(cluster)
        leader.check_isr(cluster.clock())
        assert visited == [TP]
        cluster.clock.now_ms += 2000  # no follower fetched: they leave the ISR, as before
        leader.check_isr(cluster.clock())
        await asyncio.sleep(0)
        assert cluster.controller.states[TP].isr == (0,)
        # Leadership moves away: broker 0 no longer checks the partition.
        cluster.controller.states[TP] = ControllerState(1, 1, (1,), (0, 1, 2))
        cluster.send_leader_and_isr(TP)
        visited.clear()
        leader.check_isr(cluster.clock())
        assert visited == []
    run(test)

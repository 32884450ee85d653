"""A seeded simulation of replication (Kafka's RaftEventSimulationTest idea): three
ReplicaManagers on real logs, wired through in-memory seams, driven by a seed through
produces (acks=all and acks=1), follower fetches, ISR shrinks, leader changes by a
controller that elects only from the ISR, crashes (kill -9) and restarts.

After every step, Kafka's invariants:
* epochs only grow (per broker, per partition);
* the high watermark never moves back while one leader serves;
* below the high watermark, every live ISR member holds the leader's bytes;
and at the end, once everyone is up and caught up: no record acknowledged with
acks=all is lost, at the offset it was acknowledged at.
"""
from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from moldau.log.config import LogConfig
from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import RecordInput, build_batch, iter_batches, iter_records
from moldau.replication.replica_manager import ProduceResults, ReplicaManager
from tests.unit.replication_fakes import Cluster, ControllerState, FakeController, ManualClock, ManualScheduler

TP = ("sim", 0)
BROKERS = (0, 1, 2)
LAG_MS = 1000


class Simulation:
    def __init__(self, root: Path, seed: int) -> None:
        self.rng = random.Random(seed)
        clock = ManualClock()
        self.controller = FakeController()
        self.cluster = Cluster(root, LogConfig(min_insync_replicas=2, segment_bytes=4096), clock,
                               ManualScheduler(clock), self.controller, LAG_MS)
        self.controller.states[TP] = ControllerState(0, 0, BROKERS, BROKERS)
        for b in BROKERS:
            self.cluster.start(b)
        self.cluster.send_leader_and_isr(TP)
        self.acked: dict[int, bytes] = {}  # offset -> value acknowledged with acks=all
        self.pending: list[tuple[bytes, list[ProduceResults]]] = []
        self.epochs_seen: dict[int, int] = {}
        self.hw_seen: tuple[int, int] = (-1, -1)  # (leader epoch, high watermark)
        self.next_value = 0
        self.trace: list[str] = []

    # --- actions --------------------------------------------------------------------

    def leader(self) -> ReplicaManager | None:
        return self.cluster.brokers.get(self.controller.states[TP].leader)

    def produce(self, acks: int) -> None:
        rm = self.leader()
        if rm is None:
            return
        value = f"v{self.next_value}".encode()
        self.next_value += 1
        out: list[ProduceResults] = []
        rm.append_records(acks, 2000, [(TP, build_batch([RecordInput(value, b"k")], timestamp=1))], out.append)
        if acks == -1:
            self.pending.append((value, out))
        self.trace.append(f"produce acks={acks} {value!r} -> {out[0][TP].error.name if out else 'pending'}")

    async def fetch(self, broker: int) -> None:
        rm = self.cluster.brokers.get(broker)
        if rm is None:
            return
        for fetcher in list(rm.fetchers.values()):
            try:
                await fetcher.do_work(self.cluster.clock() / 1000)
            except ConnectionError:
                pass
        await asyncio.sleep(0)

    def elect(self) -> None:
        """The controller moves leadership to another live ISR member (clean election)."""
        state = self.controller.states[TP]
        live = [b for b in state.isr if b in self.cluster.brokers and b != state.leader]
        if not live:
            return
        new = self.rng.choice(live)
        state.leader, state.leader_epoch = new, state.leader_epoch + 1
        state.partition_epoch += 1
        self.trace.append(f"elect {new} at epoch {state.leader_epoch} (isr {state.isr})")
        self.cluster.send_leader_and_isr(TP)

    def crash(self) -> None:
        up = list(self.cluster.brokers)
        if len(up) <= 1:
            return
        victim = self.rng.choice(up)
        self.cluster.crash(victim)
        self.trace.append(f"crash {victim}")
        state = self.controller.states[TP]
        if victim == state.leader:  # the controller sees the session expire
            candidates = [b for b in state.isr if b != victim and b in self.cluster.brokers]
            if candidates:
                state.leader = self.rng.choice(candidates)
                state.isr = tuple(b for b in state.isr if b != victim)
            else:  # last replica standing: no clean leader; the partition is offline
                state.leader = -1
            state.leader_epoch += 1
            state.partition_epoch += 1
            self.trace.append(f"  leader -> {state.leader} at epoch {state.leader_epoch}")
            self.cluster.send_leader_and_isr(TP)

    def restart(self) -> None:
        down = [b for b in BROKERS if b not in self.cluster.brokers]
        if not down:
            return
        b = self.rng.choice(down)
        self.cluster.start(b)
        self.trace.append(f"restart {b}")
        state = self.controller.states[TP]
        if state.leader == -1 and b in state.isr:  # the last ISR member is back: it leads again
            state.leader, state.leader_epoch = b, state.leader_epoch + 1
            state.partition_epoch += 1
        self.cluster.send_leader_and_isr(TP)

    async def tick(self) -> None:
        self.cluster.scheduler.advance(self.rng.choice((10, 100, 600)))
        rm = self.leader()
        if rm is not None:
            rm.check_isr(self.cluster.clock())
        await asyncio.sleep(0)

    async def step(self) -> None:
        action = self.rng.choices(
            ["produce_all", "produce_one", "fetch", "tick", "elect", "crash", "restart"],
            weights=[20, 5, 40, 15, 3, 3, 4])[0]
        if action == "produce_all":
            self.produce(-1)
        elif action == "produce_one":
            self.produce(1)
        elif action == "fetch":
            await self.fetch(self.rng.choice(BROKERS))
        elif action == "tick":
            await self.tick()
        elif action == "elect":
            self.elect()
        elif action == "crash":
            self.crash()
        else:
            self.restart()
        self.collect_acks()
        self.check_invariants()

    # --- checks ---------------------------------------------------------------------

    def collect_acks(self) -> None:
        still = []
        for value, out in self.pending:
            if not out:
                still.append((value, out))
            elif out[0][TP].error == ErrorCode.none:
                offset = out[0][TP].base_offset
                assert offset not in self.acked, f"offset {offset} acknowledged twice\n" + self.log()
                self.acked[offset] = value
        self.pending = still

    def check_invariants(self) -> None:
        for b, rm in self.cluster.brokers.items():
            p = rm.partitions.get(TP)
            if p is None:
                continue
            assert p.leader_epoch >= self.epochs_seen.get(b, -1), f"epoch went back on {b}\n" + self.log()
            self.epochs_seen[b] = p.leader_epoch
        rm = self.leader()
        if rm is None or not rm.partitions[TP].is_leader:
            return
        leader = rm.partitions[TP]
        hw = leader.high_watermark
        if leader.leader_epoch == self.hw_seen[0]:
            assert hw >= self.hw_seen[1], "high watermark moved back under one leader\n" + self.log()
        self.hw_seen = (leader.leader_epoch, hw)
        mine = committed_bytes(rm, hw)
        for b in leader.leader_state.isr if leader.leader_state else ():
            other = self.cluster.brokers.get(b)
            if other is None or b == rm.broker_id:
                continue
            theirs = committed_bytes(other, min(hw, other.logs.get(*TP).log_end_offset))
            assert mine.startswith(theirs), f"broker {b} disagrees with the leader below the HW\n" + self.log()

    async def heal(self) -> None:
        for b in BROKERS:
            if b not in self.cluster.brokers:
                self.cluster.start(b)
        state = self.controller.states[TP]
        if state.leader == -1:
            state.leader = state.isr[0]
            state.leader_epoch += 1
        state.partition_epoch += 1
        self.cluster.send_leader_and_isr(TP)
        await self.catch_up()
        # Healed, the partition takes acks=all writes again.
        self.produce(-1)
        await self.catch_up()
        self.collect_acks()
        assert not self.pending, "an acks=all produce after healing was not acknowledged\n" + self.log()

    async def catch_up(self) -> None:
        for _ in range(6):
            self.cluster.scheduler.advance(300)  # past any fetcher back-off
            for b in BROKERS:
                await self.fetch(b)

    def check_no_acknowledged_write_lost(self) -> None:
        rm = self.leader()
        assert rm is not None
        values = {offset: value for offset, value in read_all(rm)}
        for offset, value in self.acked.items():
            assert values.get(offset) == value, (
                f"acknowledged {value!r} at {offset} is lost (found {values.get(offset)!r})\n" + self.log())

    def log(self) -> str:
        return "\n".join(self.trace[-40:])


def committed_bytes(rm: ReplicaManager, upto: int) -> bytes:
    plog = rm.logs.get(*TP)
    if plog is None or upto <= plog.log_start_offset:
        return b""
    out = b""
    for header, batch in iter_batches(plog.read(plog.log_start_offset, 1 << 24, max_offset=upto)):
        if header.last_offset < upto:
            out += bytes(batch)
    return out


def read_all(rm: ReplicaManager) -> list[tuple[int, bytes]]:
    plog = rm.logs.get(*TP)
    assert plog is not None
    data = plog.read(plog.log_start_offset, 1 << 24)
    return [(r.offset, r.value or b"") for _, batch in iter_batches(data) for r in iter_records(batch)]


@pytest.mark.parametrize("seed", range(12))
def test_replication_keeps_kafkas_invariants(tmp_path: Path, seed: int) -> None:
    async def run() -> None:
        sim = Simulation(tmp_path, seed)
        for _ in range(300):
            await sim.step()
        await sim.heal()
        sim.check_no_acknowledged_write_lost()
        assert sim.next_value > 20, "the seed produced almost nothing: the simulation proves little"
    asyncio.run(run())

"""One chaos run: hosts, a cluster, the workload, a scenario's faults, the checker.

    net = Network(zk, b1..b3) → ZooKeeper and brokers started → topic (RF 3, min ISR 2)
    → workload started → warm-up → scenario.nemesis(ctx) (faults, each with its heal)
    → everything healed (paused resumed, dead restarted, links restored) → recovery
    → workload stopped → final read → check(history)

The fault schedule is a function of the seed (`ctx.rng` picks brokers, partitions and
durations), so a run is reproduced by its scenario name and seed; the clients' timing is
the machine's. Everything lands in the run's directory: `history.jsonl`, `result.json`,
and each process's log. Processes, namespaces and links are removed in a `finally`.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moldau.chaos.checker import CheckerOptions, Result, check
from moldau.chaos.cluster import BROKER_PROPERTIES, ZK_PORT, ChaosCluster, sweep_mounts
from moldau.chaos.history import HistoryWriter, read
from moldau.chaos.netns import Network, check_support
from moldau.chaos.proxy import ThreadedProxy
from moldau.chaos.workload import Recorder, Workload, WorkloadOptions, final_read
from moldau.groups.records import partition_for

OFFSETS_PARTITIONS = BROKER_PROPERTIES["offsets.topic.num.partitions"]


@dataclass
class RunOptions:
    seed: int = 0
    fault_s: float = 3.0  # how long one fault lasts
    warmup_s: float = 2.0
    recovery_s: float = 6.0  # after the last heal, before the workload stops
    rounds: int = 2  # repeated faults (leader killed repeatedly, ...)
    workdir: Path | None = None
    keep: bool = False  # keep the run directory even when the check passes


@dataclass
class Context:
    """What a scenario's nemesis works with."""

    cluster: ChaosCluster
    net: Network
    rng: random.Random
    recorder: Recorder
    workload: Workload
    options: RunOptions
    topic: str
    partitions: int
    dead: set[int] = field(default_factory=set)
    # Between the brokers and ZooKeeper, for scenarios that ask for it.
    zookeeper_proxy: ThreadedProxy | None = None

    def fault(self, name: str, action: str, **extra: Any) -> None:
        self.recorder.record("nemesis", "info", "fault", value=name, action=action, **extra)

    def expect(self, what: str, condition: Callable[[], bool], timeout: float) -> bool:
        """Wait for a condition the scenario promises (e.g. the ISR shrinks); a miss is
        recorded as a failed expectation, which the checker reports."""
        deadline = time.monotonic() + timeout
        while True:
            if condition():
                self.recorder.record("nemesis", "ok", "expect", value=what)
                return True
            if time.monotonic() >= deadline:
                self.recorder.record("nemesis", "fail", "expect", value=what, timeout=timeout)
                return False
            time.sleep(0.3)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    # ------------------------------------------------------------ broker faults

    def pick_partition(self) -> int:
        return self.rng.randrange(self.partitions)

    def leader_of(self, partition: int) -> int:
        """The partition's leader now (waits for one; any broker if none shows)."""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            leader = self.cluster.leader(self.topic, partition)
            if leader is not None and leader not in self.dead:
                return leader
            time.sleep(0.3)
        return self.rng.choice(self.cluster.broker_ids)

    def coordinator(self) -> int:
        """The group coordinator of the workload's group: the leader of its
        __consumer_offsets partition."""
        partition = partition_for(self.workload.options.group, int(OFFSETS_PARTITIONS))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            state = self.cluster.partition_states("__consumer_offsets").get(partition)
            if state is not None and state[0] >= 0 and state[0] not in self.dead:
                return state[0]
            time.sleep(0.3)
        return self.rng.choice(self.cluster.broker_ids)

    def controller(self) -> int:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            c = self.cluster.controller()
            if c is not None and c not in self.dead:
                return c
            time.sleep(0.3)
        return self.rng.choice(self.cluster.broker_ids)

    def kill(self, broker_id: int) -> None:
        self.cluster.broker(broker_id).kill()
        self.dead.add(broker_id)

    def restart(self, broker_id: int) -> None:
        self.cluster.broker(broker_id).start()
        self.dead.discard(broker_id)

    def terminate(self, broker_id: int) -> None:
        self.cluster.broker(broker_id).stop()
        self.dead.add(broker_id)

    def pause(self, broker_id: int) -> None:
        self.cluster.broker(broker_id).signal(signal.SIGSTOP)

    def resume(self, broker_id: int) -> None:
        self.cluster.broker(broker_id).signal(signal.SIGCONT)

    def heal_all(self) -> None:
        """After the scenario (also after it failed): every fault undone."""
        self.net.heal()
        for i in self.cluster.broker_ids:
            self.cluster.free_disk(i)
        if self.zookeeper_proxy is not None:
            self.zookeeper_proxy.set_delay(0.0)
        for i in self.cluster.broker_ids:
            proc = self.cluster.broker(i)
            if proc.paused:
                proc.signal(signal.SIGCONT)
        zk = self.cluster.procs["zk"]
        if not zk.alive():
            zk.start()
        for i in self.cluster.broker_ids:
            if not self.cluster.broker(i).alive():
                self.restart(i)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    nemesis: Callable[[Context], None]
    clock_brokers: bool = False  # start every broker under libfaketime
    disk_brokers: bool = False  # start every broker under fiu-run
    zookeeper_proxy: bool = False  # brokers reach ZooKeeper through a latency proxy
    small_disk_mb: int = 0  # every broker's log dir on a tmpfs this big (0: the work dir's disk)
    topic_configs: dict[str, str] = field(default_factory=dict)
    checker: CheckerOptions = field(default_factory=CheckerOptions)
    # A scenario that is known to find an anomaly in Moldau: the bug, by name. The run
    # is expected to report it (so the suite stays green and the bug stays visible).
    known_bug: str | None = None
    # The anomaly kinds that bug shows as; any other kind is unexpected.
    known_kinds: frozenset[str] = frozenset()
    # The bug shows only in some runs (a race): a clean run is expected too.
    sometimes: bool = False

    def expected(self, outcome: RunResult) -> bool:
        """Clean, or (for a scenario with a known bug) showing that bug and nothing else."""
        if self.known_bug is None:
            return outcome.ok
        kinds = outcome.result.kinds()
        if outcome.ok:
            return self.sometimes
        return kinds <= self.known_kinds


@dataclass
class RunResult:
    scenario: str
    seed: int
    result: Result
    problems: list[str]
    workdir: Path
    seconds: float

    @property
    def ok(self) -> bool:
        return self.result.valid and not self.problems

    def summary(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "seed": self.seed,
            "ok": self.ok,
            "seconds": round(self.seconds, 1),
            "problems": self.problems,
            "workdir": str(self.workdir),
            **self.result.summary(),
            "anomalies_listed": [a.text() for a in self.result.anomalies[:20]],
        }


TOPIC = "chaos"


def run(scenario: Scenario, options: RunOptions) -> RunResult:
    reason = check_support()
    if reason is not None:
        raise RuntimeError(reason)
    started = time.monotonic()
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix=f"moldau-chaos-{scenario.name}-{options.seed}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    history_path = workdir / "history.jsonl"
    problems: list[str] = []
    wl_opts = WorkloadOptions(topic=TOPIC)
    net = Network(ChaosCluster.host_names(3))
    cluster = ChaosCluster(net, workdir)
    workload: Workload | None = None
    proxy: ThreadedProxy | None = None
    with open(history_path, "w") as out:
        recorder = Recorder(HistoryWriter(out))
        try:
            net.create()
            sweep_mounts(net.tag)
            if scenario.zookeeper_proxy:
                # In the root namespace, on the bridge's address: every broker reaches it.
                proxy = ThreadedProxy((net.address("zk"), ZK_PORT), 0.0, (net.gateway, 0))
                host, port = proxy.start()
                cluster.zookeeper_via = f"{host}:{port}"
            cluster.start(
                clock_brokers=tuple(cluster.broker_ids) if scenario.clock_brokers else (),
                disk_brokers=tuple(cluster.broker_ids) if scenario.disk_brokers else (),
                small_disk_mb=scenario.small_disk_mb,
            )
            cluster.create_topic(TOPIC, wl_opts.partitions, 3, {"min.insync.replicas": "2", **scenario.topic_configs})
            workload = Workload(cluster.bootstrap, recorder, wl_opts)
            ctx = Context(
                cluster, net, random.Random(options.seed), recorder, workload, options, TOPIC, wl_opts.partitions
            )
            ctx.zookeeper_proxy = proxy
            workload.start()
            time.sleep(options.warmup_s)
            try:
                scenario.nemesis(ctx)
            except Exception as e:  # noqa: BLE001 - a nemesis that fails is a problem to report
                problems.append(f"nemesis failed: {type(e).__name__}: {e}")
            finally:
                ctx.heal_all()
            ctx.fault("all", "healed")
            time.sleep(options.recovery_s)
            workload.stop(timeout=wl_opts.flush_timeout_s + 15)
            problems += workload.errors
            problems += final_read(cluster.bootstrap, recorder, TOPIC, wl_opts.partitions)
        except Exception as e:  # noqa: BLE001
            problems.append(f"run failed: {type(e).__name__}: {e}")
        finally:
            if workload is not None:
                workload.stopping.set()
            cluster.kill_all()
            if proxy is not None:
                proxy.stop()
            net.destroy()
    result = check(read(history_path), scenario.checker)
    outcome = RunResult(scenario.name, options.seed, result, problems, workdir, time.monotonic() - started)
    (workdir / "result.json").write_text(json.dumps(outcome.summary(), indent=2, default=str) + "\n")
    if outcome.ok and not options.keep and options.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return outcome

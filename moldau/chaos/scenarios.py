"""The scenarios: each a nemesis (faults with their heals, chosen by the seed) and what it
promises. Brokers are b1..b3 (ids 1..3); ZooKeeper is host `zk`; clients are the root
namespace. `fault_s` is how long one fault lasts; `rounds` how often a repeated one is.
"""

from __future__ import annotations

from moldau.chaos.checker import CheckerOptions
from moldau.chaos.runner import Context, Scenario

SESSION_TIMEOUT_S = 4.0  # BROKER_PROPERTIES' zookeeper.session.timeout.ms
REPLICA_LAG_S = 3.0  # replica.lag.time.max.ms


def _others(ctx: Context, *brokers: int) -> list[str]:
    return [f"b{i}" for i in ctx.cluster.broker_ids if i not in brokers]


def _isr(ctx: Context, partition: int) -> list[int]:
    state = ctx.cluster.partition_states(ctx.topic).get(partition)
    return state[1] if state else []


def _full_isr(ctx: Context, timeout: float = 30.0) -> bool:
    return ctx.expect(
        "every partition back to a full ISR",
        lambda: (
            all(len(isr) == 3 for _, isr in ctx.cluster.partition_states(ctx.topic).values())
            and len(ctx.cluster.partition_states(ctx.topic)) == ctx.partitions
        ),
        timeout,
    )


def leader_killed_repeatedly(ctx: Context) -> None:
    for r in range(ctx.options.rounds):
        leader = ctx.leader_of(ctx.pick_partition())
        ctx.fault(f"kill-leader-{r}", "start", broker=leader)
        ctx.kill(leader)
        ctx.sleep(ctx.options.fault_s * ctx.rng.uniform(0.5, 1.5))
        ctx.restart(leader)
        ctx.fault(f"kill-leader-{r}", "heal", broker=leader)
        ctx.sleep(ctx.rng.uniform(1.0, 2.0))


def controller_killed(ctx: Context) -> None:
    for r in range(ctx.options.rounds):
        controller = ctx.controller()
        ctx.fault(f"kill-controller-{r}", "start", broker=controller)
        ctx.kill(controller)
        ctx.expect("a new controller", lambda c=controller: ctx.cluster.controller() not in (None, c), 15)
        ctx.sleep(ctx.options.fault_s * ctx.rng.uniform(0.3, 1.0))
        ctx.restart(controller)
        ctx.fault(f"kill-controller-{r}", "heal", broker=controller)
        ctx.sleep(ctx.rng.uniform(1.0, 2.0))


def follower_partitioned(ctx: Context) -> None:
    partition = ctx.pick_partition()
    leader = ctx.leader_of(partition)
    controller = ctx.controller()
    followers = [i for i in ctx.cluster.broker_ids if i not in (leader, controller)]
    if not followers:  # the leader is the controller: any follower will do
        followers = [i for i in ctx.cluster.broker_ids if i != leader]
    follower = ctx.rng.choice(followers)
    # Cut from the other brokers only: it keeps its ZooKeeper session, so it stays a
    # live broker, and leaves the ISRs by lagging. Not the controller: ISR changes go
    # through the controller (AlterPartition), so with the controller cut off no ISR can
    # shrink and acks=all waits until the heal (Kafka's behaviour too; not this scenario).
    ctx.fault("follower-partitioned", "start", broker=follower)
    ctx.net.partition([[f"b{follower}"], _others(ctx, follower)])
    # The ISR as ZooKeeper has it: the cut-off follower answers Metadata too, from a view
    # nobody updates while it is cut off (as a Kafka broker would).
    def zk_isr() -> list[int]:
        return ctx.cluster.isr_in_zookeeper(ctx.topic, partition) or []

    ctx.expect(
        f"b{follower} leaves the ISR of partition {partition}",
        lambda: follower not in zk_isr() and bool(zk_isr()),
        REPLICA_LAG_S + 10,
    )
    ctx.sleep(ctx.options.fault_s)
    ctx.net.heal()
    ctx.fault("follower-partitioned", "heal", broker=follower)
    ctx.expect(f"b{follower} back in the ISR of partition {partition}", lambda: follower in zk_isr(), 30)


def rolling_restart(ctx: Context) -> None:
    for broker in ctx.cluster.broker_ids:
        ctx.fault(f"restart-b{broker}", "start", broker=broker)
        ctx.terminate(broker)
        ctx.restart(broker)
        ctx.fault(f"restart-b{broker}", "heal", broker=broker)
        _full_isr(ctx)


def _leader_not_coordinator(ctx: Context) -> int:
    """The leader of a partition, not the group coordinator if another one leads some
    partition: a coordinator cut off or paused answers OffsetFetch from stale state
    (docs/reliability.md #1), which has a scenario of its own."""
    coordinator = ctx.coordinator()
    leaders = [ctx.leader_of(p) for p in range(ctx.partitions)]
    others = [b for b in leaders if b != coordinator]
    return ctx.rng.choice(others) if others else ctx.rng.choice(leaders)


def leader_cut_from_zookeeper(ctx: Context) -> None:
    leader = _leader_not_coordinator(ctx)
    coordinator = ctx.coordinator()
    # Clients and the other brokers still reach it: only its ZooKeeper link is cut. Its
    # lease lapses (3/4 of the session), then its session expires and another leader is
    # elected; whatever it acknowledged after that would be lost, which the checker sees.
    ctx.fault("leader-cut-from-zk", "start", broker=leader, coordinator=coordinator)
    ctx.net.partition([[f"b{leader}"], ["zk"]])
    ctx.sleep(max(ctx.options.fault_s, SESSION_TIMEOUT_S + 2))
    ctx.net.heal()
    ctx.fault("leader-cut-from-zk", "heal", broker=leader)


def coordinator_cut_from_zookeeper(ctx: Context) -> None:
    coordinator = ctx.coordinator()
    ctx.fault("coordinator-cut-from-zk", "start", broker=coordinator)
    ctx.net.partition([[f"b{coordinator}"], ["zk"]])
    ctx.sleep(max(ctx.options.fault_s, SESSION_TIMEOUT_S + 3))
    ctx.net.heal()
    ctx.fault("coordinator-cut-from-zk", "heal", broker=coordinator)


def kip101_double_failure(ctx: Context) -> None:
    partition = ctx.pick_partition()
    leader = ctx.leader_of(partition)
    follower = ctx.rng.choice([i for i in ctx.cluster.broker_ids if i != leader])
    ctx.fault("double-failure", "start", brokers=[follower, leader])
    ctx.kill(follower)
    ctx.sleep(ctx.rng.uniform(0.2, 1.5))
    ctx.kill(leader)
    ctx.sleep(ctx.options.fault_s)
    # The replica that died first (and may lack the last writes) comes back first.
    ctx.restart(follower)
    ctx.sleep(ctx.rng.uniform(0.5, 2.0))
    ctx.restart(leader)
    ctx.fault("double-failure", "heal", brokers=[follower, leader])
    _full_isr(ctx)


def last_replica_standing(ctx: Context) -> None:
    survivor = ctx.rng.choice(ctx.cluster.broker_ids)
    victims = [i for i in ctx.cluster.broker_ids if i != survivor]
    # Alone, every partition's ISR is below min.insync.replicas: acks=all is refused.
    # Sends already waiting may complete only if the replicas got them before dying, so
    # the window starts a little after the kills.
    ctx.fault("last-replica-standing", "start", survivor=survivor, expect="no-acks", grace=1.0)
    for v in victims:
        ctx.kill(v)
    ctx.sleep(ctx.options.fault_s + REPLICA_LAG_S)
    ctx.fault("last-replica-standing", "heal", survivor=survivor)
    for v in victims:
        ctx.restart(v)
    _full_isr(ctx)


def paused_broker_session_expired(ctx: Context) -> None:
    leader = _leader_not_coordinator(ctx)
    ctx.fault("pause-leader", "start", broker=leader)
    ctx.pause(leader)
    ctx.sleep(SESSION_TIMEOUT_S + max(2.0, ctx.options.fault_s))
    ctx.resume(leader)
    ctx.fault("pause-leader", "heal", broker=leader)
    _full_isr(ctx)


def consumer_churn(ctx: Context) -> None:
    for r in range(max(2, ctx.options.rounds)):
        name = f"consumer-extra-{r}"
        ctx.fault(f"churn-{r}", "start", consumer=name)
        ctx.workload.add_consumer(name)
        ctx.sleep(ctx.options.fault_s * ctx.rng.uniform(0.5, 1.0))
        ctx.workload.remove_consumer(name)
        ctx.fault(f"churn-{r}", "heal", consumer=name)
        ctx.sleep(ctx.rng.uniform(0.5, 1.5))


def zookeeper_restarted(ctx: Context) -> None:
    # Down for less than a session (the JVM takes about a second to start): the
    # brokers' sessions survive. Longer is the next scenario.
    zk = ctx.cluster.procs["zk"]
    ctx.fault("zookeeper-restart", "start")
    zk.kill()
    ctx.sleep(min(ctx.options.fault_s * ctx.rng.uniform(0.2, 0.5), SESSION_TIMEOUT_S / 2))
    zk.start()
    ctx.fault("zookeeper-restart", "heal")


def zookeeper_down_past_session(ctx: Context) -> None:
    # Down for longer than a session: the brokers presume their sessions expired (and stop
    # acknowledging); ZooKeeper restores the sessions from its log and the brokers
    # reconnect into them, so the controller sees nobody leave: they must keep leading
    # what they led (docs/reliability.md #8).
    zk = ctx.cluster.procs["zk"]
    ctx.fault("zookeeper-down", "start")
    zk.kill()
    ctx.sleep(SESSION_TIMEOUT_S + 1.5)
    zk.start()
    ctx.fault("zookeeper-down", "heal")


def minority_leader_partitioned(ctx: Context) -> None:
    leader = _leader_not_coordinator(ctx)
    ctx.fault("leader-in-minority", "start", broker=leader)
    ctx.net.partition([[f"b{leader}"], [*_others(ctx, leader), "zk"]])
    ctx.sleep(max(ctx.options.fault_s, SESSION_TIMEOUT_S + 2))
    ctx.net.heal()
    ctx.fault("leader-in-minority", "heal", broker=leader)
    _full_isr(ctx)


def packet_loss(ctx: Context) -> None:
    leader = ctx.leader_of(ctx.pick_partition())
    ctx.fault("packet-loss", "start", broker=leader, probability=0.2)
    ctx.net.loss(f"b{leader}", 0.2)
    ctx.sleep(ctx.options.fault_s * 2)
    ctx.net.heal()
    ctx.fault("packet-loss", "heal", broker=leader)


def zookeeper_latency(ctx: Context) -> None:
    # Every broker's ZooKeeper link slows down (the proxy delays each way): round trips
    # of up to 2 s against a 4 s session; leases lapse and come back.
    assert ctx.zookeeper_proxy is not None
    delay = ctx.rng.choice([0.5, 1.0, 1.5])
    ctx.fault("zookeeper-latency", "start", delay_s=delay)
    ctx.zookeeper_proxy.set_delay(delay)
    ctx.sleep(ctx.options.fault_s * 2)
    ctx.zookeeper_proxy.set_delay(0.0)
    ctx.fault("zookeeper-latency", "heal")


def clock_jump_on_controller(ctx: Context) -> None:
    controller = ctx.controller()
    jump = ctx.rng.choice(["+120s", "-120s", "+1d"])
    ctx.fault("clock-jump", "start", broker=controller, offset=jump)
    ctx.cluster.set_clock(controller, jump)
    ctx.sleep(ctx.options.fault_s)
    ctx.cluster.set_clock(controller, "+0")
    ctx.fault("clock-jump", "heal", broker=controller)


def disk_full(ctx: Context) -> None:
    leader = _leader_not_coordinator(ctx)
    # The leader's log dir (a 64 MB tmpfs) filled up: appends fail with ENOSPC. What it
    # could not write must be neither served nor acknowledged; once space is back, writes
    # resume.
    ctx.fault("disk-full", "start", broker=leader)
    ctx.cluster.fill_disk(leader)
    ctx.sleep(ctx.options.fault_s)
    ctx.fault("disk-full", "heal", broker=leader)
    ctx.cluster.free_disk(leader)


def fsync_errors(ctx: Context) -> None:
    partition = ctx.pick_partition()
    leader = ctx.leader_of(partition)
    # flush.messages=1 (the topic's config): every append is fsynced, and each fsync
    # fails while the fault lasts. What failed to reach the disk must not be acknowledged.
    ctx.fault("fsync-errors", "start", broker=leader)
    ctx.cluster.fiu_ctrl(leader, "enable name=posix/io/sync/fsync")
    ctx.cluster.fiu_ctrl(leader, "enable name=posix/io/sync/fdatasync")
    ctx.sleep(ctx.options.fault_s)
    ctx.cluster.fiu_ctrl(leader, "disable name=posix/io/sync/fsync")
    ctx.cluster.fiu_ctrl(leader, "disable name=posix/io/sync/fdatasync")
    ctx.fault("fsync-errors", "heal", broker=leader)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario(
            "leader-killed",
            "the leader of a partition killed (SIGKILL) and restarted, repeatedly",
            leader_killed_repeatedly,
        ),
        Scenario(
            "controller-killed", "the controller killed and restarted; a new controller is elected", controller_killed
        ),
        Scenario(
            "follower-partitioned",
            "a follower cut from the other brokers: the ISR shrinks, then grows back",
            follower_partitioned,
        ),
        Scenario(
            "rolling-restart",
            "every broker in turn stopped (SIGTERM, controlled shutdown) and restarted",
            rolling_restart,
        ),
        Scenario(
            "leader-cut-from-zookeeper",
            "the leader cut from ZooKeeper but not from clients or brokers, past its session",
            leader_cut_from_zookeeper,
        ),
        Scenario(
            "coordinator-cut-from-zookeeper",
            "the group coordinator cut from ZooKeeper but not from clients, past its session",
            coordinator_cut_from_zookeeper,
        ),
        Scenario(
            "kip101-double-failure",
            "a follower then the leader killed at different points; the follower restarts first",
            kip101_double_failure,
        ),
        Scenario(
            "last-replica-standing",
            "two of three brokers killed: acks=all must be refused below min ISR",
            last_replica_standing,
        ),
        Scenario(
            "paused-leader",
            "the leader paused (SIGSTOP) past its session timeout, then resumed",
            paused_broker_session_expired,
        ),
        Scenario("consumer-churn", "consumers join and leave the group while it reads and commits", consumer_churn),
        Scenario("zookeeper-restarted", "ZooKeeper killed and restarted under the cluster", zookeeper_restarted),
        Scenario(
            "zookeeper-down-past-session",
            "ZooKeeper down for longer than a session, then restarted with the sessions in its log",
            zookeeper_down_past_session,
        ),
        Scenario(
            "leader-in-minority",
            "the leader alone on one side, the others and ZooKeeper on the other",
            minority_leader_partitioned,
        ),
        Scenario("packet-loss", "20% of the leader's packets dropped, both ways", packet_loss),
        Scenario(
            "zookeeper-latency",
            "every broker's ZooKeeper link delayed 0.5-1.5 s each way (a TCP proxy: netem is not available)",
            zookeeper_latency,
            zookeeper_proxy=True,
        ),
        Scenario(
            "clock-jump-controller",
            "the controller's wall clock jumps (libfaketime), then back",
            clock_jump_on_controller,
            clock_brokers=True,
        ),
        Scenario(
            "disk-full",
            "a leader's log dir (a 64 MB tmpfs) filled up, then freed",
            disk_full,
            small_disk_mb=64,
        ),
        Scenario(
            "fsync-errors",
            "fsync fails on the leader's disk (libfiu) with flush.messages=1",
            fsync_errors,
            disk_brokers=True,
            topic_configs={"flush.messages": "1"},
        ),
    ]
}

__all__ = ["SCENARIOS", "CheckerOptions"]

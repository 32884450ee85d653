"""GroupCoordinator, driven with fake time (``now_ms`` passed in) and a fake
``__consumer_offsets`` (a list of appended records per partition)."""

from __future__ import annotations

import asyncio
import struct
from collections import defaultdict
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

import pytest

from moldau.groups.config import GroupConfig
from moldau.groups.coordinator import GroupCoordinator, JoinGroupResult, SyncGroupResult
from moldau.groups.records import (
    GroupMetadataKey,
    OffsetCommitKey,
    OffsetCommitValue,
    decode_group_metadata_value,
    decode_key,
    offset_commit_record,
)
from moldau.protocol.errors import ErrorCode

T = TypeVar("T")

SESSION = 10_000
REBALANCE = 20_000
DELAY = 3_000


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def sub(topics: list[str], version: int = 0) -> bytes:
    """A ConsumerProtocolSubscription: version, topics, user data (null)."""
    out = struct.pack(">hi", version, len(topics))
    for t in topics:
        out += struct.pack(">h", len(t)) + t.encode()
    return out + struct.pack(">i", -1)


PROTOCOLS = [("range", sub(["t"]))]


class FakeOffsetsTopic:
    """Records appended per partition; ``fail`` makes the next appends raise."""

    def __init__(self) -> None:
        self.records: dict[int, list[tuple[bytes, bytes | None]]] = defaultdict(list)
        self.fail: Exception | None = None

    def append(self, partition: int, records: list[tuple[bytes, bytes | None]]) -> None:
        if self.fail is not None:
            raise self.fail
        self.records[partition].extend(records)

    def all(self) -> list[tuple[bytes, bytes | None]]:
        return [r for p in sorted(self.records) for r in self.records[p]]


def make(**overrides: Any) -> tuple[GroupCoordinator, FakeOffsetsTopic]:
    settings: dict[str, Any] = {"offsets_topic_partitions": 4, "initial_rebalance_delay_ms": DELAY}
    settings.update(overrides)
    config = GroupConfig(**settings)
    topic = FakeOffsetsTopic()
    coordinator = GroupCoordinator(config, topic.append)
    for p in range(config.offsets_topic_partitions):
        coordinator.load_partition(p, [], 0)
    return coordinator, topic


def join(
    c: GroupCoordinator,
    group: str = "g",
    member_id: str = "",
    *,
    instance: str | None = None,
    protocol_type: str = "consumer",
    protocols: list[tuple[str, bytes]] | None = None,
    session: int = SESSION,
    rebalance: int = REBALANCE,
    client: str = "client",
    require_known: bool = False,
    now: int = 0,
) -> Awaitable[JoinGroupResult]:
    return c.join_group(
        group,
        member_id,
        instance,
        protocol_type,
        PROTOCOLS if protocols is None else protocols,
        session,
        rebalance,
        client,
        "/127.0.0.1",
        require_known,
        None,
        now,
    )


def sync(
    c: GroupCoordinator,
    result: JoinGroupResult,
    assignments: dict[str, bytes] | None = None,
    *,
    group: str = "g",
    instance: str | None = None,
    now: int = 0,
) -> Awaitable[SyncGroupResult]:
    return c.sync_group(
        group,
        result.generation_id,
        result.member_id,
        instance,
        result.protocol_type,
        result.protocol_name,
        list((assignments or {}).items()),
        now,
    )


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def form_group(
    c: GroupCoordinator,
    n: int,
    *,
    group: str = "g",
    instances: list[str | None] | None = None,
    now: int = 0,
    protocols: list[list[tuple[str, bytes]]] | None = None,
    session: int = SESSION,
    rebalance: int = REBALANCE,
) -> tuple[list[JoinGroupResult], dict[str, bytes]]:
    """n members join an Empty group together; the initial delay passes; everyone syncs.
    Returns the join results and the assignment given to each member id."""
    tasks = [
        asyncio.ensure_future(
            join(
                c,
                group,
                instance=None if instances is None else instances[i],
                client=f"client-{i}",
                protocols=None if protocols is None else protocols[i],
                session=session,
                rebalance=rebalance,
                now=now,
            )
        )
        for i in range(n)
    ]
    await settle()
    c.tick(now + rebalance)  # past any initial delay extension
    results = list(await asyncio.gather(*tasks))
    leader = next(r for r in results if r.members)
    assignments = {m.member_id: f"assignment-{m.member_id}".encode() for m in leader.members}
    followers = [
        asyncio.ensure_future(sync(c, r, group=group, now=now + rebalance)) for r in results if r is not leader
    ]
    await settle()
    await sync(c, leader, assignments, group=group, now=now + rebalance)
    await asyncio.gather(*followers)
    return results, assignments


def decoded(topic: FakeOffsetsTopic) -> list[tuple[object, object]]:
    out: list[tuple[object, object]] = []
    for key, value in topic.all():
        k = decode_key(key)
        if isinstance(k, GroupMetadataKey):
            out.append((k, None if value is None else decode_group_metadata_value(value)))
        else:
            out.append((k, value))
    return out


# --- a group forms -------------------------------------------------------------------------


def test_three_members_one_generation_leader_assigns() -> None:
    async def scenario() -> None:
        c, topic = make()
        tasks = [asyncio.ensure_future(join(c, client=f"c{i}", now=0)) for i in range(3)]
        await settle()
        assert not any(t.done() for t in tasks)
        assert c.describe_group("g").state == "PreparingRebalance"

        c.tick(DELAY)  # members arrived during the first delay: it is extended once
        await settle()
        assert not any(t.done() for t in tasks)
        c.tick(2 * DELAY)
        results = await asyncio.gather(*tasks)

        assert {r.error for r in results} == {ErrorCode.none}
        assert {r.generation_id for r in results} == {1}
        assert {r.protocol_name for r in results} == {"range"}
        leader_id = results[0].leader
        assert {r.leader for r in results} == {leader_id}
        leaders = [r for r in results if r.members]
        assert len(leaders) == 1 and leaders[0].member_id == leader_id
        assert {m.member_id for m in leaders[0].members} == {r.member_id for r in results}
        assert all(m.metadata == sub(["t"]) for m in leaders[0].members)
        assert all(r.member_id.startswith("c") for r in results)
        assert c.describe_group("g").state == "CompletingRebalance"

        followers = [r for r in results if r.member_id != leader_id]
        follower_syncs = [asyncio.ensure_future(sync(c, r, now=2 * DELAY + 1)) for r in followers]
        await settle()
        assert not any(t.done() for t in follower_syncs)
        assignments = {r.member_id: r.member_id.encode()[::-1] for r in results}
        leader_sync = await sync(c, leaders[0], assignments, now=2 * DELAY + 2)
        assert leader_sync == SyncGroupResult(ErrorCode.none, "consumer", "range", assignments[leader_id])
        for r, res in zip(followers, await asyncio.gather(*follower_syncs), strict=True):
            assert res.error is ErrorCode.none and res.assignment == assignments[r.member_id]

        desc = c.describe_group("g")
        assert (desc.state, desc.protocol_type, desc.protocol_name) == ("Stable", "consumer", "range")
        assert {m.member_id: m.assignment for m in desc.members} == assignments
        assert all(m.metadata == sub(["t"]) and m.client_host == "/127.0.0.1" for m in desc.members)

        # the leader's sync persisted the generation with every assignment
        (key, value), *_ = [(k, v) for k, v in decoded(topic) if isinstance(k, GroupMetadataKey)]
        assert key == GroupMetadataKey("g")
        assert value is not None and value.generation == 1 and value.leader == leader_id  # type: ignore[attr-defined]
        assert {m.member_id: m.assignment for m in value.members} == assignments  # type: ignore[attr-defined]
        assert list(topic.records) == [c.partition_for("g")]

        # a follower's sync in Stable returns its assignment right away; heartbeats are fine
        again = await sync(c, followers[0], now=2 * DELAY + 3)
        assert again.assignment == assignments[followers[0].member_id]
        assert c.heartbeat("g", 1, leader_id, None, 2 * DELAY + 4) is ErrorCode.none

    run(scenario())


def test_initial_rebalance_delay_extends_up_to_rebalance_timeout() -> None:
    async def scenario() -> None:
        c, _ = make(initial_rebalance_delay_ms=3000)
        first = asyncio.ensure_future(join(c, rebalance=7000, now=0))
        await settle()
        c.tick(2999)
        await settle()
        assert not first.done()
        # a member arrives within the delay: the delay is extended (remaining 7000-3000)
        second = asyncio.ensure_future(join(c, rebalance=7000, now=1000))
        await settle()
        c.tick(3000)
        await settle()
        assert not first.done()
        third = asyncio.ensure_future(join(c, rebalance=7000, now=5000))
        await settle()
        c.tick(6000)  # second extension: remaining was 4000 -> min(3000, 4000)
        await settle()
        assert not first.done()
        c.tick(7000)  # no time left: completes even though a member just came
        results = await asyncio.gather(first, second, third)
        assert {r.generation_id for r in results} == {1}
        assert len(next(r for r in results if r.members).members) == 3

    run(scenario())


def test_initial_delay_alone_completes_single_member() -> None:
    async def scenario() -> None:
        c, _ = make()
        task = asyncio.ensure_future(join(c, now=100))
        await settle()
        c.tick(100 + DELAY - 1)
        await settle()
        assert not task.done()
        c.tick(100 + DELAY)
        result = await task
        assert result.generation_id == 1 and result.leader == result.member_id
        assert [m.member_id for m in result.members] == [result.member_id]

    run(scenario())


def test_zero_initial_delay_completes_inside_the_join() -> None:
    async def scenario() -> None:
        c, _ = make(initial_rebalance_delay_ms=0)
        result = await join(c)
        assert result.error is ErrorCode.none and result.generation_id == 1

    run(scenario())


def test_protocol_selection_by_votes() -> None:
    async def scenario() -> None:
        c, _ = make()
        rr = ("roundrobin", sub(["t"]))
        rng = ("range", sub(["t"]))
        sticky = ("sticky", sub(["t"]))
        results, _ = await form_group(c, 3, protocols=[[rng, rr], [rr, rng], [rr, sticky, rng]])
        assert {r.protocol_name for r in results} == {"roundrobin"}
        c2, _ = make()
        results, _ = await form_group(c2, 3, protocols=[[rng, rr], [rng, rr], [rr, rng]])
        assert {r.protocol_name for r in results} == {"range"}

    run(scenario())


# --- members leave, fail, or do not come back ---------------------------------------------


def test_session_expiry_removes_member_and_rebalances() -> None:
    async def scenario() -> None:
        c, _ = make()
        results, _ = await form_group(c, 2)
        synced_at = REBALANCE
        a, b = results
        assert c.heartbeat("g", 1, a.member_id, None, synced_at + 5000) is ErrorCode.none
        c.tick(synced_at + SESSION - 1)
        assert len(c.describe_group("g").members) == 2
        c.tick(synced_at + SESSION)  # b never heartbeated
        desc = c.describe_group("g")
        assert desc.state == "PreparingRebalance"
        assert [m.member_id for m in desc.members] == [a.member_id]
        assert c.heartbeat("g", 1, b.member_id, None, synced_at + SESSION + 1) is ErrorCode.unknown_member_id
        assert c.heartbeat("g", 1, a.member_id, None, synced_at + SESSION + 1) is ErrorCode.rebalance_in_progress
        # a rejoins: everybody left has joined, the generation completes at once
        rejoined = await join(c, member_id=a.member_id, now=synced_at + SESSION + 2)
        assert rejoined.generation_id == 2 and rejoined.leader == a.member_id
        assert [m.member_id for m in rejoined.members] == [a.member_id]

    run(scenario())


def test_rebalance_timeout_removes_members_that_did_not_rejoin() -> None:
    async def scenario() -> None:
        c, _ = make()
        # sessions longer than the rebalance timeout: only the join phase's timer can act
        results, _ = await form_group(c, 3, session=60_000, rebalance=REBALANCE)
        a, b, d = results
        t0 = 30_000
        ta = asyncio.ensure_future(join(c, member_id=a.member_id, session=60_000, now=t0))
        tb = asyncio.ensure_future(join(c, member_id=b.member_id, session=60_000, now=t0 + 1))
        await settle()
        assert c.describe_group("g").state == "PreparingRebalance"
        c.tick(t0 + REBALANCE - 1)
        await settle()
        assert not ta.done()
        c.tick(t0 + REBALANCE)
        ra, rb = await asyncio.gather(ta, tb)
        assert ra.generation_id == rb.generation_id == 2
        members = {m.member_id for m in (ra.members or rb.members)}
        assert members == {a.member_id, b.member_id}
        assert d.member_id not in {m.member_id for m in c.describe_group("g").members}
        assert c.heartbeat("g", 2, d.member_id, None, t0 + REBALANCE) is ErrorCode.unknown_member_id

    run(scenario())


def test_member_that_never_syncs_is_removed_after_rebalance_timeout() -> None:
    async def scenario() -> None:
        c, _ = make()
        tasks = [asyncio.ensure_future(join(c, client=f"c{i}")) for i in range(2)]
        await settle()
        c.tick(REBALANCE)
        results = await asyncio.gather(*tasks)
        leader = next(r for r in results if r.members)
        follower = next(r for r in results if not r.members)
        await sync(c, leader, {leader.member_id: b"x"}, now=REBALANCE + 1)
        assert c.describe_group("g").state == "Stable"
        assert c.heartbeat("g", 1, leader.member_id, None, 2 * REBALANCE - 1) is ErrorCode.none
        c.tick(2 * REBALANCE)  # the follower never sent SyncGroup within the rebalance timeout
        desc = c.describe_group("g")
        assert desc.state == "PreparingRebalance"
        assert [m.member_id for m in desc.members] == [leader.member_id]
        assert follower.member_id not in {m.member_id for m in desc.members}

    run(scenario())


def test_leave_group_batched_and_last_member_leaving_empties_the_group() -> None:
    async def scenario() -> None:
        c, topic = make()
        results, _ = await form_group(c, 3, instances=["i0", None, None])
        static, dyn1, dyn2 = results
        error, per_member = c.leave_group(
            "g",
            [("", "i0", "restart"), ("nobody", None, None), (dyn1.member_id, "wrong-instance", None)],
            REBALANCE + 1,
        )
        assert error is ErrorCode.none
        assert per_member == [
            ("", "i0", ErrorCode.none),
            ("nobody", None, ErrorCode.unknown_member_id),
            (dyn1.member_id, "wrong-instance", ErrorCode.unknown_member_id),
        ]
        assert c.describe_group("g").state == "PreparingRebalance"
        error, per_member = c.leave_group("g", [(dyn1.member_id, None, None), (dyn2.member_id, None, None)], 30_000)
        assert [e for _, _, e in per_member] == [ErrorCode.none, ErrorCode.none]
        desc = c.describe_group("g")
        assert desc.state == "Empty" and desc.members == []
        # the empty generation (2) is persisted, without protocol or leader
        last = [v for k, v in decoded(topic) if isinstance(k, GroupMetadataKey)][-1]
        assert last is not None
        assert (last.generation, last.protocol, last.leader, last.members) == (2, None, None, ())  # type: ignore[attr-defined]
        # unknown group: per-member UNKNOWN_MEMBER_ID, as Kafka
        assert c.leave_group("other", [("m", None, None)], 0) == (
            ErrorCode.none,
            [("m", None, ErrorCode.unknown_member_id)],
        )

    run(scenario())


# --- KIP-394 and KIP-345 -------------------------------------------------------------------


def test_member_id_required_flow() -> None:
    async def scenario() -> None:
        c, _ = make()
        first = await join(c, client="rdkafka", require_known=True, now=0)
        assert first.error is ErrorCode.member_id_required
        assert first.member_id.startswith("rdkafka-") and len(first.member_id) > len("rdkafka-")
        assert c.heartbeat("g", 0, first.member_id, None, 1) is ErrorCode.unknown_member_id  # only pending
        task = asyncio.ensure_future(join(c, member_id=first.member_id, require_known=True, now=10))
        await settle()
        c.tick(10 + REBALANCE)
        result = await task
        assert result.error is ErrorCode.none and result.member_id == first.member_id

        # a pending id that is never used expires after the session timeout
        stale = await join(c, client="other", require_known=True, now=30_000)
        assert stale.error is ErrorCode.member_id_required
        c.tick(30_000 + SESSION)
        late = await join(c, member_id=stale.member_id, now=30_000 + SESSION + 1)
        assert late.error is ErrorCode.unknown_member_id

    run(scenario())


def test_pending_member_blocks_join_completion_until_it_joins() -> None:
    async def scenario() -> None:
        c, _ = make()
        results, _ = await form_group(c, 1)
        (a,) = results
        pending = await join(c, client="new", require_known=True, now=25_000)
        assert pending.error is ErrorCode.member_id_required
        ta = asyncio.ensure_future(join(c, member_id=a.member_id, now=25_001))  # leader rejoins: rebalance
        await settle()
        assert not ta.done()  # waits for the pending member
        tn = asyncio.ensure_future(join(c, member_id=pending.member_id, now=25_002))
        ra, rn = await asyncio.gather(ta, tn)
        assert ra.generation_id == rn.generation_id == 2

    run(scenario())


def test_static_member_rejoin_without_rebalance_fences_old_id() -> None:
    async def scenario() -> None:
        c, topic = make()
        results, assignments = await form_group(c, 2, instances=["i0", "i1"])
        by_instance = dict(zip(["i0", "i1"], results, strict=True))
        old = by_instance["i0"]
        records_before = len(topic.all())

        # the consumer with group.instance.id i0 restarts: no member id, same protocols
        rejoined = await join(c, instance="i0", client="client-0", now=REBALANCE + 5)
        assert rejoined.error is ErrorCode.none
        assert rejoined.generation_id == 1
        assert rejoined.member_id != old.member_id and rejoined.member_id.startswith("i0-")
        was_leader = old.member_id == old.leader
        assert rejoined.skip_assignment is was_leader
        assert rejoined.leader == (rejoined.member_id if was_leader else old.leader)
        desc = c.describe_group("g")
        assert desc.state == "Stable"  # no rebalance
        assert {m.member_id for m in desc.members} == {rejoined.member_id, by_instance["i1"].member_id}
        # the replacement was persisted
        assert len(topic.all()) == records_before + 1

        # the old incarnation is fenced; the new one gets the old assignment
        assert c.heartbeat("g", 1, old.member_id, "i0", REBALANCE + 6) is ErrorCode.fenced_instance_id
        commit = c.commit_offsets("g", 1, old.member_id, "i0", [("t", 0, 1, -1, None)], REBALANCE + 6)
        assert commit == {("t", 0): ErrorCode.fenced_instance_id}
        got = await sync(c, rejoined, instance="i0", now=REBALANCE + 7)
        assert got.error is ErrorCode.none and got.assignment == assignments[old.member_id]
        assert c.heartbeat("g", 1, rejoined.member_id, "i0", REBALANCE + 8) is ErrorCode.none

    run(scenario())


def test_static_member_rejoin_with_new_protocol_rebalances() -> None:
    async def scenario() -> None:
        c, _ = make()
        results, _ = await form_group(c, 1, instances=["i0"])
        task = asyncio.ensure_future(
            join(c, instance="i0", protocols=[("roundrobin", sub(["t"])), PROTOCOLS[0]], now=REBALANCE + 5)
        )
        await settle()
        result = await task  # the only member rejoined: the join phase completes at once
        assert result.generation_id == 2 and result.protocol_name == "roundrobin"
        assert c.heartbeat("g", 2, results[0].member_id, "i0", REBALANCE + 6) is ErrorCode.fenced_instance_id

    run(scenario())


def test_static_member_rejoin_fast_path_append_failure_changes_nothing() -> None:
    async def scenario() -> None:
        c, topic = make()
        results, _ = await form_group(c, 1, instances=["i0"])
        topic.fail = OSError("disk gone")
        result = await join(c, instance="i0", now=REBALANCE + 5)
        assert result.error is ErrorCode.coordinator_not_available
        assert [m.member_id for m in c.describe_group("g").members] == [results[0].member_id]
        assert c.heartbeat("g", 1, results[0].member_id, "i0", REBALANCE + 6) is ErrorCode.none

    run(scenario())


# --- offsets ------------------------------------------------------------------------------


def test_commit_validation_generation_member_and_rebalance() -> None:
    async def scenario() -> None:
        c, _ = make()
        tasks = [asyncio.ensure_future(join(c, client=f"c{i}")) for i in range(2)]
        await settle()
        c.tick(REBALANCE)
        results = await asyncio.gather(*tasks)
        member = results[0].member_id
        offsets: list[tuple[str, int, int, int, str | None]] = [("t", 0, 10, 3, "meta")]
        # CompletingRebalance: the member knows the generation but has no assignment yet
        assert c.commit_offsets("g", 1, member, None, offsets, REBALANCE + 1) == {
            ("t", 0): ErrorCode.rebalance_in_progress
        }
        leader = next(r for r in results if r.members)
        await sync(c, leader, {}, now=REBALANCE + 2)
        assert c.commit_offsets("g", 0, member, None, offsets, REBALANCE + 3) == {
            ("t", 0): ErrorCode.illegal_generation
        }
        assert c.commit_offsets("g", 1, "ghost", None, offsets, REBALANCE + 3) == {
            ("t", 0): ErrorCode.unknown_member_id
        }
        # a simple (generation -1) commit to an active group is refused
        assert c.commit_offsets("g", -1, "", None, offsets, REBALANCE + 3) == {("t", 0): ErrorCode.unknown_member_id}
        assert c.commit_offsets("g", 1, member, None, offsets, REBALANCE + 4) == {("t", 0): ErrorCode.none}
        assert c.fetch_offsets("g", [("t", 0), ("t", 1)]) == (
            ErrorCode.none,
            {("t", 0): (10, 3, "meta", ErrorCode.none), ("t", 1): (-1, -1, "", ErrorCode.none)},
        )
        # unknown group with a generation: ILLEGAL_GENERATION, and no group is created
        assert c.commit_offsets("nope", 3, "m", None, offsets, 0) == {("t", 0): ErrorCode.illegal_generation}
        assert c.describe_group("nope").state == "Dead"

    run(scenario())


def test_commit_refreshes_session() -> None:
    async def scenario() -> None:
        c, _ = make()
        results, _ = await form_group(c, 1)
        member = results[0].member_id
        assert c.commit_offsets("g", 1, member, None, [("t", 0, 1, -1, None)], REBALANCE + 9000)
        c.tick(REBALANCE + SESSION + 1)
        assert c.describe_group("g").state == "Stable"
        c.tick(REBALANCE + 9000 + SESSION)
        assert c.describe_group("g").state == "Empty"

    run(scenario())


def test_fire_passed_deadlines_expires_one_group_between_ticks() -> None:
    """DescribeGroups and DeleteGroups fire the group's passed deadlines before answering,
    as Kafka's heartbeat purgatory would have (the broker ticks only every 100 ms):
    librdkafka's 0081 deletes its groups 6 s after closing their static members, whose
    session timeout is 6 s, and got NON_EMPTY_GROUP."""

    async def scenario() -> None:
        c, _ = make()
        await form_group(c, 1, instances=["static-1"])
        await form_group(c, 1, group="other")
        c.fire_passed_deadlines("g", REBALANCE + SESSION - 1)
        assert c.describe_group("g").state == "Stable"
        c.fire_passed_deadlines("g", REBALANCE + SESSION)
        assert c.describe_group("g").state == "Empty"
        assert c.delete_groups(["g"]) == {"g": ErrorCode.none}
        assert c.describe_group("other").state == "Stable"  # only the group asked about
        c.fire_passed_deadlines("unknown", REBALANCE + SESSION)  # no such group: nothing to fire

    run(scenario())


def test_simple_commits_create_an_empty_group() -> None:
    c, topic = make()
    assert c.commit_offsets("simple", -1, "", None, [("t", 0, 5, -1, None), ("t", 1, 6, 2, "x")], 100) == {
        ("t", 0): ErrorCode.none,
        ("t", 1): ErrorCode.none,
    }
    assert c.fetch_offsets("simple", None) == (
        ErrorCode.none,
        {("t", 0): (5, -1, "", ErrorCode.none), ("t", 1): (6, 2, "x", ErrorCode.none)},
    )
    assert c.list_groups() == [("simple", "", "Empty")]
    desc = c.describe_group("simple")
    assert (desc.error, desc.state, desc.protocol_type, desc.members) == (ErrorCode.none, "Empty", "", [])
    keys = [decode_key(k) for k, _ in topic.all()]
    assert keys == [OffsetCommitKey("simple", "t", 0), OffsetCommitKey("simple", "t", 1)]
    # retention (OffsetCommit v2-v4) writes value version 1 with an expire timestamp
    c.commit_offsets("simple", -1, "", None, [("t", 2, 7, -1, None)], 200, retention_ms=50)
    assert topic.all()[-1][1][:2] == b"\x00\x01"  # type: ignore[index]


def test_offset_metadata_too_large_is_per_partition() -> None:
    c, _ = make(max_metadata_bytes=10)
    result = c.commit_offsets("g", -1, "", None, [("t", 0, 1, -1, "x" * 11), ("t", 1, 2, -1, "x" * 10)], 0)
    assert result == {("t", 0): ErrorCode.offset_metadata_too_large, ("t", 1): ErrorCode.none}
    _, fetched = c.fetch_offsets("g", [("t", 0), ("t", 1)])
    assert fetched[("t", 0)][0] == -1 and fetched[("t", 1)][0] == 2


def test_commit_append_failure_leaves_offsets_unchanged() -> None:
    c, topic = make()
    c.commit_offsets("g", -1, "", None, [("t", 0, 1, -1, None)], 0)
    topic.fail = OSError("no space")
    assert c.commit_offsets("g", -1, "", None, [("t", 0, 2, -1, None)], 1) == {
        ("t", 0): ErrorCode.coordinator_not_available
    }
    assert c.fetch_offsets("g", [("t", 0)])[1][("t", 0)][0] == 1


def test_offsets_of_empty_group_expire_from_when_it_became_empty() -> None:
    async def scenario() -> None:
        c, topic = make(offsets_retention_ms=100_000, offsets_retention_check_interval_ms=0)
        results, _ = await form_group(c, 1, session=60_000)
        member = results[0].member_id
        c.commit_offsets("g", 1, member, None, [("t", 0, 1, -1, None), ("u", 0, 2, -1, None)], REBALANCE)
        # Stable consumer group: offsets of unsubscribed topic "u" expire by commit time,
        # those of subscribed "t" do not
        for now in range(REBALANCE + 50_000, REBALANCE + 150_000, 50_000):
            assert c.heartbeat("g", 1, member, None, now) is ErrorCode.none
            c.tick(now)
        _, offsets = c.fetch_offsets("g", None)
        assert set(offsets) == {("t", 0)}
        empty_at = REBALANCE + 150_000
        c.leave_group("g", [(member, None, None)], empty_at)
        assert c.describe_group("g").state == "Empty"
        c.tick(empty_at + 99_999)
        assert set(c.fetch_offsets("g", None)[1]) == {("t", 0)}
        c.tick(empty_at + 100_000)
        assert c.fetch_offsets("g", None)[1] == {}
        assert c.describe_group("g").state == "Dead"  # removed: no offsets, no members
        tail = decoded(topic)[-2:]
        assert tail == [(OffsetCommitKey("g", "t", 0), None), (GroupMetadataKey("g"), None)]

    run(scenario())


def test_simple_group_offsets_expire_by_commit_time_and_explicit_expiry() -> None:
    c, topic = make(offsets_retention_ms=1000, offsets_retention_check_interval_ms=0)
    c.commit_offsets("s", -1, "", None, [("t", 0, 1, -1, None)], 0)
    c.commit_offsets("s", -1, "", None, [("t", 1, 1, -1, None)], 500, retention_ms=100_000)
    c.tick(999)
    assert len(c.fetch_offsets("s", None)[1]) == 2
    c.tick(1000)
    assert set(c.fetch_offsets("s", None)[1]) == {("t", 1)}
    c.tick(100_499)
    assert set(c.fetch_offsets("s", None)[1]) == {("t", 1)}
    c.tick(100_500)
    assert c.list_groups() == []


def test_delete_groups() -> None:
    async def scenario() -> None:
        c, topic = make()
        await form_group(c, 1, group="active")
        c.commit_offsets("idle", -1, "", None, [("t", 0, 1, -1, None), ("t", 1, 2, -1, None)], 0)
        result = c.delete_groups(["active", "idle", "unknown", ""])
        assert result == {
            "active": ErrorCode.non_empty_group,
            "idle": ErrorCode.none,
            "unknown": ErrorCode.group_id_not_found,
            "": ErrorCode.invalid_group_id,
        }
        assert c.describe_group("idle").state == "Dead"
        assert c.fetch_offsets("idle", None) == (ErrorCode.none, {})
        assert c.describe_group("active").state == "Stable"
        assert [r for r in decoded(topic) if getattr(r[0], "group", None) == "idle"][-3:] == [
            (OffsetCommitKey("idle", "t", 0), None),
            (OffsetCommitKey("idle", "t", 1), None),
            (GroupMetadataKey("idle"), None),
        ]
        assert c.delete_groups(["idle"]) == {"idle": ErrorCode.group_id_not_found}

    run(scenario())


def test_offset_delete_refused_for_subscribed_topics() -> None:
    async def scenario() -> None:
        c, topic = make()
        results, _ = await form_group(c, 2)
        member = results[0].member_id
        c.commit_offsets("g", 1, member, None, [("t", 0, 1, -1, None), ("u", 0, 2, -1, None)], REBALANCE)
        error, per_partition = c.delete_offsets("g", [("t", 0), ("u", 0), ("v", 0)])
        assert error is ErrorCode.none
        assert per_partition == {
            ("t", 0): ErrorCode.group_subscribed_to_topic,
            ("u", 0): ErrorCode.none,
            ("v", 0): ErrorCode.none,
        }
        assert set(c.fetch_offsets("g", None)[1]) == {("t", 0)}
        assert decoded(topic)[-1] == (OffsetCommitKey("g", "u", 0), None)
        assert c.delete_offsets("nope", [("t", 0)]) == (ErrorCode.group_id_not_found, {})
        # once Empty, everything can go
        c.leave_group("g", [(r.member_id, None, None) for r in results], REBALANCE + 1)
        assert c.delete_offsets("g", [("t", 0)]) == (ErrorCode.none, {("t", 0): ErrorCode.none})
        assert c.fetch_offsets("g", None)[1] == {}

    run(scenario())


def test_offset_delete_on_active_non_consumer_group() -> None:
    async def scenario() -> None:
        c, _ = make()
        task = asyncio.ensure_future(join(c, protocol_type="connect", protocols=[("v0", b"cfg")]))
        await settle()
        c.tick(REBALANCE)
        result = await task
        await sync(c, result, {result.member_id: b""})
        assert c.delete_offsets("g", [("t", 0)]) == (ErrorCode.non_empty_group, {})

    run(scenario())


# --- limits and bad input ------------------------------------------------------------------


def test_group_max_size() -> None:
    async def scenario() -> None:
        c, _ = make(max_size=2)
        tasks = [asyncio.ensure_future(join(c, client=f"c{i}")) for i in range(2)]
        await settle()
        third = await join(c, client="c2", now=1)
        assert third.error is ErrorCode.group_max_size_reached
        c.tick(REBALANCE)
        results = await asyncio.gather(*tasks)
        assert len(next(r for r in results if r.members).members) == 2
        later = await join(c, client="c3", now=REBALANCE + 1)  # CompletingRebalance: full too
        assert later.error is ErrorCode.group_max_size_reached

    run(scenario())


def test_inconsistent_protocols() -> None:
    async def scenario() -> None:
        c, _ = make()
        await form_group(c, 1)
        before = c.describe_group("g")
        other_type = await join(c, protocol_type="connect", now=REBALANCE + 1)
        assert other_type.error is ErrorCode.inconsistent_group_protocol
        no_common = await join(c, protocols=[("roundrobin", sub(["t"]))], now=REBALANCE + 1)
        assert no_common.error is ErrorCode.inconsistent_group_protocol
        assert c.describe_group("g") == before
        # an Empty (new) group needs a protocol type and at least one protocol
        assert (await join(c, "new", protocols=[])).error is ErrorCode.inconsistent_group_protocol
        assert (await join(c, "new2", protocol_type="")).error is ErrorCode.inconsistent_group_protocol
        assert c.describe_group("new").state == "Dead" and c.list_groups() == [("g", "consumer", "Stable")]

    run(scenario())


def test_join_input_checks() -> None:
    async def scenario() -> None:
        c, _ = make(max_member_metadata_bytes=100)
        assert (await join(c, "")).error is ErrorCode.invalid_group_id
        assert (await join(c, session=5999)).error is ErrorCode.invalid_session_timeout
        assert (await join(c, session=1_800_001)).error is ErrorCode.invalid_session_timeout
        assert (await join(c, protocols=[("range", b"x" * 101)])).error is ErrorCode.invalid_request
        assert (await join(c, member_id="someone")).error is ErrorCode.unknown_member_id
        assert c.list_groups() == []

    run(scenario())


def test_sync_and_heartbeat_errors() -> None:
    async def scenario() -> None:
        c, _ = make()
        results, _ = await form_group(c, 1)
        r = results[0]
        assert c.heartbeat("g", 2, r.member_id, None, 1) is ErrorCode.illegal_generation
        assert c.heartbeat("x", 1, r.member_id, None, 1) is ErrorCode.unknown_member_id
        assert c.heartbeat("", 1, r.member_id, None, 1) is ErrorCode.invalid_group_id
        bad_gen = await c.sync_group("g", 7, r.member_id, None, None, None, [], 1)
        assert bad_gen.error is ErrorCode.illegal_generation
        bad_proto = await c.sync_group("g", 1, r.member_id, None, "consumer", "roundrobin", [], 1)
        assert bad_proto.error is ErrorCode.inconsistent_group_protocol
        unknown = await c.sync_group("g", 1, "who", None, None, None, [], 1)
        assert unknown.error is ErrorCode.unknown_member_id
        # PreparingRebalance: heartbeat and sync say REBALANCE_IN_PROGRESS
        rejoin = asyncio.ensure_future(join(c, member_id=r.member_id, now=REBALANCE + 1))
        await settle()
        assert rejoin.done()  # the only member rejoined
        assert (await rejoin).generation_id == 2
        assert c.heartbeat("g", 2, r.member_id, None, REBALANCE + 2) is ErrorCode.none  # CompletingRebalance

    run(scenario())


def test_new_member_during_completing_rebalance_fails_parked_syncs() -> None:
    async def scenario() -> None:
        c, _ = make()
        tasks = [asyncio.ensure_future(join(c, client=f"c{i}")) for i in range(2)]
        await settle()
        c.tick(REBALANCE)
        results = await asyncio.gather(*tasks)
        follower = next(r for r in results if not r.members)
        parked = asyncio.ensure_future(sync(c, follower, now=REBALANCE + 1))
        await settle()
        newcomer = asyncio.ensure_future(join(c, client="late", now=REBALANCE + 2))
        await settle()
        assert (await parked).error is ErrorCode.rebalance_in_progress
        assert c.describe_group("g").state == "PreparingRebalance"
        assert c.heartbeat("g", 1, follower.member_id, None, REBALANCE + 3) is ErrorCode.rebalance_in_progress
        resync = await sync(c, follower, now=REBALANCE + 3)
        assert resync.error is ErrorCode.rebalance_in_progress
        again = [asyncio.ensure_future(join(c, member_id=r.member_id, now=REBALANCE + 4)) for r in results]
        done = await asyncio.gather(newcomer, *again)
        assert {r.generation_id for r in done} == {2}

    run(scenario())


def test_leader_sync_append_failure_rebalances_and_reports() -> None:
    async def scenario() -> None:
        c, topic = make()
        tasks = [asyncio.ensure_future(join(c, client=f"c{i}")) for i in range(2)]
        await settle()
        c.tick(REBALANCE)
        results = await asyncio.gather(*tasks)
        leader = next(r for r in results if r.members)
        follower = next(r for r in results if not r.members)
        parked = asyncio.ensure_future(sync(c, follower, now=REBALANCE + 1))
        await settle()
        topic.fail = OSError("broken")
        got = await sync(c, leader, {r.member_id: b"a" for r in results}, now=REBALANCE + 2)
        assert got.error is ErrorCode.coordinator_not_available
        assert (await parked).error is ErrorCode.coordinator_not_available
        desc = c.describe_group("g")
        assert desc.state == "PreparingRebalance" and topic.all() == []

    run(scenario())


def test_bad_input_never_touches_another_group() -> None:
    async def scenario() -> None:
        c, topic = make(max_member_metadata_bytes=64, max_metadata_bytes=8)
        results, _ = await form_group(c, 2, group="good")
        member = results[0].member_id
        c.commit_offsets("good", 1, member, None, [("t", 0, 42, 1, "ok")], REBALANCE)
        before = (c.describe_group("good"), c.fetch_offsets("good", None), list(topic.all()))

        assert (await join(c, "bad", session=1)).error is ErrorCode.invalid_session_timeout
        assert (await join(c, "bad", protocols=[("range", b"x" * 65)])).error is ErrorCode.invalid_request
        assert (await join(c, "bad", protocol_type="")).error is ErrorCode.inconsistent_group_protocol
        assert (await join(c, "bad", member_id=member)).error is ErrorCode.unknown_member_id
        assert c.commit_offsets("bad", 1, member, None, [("t", 0, 1, -1, None)], 1) == {
            ("t", 0): ErrorCode.illegal_generation
        }
        assert c.commit_offsets("bad", -1, "", None, [("t", 0, 1, -1, "123456789")], 1) == {
            ("t", 0): ErrorCode.offset_metadata_too_large
        }
        assert (await c.sync_group("bad", 1, member, None, None, None, [], 1)).error is ErrorCode.unknown_member_id
        assert c.heartbeat("bad", 1, member, None, 1) is ErrorCode.unknown_member_id
        assert c.leave_group("bad", [(member, None, None)], 1)[1][0][2] is ErrorCode.unknown_member_id
        assert c.delete_groups(["bad"]) == {"bad": ErrorCode.group_id_not_found}
        # a member of "good" using the wrong group id changes nothing in "good"
        assert c.heartbeat("bad", 1, member, None, 1) is ErrorCode.unknown_member_id

        assert (c.describe_group("good"), c.fetch_offsets("good", None), list(topic.all())) == before
        assert [g for g, _, _ in c.list_groups()] == ["good"]

    run(scenario())


# --- partitions: load, unload, ownership -----------------------------------------------------


def test_not_coordinator_for_unloaded_partition() -> None:
    async def scenario() -> None:
        c = GroupCoordinator(GroupConfig(offsets_topic_partitions=4), lambda p, r: None)
        p = c.partition_for("g")
        assert not c.is_loaded("g")
        assert (await join(c)).error is ErrorCode.not_coordinator
        assert c.heartbeat("g", 1, "m", None, 0) is ErrorCode.not_coordinator
        assert c.commit_offsets("g", -1, "", None, [("t", 0, 1, -1, None)], 0) == {("t", 0): ErrorCode.not_coordinator}
        assert c.fetch_offsets("g", None) == (ErrorCode.not_coordinator, {})
        assert c.describe_group("g").error is ErrorCode.not_coordinator
        assert c.delete_groups(["g"]) == {"g": ErrorCode.not_coordinator}
        assert c.leave_group("g", [("m", None, None)], 0) == (ErrorCode.not_coordinator, [])
        c.load_partition(p, [], 0)
        assert c.is_loaded("g") and c.loaded_partitions == frozenset({p})

    run(scenario())


def test_unload_answers_parked_requests_with_not_coordinator() -> None:
    async def scenario() -> None:
        c, _ = make()
        task = asyncio.ensure_future(join(c))
        await settle()
        c.unload_partition(c.partition_for("g"))
        result = await task
        assert result.error is ErrorCode.not_coordinator
        assert c.describe_group("g").error is ErrorCode.not_coordinator
        assert not c.is_loaded("g")

    run(scenario())


def test_load_partition_reproduces_state() -> None:
    async def scenario() -> None:
        c, topic = make(offsets_topic_partitions=3)
        now = 0
        results, assignments = await form_group(c, 3, group="stable", instances=["i0", None, None], session=60_000)
        now = REBALANCE
        c.commit_offsets("stable", 1, results[1].member_id, None, [("t", 0, 10, 1, "a"), ("t", 1, 11, 1, None)], now)
        c.commit_offsets("stable", 1, results[1].member_id, None, [("t", 0, 12, 2, "b")], now + 1)  # overwrites
        # a static restart without rebalance: the replacement is in the log too
        await join(c, "stable", instance="i0", client="client-0", session=60_000, now=now + 2)
        # a group that ran, then emptied, keeping offsets
        (solo,), _ = await form_group(c, 1, group="emptied", now=now)
        c.commit_offsets("emptied", 1, solo.member_id, None, [("x", 3, 7, -1, "m")], 2 * now)
        c.leave_group("emptied", [(solo.member_id, None, None)], 2 * now + 1)
        # a simple group, a deleted group, an OffsetDelete
        c.commit_offsets("simple", -1, "", None, [("s", 0, 99, -1, None), ("s", 1, 98, -1, None)], now)
        c.delete_offsets("simple", [("s", 1)])
        c.commit_offsets("deleted", -1, "", None, [("d", 0, 1, -1, None)], now)
        c.delete_groups(["deleted"])
        # a group whose rebalance is in progress is reloaded at its last persisted generation
        (rb,), _ = await form_group(c, 1, group="rebalancing", now=now, session=60_000)
        pending = asyncio.ensure_future(join(c, "rebalancing", client="newcomer", now=2 * now + 1000))
        await settle()
        assert c.describe_group("rebalancing").state == "PreparingRebalance"

        fresh = GroupCoordinator(c.config, lambda p, r: None)
        for p in range(3):
            fresh.load_partition(p, list(topic.records.get(p, [])), 10 * now)

        for group in ("stable", "emptied", "simple", "deleted"):
            assert fresh.describe_group(group) == c.describe_group(group), group
            assert fresh.fetch_offsets(group, None) == c.fetch_offsets(group, None), group
        reloaded = fresh.describe_group("rebalancing")
        assert reloaded.state == "Stable" and [m.member_id for m in reloaded.members] == [rb.member_id]
        assert sorted(fresh.list_groups()) == sorted(
            g if g[0] != "rebalancing" else ("rebalancing", "consumer", "Stable") for g in c.list_groups()
        )
        stable = fresh.describe_group("stable")
        assert stable.state == "Stable" and len(stable.members) == 3
        assert fresh.fetch_offsets("stable", [("t", 0)])[1][("t", 0)] == (12, 2, "b", ErrorCode.none)
        assert fresh.describe_group("emptied").state == "Empty"

        # the reloaded group keeps working: generation, members, static membership
        member = next(m for m in stable.members if m.group_instance_id is None)
        assert fresh.heartbeat("stable", 1, member.member_id, None, 10 * now + 1) is ErrorCode.none
        static = next(m for m in stable.members if m.group_instance_id == "i0")
        assert fresh.heartbeat("stable", 1, static.member_id, "i0", 10 * now + 1) is ErrorCode.none
        got = await fresh.sync_group("stable", 1, member.member_id, None, None, None, [], 10 * now + 2)
        assert got.error is ErrorCode.none and got.assignment == assignments[member.member_id]
        # loaded members' sessions start at load time
        assert fresh.heartbeat("stable", 1, member.member_id, None, 10 * now + 30_000) is ErrorCode.none
        fresh.tick(10 * now + 60_000 + 5)
        after = fresh.describe_group("stable")
        assert after.state == "PreparingRebalance" and [m.member_id for m in after.members] == [member.member_id]
        pending.cancel()

    run(scenario())


def test_load_skips_unknown_record_types_and_tombstoned_groups() -> None:
    c, topic = make(offsets_topic_partitions=1)
    c.commit_offsets("a", -1, "", None, [("t", 0, 1, -1, None)], 0)
    records = [(b"\x00\x05\x00\x01a", b"\x00\x00whatever")] + topic.all() + [(b"\x00\x01garbage", b"")]
    fresh = GroupCoordinator(c.config, lambda p, r: None)
    fresh.load_partition(0, records, 0)
    assert fresh.fetch_offsets("a", None) == c.fetch_offsets("a", None)


def test_commit_offsets_records_go_to_the_groups_partition() -> None:
    c, topic = make(offsets_topic_partitions=50)
    for g in ("alpha", "beta", "gamma"):
        c.commit_offsets(g, -1, "", None, [("t", 0, 1, -1, None)], 0)
    for p, records in topic.records.items():
        for key, _ in records:
            k = decode_key(key)
            assert isinstance(k, OffsetCommitKey) and c.partition_for(k.group) == p


def test_list_groups_filters() -> None:
    async def scenario() -> None:
        c, _ = make()
        await form_group(c, 1, group="st")
        c.commit_offsets("em", -1, "", None, [("t", 0, 1, -1, None)], 0)
        assert sorted(c.list_groups()) == [("em", "", "Empty"), ("st", "consumer", "Stable")]
        assert c.list_groups(states={"stable"}) == [("st", "consumer", "Stable")]
        assert c.list_groups(states={"Empty", "Dead"}) == [("em", "", "Empty")]
        assert sorted(c.list_groups(types={"classic"})) == sorted(c.list_groups())
        assert c.list_groups(types={"consumer"}) == []  # KIP-848 group type, not protocol type
        assert sorted(c.list_groups(states=set(), types=set())) == sorted(c.list_groups())

    run(scenario())


def test_describe_non_stable_group_hides_metadata() -> None:
    async def scenario() -> None:
        c, _ = make()
        task = asyncio.ensure_future(join(c))
        await settle()
        desc = c.describe_group("g")
        assert desc.state == "PreparingRebalance" and desc.protocol_name == ""
        assert [(m.metadata, m.assignment) for m in desc.members] == [(b"", b"")]
        c.tick(REBALANCE)
        await task
        unknown = c.describe_group("nothing")
        assert (unknown.error, unknown.state, unknown.members) == (ErrorCode.none, "Dead", [])

    run(scenario())


@pytest.mark.parametrize("n", [1, 10])
def test_timing_members_reach_stable(n: int) -> None:
    """Sanity timing (not a benchmark): n members join and sync in well under a second."""
    import time

    async def scenario() -> float:
        c, _ = make()
        start = time.perf_counter()
        await form_group(c, n)
        return time.perf_counter() - start

    assert run(scenario()) < 1.0


# --- transactional offset commits (KIP-98, KIP-447) ----------------------------------------


def test_transactional_offsets_wait_for_the_marker_and_follow_its_result() -> None:
    async def scenario() -> None:
        c, topic = make()
        written: list[tuple[int, int, int]] = []  # partition, producer id, epoch

        def append_txn(partition: int, records: list[tuple[bytes, bytes | None]], pid: int, epoch: int) -> None:
            topic.append(partition, records)
            written.append((partition, pid, epoch))

        c._append_transactional = append_txn
        results, _ = await form_group(c, 1)
        member = results[0].member_id
        generation = results[0].generation_id
        offsets: list[tuple[str, int, int, int, str | None]] = [("t", 0, 10, -1, None)]
        # KIP-447: a zombie of an older generation, or an unknown member, is refused
        assert c.commit_transactional_offsets("g", 7, 0, generation + 1, member, None, offsets, 1) == {
            ("t", 0): ErrorCode.illegal_generation}
        assert c.commit_transactional_offsets("g", 7, 0, generation, "ghost", None, offsets, 1) == {
            ("t", 0): ErrorCode.unknown_member_id}
        assert written == []
        assert c.commit_transactional_offsets("g", 7, 0, generation, member, None, offsets, 1) == {
            ("t", 0): ErrorCode.none}
        partition = c.partition_for("g")
        assert written == [(partition, 7, 0)]
        # Not committed before the marker: require_stable readers are told to wait.
        assert c.fetch_offsets("g", [("t", 0)])[1][("t", 0)][0] == -1
        assert c.fetch_offsets("g", [("t", 0)], require_stable=True)[1][("t", 0)][3] == \
            ErrorCode.unstable_offset_commit
        c.complete_transaction(partition, 7, committed=False)
        assert c.fetch_offsets("g", [("t", 0)], require_stable=True)[1][("t", 0)] == (-1, -1, "", ErrorCode.none)
        assert c.commit_transactional_offsets("g", 7, 0, -1, "", None, [("t", 0, 20, -1, None)], 2) == {
            ("t", 0): ErrorCode.none}
        c.complete_transaction(partition + 1, 7, committed=True)  # another partition's marker: nothing
        assert c.fetch_offsets("g", [("t", 0)])[1][("t", 0)][0] == -1
        c.complete_transaction(partition, 7, committed=True)
        assert c.fetch_offsets("g", [("t", 0)], require_stable=True)[1][("t", 0)][0] == 20

    run(scenario())


def test_a_loaded_partition_keeps_open_transactions_pending() -> None:
    c, topic = make()
    record = offset_commit_record("simple", "t", 1, OffsetCommitValue(33, "", 5, -1, -1))
    partition = c.partition_for("simple")
    c.load_partition(partition, [], 10, pending_transactions=[(9, [record])])
    assert c.fetch_offsets("simple", [("t", 1)], require_stable=True)[1][("t", 1)][3] == \
        ErrorCode.unstable_offset_commit
    c.complete_transaction(partition, 9, committed=True)
    assert c.fetch_offsets("simple", [("t", 1)])[1][("t", 1)][0] == 33
    assert topic.all() == []

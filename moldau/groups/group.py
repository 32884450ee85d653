"""One classic consumer group: its members, generation, chosen protocol and offsets.

A :class:`ClassicGroup` holds state and answers questions about it (which protocol
would be chosen, is this member valid, have all members rejoined); it never decides
what to do with a request and never touches time on its own: the coordinator passes
``now_ms`` in. State changes go through :meth:`ClassicGroup.transition_to`, which
checks the table in :mod:`moldau.groups.state`.
"""

from __future__ import annotations

import asyncio
import struct
from collections import Counter
from dataclasses import dataclass, field

from moldau.groups.records import GroupMetadataValue, MemberMetadata
from moldau.groups.state import GroupState, check_transition
from moldau.protocol.errors import ErrorCode

CONSUMER_PROTOCOL_TYPE = "consumer"


# --- answers the coordinator gives (the server turns them into responses) ---------------


@dataclass(frozen=True)
class JoinGroupMember:
    member_id: str
    group_instance_id: str | None
    metadata: bytes


@dataclass(frozen=True)
class JoinGroupResult:
    error: ErrorCode
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    member_id: str = ""
    members: list[JoinGroupMember] = field(default_factory=list)
    skip_assignment: bool = False


@dataclass(frozen=True)
class SyncGroupResult:
    error: ErrorCode
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignment: bytes = b""


@dataclass(frozen=True)
class MemberDescription:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclass(frozen=True)
class GroupDescription:
    error: ErrorCode
    state: str
    protocol_type: str
    protocol_name: str
    members: list[MemberDescription] = field(default_factory=list)
    group_id: str = ""


@dataclass(frozen=True)
class OffsetAndMetadata:
    """A committed offset as kept in memory (and in OffsetCommitValue)."""

    offset: int
    leader_epoch: int
    metadata: str
    commit_timestamp_ms: int
    expire_timestamp_ms: int = -1


# --- members ---------------------------------------------------------------------------


@dataclass
class ClassicGroupMember:
    """A member of a classic group (Kafka's ``ClassicGroupMember``)."""

    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    protocol_type: str
    protocols: list[tuple[str, bytes]]
    assignment: bytes = b""
    is_new: bool = False
    heartbeat_deadline_ms: int = 0
    join_future: asyncio.Future[JoinGroupResult] | None = None
    sync_future: asyncio.Future[SyncGroupResult] | None = None

    @property
    def is_static(self) -> bool:
        return self.group_instance_id is not None

    @property
    def is_awaiting_join(self) -> bool:
        return self.join_future is not None

    @property
    def is_awaiting_sync(self) -> bool:
        return self.sync_future is not None

    def protocol_names(self) -> list[str]:
        return [name for name, _ in self.protocols]

    def metadata(self, protocol: str | None) -> bytes:
        for name, metadata in self.protocols:
            if name == protocol:
                return metadata
        return b""

    def matches(self, protocols: list[tuple[str, bytes]]) -> bool:
        """Same protocols, same metadata, same order: rejoining changes nothing."""
        return [(n, bytes(m)) for n, m in protocols] == [(n, bytes(m)) for n, m in self.protocols]

    def vote(self, candidates: set[str]) -> str:
        """The member's most preferred protocol among ``candidates``."""
        for name, _ in self.protocols:
            if name in candidates:
                return name
        raise ValueError(f"member {self.member_id} supports none of {sorted(candidates)}")

    def session_expired(self, now_ms: int) -> bool:
        """Kafka's ``!hasSatisfiedHeartbeat`` at the deadline: members parked in a join or
        sync need no heartbeat, except new members, whose join may have been abandoned."""
        if now_ms < self.heartbeat_deadline_ms:
            return False
        if self.is_new:
            return True
        return not (self.is_awaiting_join or self.is_awaiting_sync)


# --- the consumer protocol's subscription (to know the topics a group reads) -----------


def consumer_subscription_topics(metadata: bytes) -> list[str]:
    """The topics of a ConsumerProtocolSubscription (any version 0-3: they all start with
    ``version:int16 topics:[string]``). Raises ValueError on malformed bytes."""
    buf = memoryview(metadata)
    try:
        (version,) = struct.unpack_from(">h", buf, 0)
        if version < 0:
            raise ValueError(f"negative ConsumerProtocolSubscription version {version}")
        (count,) = struct.unpack_from(">i", buf, 2)
        if count < 0:
            raise ValueError("null topics array")
        pos = 6
        topics: list[str] = []
        for _ in range(count):
            (n,) = struct.unpack_from(">h", buf, pos)
            pos += 2
            if n < 0 or pos + n > len(buf):
                raise ValueError("bad topic name length")
            topics.append(bytes(buf[pos : pos + n]).decode("utf-8"))
            pos += n
        return topics
    except struct.error as e:
        raise ValueError(f"truncated ConsumerProtocolSubscription: {e}") from e


# --- the group -------------------------------------------------------------------------


class ClassicGroup:
    """A classic group's in-memory state (Kafka's ``ClassicGroup``).

    Besides members and generation it holds the bookkeeping of the rebalance in progress:
    pending members (KIP-394 member ids handed out but not yet used), members that owe a
    SyncGroup, and the deadlines the coordinator's ``tick`` checks (join phase, initial
    delay, pending syncs). It also holds the group's committed offsets.
    """

    def __init__(self, group_id: str, now_ms: int, state: GroupState = GroupState.EMPTY) -> None:
        self.group_id = group_id
        self.state = state
        self.previous_state = state
        self.state_timestamp_ms: int | None = now_ms
        self.generation_id = 0
        self.protocol_type: str | None = None
        self.protocol_name: str | None = None
        self.leader_id: str | None = None
        self.members: dict[str, ClassicGroupMember] = {}
        self.static_members: dict[str, str] = {}  # group.instance.id -> member id
        self.pending_members: dict[str, int] = {}  # KIP-394 member id -> expiry deadline (ms)
        self.pending_sync_members: set[str] = set()
        self.supported_protocols: Counter[str] = Counter()
        self.subscribed_topics: frozenset[str] | None = None
        self.offsets: dict[tuple[str, int], OffsetAndMetadata] = {}
        # Join phase: completes at join_deadline_ms at the latest. For the initial rebalance
        # of an Empty group the deadline is the initial delay, extended while new members
        # arrive (new_member_added) until initial_remaining_ms is used up.
        self.join_deadline_ms: int | None = None
        self.initial_delay_ms = 0
        self.initial_remaining_ms = 0
        self.new_member_added = False
        self.join_is_initial = False
        self.sync_deadline_ms: int | None = None

    # -- state --------------------------------------------------------------------------

    def is_in(self, *states: GroupState) -> bool:
        return self.state in states

    def transition_to(self, target: GroupState, now_ms: int | None) -> None:
        """Move to ``target`` if the table allows it (else IllegalStateTransition);
        ``now_ms`` None keeps the state timestamp (unloading has no clock)."""
        check_transition(self.group_id, self.state, target)
        self.previous_state = self.state
        self.state = target
        if now_ms is not None:
            self.state_timestamp_ms = now_ms

    def can_rebalance(self) -> bool:
        return self.is_in(GroupState.STABLE, GroupState.COMPLETING_REBALANCE, GroupState.EMPTY)

    # -- membership ---------------------------------------------------------------------

    def has_member(self, member_id: str) -> bool:
        return member_id in self.members

    def is_pending_member(self, member_id: str) -> bool:
        return member_id in self.pending_members

    def is_leader(self, member_id: str) -> bool:
        return self.leader_id == member_id

    def static_member_id(self, group_instance_id: str | None) -> str | None:
        if group_instance_id is None:
            return None
        return self.static_members.get(group_instance_id)

    def num_awaiting_join(self) -> int:
        return sum(1 for m in self.members.values() if m.is_awaiting_join)

    def has_all_members_joined(self) -> bool:
        return len(self.members) == self.num_awaiting_join() and not self.pending_members

    def rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def add(self, member: ClassicGroupMember) -> None:
        if not self.members:
            self.protocol_type = member.protocol_type
        self.pending_members.pop(member.member_id, None)
        self.members[member.member_id] = member
        self.supported_protocols.update(member.protocol_names())
        if member.group_instance_id is not None:
            self.static_members[member.group_instance_id] = member.member_id
        if self.leader_id is None:
            self.leader_id = member.member_id

    def remove(self, member_id: str) -> ClassicGroupMember | None:
        self.pending_members.pop(member_id, None)
        self.pending_sync_members.discard(member_id)
        member = self.members.pop(member_id, None)
        if member is None:
            return None
        self.supported_protocols.subtract(member.protocol_names())
        self.supported_protocols += Counter()  # drop zero counts
        if member.group_instance_id is not None and self.static_members.get(member.group_instance_id) == member_id:
            del self.static_members[member.group_instance_id]
        if self.leader_id == member_id:
            self.leader_id = next(iter(self.members), None)
        return member

    def update_member(
        self,
        member: ClassicGroupMember,
        protocols: list[tuple[str, bytes]],
        rebalance_timeout_ms: int,
        session_timeout_ms: int,
    ) -> None:
        self.supported_protocols.subtract(member.protocol_names())
        member.protocols = list(protocols)
        self.supported_protocols.update(member.protocol_names())
        self.supported_protocols += Counter()
        member.rebalance_timeout_ms = rebalance_timeout_ms
        member.session_timeout_ms = session_timeout_ms

    def replace_static_member(
        self, group_instance_id: str, old_member_id: str, new_member_id: str
    ) -> ClassicGroupMember:
        """Give a static member a new member id, keeping its assignment. Whoever still waits
        on the old id's join or sync is fenced (FENCED_INSTANCE_ID)."""
        old = self.members[old_member_id]
        complete_join(old, JoinGroupResult(ErrorCode.fenced_instance_id, member_id=old_member_id))
        complete_sync(old, SyncGroupResult(ErrorCode.fenced_instance_id))
        new = ClassicGroupMember(
            member_id=new_member_id,
            group_instance_id=group_instance_id,
            client_id=old.client_id,
            client_host=old.client_host,
            rebalance_timeout_ms=old.rebalance_timeout_ms,
            session_timeout_ms=old.session_timeout_ms,
            protocol_type=old.protocol_type,
            protocols=old.protocols,
            assignment=old.assignment,
        )
        # same position as the old id: the persisted record lists members in this order
        self.members = {
            (new_member_id if mid == old_member_id else mid): (new if mid == old_member_id else m)
            for mid, m in self.members.items()
        }
        if self.leader_id == old_member_id:
            self.leader_id = new_member_id
        if old_member_id in self.pending_sync_members:
            self.pending_sync_members.discard(old_member_id)
            self.pending_sync_members.add(new_member_id)
        self.static_members[group_instance_id] = new_member_id
        return new

    def validate_member(self, member_id: str, group_instance_id: str | None) -> ErrorCode:
        """Kafka's ``validateMember``: a static member must use the member id currently
        bound to its instance id (else it is fenced); a dynamic one must be a member."""
        if group_instance_id is not None:
            existing = self.static_members.get(group_instance_id)
            if existing is None:
                return ErrorCode.unknown_member_id
            if existing != member_id:
                return ErrorCode.fenced_instance_id
            return ErrorCode.none
        return ErrorCode.none if member_id in self.members else ErrorCode.unknown_member_id

    def maybe_elect_new_joined_leader(self) -> bool:
        """Keep the leader if it rejoined, else pick a member that did. False if none did."""
        if self.leader_id is not None:
            leader = self.members.get(self.leader_id)
            if leader is not None and leader.is_awaiting_join:
                return True
            for member in self.members.values():
                if member.is_awaiting_join:
                    self.leader_id = member.member_id
                    return True
            return False
        return False

    # -- protocols ----------------------------------------------------------------------

    def supports_protocols(self, protocol_type: str, protocol_names: set[str]) -> bool:
        """Can a member with these protocols join? An Empty group takes anything non-empty;
        otherwise the type must match and one protocol must be supported by every member."""
        if self.state is GroupState.EMPTY:
            return protocol_type != "" and bool(protocol_names)
        return self.protocol_type == protocol_type and any(
            self.supported_protocols.get(name, 0) == len(self.members) for name in protocol_names
        )

    def candidate_protocols(self) -> set[str]:
        n = len(self.members)
        return {name for name, count in self.supported_protocols.items() if count == n}

    def select_protocol(self, member_id: str | None = None, protocols: list[tuple[str, bytes]] | None = None) -> str:
        """Kafka's ``selectProtocol``: among the protocols every member supports, the one
        most members list first (each member votes for its own most preferred candidate).
        Ties go to the protocol the earliest joined member voted for (Kafka leaves ties to
        HashMap order). With ``member_id``/``protocols``: the choice if that member had
        those protocols (to decide before changing anything)."""
        preferences = [
            [n for n, _ in (protocols if m.member_id == member_id and protocols is not None else m.protocols)]
            for m in self.members.values()
        ]
        if not preferences:
            raise ValueError(f"group {self.group_id}: no members")
        candidates = set(preferences[0]).intersection(*preferences[1:])
        if not candidates:
            raise ValueError(f"group {self.group_id}: no protocol supported by all members")
        choices = [next(n for n in prefs if n in candidates) for prefs in preferences]
        votes: Counter[str] = Counter(choices)
        best = max(votes.values())
        return next(c for c in choices if votes[c] == best)

    # -- generations --------------------------------------------------------------------

    def init_next_generation(self, now_ms: int) -> None:
        """End the join phase: bump the generation; pick the protocol, or go Empty."""
        self.generation_id += 1
        if self.members:
            self.protocol_name = self.select_protocol()
            self.subscribed_topics = self.compute_subscribed_topics()
            self.transition_to(GroupState.COMPLETING_REBALANCE, now_ms)
        else:
            self.protocol_name = None
            self.subscribed_topics = self.compute_subscribed_topics()
            self.transition_to(GroupState.EMPTY, now_ms)

    def current_members_for_leader(self) -> list[JoinGroupMember]:
        return [
            JoinGroupMember(m.member_id, m.group_instance_id, m.metadata(self.protocol_name))
            for m in self.members.values()
        ]

    def compute_subscribed_topics(self) -> frozenset[str] | None:
        """The topics the members of a "consumer" group read, None when unknown."""
        if self.protocol_type != CONSUMER_PROTOCOL_TYPE:
            return None
        if not self.members:
            return frozenset()
        if self.protocol_name is None:
            return None
        topics: set[str] = set()
        try:
            for m in self.members.values():
                topics.update(consumer_subscription_topics(m.metadata(self.protocol_name)))
        except (ValueError, UnicodeDecodeError):
            return None
        return frozenset(topics)

    def is_subscribed_to_topic(self, topic: str) -> bool:
        """When the topics are unknown, a "consumer" group counts as subscribed (safe)."""
        if self.subscribed_topics is None:
            return self.protocol_type == CONSUMER_PROTOCOL_TYPE
        return topic in self.subscribed_topics

    # -- persistence --------------------------------------------------------------------

    def to_record_value(self, assignments: dict[str, bytes] | None = None) -> GroupMetadataValue:
        """The GroupMetadataValue of this generation; ``assignments`` overrides the members'
        (the leader's assignment is written before it is applied)."""
        members = tuple(
            MemberMetadata(
                member_id=m.member_id,
                group_instance_id=m.group_instance_id,
                client_id=m.client_id,
                client_host=m.client_host,
                rebalance_timeout=m.rebalance_timeout_ms,
                session_timeout=m.session_timeout_ms,
                subscription=m.metadata(self.protocol_name),
                assignment=(assignments or {}).get(m.member_id, m.assignment),
            )
            for m in self.members.values()
        )
        return GroupMetadataValue(
            protocol_type=self.protocol_type or "",
            generation=self.generation_id,
            protocol=self.protocol_name,
            leader=self.leader_id,
            current_state_timestamp=-1 if self.state_timestamp_ms is None else self.state_timestamp_ms,
            members=members,
        )

    @classmethod
    def from_record(cls, group_id: str, value: GroupMetadataValue, now_ms: int) -> ClassicGroup:
        """Rebuild a group from its last GroupMetadata record: Empty without members,
        Stable with them (a rebalance in progress when the record was written is lost,
        as in Kafka; the members rejoin)."""
        state = GroupState.STABLE if value.members else GroupState.EMPTY
        group = cls(group_id, now_ms, state)
        group.state_timestamp_ms = None if value.current_state_timestamp < 0 else value.current_state_timestamp
        group.generation_id = value.generation
        group.protocol_type = value.protocol_type or None
        group.protocol_name = value.protocol
        for m in value.members:
            protocol = value.protocol or ""
            member = ClassicGroupMember(
                member_id=m.member_id,
                group_instance_id=m.group_instance_id,
                client_id=m.client_id,
                client_host=m.client_host,
                rebalance_timeout_ms=m.rebalance_timeout,
                session_timeout_ms=m.session_timeout,
                protocol_type=value.protocol_type,
                protocols=[(protocol, m.subscription)],
                assignment=m.assignment,
                heartbeat_deadline_ms=now_ms + m.session_timeout,
            )
            group.add(member)
        group.protocol_type = value.protocol_type or None
        group.leader_id = value.leader if value.leader in group.members else group.leader_id
        group.subscribed_topics = group.compute_subscribed_topics()
        return group


def complete_join(member: ClassicGroupMember, result: JoinGroupResult) -> bool:
    """Answer a parked JoinGroup, if any (a future cancelled by a gone client is skipped)."""
    fut, member.join_future = member.join_future, None
    if fut is None:
        return False
    if not fut.done():
        fut.set_result(result)
    return True


def complete_sync(member: ClassicGroupMember, result: SyncGroupResult) -> bool:
    """Answer a parked SyncGroup, if any."""
    fut, member.sync_future = member.sync_future, None
    if fut is None:
        return False
    if not fut.done():
        fut.set_result(result)
    return True

"""The group coordinator: classic-protocol membership and committed offsets.

It serves the groups whose ``__consumer_offsets`` partition is loaded here
(:meth:`GroupCoordinator.load_partition` replays that partition). It does no I/O of its
own: durable writes go through the ``append`` callable it is given, time comes in as
``now_ms`` arguments, and deadlines (session, rebalance, initial delay, pending syncs,
offset retention) are checked in :meth:`GroupCoordinator.tick`, which the server calls
periodically. JoinGroup and SyncGroup park on asyncio futures that another request or a
tick completes; nothing here sleeps.

Decide, then act: an operation that persists something builds its records from the
current state, appends them, and changes memory only once the append succeeded. An
append that raises leaves the group as it was and answers with an error (Kafka's mapping
of append errors). Two writes follow Kafka in applying regardless, since there is no
request to fail: the Empty-group record written when a join phase ends with no members,
and offset expiry (retried at the next cleanup).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import replace

from moldau.groups.config import GroupConfig
from moldau.groups.group import (
    CONSUMER_PROTOCOL_TYPE,
    ClassicGroup,
    ClassicGroupMember,
    GroupDescription,
    JoinGroupMember,
    JoinGroupResult,
    MemberDescription,
    OffsetAndMetadata,
    SyncGroupResult,
    complete_join,
    complete_sync,
)
from moldau.groups.records import (
    GroupMetadataKey,
    GroupMetadataValue,
    OffsetCommitKey,
    OffsetCommitValue,
    RecordDecodeError,
    UnknownRecordType,
    decode_group_metadata_value,
    decode_key,
    decode_offset_commit_value,
    group_metadata_record,
    offset_commit_record,
    partition_for,
)
from moldau.groups.state import GroupState, parse_state
from moldau.log.errors import LogError, RecordTooLargeError
from moldau.protocol.errors import ErrorCode

__all__ = [
    "AppendFn",
    "CoordinatorAppendError",
    "GroupConfig",
    "GroupCoordinator",
    "GroupDescription",
    "JoinGroupMember",
    "JoinGroupResult",
    "MemberDescription",
    "SyncGroupResult",
]

log = logging.getLogger(__name__)

AppendFn = Callable[[int, list[tuple[bytes, bytes | None]]], None]
Record = tuple[bytes, bytes | None]
TxnAppendFn = Callable[[int, list[Record], int, int], None]
"""Append records to a partition as one transactional batch of (producer id, epoch)."""
TopicPartition = tuple[str, int]

E = GroupState.EMPTY
P = GroupState.PREPARING_REBALANCE
C = GroupState.COMPLETING_REBALANCE
S = GroupState.STABLE
D = GroupState.DEAD

UNKNOWN_MEMBER_ID = ""
NO_METADATA = ""
GROUP_TYPE_CLASSIC = "classic"


class CoordinatorAppendError(Exception):
    """What an ``append`` callable may raise to say which Kafka error the write hit
    (e.g. NOT_LEADER_OR_FOLLOWER when this broker lost the partition)."""

    def __init__(self, error: ErrorCode, message: str = "") -> None:
        super().__init__(message or error.name)
        self.error = error


def _append_error(exc: Exception) -> ErrorCode:
    if isinstance(exc, CoordinatorAppendError):
        return exc.error
    if isinstance(exc, RecordTooLargeError):
        return ErrorCode.message_too_large
    if isinstance(exc, LogError):
        return ErrorCode.kafka_storage_error
    return ErrorCode.unknown_topic_or_partition  # maps to COORDINATOR_NOT_AVAILABLE below


def group_append_error(error: ErrorCode) -> ErrorCode:
    """Kafka's ``appendGroupMetadataErrorToResponseError``."""
    if error in (ErrorCode.unknown_topic_or_partition, ErrorCode.not_enough_replicas,
                 ErrorCode.not_enough_replicas_after_append, ErrorCode.request_timed_out):
        return ErrorCode.coordinator_not_available
    if error in (ErrorCode.not_leader_or_follower, ErrorCode.kafka_storage_error):
        return ErrorCode.not_coordinator
    if error in (ErrorCode.message_too_large, ErrorCode.record_list_too_large, ErrorCode.invalid_fetch_size):
        return ErrorCode.unknown_server_error
    return error


def offset_append_error(error: ErrorCode) -> ErrorCode:
    """Kafka's mapping of append errors for offset commits."""
    if error in (ErrorCode.message_too_large, ErrorCode.record_list_too_large, ErrorCode.invalid_fetch_size):
        return ErrorCode.invalid_commit_offset_size
    return _group_append_error(error)


_offset_append_error = offset_append_error
_group_append_error = group_append_error


def _java_length(s: str) -> int:
    """``String.length()`` in Java: UTF-16 code units (Kafka's metadata size check)."""
    return len(s.encode("utf-16-le", "surrogatepass")) // 2


class GroupCoordinator:
    """Classic consumer groups and their committed offsets, for the loaded partitions of
    ``__consumer_offsets``. Single-threaded: call it from one event loop."""

    def __init__(self, config: GroupConfig, append: AppendFn, append_transactional: TxnAppendFn | None = None) -> None:
        self.config = config
        self._append = append
        self._append_transactional = append_transactional
        self._groups: dict[str, ClassicGroup] = {}
        # TxnOffsetCommit (KIP-98/447): offsets written in a transaction wait here, per
        # group and producer id, until its marker commits (materialises) or aborts them.
        self._pending_txn_offsets: dict[str, dict[int, dict[TopicPartition, OffsetAndMetadata]]] = {}
        self._loaded: set[int] = set()
        self._next_cleanup_ms: int | None = None

    # ==================================================================================
    # partitions
    # ==================================================================================

    def partition_for(self, group_id: str) -> int:
        return partition_for(group_id, self.config.offsets_topic_partitions)

    def is_loaded(self, group_id: str) -> bool:
        return self.partition_for(group_id) in self._loaded

    @property
    def loaded_partitions(self) -> frozenset[int]:
        return frozenset(self._loaded)

    def load_partition(self, partition: int, records: Iterable[Record], now_ms: int,
                       pending_transactions: Iterable[tuple[int, list[Record]]] = ()) -> None:
        """Rebuild the groups of one partition from its records (in offset order): the last
        GroupMetadata record of each group and the last commit of each of its partitions
        win, tombstones delete. Unknown record types (KIP-848 groups) and undecodable
        records are skipped with a warning rather than making the partition unservable.
        ``records`` hold committed transactions' offset commits where their COMMIT marker
        is (aborted ones left out); ``pending_transactions`` the offset commits of open
        transactions, by producer id, which a later marker settles."""
        self.unload_partition(partition)
        group_values: dict[str, GroupMetadataValue | None] = {}
        offsets: dict[str, dict[TopicPartition, OffsetAndMetadata]] = {}
        for key_bytes, value_bytes in records:
            try:
                key = decode_key(key_bytes)
                if isinstance(key, OffsetCommitKey):
                    group_offsets = offsets.setdefault(key.group, {})
                    tp = (key.topic, key.partition)
                    if value_bytes is None:
                        group_offsets.pop(tp, None)
                    else:
                        group_offsets[tp] = _offset_from_value(decode_offset_commit_value(value_bytes))
                elif isinstance(key, GroupMetadataKey):
                    group_values[key.group] = None if value_bytes is None else decode_group_metadata_value(value_bytes)
            except UnknownRecordType:
                continue
            except RecordDecodeError as e:
                log.warning("__consumer_offsets-%d: skipping undecodable record: %s", partition, e)
        for group_id in list(dict.fromkeys([*group_values, *offsets])):
            value = group_values.get(group_id)
            group_offsets = offsets.get(group_id, {})
            if value is None and not group_offsets:
                continue
            if value is None:
                group = ClassicGroup(group_id, now_ms)
                group.state_timestamp_ms = None
            else:
                group = ClassicGroup.from_record(group_id, value, now_ms)
            group.offsets = group_offsets
            self._groups[group_id] = group
            if group.is_in(S) and len(group.members) > self.config.max_size:
                # group.max.size was lowered: members rejoin and the extra ones are refused.
                self._prepare_rebalance(group, now_ms, "group size exceeds group.max.size after load")
        for producer_id, txn_records in pending_transactions:
            for key_bytes, value_bytes in txn_records:
                try:
                    key = decode_key(key_bytes)
                    if not isinstance(key, OffsetCommitKey) or value_bytes is None:
                        continue
                    value = _offset_from_value(decode_offset_commit_value(value_bytes))
                except (UnknownRecordType, RecordDecodeError):
                    continue
                if key.group not in self._groups:
                    self._groups[key.group] = ClassicGroup(key.group, now_ms)
                pending = self._pending_txn_offsets.setdefault(key.group, {}).setdefault(producer_id, {})
                pending[(key.topic, key.partition)] = value
        self._loaded.add(partition)

    def unload_partition(self, partition: int) -> None:
        """Stop serving the groups of a partition; parked requests get NOT_COORDINATOR."""
        self._loaded.discard(partition)
        for group_id, group in list(self._groups.items()):
            if self.partition_for(group_id) != partition:
                continue
            for member in group.members.values():
                complete_join(member, JoinGroupResult(ErrorCode.not_coordinator, member_id=member.member_id))
                complete_sync(member, SyncGroupResult(ErrorCode.not_coordinator))
            group.transition_to(D, None)
            del self._groups[group_id]
            self._pending_txn_offsets.pop(group_id, None)

    def _check_group(self, group_id: str) -> ErrorCode:
        if not group_id:
            return ErrorCode.invalid_group_id
        if not self.is_loaded(group_id):
            return ErrorCode.not_coordinator
        return ErrorCode.none

    def _write(self, group_id: str, records: list[Record]) -> ErrorCode:
        """Append to the group's partition; the raw Kafka error of a failed append."""
        try:
            self._append(self.partition_for(group_id), records)
        except Exception as e:  # the append callable is the outside world: any failure is an error code
            log.warning("group %s: append to __consumer_offsets failed: %r", group_id, e)
            return _append_error(e)
        return ErrorCode.none

    # ==================================================================================
    # JoinGroup
    # ==================================================================================

    async def join_group(
        self,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        protocol_type: str,
        protocols: list[tuple[str, bytes]],
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        client_id: str,
        client_host: str,
        require_known_member_id: bool,
        reason: str | None,
        now_ms: int,
        skip_assignment_supported: bool = True,
    ) -> JoinGroupResult:
        """Join (or rejoin) a group; returns when this member's join phase is over.

        ``skip_assignment_supported`` is JoinGroup v9+ (KIP-814): whether a static leader
        that rejoins a Stable group can be told to skip the assignment. Older versions get
        what Kafka gives them: no members and the previous leader id.
        """
        outcome = self._join(
            group_id,
            member_id,
            group_instance_id,
            protocol_type,
            [(name, bytes(metadata)) for name, metadata in protocols],
            session_timeout_ms,
            rebalance_timeout_ms,
            client_id,
            client_host,
            require_known_member_id,
            reason,
            now_ms,
            skip_assignment_supported,
        )
        if isinstance(outcome, JoinGroupResult):
            return outcome
        return await outcome

    def _join(
        self,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        protocol_type: str,
        protocols: list[tuple[str, bytes]],
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        client_id: str,
        client_host: str,
        require_known_member_id: bool,
        reason: str | None,
        now_ms: int,
        skip_assignment_supported: bool,
    ) -> JoinGroupResult | asyncio.Future[JoinGroupResult]:
        error = self._check_group(group_id)
        if error is not ErrorCode.none:
            return JoinGroupResult(error, member_id=member_id)
        if not self.config.min_session_timeout_ms <= session_timeout_ms <= self.config.max_session_timeout_ms:
            return JoinGroupResult(ErrorCode.invalid_session_timeout, member_id=member_id)
        if any(len(metadata) > self.config.max_member_metadata_bytes for _, metadata in protocols):
            return JoinGroupResult(ErrorCode.invalid_request, member_id=member_id)

        group = self._groups.get(group_id)
        is_new_group = group is None
        if group is None:
            if member_id != UNKNOWN_MEMBER_ID:
                return JoinGroupResult(ErrorCode.unknown_member_id, member_id=member_id)
            group = ClassicGroup(group_id, now_ms)

        request = _JoinRequest(
            member_id,
            group_instance_id,
            protocol_type,
            protocols,
            session_timeout_ms,
            rebalance_timeout_ms,
            client_id,
            client_host,
            reason,
            skip_assignment_supported,
        )
        outcome: JoinGroupResult | asyncio.Future[JoinGroupResult]
        if not self._accept_joining_member(group, member_id):
            # Kafka also drops an existing member here: it is the one beyond the limit.
            removed = group.remove(member_id)
            if removed is not None:
                complete_sync(removed, SyncGroupResult(ErrorCode.group_max_size_reached))
            outcome = JoinGroupResult(ErrorCode.group_max_size_reached, member_id=UNKNOWN_MEMBER_ID)
        elif member_id == UNKNOWN_MEMBER_ID:
            outcome = self._join_new_member(group, request, require_known_member_id, now_ms)
        else:
            outcome = self._join_existing_member(group, request, now_ms)

        if is_new_group:
            if group.members or group.pending_members:
                self._groups[group_id] = group
        self._tick_group(group, now_ms)  # an initial delay of 0 ends the join phase right now
        return outcome

    def _accept_joining_member(self, group: ClassicGroup, member_id: str) -> bool:
        """group.max.size (Kafka's ``acceptJoiningMember``)."""
        max_size = self.config.max_size
        if group.is_in(E, D):
            return True
        if group.is_in(P):
            member = group.members.get(member_id)
            return (member is not None and member.is_awaiting_join) or group.num_awaiting_join() < max_size
        return member_id in group.members or len(group.members) < max_size

    def _join_new_member(
        self, group: ClassicGroup, req: _JoinRequest, require_known_member_id: bool, now_ms: int
    ) -> JoinGroupResult | asyncio.Future[JoinGroupResult]:
        if group.is_in(D):
            return JoinGroupResult(ErrorCode.coordinator_not_available, member_id=UNKNOWN_MEMBER_ID)
        if not group.supports_protocols(req.protocol_type, {name for name, _ in req.protocols}):
            return JoinGroupResult(ErrorCode.inconsistent_group_protocol, member_id=UNKNOWN_MEMBER_ID)
        prefix = req.group_instance_id if req.group_instance_id is not None else req.client_id
        new_member_id = f"{prefix}-{uuid.uuid4()}"
        if req.group_instance_id is not None:
            existing = group.static_member_id(req.group_instance_id)
            if existing is not None:
                return self._update_static_member(group, req, existing, new_member_id, now_ms)
            return self._add_member_and_rebalance(group, req, new_member_id, now_ms)
        if require_known_member_id:
            # KIP-394: hand out the id, remember it until the session timeout, make the
            # client come back with it (so a client that never does leaves no member).
            group.pending_members[new_member_id] = now_ms + req.session_timeout_ms
            return JoinGroupResult(ErrorCode.member_id_required, member_id=new_member_id)
        return self._add_member_and_rebalance(group, req, new_member_id, now_ms)

    def _join_existing_member(
        self, group: ClassicGroup, req: _JoinRequest, now_ms: int
    ) -> JoinGroupResult | asyncio.Future[JoinGroupResult]:
        member_id = req.member_id
        if group.is_in(D):
            return JoinGroupResult(ErrorCode.coordinator_not_available, member_id=member_id)
        if not group.supports_protocols(req.protocol_type, {name for name, _ in req.protocols}):
            return JoinGroupResult(ErrorCode.inconsistent_group_protocol, member_id=member_id)
        if group.is_pending_member(member_id):
            if req.group_instance_id is not None:
                # Pending ids are only handed to dynamic members; Kafka treats this as a bug.
                return JoinGroupResult(ErrorCode.invalid_request, member_id=member_id)
            return self._add_member_and_rebalance(group, req, member_id, now_ms)
        error = group.validate_member(member_id, req.group_instance_id)
        if error is not ErrorCode.none:
            return JoinGroupResult(error, member_id=member_id)
        member = group.members[member_id]
        member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms
        if group.is_in(P):
            return self._update_member_and_rebalance(group, member, req, now_ms)
        if group.is_in(C):
            if member.matches(req.protocols):
                # The member lost its JoinGroup response: give this generation again.
                return self._current_generation(group, member_id, with_members=group.is_leader(member_id))
            return self._update_member_and_rebalance(group, member, req, now_ms)
        if group.is_in(S):
            if group.is_leader(member_id) or not member.matches(req.protocols):
                # A leader's JoinGroup always rebalances: that is how it reacts to metadata
                # changes (new partitions) that do not change its subscription.
                return self._update_member_and_rebalance(group, member, req, now_ms)
            return self._current_generation(group, member_id, with_members=False)
        return JoinGroupResult(ErrorCode.unknown_member_id, member_id=member_id)

    def _current_generation(self, group: ClassicGroup, member_id: str, with_members: bool) -> JoinGroupResult:
        return JoinGroupResult(
            ErrorCode.none,
            generation_id=group.generation_id,
            protocol_type=group.protocol_type,
            protocol_name=group.protocol_name,
            leader=group.leader_id or "",
            member_id=member_id,
            members=group.current_members_for_leader() if with_members else [],
        )

    def _new_join_future(self, member: ClassicGroupMember) -> asyncio.Future[JoinGroupResult]:
        # A client that resends JoinGroup (its request timed out) must not leave the first
        # one parked forever: the connection answers in order and would stall behind it.
        complete_join(member, JoinGroupResult(ErrorCode.rebalance_in_progress, member_id=member.member_id))
        fut: asyncio.Future[JoinGroupResult] = asyncio.get_running_loop().create_future()
        member.join_future = fut
        return fut

    def _add_member_and_rebalance(
        self, group: ClassicGroup, req: _JoinRequest, member_id: str, now_ms: int
    ) -> asyncio.Future[JoinGroupResult]:
        member = ClassicGroupMember(
            member_id=member_id,
            group_instance_id=req.group_instance_id,
            client_id=req.client_id,
            client_host=req.client_host,
            rebalance_timeout_ms=req.rebalance_timeout_ms,
            session_timeout_ms=req.session_timeout_ms,
            protocol_type=req.protocol_type,
            protocols=req.protocols,
            is_new=True,
            # A new member cannot heartbeat before its join completes; if its client gives
            # up, this (Kafka's new-member join timeout) removes it.
            heartbeat_deadline_ms=now_ms + self.config.new_member_join_timeout_ms,
        )
        if group.is_in(P) and group.join_is_initial:
            group.new_member_added = True
        fut = self._new_join_future(member)
        group.add(member)
        self._maybe_prepare_rebalance_or_complete_join(group, now_ms, f"adding member {member_id}")
        return fut

    def _update_member_and_rebalance(
        self, group: ClassicGroup, member: ClassicGroupMember, req: _JoinRequest, now_ms: int
    ) -> asyncio.Future[JoinGroupResult]:
        group.update_member(member, req.protocols, req.rebalance_timeout_ms, req.session_timeout_ms)
        fut = self._new_join_future(member)
        self._maybe_prepare_rebalance_or_complete_join(group, now_ms, f"member {member.member_id} rejoins")
        return fut

    def _update_static_member(
        self, group: ClassicGroup, req: _JoinRequest, old_member_id: str, new_member_id: str, now_ms: int
    ) -> JoinGroupResult | asyncio.Future[JoinGroupResult]:
        """KIP-345: a known group.instance.id joins with no member id (a restart). The old
        member id is fenced. In a Stable group whose chosen protocol would not change, no
        rebalance: persist the new member id and hand back the current generation."""
        instance_id = req.group_instance_id
        assert instance_id is not None
        if group.is_in(S) and group.select_protocol(old_member_id, req.protocols) == group.protocol_name:
            current_leader = group.leader_id or ""
            new_leader = new_member_id if group.leader_id == old_member_id else current_leader
            value = group.to_record_value()
            value = replace(
                value,
                leader=new_leader,
                members=tuple(
                    replace(
                        m,
                        member_id=new_member_id,
                        rebalance_timeout=req.rebalance_timeout_ms,
                        session_timeout=req.session_timeout_ms,
                        subscription=_metadata_of(req.protocols, group.protocol_name),
                    )
                    if m.member_id == old_member_id
                    else m
                    for m in value.members
                ),
            )
            error = self._write(group.group_id, [group_metadata_record(group.group_id, value)])
            if error is not ErrorCode.none:
                return JoinGroupResult(
                    _group_append_error(error),
                    generation_id=group.generation_id,
                    protocol_type=group.protocol_type,
                    protocol_name=group.protocol_name,
                    leader=current_leader,
                    member_id=UNKNOWN_MEMBER_ID,
                )
            member = group.replace_static_member(instance_id, old_member_id, new_member_id)
            group.update_member(member, req.protocols, req.rebalance_timeout_ms, req.session_timeout_ms)
            member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms
            is_leader = group.is_leader(new_member_id)
            if req.skip_assignment_supported:
                return JoinGroupResult(
                    ErrorCode.none,
                    generation_id=group.generation_id,
                    protocol_type=group.protocol_type,
                    protocol_name=group.protocol_name,
                    leader=group.leader_id or "",
                    member_id=new_member_id,
                    members=group.current_members_for_leader() if is_leader else [],
                    skip_assignment=is_leader,
                )
            return JoinGroupResult(
                ErrorCode.none,
                generation_id=group.generation_id,
                protocol_type=group.protocol_type,
                protocol_name=group.protocol_name,
                leader=current_leader,
                member_id=new_member_id,
            )

        member = group.replace_static_member(instance_id, old_member_id, new_member_id)
        group.update_member(member, req.protocols, req.rebalance_timeout_ms, req.session_timeout_ms)
        member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms
        fut = self._new_join_future(member)
        if group.is_in(C):
            # The leader may already be assigning with the old member id: start over.
            self._prepare_rebalance(group, now_ms, f"static member {instance_id} rejoined with a new member id")
        else:
            self._maybe_prepare_rebalance_or_complete_join(group, now_ms, f"static member {instance_id} changed")
        return fut

    # ==================================================================================
    # the rebalance (join phase → sync phase)
    # ==================================================================================

    def _maybe_prepare_rebalance_or_complete_join(self, group: ClassicGroup, now_ms: int, reason: str) -> None:
        if group.can_rebalance():
            self._prepare_rebalance(group, now_ms, reason)
        else:
            self._maybe_complete_join_phase(group, now_ms)

    def _prepare_rebalance(self, group: ClassicGroup, now_ms: int, reason: str) -> None:
        if group.is_in(C):
            self._reset_and_propagate_assignment_with_error(group, ErrorCode.rebalance_in_progress, now_ms)
        group.pending_sync_members.clear()
        group.sync_deadline_ms = None
        initial = group.is_in(E)
        group.transition_to(P, now_ms)
        log.info("group %s: preparing to rebalance (generation %d): %s", group.group_id, group.generation_id, reason)
        if initial:
            # A new group waits a little for more members before the first generation, so
            # that N consumers starting together don't cause N rebalances.
            delay = self.config.initial_rebalance_delay_ms
            group.join_is_initial = True
            group.new_member_added = False
            group.initial_delay_ms = delay
            group.initial_remaining_ms = max(group.rebalance_timeout_ms() - delay, 0)
            group.join_deadline_ms = now_ms + delay
        else:
            group.join_is_initial = False
            if group.has_all_members_joined():
                self._complete_join(group, now_ms)
            else:
                group.join_deadline_ms = now_ms + group.rebalance_timeout_ms()

    def _maybe_complete_join_phase(self, group: ClassicGroup, now_ms: int) -> None:
        if group.is_in(P) and not group.join_is_initial and group.has_all_members_joined():
            self._complete_join(group, now_ms)

    def _join_deadline_passed(self, group: ClassicGroup, now_ms: int) -> None:
        """The join phase's timer fired (called from tick)."""
        assert group.join_deadline_ms is not None
        if not group.join_is_initial:
            self._complete_join(group, now_ms)
            return
        # Initial delay: extend it while new members keep arriving, within the rebalance
        # timeout (Kafka's InitialDelayedJoin).
        while group.join_deadline_ms is not None and group.join_deadline_ms <= now_ms:
            if group.new_member_added and group.initial_remaining_ms != 0:
                group.new_member_added = False
                new_delay = min(self.config.initial_rebalance_delay_ms, group.initial_remaining_ms)
                group.initial_remaining_ms = max(group.initial_remaining_ms - group.initial_delay_ms, 0)
                group.initial_delay_ms = new_delay
                group.join_deadline_ms += new_delay
            else:
                self._complete_join(group, now_ms)
                return

    def _complete_join(self, group: ClassicGroup, now_ms: int) -> None:
        group.join_deadline_ms = None
        group.join_is_initial = False
        for member in list(group.members.values()):
            if not member.is_awaiting_join and not member.is_static:
                self._drop_member(group, member, ErrorCode.unknown_member_id)
        if group.is_in(D):
            return
        if not group.maybe_elect_new_joined_leader() and group.members:
            # Only static members that have not rejoined are left: wait for them (or for
            # their sessions to expire) for another rebalance timeout.
            group.join_deadline_ms = now_ms + group.rebalance_timeout_ms()
            return
        group.init_next_generation(now_ms)
        if group.is_in(E):
            log.info("group %s: generation %d is empty", group.group_id, group.generation_id)
            error = self._write(group.group_id, [group_metadata_record(group.group_id, group.to_record_value())])
            if error is not ErrorCode.none:
                # As Kafka: no member to answer; a restart would bring back the previous
                # generation, whose members then time out.
                log.warning("group %s: could not persist the empty generation: %s", group.group_id, error.name)
            return
        log.info(
            "group %s: generation %d with %d members, protocol %s",
            group.group_id,
            group.generation_id,
            len(group.members),
            group.protocol_name,
        )
        for member in group.members.values():
            complete_join(
                member,
                JoinGroupResult(
                    ErrorCode.none,
                    generation_id=group.generation_id,
                    protocol_type=group.protocol_type,
                    protocol_name=group.protocol_name,
                    leader=group.leader_id or "",
                    member_id=member.member_id,
                    members=group.current_members_for_leader() if group.is_leader(member.member_id) else [],
                ),
            )
            member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms
            member.is_new = False
            group.pending_sync_members.add(member.member_id)
        group.sync_deadline_ms = now_ms + group.rebalance_timeout_ms()

    def _reset_and_propagate_assignment_with_error(self, group: ClassicGroup, error: ErrorCode, now_ms: int) -> None:
        for member in group.members.values():
            member.assignment = b""
        self._propagate_assignment(group, error, now_ms)

    def _propagate_assignment(self, group: ClassicGroup, error: ErrorCode, now_ms: int) -> None:
        ok = error is ErrorCode.none
        for member in group.members.values():
            result = SyncGroupResult(
                error,
                protocol_type=group.protocol_type if ok else None,
                protocol_name=group.protocol_name if ok else None,
                assignment=member.assignment,
            )
            if complete_sync(member, result):
                member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms

    def _drop_member(self, group: ClassicGroup, member: ClassicGroupMember, error: ErrorCode) -> None:
        """Remove a member, answering whatever it still has parked."""
        complete_join(member, JoinGroupResult(error, member_id=UNKNOWN_MEMBER_ID))
        complete_sync(member, SyncGroupResult(error))
        group.remove(member.member_id)

    def _remove_member_and_update_group(self, group: ClassicGroup, member: ClassicGroupMember, now_ms: int) -> None:
        self._drop_member(group, member, ErrorCode.unknown_member_id)
        if group.is_in(S, C):
            self._maybe_prepare_rebalance_or_complete_join(group, now_ms, f"member {member.member_id} removed")
        elif group.is_in(P) and group.has_all_members_joined():
            self._complete_join(group, now_ms)

    # ==================================================================================
    # SyncGroup
    # ==================================================================================

    async def sync_group(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
        protocol_type: str | None,
        protocol_name: str | None,
        assignments: list[tuple[str, bytes]],
        now_ms: int,
    ) -> SyncGroupResult:
        outcome = self._sync(
            group_id, generation_id, member_id, group_instance_id, protocol_type, protocol_name, assignments, now_ms
        )
        if isinstance(outcome, SyncGroupResult):
            return outcome
        return await outcome

    def _sync(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
        protocol_type: str | None,
        protocol_name: str | None,
        assignments: list[tuple[str, bytes]],
        now_ms: int,
    ) -> SyncGroupResult | asyncio.Future[SyncGroupResult]:
        error = self._check_group(group_id)
        if error is not ErrorCode.none:
            return SyncGroupResult(error)
        group = self._groups.get(group_id)
        if group is None:
            return SyncGroupResult(ErrorCode.unknown_member_id)
        if group.is_in(D):
            return SyncGroupResult(ErrorCode.coordinator_not_available)
        error = group.validate_member(member_id, group_instance_id)
        if error is not ErrorCode.none:
            return SyncGroupResult(error)
        if generation_id != group.generation_id:
            return SyncGroupResult(ErrorCode.illegal_generation)
        if _inconsistent(protocol_type, group.protocol_type) or _inconsistent(protocol_name, group.protocol_name):
            return SyncGroupResult(ErrorCode.inconsistent_group_protocol)
        member = group.members[member_id]
        if group.is_in(E):
            return SyncGroupResult(ErrorCode.unknown_member_id)
        if group.is_in(P):
            return SyncGroupResult(ErrorCode.rebalance_in_progress)
        member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms
        if group.is_in(S):
            group.pending_sync_members.discard(member_id)
            if not group.pending_sync_members:
                group.sync_deadline_ms = None
            return SyncGroupResult(ErrorCode.none, group.protocol_type, group.protocol_name, member.assignment)

        # CompletingRebalance: park until the leader's assignment is persisted.
        if group.is_leader(member_id) and any(
            len(assignment) > self.config.max_member_metadata_bytes for _, assignment in assignments
        ):
            return SyncGroupResult(ErrorCode.invalid_request)
        group.pending_sync_members.discard(member_id)
        complete_sync(member, SyncGroupResult(ErrorCode.rebalance_in_progress))  # a resent SyncGroup
        fut: asyncio.Future[SyncGroupResult] = asyncio.get_running_loop().create_future()
        member.sync_future = fut
        if group.is_leader(member_id):
            by_member = {mid: bytes(a) for mid, a in assignments if mid in group.members}
            full = {mid: by_member.get(mid, b"") for mid in group.members}
            error = self._write(group_id, [group_metadata_record(group_id, group.to_record_value(full))])
            if error is not ErrorCode.none:
                self._reset_and_propagate_assignment_with_error(group, _group_append_error(error), now_ms)
                self._maybe_prepare_rebalance_or_complete_join(group, now_ms, "failed to persist the assignment")
            else:
                for mid, m in group.members.items():
                    m.assignment = full[mid]
                self._propagate_assignment(group, ErrorCode.none, now_ms)
                group.transition_to(S, now_ms)
                if not group.pending_sync_members:
                    group.sync_deadline_ms = None
        return fut

    # ==================================================================================
    # Heartbeat, LeaveGroup
    # ==================================================================================

    def heartbeat(
        self, group_id: str, generation_id: int, member_id: str, group_instance_id: str | None, now_ms: int
    ) -> ErrorCode:
        error = self._check_group(group_id)
        if error is not ErrorCode.none:
            return error
        group = self._groups.get(group_id)
        if group is None:
            return ErrorCode.unknown_member_id
        if group.is_in(D):
            return ErrorCode.coordinator_not_available
        error = group.validate_member(member_id, group_instance_id)
        if error is not ErrorCode.none:
            return error
        if generation_id != group.generation_id:
            return ErrorCode.illegal_generation
        if group.is_in(E):
            return ErrorCode.unknown_member_id
        member = group.members[member_id]
        member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms
        if group.is_in(P):
            return ErrorCode.rebalance_in_progress
        # CompletingRebalance answers NONE as Kafka does: the client may heartbeat between
        # its JoinGroup response and its SyncGroup.
        return ErrorCode.none

    def leave_group(
        self, group_id: str, members: list[tuple[str, str | None, str | None]], now_ms: int
    ) -> tuple[ErrorCode, list[tuple[str, str | None, ErrorCode]]]:
        error = self._check_group(group_id)
        if error is not ErrorCode.none:
            return error, []
        group = self._groups.get(group_id)
        if group is None:
            return ErrorCode.none, [(mid, iid, ErrorCode.unknown_member_id) for mid, iid, _ in members]
        if group.is_in(D):
            return ErrorCode.coordinator_not_available, []
        results: list[tuple[str, str | None, ErrorCode]] = []
        removed: list[ClassicGroupMember] = []
        removed_pending = False
        for mid, iid, reason in members:
            target: str | None = None
            if mid == UNKNOWN_MEMBER_ID:
                target = group.static_member_id(iid)
                if target is None:
                    results.append((mid, iid, ErrorCode.unknown_member_id))
                    continue
            elif group.is_pending_member(mid):
                del group.pending_members[mid]
                removed_pending = True
                results.append((mid, iid, ErrorCode.none))
                continue
            else:
                error = group.validate_member(mid, iid)
                if error is not ErrorCode.none:
                    results.append((mid, iid, error))
                    continue
                target = mid
            member = group.members[target]
            log.info("group %s: member %s leaves (%s)", group_id, target, reason)
            self._drop_member(group, member, ErrorCode.unknown_member_id)
            removed.append(member)
            results.append((mid, iid, ErrorCode.none))
        if removed:
            self._maybe_prepare_rebalance_or_complete_join(
                group, now_ms, f"members {[m.member_id for m in removed]} left the group"
            )
        elif removed_pending and group.is_in(P) and group.has_all_members_joined():
            self._complete_join(group, now_ms)
        return ErrorCode.none, results

    # ==================================================================================
    # offsets
    # ==================================================================================

    def commit_offsets(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
        offsets: list[tuple[str, int, int, int, str | None]],
        now_ms: int,
        retention_ms: int = -1,
    ) -> dict[tuple[str, int], ErrorCode]:
        def all_with(error: ErrorCode) -> dict[tuple[str, int], ErrorCode]:
            return {(topic, partition): error for topic, partition, *_ in offsets}

        error = self._check_group(group_id)
        if error is not ErrorCode.none:
            return all_with(error)
        group = self._groups.get(group_id)
        is_new_group = group is None
        if group is None:
            if generation_id >= 0:
                return all_with(ErrorCode.illegal_generation)
            group = ClassicGroup(group_id, now_ms)  # a "simple" group: offsets only
        error = self._validate_offset_commit(group, member_id, group_instance_id, generation_id)
        if error is not ErrorCode.none:
            return all_with(error)
        member = group.members.get(member_id)
        if member is not None:
            member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms

        results: dict[tuple[str, int], ErrorCode] = {}
        records: list[Record] = []
        accepted: dict[tuple[str, int], OffsetAndMetadata] = {}
        expire = -1 if retention_ms == -1 else now_ms + retention_ms
        for topic, partition, offset, leader_epoch, metadata in offsets:
            text = NO_METADATA if metadata is None else metadata
            if _java_length(text) > self.config.max_metadata_bytes:
                results[(topic, partition)] = ErrorCode.offset_metadata_too_large
                continue
            value = OffsetCommitValue(offset, text, now_ms, leader_epoch, expire)
            records.append(offset_commit_record(group_id, topic, partition, value))
            accepted[(topic, partition)] = _offset_from_value(value)
        if records:
            error = self._write(group_id, records)
            if error is not ErrorCode.none:
                mapped = _offset_append_error(error)
                for tp in accepted:
                    results[tp] = mapped
                return results
        group.offsets.update(accepted)
        for tp in accepted:
            results[tp] = ErrorCode.none
        if is_new_group and accepted:
            self._groups[group_id] = group
        return results

    def commit_transactional_offsets(
        self,
        group_id: str,
        producer_id: int,
        producer_epoch: int,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
        offsets: list[tuple[str, int, int, int, str | None]],
        now_ms: int,
    ) -> dict[tuple[str, int], ErrorCode]:
        """TxnOffsetCommit: the offsets are written as a transactional batch of the
        producer and stay pending until the transaction's marker reaches this partition
        (:meth:`complete_transaction`). The group checks are KIP-447's: a member id must
        be a member (static members fenced by instance id), a generation >= 0 must be the
        current one; an unknown group is created as a simple group, as in Kafka."""
        def all_with(error: ErrorCode) -> dict[tuple[str, int], ErrorCode]:
            return {(topic, partition): error for topic, partition, *_ in offsets}

        error = self._check_group(group_id)
        if error is not ErrorCode.none:
            return all_with(error)
        if self._append_transactional is None:
            return all_with(ErrorCode.unsupported_version)
        group = self._groups.get(group_id)
        is_new_group = group is None
        if group is None:
            group = ClassicGroup(group_id, now_ms)
        if group.is_in(D):
            return all_with(ErrorCode.coordinator_not_available)
        if member_id != UNKNOWN_MEMBER_ID or group_instance_id is not None:
            error = group.validate_member(member_id, group_instance_id)
            if error is not ErrorCode.none:
                return all_with(error)
        if generation_id >= 0 and generation_id != group.generation_id:
            return all_with(ErrorCode.illegal_generation)
        results: dict[tuple[str, int], ErrorCode] = {}
        records: list[Record] = []
        accepted: dict[tuple[str, int], OffsetAndMetadata] = {}
        for topic, partition, offset, leader_epoch, metadata in offsets:
            text = NO_METADATA if metadata is None else metadata
            if _java_length(text) > self.config.max_metadata_bytes:
                results[(topic, partition)] = ErrorCode.offset_metadata_too_large
                continue
            value = OffsetCommitValue(offset, text, now_ms, leader_epoch, -1)
            records.append(offset_commit_record(group_id, topic, partition, value))
            accepted[(topic, partition)] = _offset_from_value(value)
        if records:
            try:
                self._append_transactional(self.partition_for(group_id), records, producer_id, producer_epoch)
            except Exception as e:  # the append callable is the outside world
                log.warning("group %s: transactional offset commit failed: %r", group_id, e)
                mapped = _offset_append_error(_append_error(e))
                return {**results, **dict.fromkeys(accepted, mapped)}
        self._pending_txn_offsets.setdefault(group_id, {}).setdefault(producer_id, {}).update(accepted)
        if is_new_group and accepted:
            self._groups[group_id] = group
        return {**results, **dict.fromkeys(accepted, ErrorCode.none)}

    def complete_transaction(self, partition: int, producer_id: int, committed: bool) -> None:
        """A COMMIT/ABORT marker of ``producer_id`` was written to ``partition``: its
        pending offsets of the partition's groups become committed offsets, or go."""
        for group_id in list(self._pending_txn_offsets):
            if self.partition_for(group_id) != partition:
                continue
            by_producer = self._pending_txn_offsets[group_id]
            offsets = by_producer.pop(producer_id, None)
            if not by_producer:
                del self._pending_txn_offsets[group_id]
            group = self._groups.get(group_id)
            if offsets and committed and group is not None:
                group.offsets.update(offsets)

    def has_pending_transactional_offsets(self, group_id: str, tp: TopicPartition) -> bool:
        return any(tp in offsets for offsets in self._pending_txn_offsets.get(group_id, {}).values())

    def _validate_offset_commit(
        self, group: ClassicGroup, member_id: str, group_instance_id: str | None, generation_id: int
    ) -> ErrorCode:
        """Kafka's ``ClassicGroup.validateOffsetCommit``."""
        if group.is_in(D):
            return ErrorCode.coordinator_not_available
        if generation_id < 0 and group.is_in(E):
            return ErrorCode.none  # admin client or a consumer without group management
        if generation_id >= 0 or member_id != UNKNOWN_MEMBER_ID or group_instance_id is not None:
            error = group.validate_member(member_id, group_instance_id)
            if error is not ErrorCode.none:
                return error
            if generation_id != group.generation_id:
                return ErrorCode.illegal_generation
        elif not group.is_in(E):
            return ErrorCode.unknown_member_id
        if group.is_in(C):
            return ErrorCode.rebalance_in_progress
        return ErrorCode.none

    def fetch_offsets(
        self, group_id: str, partitions: list[tuple[str, int]] | None, require_stable: bool = False
    ) -> tuple[ErrorCode, dict[tuple[str, int], tuple[int, int, str | None, ErrorCode]]]:
        """Committed offsets as (offset, leader_epoch, metadata, error); missing → -1, -1, "".
        ``require_stable`` (KIP-447): a partition with a transactional commit pending gets
        UNSTABLE_OFFSET_COMMIT (the client retries once the transaction ended)."""
        error = self._check_group(group_id)
        if error is not ErrorCode.none:
            return error, {}
        group = self._groups.get(group_id)
        committed = group.offsets if group is not None else {}
        if partitions is None:
            return ErrorCode.none, {
                tp: (o.offset, o.leader_epoch, o.metadata, ErrorCode.none) for tp, o in committed.items()
            }
        out: dict[tuple[str, int], tuple[int, int, str | None, ErrorCode]] = {}
        for tp in partitions:
            if require_stable and self.has_pending_transactional_offsets(group_id, tp):
                out[tp] = (-1, -1, NO_METADATA, ErrorCode.unstable_offset_commit)
                continue
            o = committed.get(tp)
            out[tp] = (
                (-1, -1, NO_METADATA, ErrorCode.none)
                if o is None
                else (
                    o.offset,
                    o.leader_epoch,
                    o.metadata,
                    ErrorCode.none,
                )
            )
        return ErrorCode.none, out

    def delete_offsets(
        self, group_id: str, partitions: list[tuple[str, int]]
    ) -> tuple[ErrorCode, dict[tuple[str, int], ErrorCode]]:
        """OffsetDelete (KIP-496): an active consumer group keeps the offsets of topics its
        members subscribe to (GROUP_SUBSCRIBED_TO_TOPIC); an active group of another
        protocol type cannot delete offsets at all (NON_EMPTY_GROUP)."""
        error = self._check_group(group_id)
        if error is not ErrorCode.none:
            return error, {}
        group = self._groups.get(group_id)
        if group is None or group.is_in(D):
            return ErrorCode.group_id_not_found, {}
        active = not group.is_in(E)
        if active and group.protocol_type != CONSUMER_PROTOCOL_TYPE:
            return ErrorCode.non_empty_group, {}
        results: dict[tuple[str, int], ErrorCode] = {}
        records: list[Record] = []
        to_delete: list[tuple[str, int]] = []
        for topic, partition in partitions:
            if active and group.is_subscribed_to_topic(topic):
                results[(topic, partition)] = ErrorCode.group_subscribed_to_topic
                continue
            results[(topic, partition)] = ErrorCode.none
            if (topic, partition) in group.offsets:
                to_delete.append((topic, partition))
                records.append(offset_commit_record(group_id, topic, partition, None))
        if records:
            error = self._write(group_id, records)
            if error is not ErrorCode.none:
                return _group_append_error(error), {}
        for tp in to_delete:
            group.offsets.pop(tp, None)
        return ErrorCode.none, results

    # ==================================================================================
    # DescribeGroups, ListGroups, DeleteGroups
    # ==================================================================================

    def describe_group(self, group_id: str) -> GroupDescription:
        error = self._check_group(group_id)
        if error is not ErrorCode.none:
            return GroupDescription(error, "", "", "", group_id=group_id)
        group = self._groups.get(group_id)
        if group is None:
            return GroupDescription(ErrorCode.none, GroupState.DEAD.value, "", "", group_id=group_id)
        if group.is_in(S):
            members = [
                MemberDescription(
                    m.member_id,
                    m.group_instance_id,
                    m.client_id,
                    m.client_host,
                    m.metadata(group.protocol_name),
                    m.assignment,
                )
                for m in group.members.values()
            ]
            return GroupDescription(
                ErrorCode.none,
                group.state.value,
                group.protocol_type or "",
                group.protocol_name or "",
                members,
                group_id=group_id,
            )
        # As Kafka: metadata and assignment only for a Stable group.
        members = [
            MemberDescription(m.member_id, m.group_instance_id, m.client_id, m.client_host, b"", b"")
            for m in group.members.values()
        ]
        return GroupDescription(
            ErrorCode.none, group.state.value, group.protocol_type or "", "", members, group_id=group_id
        )

    def list_groups(self, states: set[str] | None = None, types: set[str] | None = None) -> list[tuple[str, str, str]]:
        """(group_id, protocol_type, state) of the groups served here. ``states`` filters by
        Kafka state name, case-insensitively (ListGroups v4+). ``types`` is ListGroups v5's
        group-type filter: these are all "classic" groups, so any other type filters
        them out. Empty sets mean no filter, as in Kafka."""
        wanted_states = {parse_state(s) for s in states} if states else None
        if types and GROUP_TYPE_CLASSIC not in {t.lower() for t in types}:
            return []
        out: list[tuple[str, str, str]] = []
        for group_id, group in self._groups.items():
            if wanted_states is not None and group.state not in wanted_states:
                continue
            out.append((group_id, group.protocol_type or "", group.state.value))
        return out

    def delete_groups(self, group_ids: list[str]) -> dict[str, ErrorCode]:
        results: dict[str, ErrorCode] = {}
        for group_id in group_ids:
            error = self._check_group(group_id)
            if error is not ErrorCode.none:
                results[group_id] = error
                continue
            group = self._groups.get(group_id)
            if group is None or group.is_in(D):
                results[group_id] = ErrorCode.group_id_not_found
                continue
            if not group.is_in(E):
                results[group_id] = ErrorCode.non_empty_group
                continue
            records = [offset_commit_record(group_id, t, p, None) for t, p in group.offsets]
            records.append(group_metadata_record(group_id, None))
            error = self._write(group_id, records)
            if error is not ErrorCode.none:
                results[group_id] = _group_append_error(error)
                continue
            self._remove_group(group)
            results[group_id] = ErrorCode.none
        return results

    def _remove_group(self, group: ClassicGroup) -> None:
        for member in list(group.members.values()):
            self._drop_member(group, member, ErrorCode.coordinator_not_available)
        group.pending_members.clear()
        group.offsets.clear()
        group.transition_to(D, None)
        self._groups.pop(group.group_id, None)

    # ==================================================================================
    # time
    # ==================================================================================

    def tick(self, now_ms: int) -> None:
        """Fire every deadline that has passed: member sessions, KIP-394 pending members,
        join phases (rebalance timeout, initial delay), pending syncs; and, every
        ``offsets_retention_check_interval_ms``, offset expiry and removal of Empty groups
        without offsets."""
        for group in list(self._groups.values()):
            if group.group_id in self._groups:
                self._tick_group(group, now_ms)
        if self._next_cleanup_ms is None or now_ms >= self._next_cleanup_ms:
            self._next_cleanup_ms = now_ms + self.config.offsets_retention_check_interval_ms
            self.cleanup_offsets(now_ms)

    def fire_passed_deadlines(self, group_id: str, now_ms: int) -> None:
        """Fire the deadlines of one group that have passed, as :meth:`tick` does for
        every group. DescribeGroups and DeleteGroups call it first: Kafka expires a session
        within a millisecond of its deadline (its heartbeat purgatory), while the broker
        ticks every 100 ms, so an admin request just after a member's session ended would
        otherwise still see the member (librdkafka's 0081 deletes its groups 6 s after
        closing their static members, whose session timeout is 6 s)."""
        group = self._groups.get(group_id)
        if group is not None:
            self._tick_group(group, now_ms)

    def _tick_group(self, group: ClassicGroup, now_ms: int) -> None:
        for member_id, deadline in list(group.pending_members.items()):
            if deadline <= now_ms:
                del group.pending_members[member_id]
                if group.is_in(P) and group.has_all_members_joined():
                    self._complete_join(group, now_ms)
        for member in list(group.members.values()):
            if group.members.get(member.member_id) is member and member.session_expired(now_ms):
                log.info("group %s: member %s session expired", group.group_id, member.member_id)
                self._remove_member_and_update_group(group, member, now_ms)
        if group.is_in(P) and group.join_deadline_ms is not None and group.join_deadline_ms <= now_ms:
            self._join_deadline_passed(group, now_ms)
        if group.is_in(C, S) and group.sync_deadline_ms is not None and group.sync_deadline_ms <= now_ms:
            group.sync_deadline_ms = None
            late = [group.members[mid] for mid in group.pending_sync_members if mid in group.members]
            if late:
                for member in late:
                    self._drop_member(group, member, ErrorCode.unknown_member_id)
                self._prepare_rebalance(group, now_ms, f"members {[m.member_id for m in late]} did not sync in time")

    def cleanup_offsets(self, now_ms: int) -> None:
        """Expire offsets (``offsets.retention.minutes``) and remove Empty groups left
        without offsets, writing tombstones (Kafka's ``cleanupGroupMetadata``)."""
        retention = self.config.offsets_retention_ms
        for group in list(self._groups.values()):
            expired: list[tuple[str, int]] = []
            condition = _expiration_condition(group)
            if condition is not None:
                only_unsubscribed, since_ms = condition
                for tp, o in group.offsets.items():
                    if only_unsubscribed and group.is_subscribed_to_topic(tp[0]):
                        continue
                    if o.expire_timestamp_ms != -1:
                        expired_now = now_ms >= o.expire_timestamp_ms
                    else:
                        expired_now = now_ms - (o.commit_timestamp_ms if since_ms is None else since_ms) >= retention
                    if expired_now:
                        expired.append(tp)
            remove_group = (group.is_in(E) and len(expired) == len(group.offsets) and not group.pending_members
                            and group.group_id not in self._pending_txn_offsets)
            if not expired and not remove_group:
                continue
            records = [offset_commit_record(group.group_id, t, p, None) for t, p in expired]
            if remove_group:
                records.append(group_metadata_record(group.group_id, None))
            if self._write(group.group_id, records) is not ErrorCode.none:
                continue  # try again at the next cleanup
            for tp in expired:
                group.offsets.pop(tp, None)
            if remove_group:
                log.info("group %s: empty and without offsets, removed", group.group_id)
                self._remove_group(group)


class _JoinRequest:
    """The fields of a JoinGroup request the coordinator keeps passing around."""

    __slots__ = (
        "member_id",
        "group_instance_id",
        "protocol_type",
        "protocols",
        "session_timeout_ms",
        "rebalance_timeout_ms",
        "client_id",
        "client_host",
        "reason",
        "skip_assignment_supported",
    )

    def __init__(
        self,
        member_id: str,
        group_instance_id: str | None,
        protocol_type: str,
        protocols: list[tuple[str, bytes]],
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        client_id: str,
        client_host: str,
        reason: str | None,
        skip_assignment_supported: bool,
    ) -> None:
        self.member_id = member_id
        self.group_instance_id = group_instance_id
        self.protocol_type = protocol_type
        self.protocols = protocols
        self.session_timeout_ms = session_timeout_ms
        self.rebalance_timeout_ms = rebalance_timeout_ms
        self.client_id = client_id
        self.client_host = client_host
        self.reason = reason
        self.skip_assignment_supported = skip_assignment_supported


def _expiration_condition(group: ClassicGroup) -> tuple[bool, int | None] | None:
    """Kafka's ``offsetExpirationCondition``: (only topics nobody subscribes to, the time an
    offset's age counts from; None = its own commit timestamp), or None: nothing expires.

    - no protocol type (a simple group): every offset, from its commit timestamp;
    - Empty: every offset, from when the group became Empty (if known);
    - Stable "consumer" group that knows its topics: offsets of unsubscribed topics, from
      their commit timestamps;
    - otherwise nothing.
    """
    if group.protocol_type is None:
        return False, None
    if group.is_in(E):
        return False, group.state_timestamp_ms
    if group.protocol_type == CONSUMER_PROTOCOL_TYPE and group.subscribed_topics is not None and group.is_in(S):
        return True, None
    return None


def _inconsistent(requested: str | None, current: str | None) -> bool:
    return requested is not None and current is not None and requested != current


def _metadata_of(protocols: list[tuple[str, bytes]], name: str | None) -> bytes:
    for n, metadata in protocols:
        if n == name:
            return metadata
    return b""


def _offset_from_value(value: OffsetCommitValue) -> OffsetAndMetadata:
    return OffsetAndMetadata(
        offset=value.offset,
        leader_epoch=value.leader_epoch,
        metadata=value.metadata,
        commit_timestamp_ms=value.commit_timestamp,
        expire_timestamp_ms=value.expire_timestamp,
    )

"""The controller: one broker, elected through the coordination service, that decides
partition leaders and ISRs and tells every broker.

One queue, one owner (Kafka's ControllerEventManager): coordination watches only put
events on `events`; the `run` task alone reads and changes controller state. Decisions
come from the pure functions in `election` and `assignment`; every change of a
partition's state (New, Online, Offline, NonExistent) is checked against the table in
`partition_state` first. This module writes them to the coordination service
(compare-and-set, fenced by the controller epoch) and sends LeaderAndIsr /
UpdateMetadata / StopReplica to the brokers.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from moldau.controller import election, partition_state, preferred, reassignment
from moldau.controller.coordination import (
    BadVersionError,
    BrokerInfo,
    Coordination,
    Endpoint,
    LeaderAndIsr,
    NotControllerError,
    TopicAssignment,
)
from moldau.controller.partition_state import IllegalStateTransition, PartitionState
from moldau.controller.reassignment import ReassignmentError, ReplicaAssignment
from moldau.protocol import interbroker as ib
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode

if TYPE_CHECKING:
    from moldau.controller.channel import BrokerChannels

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]


@dataclass
class ControlledShutdown:
    broker_id: int
    done: asyncio.Future[list[TopicPartition]]


@dataclass
class PreferredElection:
    partitions: list[TopicPartition] | None  # None = every partition
    done: asyncio.Future[dict[TopicPartition, str | None]]


@dataclass
class AlterPartition:
    request: Any
    done: asyncio.Future[Any]


@dataclass
class Reassign:
    """AlterPartitionReassignments: partition -> target replicas (None: cancel)."""

    partitions: dict[TopicPartition, list[int] | None]
    done: asyncio.Future[dict[TopicPartition, tuple[ErrorCode, str | None]]]


@dataclass
class ListReassignments:
    """ListPartitionReassignments: the partitions (None: all) whose reassignment is in progress."""

    partitions: list[TopicPartition] | None
    done: asyncio.Future[dict[TopicPartition, ReplicaAssignment]]


@dataclass
class ControllerState:
    live: dict[int, BrokerInfo] = field(default_factory=dict)
    topics: dict[str, TopicAssignment] = field(default_factory=dict)
    states: dict[TopicPartition, tuple[LeaderAndIsr, int]] = field(default_factory=dict)
    # Each partition's state in the table of partition_state.py (absent: NonExistentPartition).
    partition_states: dict[TopicPartition, PartitionState] = field(default_factory=dict)
    shutting_down: set[int] = field(default_factory=set)
    deleting: set[str] = field(default_factory=set)


# The leader UpdateMetadata gives a deleted topic's partitions (Kafka's LeaderDuringDelete).
LEADER_DURING_DELETE = -2

# Kafka's SecurityProtocol ids, as UpdateMetadata carries them.
SECURITY_PROTOCOL_IDS = {"PLAINTEXT": 0, "SSL": 1, "SASL_PLAINTEXT": 2, "SASL_SSL": 3}


def inter_broker_endpoint(info: BrokerInfo, listener: str | None) -> Endpoint:
    """Where other brokers reach `info`: its endpoint on the inter-broker listener (its
    first endpoint if it has none by that name: a broker of an older configuration)."""
    for ep in info.endpoints:
        if ep.listener == listener:
            return ep
    return info.endpoints[0]


def _error_name(code: int) -> str:
    try:
        return ErrorCode(code).name.upper()
    except ValueError:
        return f"error {code}"


class ChannelManager:
    """One ordered sender per broker (Kafka's ControllerChannelManager).

    The controller decides on a worker thread; `add_broker`, `remove_broker` and `send`
    hand their work to the event loop in call order, so sends stay ordered per broker.
    """

    def __init__(self, controller_id: int, loop: asyncio.AbstractEventLoop, channels: BrokerChannels) -> None:
        self.controller_id = controller_id
        self._loop = loop
        self.channels = channels
        self._queues: dict[int, asyncio.Queue[tuple[int, Any]]] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._endpoints: dict[int, tuple[str, int]] = {}

    def add_broker(self, info: BrokerInfo) -> None:
        self._loop.call_soon_threadsafe(self._add_broker, info)

    def remove_broker(self, broker_id: int) -> None:
        self._loop.call_soon_threadsafe(self._remove_broker, broker_id)

    def send(self, broker_id: int, api_key: int, request: Any) -> None:
        self._loop.call_soon_threadsafe(self._send, broker_id, api_key, request)

    def _add_broker(self, info: BrokerInfo) -> None:
        ep = inter_broker_endpoint(info, self.channels.listener)
        if self._endpoints.get(info.broker_id) == (ep.host, ep.port) and info.broker_id in self._tasks:
            return
        self._remove_broker(info.broker_id)
        self._endpoints[info.broker_id] = (ep.host, ep.port)
        queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
        self._queues[info.broker_id] = queue
        self._tasks[info.broker_id] = asyncio.get_running_loop().create_task(
            self._sender(info.broker_id, ep.host, ep.port, queue))

    def _remove_broker(self, broker_id: int) -> None:
        task = self._tasks.pop(broker_id, None)
        if task is not None:
            task.cancel()
        self._queues.pop(broker_id, None)
        self._endpoints.pop(broker_id, None)

    def _send(self, broker_id: int, api_key: int, request: Any) -> None:
        queue = self._queues.get(broker_id)
        if queue is not None:
            queue.put_nowait((api_key, request))

    async def _sender(self, broker_id: int, host: str, port: int, queue: asyncio.Queue[tuple[int, Any]]) -> None:
        conn = self.channels.connect(host, port, f"controller-{self.controller_id}")
        try:
            while True:
                api_key, request = await queue.get()
                version = ib.VERSIONS[api_key]
                while True:
                    try:
                        response = await conn.request(api_key, version, request, timeout=10.0)
                        code = getattr(response, "error_code", 0)
                        if code:  # e.g. CLUSTER_AUTHORIZATION_FAILED: our principal may not ClusterAction
                            log.warning("controller: broker %d refused %s: %s", broker_id,
                                        ApiKey(api_key).name, _error_name(code))
                        break
                    except (OSError, ConnectionError, TimeoutError) as exc:
                        log.info("controller: broker %d unreachable (%s); retrying", broker_id, exc)
                        conn.close()
                        await asyncio.sleep(0.3)
        except asyncio.CancelledError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        for broker_id in list(self._tasks):
            self._remove_broker(broker_id)


class Controller:
    def __init__(
        self,
        broker_id: int,
        epoch: int,
        coordination: Coordination,
        *,
        unclean_leader_election: Callable[[str], bool],
        imbalance_percentage: int = 10,
        channels: BrokerChannels,
    ) -> None:
        self.imbalance_percentage = imbalance_percentage
        self.broker_id = broker_id
        self.epoch = epoch
        self.coordination = coordination
        self.unclean_leader_election = unclean_leader_election
        self.events: asyncio.Queue[Any] = asyncio.Queue()
        self.state = ControllerState()
        self._loop = asyncio.get_running_loop()
        self.inter_broker_listener = channels.listener
        self.channels = ChannelManager(broker_id, self._loop, channels)
        self._task: asyncio.Task[None] | None = None
        self.active = True

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        self.active = False
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        self.channels.close()

    def enqueue(self, event: Any) -> None:
        self.events.put_nowait(event)

    async def run(self) -> None:
        try:
            await asyncio.to_thread(lambda: None)  # let the broker finish starting
            # Decisions and their ZooKeeper writes run on a worker thread, one event at a
            # time, so the broker keeps serving requests while its controller works.
            await asyncio.to_thread(self._on_elected)
            while self.active:
                event = await self.events.get()
                try:
                    await asyncio.to_thread(self._process, event)
                except NotControllerError:
                    log.warning("controller %d: fenced by a newer controller; resigning", self.broker_id)
                    self.active = False
                    return
                except Exception as exc:
                    log.exception("controller %d: error processing %r", self.broker_id, event)
                    # Whoever waits for this event's answer gets the error, not a wait
                    # without end (a fuzzed AlterPartition with null topics hung here).
                    done = getattr(event, "done", None)
                    if isinstance(done, asyncio.Future) and not done.done():
                        done.set_exception(exc)
        except asyncio.CancelledError:
            pass
        except NotControllerError:
            log.warning("controller %d: fenced by a newer controller while starting", self.broker_id)
            self.active = False

    # --- events ----------------------------------------------------------------------

    def _process(self, event: Any) -> None:
        if event == "brokers":
            self._on_broker_change()
        elif event == "topics":
            self._on_topic_change()
        elif event == "deletions":
            self._on_topic_deletion()
        elif event == "configs":
            changed = self._elect_for_offline(self._all_partitions())
            if changed:
                self._send_leader_and_isr(changed, brokers=set(self.state.live))
                self._send_update_metadata(set(self.state.live), changed)
        elif isinstance(event, ControlledShutdown):
            remaining = self._on_controlled_shutdown(event.broker_id)
            self._resolve(event.done, remaining)
        elif isinstance(event, PreferredElection):
            result = self._on_preferred_election(event.partitions)
            self._resolve(event.done, result)
        elif isinstance(event, AlterPartition):
            response = self._on_alter_partition(event.request)
            self._resolve(event.done, response)
        elif isinstance(event, Reassign):
            self._resolve(event.done, self._on_reassign(event.partitions))
        elif isinstance(event, ListReassignments):
            self._resolve(event.done, self._reassignments(event.partitions))
        elif event == "auto_rebalance":
            self._on_auto_rebalance()

    def _resolve(self, fut: asyncio.Future[Any], value: Any) -> None:
        def resolve() -> None:
            if not fut.done():
                fut.set_result(value)

        self._loop.call_soon_threadsafe(resolve)

    def _on_elected(self) -> None:
        """Load everything from the coordination service and tell every broker."""
        c = self.coordination
        s = self.state
        s.live = c.live_brokers()
        s.topics = c.topics()
        # One pipelined read, not a round trip per partition (30,000 in a large cluster).
        s.states = c.partition_states([(topic.name, p) for topic in s.topics.values() for p in topic.partitions])
        s.partition_states = {
            tp: partition_state.loaded_state(s.states[tp][0].leader if tp in s.states else None, s.live)
            for tp in self._all_partitions()
        }
        for info in s.live.values():
            self.channels.add_broker(info)
        log.info("controller %d (epoch %d): %d live broker(s), %d topic(s)",
                 self.broker_id, self.epoch, len(s.live), len(s.topics))
        changed = self._initialize_new_partitions(self._all_partitions())
        changed |= self._elect_for_offline(self._all_partitions())
        self._send_leader_and_isr(self._all_partitions(), brokers=set(s.live))
        self._send_update_metadata(set(s.live))
        if c.pending_topic_deletions():
            self._on_topic_deletion()
        for tp in self._all_partitions():  # reassignments a previous controller left unfinished
            if tp in s.states and self._replica_assignment(tp).is_reassigning:
                self._reassign_step(tp)
        del changed

    def _on_broker_change(self) -> None:
        s = self.state
        live = self.coordination.live_brokers()
        # A broker that restarted before its old session expired keeps its id but not its
        # epoch (KIP-380): it left and joined at once, and its new incarnation leads and
        # follows nothing until told. Kafka's processBrokerChange: onBrokerFailure, then
        # onBrokerStartup. (Without this, a quick restart went unseen: its partitions kept
        # a leader that no longer led them.)
        bounced = {b for b in set(live) & set(s.live)
                   if live[b].epoch >= 0 and s.live[b].epoch >= 0 and live[b].epoch != s.live[b].epoch}
        new = set(live) - set(s.live) | bounced
        dead = set(s.live) - set(live) | bounced
        changed_endpoints = {b for b in set(live) & set(s.live) - bounced if live[b] != s.live[b]}
        s.live = {b: info for b, info in live.items() if b not in bounced}  # the failure first
        s.shutting_down &= set(live) - bounced
        for b in dead:
            self.channels.remove_broker(b)
        for b in new | changed_endpoints:
            self.channels.add_broker(live[b])
        if not (new or dead or changed_endpoints):
            return
        log.info("controller %d: brokers joined %s, left %s%s", self.broker_id, sorted(new), sorted(dead),
                 f" (restarted: {sorted(bounced)})" if bounced else "")
        for tp, (current, _) in s.states.items():
            if current.leader in dead:  # only marked: the election below brings it back online
                self._transition(tp, PartitionState.OFFLINE)
        changed = self._elect_for_offline(self._all_partitions())
        if bounced:  # then the startup: what only the restarted broker could lead comes back
            s.live = live
            changed |= self._elect_for_offline(self._all_partitions())
        changed |= self._initialize_new_partitions(self._all_partitions())
        # New brokers learn everything; the rest learn what changed.
        self._send_update_metadata(set(live))
        if new | changed_endpoints:
            self._send_leader_and_isr(self._all_partitions(), brokers=new | changed_endpoints)
        if changed:
            self._send_leader_and_isr(changed, brokers=set(live) - new - changed_endpoints)

    def _on_topic_change(self) -> None:
        s = self.state
        topics = self.coordination.topics()
        added = [
            (t.name, p)
            for t in topics.values()
            for p in t.partitions
            if t.name not in s.topics or p not in s.topics[t.name].partitions
        ]
        gone = [t for name, t in s.topics.items() if name not in topics]
        s.topics = topics
        for tp in list(s.states):
            if tp[0] not in topics:
                del s.states[tp]
        for tp in [tp for tp in s.partition_states if tp[0] not in topics]:
            self._forget_partition(tp)
        for tp in added:
            self._transition(tp, PartitionState.NEW)
        if added:
            changed = self._initialize_new_partitions(added)
            self._send_leader_and_isr(changed, brokers=set(s.live))
        # Only what changed (Kafka's controller does the same): sending every partition
        # per new topic made creating many topics quadratic.
        self._send_update_metadata(set(s.live), added, deleted=gone)

    def _on_topic_deletion(self) -> None:
        s = self.state
        deleted: list[TopicAssignment] = []
        for name in self.coordination.pending_topic_deletions():
            topic = s.topics.get(name)
            if topic is None:
                self.coordination.complete_topic_deletion(name)
                continue
            for broker_id in s.live:
                partitions = [p for p, replicas in topic.partitions.items() if broker_id in replicas]
                if partitions:
                    self.channels.send(broker_id, ApiKey.STOP_REPLICA, ib.StopReplicaRequest(
                        controller_id=self.broker_id, controller_epoch=self.epoch, broker_epoch=-1,
                        topic_states=(ib.StopReplicaTopicState(topic_name=name, partition_states=tuple(
                            ib.StopReplicaPartitionState(partition_index=p, leader_epoch=-2, delete_partition=True)
                            for p in partitions)),)))
            self.coordination.complete_topic_deletion(name)
            deleted.append(topic)
            s.topics.pop(name, None)
            for tp in [tp for tp in s.states if tp[0] == name]:
                del s.states[tp]
            for tp in [tp for tp in s.partition_states if tp[0] == name]:
                self._forget_partition(tp)
            log.info("controller %d: deleted topic %s", self.broker_id, name)
        self._send_update_metadata(set(s.live), [], deleted=deleted)

    def _on_controlled_shutdown(self, broker_id: int) -> list[TopicPartition]:
        """Move leadership away from a broker that is shutting down; return what it still leads."""
        s = self.state
        s.shutting_down.add(broker_id)
        changed: list[TopicPartition] = []
        for tp, (current, version) in list(s.states.items()):
            replicas = s.topics[tp[0]].partitions.get(tp[1], [])
            if broker_id not in replicas:
                continue
            if current.leader == broker_id:
                new = election.controlled_shutdown_election(
                    replicas, current, set(s.live), s.shutting_down, self.epoch).leader_and_isr
            elif broker_id in current.isr and len(current.isr) > 1:
                new = LeaderAndIsr(current.leader, current.leader_epoch + 1,
                                   tuple(b for b in current.isr if b != broker_id), self.epoch)
            else:
                continue
            if new is not None and self._write_state(tp, new, version):
                changed.append(tp)
        if changed:
            self._send_leader_and_isr(changed, brokers=set(s.live))
            self._send_update_metadata(set(s.live), changed)
        # Like Kafka, partitions with no other live replica cannot move: not "remaining".
        return [
            tp for tp, (st, _) in s.states.items()
            if st.leader == broker_id
            and any(b != broker_id and b in s.live for b in s.topics[tp[0]].partitions.get(tp[1], []))
        ]

    async def submit_alter_partition(self, request: Any) -> Any:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.enqueue(AlterPartition(request, fut))
        return await fut

    def _on_alter_partition(self, request: Any) -> Any:
        """A leader's ISR change (Kafka's ZooKeeper-mode AlterPartition handling): valid only
        from the current leader at the current leader epoch and partition epoch (the state
        znode's version); the leader epoch does not change."""
        from kio.schema.alter_partition.v2 import response as resp

        from moldau.protocol.errors import ErrorCode

        s = self.state
        by_id = {t.topic_id: t for t in s.topics.values()}
        changed: list[TopicPartition] = []
        topics_out = []
        for topic in request.topics:
            assignment = by_id.get(topic.topic_id)
            parts_out = []
            for p in topic.partitions:
                def answer(code: ErrorCode, st: LeaderAndIsr | None = None, version: int = -1,
                           index: int = p.partition_index) -> Any:
                    return resp.PartitionData(
                        partition_index=index, error_code=code,
                        leader_id=st.leader if st else -1, leader_epoch=st.leader_epoch if st else -1,
                        isr=tuple(st.isr) if st else (), leader_recovery_state=0, partition_epoch=version)

                if assignment is None or (assignment.name, p.partition_index) not in s.states:
                    parts_out.append(answer(ErrorCode.unknown_topic_or_partition))
                    continue
                tp = (assignment.name, p.partition_index)
                current, version = s.states[tp]
                replicas = assignment.partitions.get(p.partition_index, [])
                if current.leader != request.broker_id:
                    parts_out.append(answer(ErrorCode.not_leader_or_follower, current, version))
                elif p.leader_epoch != current.leader_epoch:
                    parts_out.append(answer(ErrorCode.fenced_leader_epoch, current, version))
                elif p.partition_epoch != version:
                    parts_out.append(answer(ErrorCode.invalid_update_version, current, version))
                elif not set(p.new_isr) <= set(replicas) or current.leader not in p.new_isr:
                    parts_out.append(answer(ErrorCode.invalid_request, current, version))
                else:
                    new = LeaderAndIsr(current.leader, current.leader_epoch, tuple(p.new_isr), self.epoch)
                    if self._write_state(tp, new, version):
                        changed.append(tp)
                        new_state, new_version = s.states[tp]
                        log.info("controller %d: ISR of %s-%d %s -> %s", self.broker_id, tp[0], tp[1],
                                 list(current.isr), list(new.isr))
                        parts_out.append(answer(ErrorCode.none, new_state, new_version))
                    else:
                        st, v = s.states[tp]
                        parts_out.append(answer(ErrorCode.invalid_update_version, st, v))
            topics_out.append(resp.TopicData(topic_id=topic.topic_id, partitions=tuple(parts_out)))
        if changed:
            self._send_update_metadata(set(s.live), changed)
        for tp in changed:  # a new replica that joined the ISR may complete a reassignment
            if self._replica_assignment(tp).is_reassigning:
                self._reassign_step(tp)
        return resp.AlterPartitionResponse(throttle_time=datetime.timedelta(0), error_code=ErrorCode.none,
                                           topics=tuple(topics_out))

    # --- partition reassignment (KIP-455; decisions in reassignment.py) ---------------------

    async def submit_reassignment(
        self, partitions: dict[TopicPartition, list[int] | None]
    ) -> dict[TopicPartition, tuple[ErrorCode, str | None]]:
        fut: asyncio.Future[dict[TopicPartition, tuple[ErrorCode, str | None]]] = (
            asyncio.get_running_loop().create_future())
        self.enqueue(Reassign(partitions, fut))
        return await fut

    async def list_reassignments(self, partitions: list[TopicPartition] | None) -> dict[
            TopicPartition, ReplicaAssignment]:
        fut: asyncio.Future[dict[TopicPartition, ReplicaAssignment]] = asyncio.get_running_loop().create_future()
        self.enqueue(ListReassignments(partitions, fut))
        return await fut

    def _replica_assignment(self, tp: TopicPartition) -> ReplicaAssignment:
        topic = self.state.topics[tp[0]]
        return ReplicaAssignment(tuple(topic.partitions.get(tp[1], ())), tuple(topic.adding.get(tp[1], ())),
                                 tuple(topic.removing.get(tp[1], ())))

    def _write_assignment(self, tp: TopicPartition, ra: ReplicaAssignment) -> None:
        topic = self.state.topics[tp[0]]
        partitions, adding, removing = dict(topic.partitions), dict(topic.adding), dict(topic.removing)
        partitions[tp[1]] = list(ra.replicas)
        for marks, replicas in ((adding, ra.adding), (removing, ra.removing)):
            if replicas:
                marks[tp[1]] = list(replicas)
            else:
                marks.pop(tp[1], None)
        new = TopicAssignment(topic.name, topic.topic_id, partitions, adding, removing)
        self.coordination.set_assignment(new)
        self.state.topics[tp[0]] = new

    def _reassignments(self, partitions: list[TopicPartition] | None) -> dict[TopicPartition, ReplicaAssignment]:
        wanted = partitions if partitions is not None else self._all_partitions()
        out: dict[TopicPartition, ReplicaAssignment] = {}
        for tp in wanted:
            if tp[0] in self.state.topics and tp[1] in self.state.topics[tp[0]].partitions:
                ra = self._replica_assignment(tp)
                if ra.is_reassigning:
                    out[tp] = ra
        return out

    def _on_reassign(
        self, requested: dict[TopicPartition, list[int] | None]
    ) -> dict[TopicPartition, tuple[ErrorCode, str | None]]:
        s = self.state
        results: dict[TopicPartition, tuple[ErrorCode, str | None]] = {}
        for tp, target in requested.items():
            if tp[0] not in s.topics or tp[1] not in s.topics[tp[0]].partitions or tp not in s.states:
                results[tp] = (ErrorCode.unknown_topic_or_partition, f"Partition {tp[0]}-{tp[1]} does not exist.")
                continue
            if tp[0] in s.deleting:
                results[tp] = (ErrorCode.unknown_topic_or_partition, f"Topic {tp[0]} is being deleted.")
                continue
            current = self._replica_assignment(tp)
            try:
                new = reassignment.plan(current, target, set(s.live))
            except ReassignmentError as exc:
                results[tp] = (exc.code, exc.message)
                continue
            dropped = [b for b in current.replicas if b not in new.replicas]
            self._write_assignment(tp, new)
            log.info("controller %d: reassigning %s-%d: %s -> %s (adding %s, removing %s)", self.broker_id,
                     tp[0], tp[1], list(current.replicas), list(new.target), list(new.adding), list(new.removing))
            if dropped:  # replaced or cancelled: replicas that were being added go again
                state, version = s.states[tp]
                if set(dropped) & set(state.isr) or state.leader in dropped:
                    self._write_state(tp, reassignment.completed_state(
                        ReplicaAssignment(new.replicas), state, set(s.live) - s.shutting_down, self.epoch), version)
                self._stop_replicas(tp, dropped)
            self._reassign_step(tp)
            results[tp] = (ErrorCode.none, None)
        self._send_update_metadata(set(s.live))
        return results

    def _reassign_step(self, tp: TopicPartition) -> None:
        """Complete the partition's reassignment if every target replica is in sync, else
        (re)start it: a new leader epoch, and LeaderAndIsr to every old and new replica."""
        s = self.state
        ra = self._replica_assignment(tp)
        current, version = s.states[tp]
        if ra.is_reassigning and reassignment.is_complete(ra, current.isr):
            done = reassignment.completed_state(ra, current, set(s.live) - s.shutting_down, self.epoch)
            if not self._write_state(tp, done, version):
                return  # the state moved: the event that moved it comes next
            self._write_assignment(tp, ReplicaAssignment(ra.target))
            self._send_leader_and_isr([tp], brokers=set(ra.target))
            self._stop_replicas(tp, list(ra.removing))
            self._send_update_metadata(set(s.live))
            log.info("controller %d: reassignment of %s-%d complete: replicas %s, leader %d", self.broker_id,
                     tp[0], tp[1], list(ra.target), done.leader)
            return
        if self._write_state(tp, reassignment.in_progress_state(current, self.epoch), version):
            self._send_leader_and_isr([tp], brokers=set(ra.replicas))

    def _stop_replicas(self, tp: TopicPartition, brokers: Iterable[int]) -> None:
        """StopReplica with deletion: these brokers no longer hold the partition."""
        for b in brokers:
            if b in self.state.live:
                self.channels.send(b, ApiKey.STOP_REPLICA, ib.StopReplicaRequest(
                    controller_id=self.broker_id, controller_epoch=self.epoch, broker_epoch=-1,
                    topic_states=(ib.StopReplicaTopicState(topic_name=tp[0], partition_states=(
                        ib.StopReplicaPartitionState(partition_index=tp[1], leader_epoch=-2,
                                                     delete_partition=True),)),)))

    def _on_auto_rebalance(self) -> None:
        """auto.leader.rebalance.enable: move leaders back to preferred replicas on brokers
        whose share of non-preferred leaders exceeds leader.imbalance.per.broker.percentage."""
        s = self.state
        assignments = {(t.name, p): r for t in s.topics.values() for p, r in t.partitions.items()}
        states = {tp: st for tp, (st, _) in s.states.items()}
        imbalanced = preferred.imbalanced_partitions(
            assignments, states, set(s.live) - s.shutting_down, self.imbalance_percentage)
        partitions = [tp for tps in imbalanced.values() for tp in tps]
        if partitions:
            log.info("controller %d: auto leader rebalance of %d partition(s)", self.broker_id, len(partitions))
            self._on_preferred_election(partitions)

    def _on_preferred_election(self, partitions: list[TopicPartition] | None) -> dict[TopicPartition, str | None]:
        s = self.state
        results: dict[TopicPartition, str | None] = {}
        changed: list[TopicPartition] = []
        for tp in partitions if partitions is not None else self._all_partitions():
            topic = s.topics.get(tp[0])
            if topic is None or tp[1] not in topic.partitions or tp not in s.states:
                results[tp] = "UNKNOWN_TOPIC_OR_PARTITION"
                continue
            replicas = topic.partitions[tp[1]]
            current, version = s.states[tp]
            if current.leader == replicas[0]:
                results[tp] = "ELECTION_NOT_NEEDED"
                continue
            new = election.preferred_election(
                replicas, current, set(s.live) - s.shutting_down, self.epoch).leader_and_isr
            if new is None:
                results[tp] = "PREFERRED_LEADER_NOT_AVAILABLE"
                continue
            if self._write_state(tp, new, version):
                changed.append(tp)
                results[tp] = None
            else:
                results[tp] = "PREFERRED_LEADER_NOT_AVAILABLE"
        if changed:
            self._send_leader_and_isr(changed, brokers=set(s.live))
            self._send_update_metadata(set(s.live), changed)
        return results

    # --- decisions written, then sent -------------------------------------------------------

    def _all_partitions(self) -> list[TopicPartition]:
        return [(t.name, p) for t in self.state.topics.values() for p in sorted(t.partitions)]

    def _write_state(self, tp: TopicPartition, new: LeaderAndIsr, version: int | None) -> bool:
        """Write a partition's leader and ISR (compare-and-set), the move to the state they
        mean checked first against the table (an illegal one is not written)."""
        target = partition_state.state_for_leader(new.leader, self.state.live)
        if not self._check_transition(tp, target):
            return False
        try:
            if version is None:
                v = self.coordination.create_partition_state(tp[0], tp[1], new)
            else:
                v = self.coordination.update_partition_state(tp[0], tp[1], new, version)
        except BadVersionError:
            found = self.coordination.partition_state(tp[0], tp[1])
            if found is not None:
                self.state.states[tp] = found
                self._transition(tp, partition_state.state_for_leader(found[0].leader, self.state.live))
            log.info("controller: partition state of %s-%d moved under us; reloaded", *tp)
            return False
        self.state.states[tp] = (new, v)
        self._set_partition_state(tp, target)
        return True

    def _write_states(self, writes: list[tuple[TopicPartition, LeaderAndIsr, int | None]]) -> set[TopicPartition]:
        """`_write_state` for many partitions: the creates in one batch, the
        compare-and-sets in another (Kafka's controller pipelines them to ZooKeeper; the
        embedded coordinator makes each batch durable with one write). Returns the
        partitions written; those that moved under us are reloaded."""
        allowed: list[tuple[TopicPartition, LeaderAndIsr, int | None, PartitionState]] = []
        for tp, new, version in writes:
            target = partition_state.state_for_leader(new.leader, self.state.live)
            if self._check_transition(tp, target):
                allowed.append((tp, new, version, target))
        creates = {tp: new for tp, new, version, _ in allowed if version is None}
        updates = {tp: (new, version) for tp, new, version, _ in allowed if version is not None}
        versions: dict[TopicPartition, int | None] = {}
        if creates:
            versions.update(self.coordination.create_partition_states(creates))
        if updates:
            versions.update(self.coordination.update_partition_states(updates))
        written: set[TopicPartition] = set()
        for tp, new, _, target in allowed:
            v = versions.get(tp)
            if v is None:
                found = self.coordination.partition_state(tp[0], tp[1])
                if found is not None:
                    self.state.states[tp] = found
                    self._transition(tp, partition_state.state_for_leader(found[0].leader, self.state.live))
                log.info("controller: partition state of %s-%d moved under us; reloaded", *tp)
                continue
            self.state.states[tp] = (new, v)
            self._set_partition_state(tp, target)
            written.add(tp)
        return written

    # --- partition states: every change checked against partition_state.py's table ----------

    def partition_state_of(self, tp: TopicPartition) -> PartitionState:
        return self.state.partition_states.get(tp, PartitionState.NON_EXISTENT)

    def _check_transition(self, tp: TopicPartition, target: PartitionState) -> bool:
        """Whether the table allows the partition's move to ``target``; an illegal move is a
        controller bug, logged (the partition is left as it is, as Kafka does)."""
        try:
            partition_state.transition(self.partition_state_of(tp), target)
        except IllegalStateTransition as exc:
            log.error("controller %d: partition %s-%d: %s; left as it is", self.broker_id, tp[0], tp[1], exc)
            return False
        return True

    def _set_partition_state(self, tp: TopicPartition, target: PartitionState) -> None:
        if target is PartitionState.NON_EXISTENT:
            self.state.partition_states.pop(tp, None)
        else:
            self.state.partition_states[tp] = target

    def _transition(self, tp: TopicPartition, target: PartitionState) -> bool:
        """Move a partition to ``target`` if the table allows it (state only, nothing written)."""
        if not self._check_transition(tp, target):
            return False
        self._set_partition_state(tp, target)
        return True

    def _forget_partition(self, tp: TopicPartition) -> None:
        """Its topic is deleted: Offline, then NonExistent (Kafka's order)."""
        if self._transition(tp, PartitionState.OFFLINE):
            self._transition(tp, PartitionState.NON_EXISTENT)

    def _initialize_new_partitions(self, partitions: Iterable[TopicPartition]) -> set[TopicPartition]:
        s = self.state
        writes: list[tuple[TopicPartition, LeaderAndIsr, int | None]] = []
        for tp in partitions:
            if tp in s.states:
                continue
            replicas = s.topics[tp[0]].partitions[tp[1]]
            new = election.initial_state(replicas, set(s.live) - s.shutting_down, self.epoch)
            if new is None:
                new = LeaderAndIsr(-1, 0, tuple(replicas), self.epoch)
            writes.append((tp, new, None))
        return self._write_states(writes)

    def _elect_for_offline(self, partitions: Iterable[TopicPartition]) -> set[TopicPartition]:
        """Partitions whose leader is gone get a new one; dead followers leave the ISR."""
        s = self.state
        live = set(s.live)
        writes: list[tuple[TopicPartition, LeaderAndIsr, int | None]] = []
        for tp in partitions:
            if tp not in s.states:
                continue
            current, version = s.states[tp]
            replicas = s.topics[tp[0]].partitions[tp[1]]
            if current.leader in live and current.leader not in s.shutting_down:
                dead_isr = set(current.isr) - live
                if dead_isr and len(current.isr) > len(dead_isr):
                    new: LeaderAndIsr | None = LeaderAndIsr(
                        current.leader, current.leader_epoch + 1,
                        tuple(b for b in current.isr if b in live), self.epoch)
                else:
                    continue
            else:
                result = election.offline_election(
                    replicas, current, live - s.shutting_down, self.unclean_leader_election(tp[0]), self.epoch)
                new = result.leader_and_isr
                if new is None:
                    if current.leader != -1:
                        # No eligible leader: the partition goes offline (leader -1), ISR kept.
                        new = LeaderAndIsr(-1, current.leader_epoch + 1, current.isr, self.epoch)
                    else:
                        continue
                elif result.unclean:
                    log.warning("controller: UNCLEAN leader election for %s-%d: broker %d was not in the ISR "
                                "%s; acknowledged records may be lost", tp[0], tp[1], new.leader, current.isr)
            if new is not None:
                writes.append((tp, new, version))
        return self._write_states(writes)

    def _send_leader_and_isr(self, partitions: Iterable[TopicPartition], brokers: set[int]) -> None:
        s = self.state
        per_broker: dict[int, dict[str, list[ib.LeaderAndIsrPartitionState]]] = {}
        for tp in partitions:
            if tp not in s.states or tp[0] not in s.topics:
                continue
            state, version = s.states[tp]
            topic = s.topics[tp[0]]
            replicas = topic.partitions[tp[1]]
            ps = ib.LeaderAndIsrPartitionState(
                partition_index=tp[1], controller_epoch=state.controller_epoch, leader=state.leader,
                leader_epoch=state.leader_epoch, isr=tuple(state.isr), zk_version=version,
                replicas=tuple(replicas), adding_replicas=tuple(topic.adding.get(tp[1], ())),
                removing_replicas=tuple(topic.removing.get(tp[1], ())), is_new=False)
            for b in replicas:
                if b in brokers and b in s.live:
                    per_broker.setdefault(b, {}).setdefault(tp[0], []).append(ps)
        leaders = {st.leader for st, _ in s.states.values() if st.leader in s.live}
        endpoints = {b: inter_broker_endpoint(s.live[b], self.inter_broker_listener) for b in leaders}
        live_leaders = tuple(
            ib.LeaderAndIsrLiveLeader(broker_id=b, host_name=endpoints[b].host, port=endpoints[b].port)
            for b in sorted(leaders))
        for b, topics in per_broker.items():
            self.channels.send(b, ApiKey.LEADER_AND_ISR, ib.LeaderAndIsrRequest(
                controller_id=self.broker_id, controller_epoch=self.epoch, max_broker_epoch=-1,
                topic_states=tuple(
                    ib.LeaderAndIsrTopicState(topic_name=name, topic_id=s.topics[name].topic_id,
                                              partition_states=tuple(ps))
                    for name, ps in topics.items()),
                live_leaders=live_leaders))

    def update_metadata_request(
        self, partitions: Iterable[TopicPartition] | None = None,
        deleted: Iterable[TopicAssignment] = (),
    ) -> ib.UpdateMetadataRequest:
        """UpdateMetadata with every partition (``partitions`` None), or, as Kafka's
        controller sends after most changes, only ``partitions`` and the ``deleted``
        topics' partitions marked with leader -2 (Kafka's LeaderDuringDelete). Brokers
        merge it into their cache; the first one of a controller epoch replaces the cache
        and is always whole (`_on_elected`, and a broker's first after it joins)."""
        s = self.state
        if partitions is None:
            wanted: dict[str, list[int]] = {name: sorted(t.partitions) for name, t in s.topics.items()}
        else:
            wanted = {}
            for name, p in partitions:
                wanted.setdefault(name, []).append(p)
        topic_states = []
        for name, parts_wanted in wanted.items():
            topic = s.topics.get(name)
            if topic is None:
                continue
            parts = []
            for p in sorted(parts_wanted):
                if (topic.name, p) not in s.states or p not in topic.partitions:
                    continue
                state, version = s.states[(topic.name, p)]
                replicas = topic.partitions[p]
                parts.append(ib.UpdateMetadataPartitionState(
                    partition_index=p, controller_epoch=state.controller_epoch, leader=state.leader,
                    leader_epoch=state.leader_epoch, isr=tuple(state.isr), zk_version=version,
                    replicas=tuple(replicas), offline_replicas=tuple(b for b in replicas if b not in s.live)))
            topic_states.append(ib.UpdateMetadataTopicState(
                topic_name=topic.name, topic_id=topic.topic_id, partition_states=tuple(parts)))
        for topic in deleted:
            topic_states.append(ib.UpdateMetadataTopicState(
                topic_name=topic.name, topic_id=topic.topic_id, partition_states=tuple(
                    ib.UpdateMetadataPartitionState(
                        partition_index=p, controller_epoch=self.epoch, leader=LEADER_DURING_DELETE, leader_epoch=-1,
                        isr=(), zk_version=-1, replicas=tuple(replicas), offline_replicas=())
                    for p, replicas in sorted(topic.partitions.items()))))
        brokers = tuple(
            ib.UpdateMetadataBroker(
                id=info.broker_id,
                endpoints=tuple(ib.UpdateMetadataEndpoint(
                    port=e.port, host=e.host, listener=e.listener,
                    security_protocol=SECURITY_PROTOCOL_IDS.get(e.security_protocol, 0)) for e in info.endpoints),
                rack=info.rack)
            for info in sorted(s.live.values(), key=lambda i: i.broker_id))
        return ib.UpdateMetadataRequest(controller_id=self.broker_id, controller_epoch=self.epoch, broker_epoch=-1,
                                        topic_states=tuple(topic_states), live_brokers=brokers)

    def _send_update_metadata(
        self, brokers: set[int], partitions: Iterable[TopicPartition] | None = None,
        deleted: Iterable[TopicAssignment] = (),
    ) -> None:
        """UpdateMetadata to ``brokers``: whole, or only ``partitions`` and ``deleted``
        (see `update_metadata_request`)."""
        request = self.update_metadata_request(partitions, deleted)
        for b in brokers:
            self.channels.send(b, ApiKey.UPDATE_METADATA, request)

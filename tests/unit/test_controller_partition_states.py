"""The controller's partitions go through partition_state.py's table: created (New), led
(Online), leaderless (Offline), deleted (NonExistent), with what it writes to the
coordination service matching; an illegal move is logged and not written.

The controller runs its event steps on the embedded coordination service, whose live brokers
the test sets (a broker "dies" by leaving that set, as its ZooKeeper registration would), and
a fake channel that records what it would send to brokers."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from moldau.controller.controller import Controller
from moldau.controller.coordination import BrokerInfo, Endpoint, TopicAssignment
from moldau.controller.embedded_coordination import EmbeddedCoordination
from moldau.controller.partition_state import PartitionState
from moldau.protocol.apis import ApiKey

NEW, ONLINE, OFFLINE, NON_EXISTENT = (
    PartitionState.NEW,
    PartitionState.ONLINE,
    PartitionState.OFFLINE,
    PartitionState.NON_EXISTENT,
)


class Brokers(EmbeddedCoordination):
    """The embedded service with the live brokers a test says (the embedded one only knows
    brokers of its own process, which never die)."""

    def __init__(self, log_dir: Path) -> None:
        super().__init__(log_dir)
        self.alive: dict[int, BrokerInfo] = {}

    def set_alive(self, *broker_ids: int) -> None:
        self.alive = {b: BrokerInfo(b, (Endpoint("PLAINTEXT", "127.0.0.1", 9000 + b),)) for b in broker_ids}

    def live_brokers(self) -> dict[int, BrokerInfo]:
        return dict(sorted(self.alive.items()))


class Channels:
    """What the controller sends to brokers, recorded instead of sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, int, Any]] = []

    def add_broker(self, info: BrokerInfo) -> None:
        pass

    def remove_broker(self, broker_id: int) -> None:
        pass

    def send(self, broker_id: int, api_key: int, request: Any) -> None:
        self.sent.append((broker_id, api_key, request))

    def close(self) -> None:
        pass


class Unreachable:
    """`controller.channel.BrokerChannels` for a test that replaces the sender itself."""

    listener = None

    def connect(self, host: str, port: int, client_id: str) -> Any:
        raise AssertionError("the test's Channels sends, not a connection")


def run_controller(tmp_path: Path, test: Callable[[Brokers, Controller, Channels], None]) -> None:
    async def main() -> None:
        coordination = Brokers(tmp_path)
        coordination.start()
        coordination.set_alive(0, 1, 2)
        epoch = coordination.try_become_controller(0)
        assert epoch is not None
        controller = Controller(0, epoch, coordination, unclean_leader_election=lambda topic: False,
                                channels=Unreachable())
        channels = Channels()
        controller.channels = channels  # type: ignore[assignment]
        try:
            test(coordination, controller, channels)
        finally:
            coordination.close()

    asyncio.run(main())


def leader(coordination: Brokers, topic: str, partition: int) -> int:
    found = coordination.partition_state(topic, partition)
    assert found is not None
    return found[0].leader


def test_partition_lifecycle_through_the_table(tmp_path: Path) -> None:
    def test(coordination: Brokers, controller: Controller, channels: Channels) -> None:
        coordination.create_topic(TopicAssignment("t", uuid.uuid4(), {0: [1, 2], 1: [2, 0]}), {})
        controller._on_elected()
        assert controller.partition_state_of(("t", 0)) is ONLINE and leader(coordination, "t", 0) == 1
        assert controller.partition_state_of(("t", 1)) is ONLINE and leader(coordination, "t", 1) == 2

        coordination.set_alive(0, 2)  # broker 1 dies: t-0 elects 2
        controller._process("brokers")
        assert controller.partition_state_of(("t", 0)) is ONLINE and leader(coordination, "t", 0) == 2

        coordination.set_alive(0)  # broker 2 dies: t-0 has no live replica, t-1 elects 0
        controller._process("brokers")
        assert controller.partition_state_of(("t", 0)) is OFFLINE and leader(coordination, "t", 0) == -1
        assert controller.partition_state_of(("t", 1)) is ONLINE and leader(coordination, "t", 1) == 0

        coordination.set_alive(0, 1)  # 1 is back but was not in the ISR: no unclean election
        controller._process("brokers")
        assert controller.partition_state_of(("t", 0)) is OFFLINE
        coordination.set_alive(0, 1, 2)  # 2, the last ISR member, is back
        controller._process("brokers")
        assert controller.partition_state_of(("t", 0)) is ONLINE and leader(coordination, "t", 0) == 2

        # A topic whose replicas are all down: New, then Offline with leader -1 written.
        coordination.set_alive(0, 2)
        controller._process("brokers")
        coordination.create_topic(TopicAssignment("u", uuid.uuid4(), {0: [1]}), {})
        controller._process("topics")
        assert controller.partition_state_of(("u", 0)) is OFFLINE and leader(coordination, "u", 0) == -1
        coordination.set_alive(0, 1, 2)
        controller._process("brokers")
        assert controller.partition_state_of(("u", 0)) is ONLINE and leader(coordination, "u", 0) == 1

        # Deletion: Offline, then NonExistent; the replicas are told to delete.
        channels.sent.clear()
        coordination.request_topic_deletion("t")
        controller._process("deletions")
        assert controller.partition_state_of(("t", 0)) is NON_EXISTENT
        assert controller.partition_state_of(("t", 1)) is NON_EXISTENT
        assert set(controller.state.partition_states) == {("u", 0)}
        assert {b for b, api, _ in channels.sent if api == ApiKey.STOP_REPLICA} == {0, 1, 2}

        # Created again under the same name: New again, then Online.
        coordination.create_topic(TopicAssignment("t", uuid.uuid4(), {0: [0]}), {})
        controller._process("topics")
        assert controller.partition_state_of(("t", 0)) is ONLINE and leader(coordination, "t", 0) == 0

    run_controller(tmp_path, test)


def test_a_new_controller_loads_states_from_what_it_reads(tmp_path: Path) -> None:
    def test(coordination: Brokers, controller: Controller, channels: Channels) -> None:
        coordination.create_topic(TopicAssignment("t", uuid.uuid4(), {0: [1], 1: [2]}), {})
        controller._on_elected()
        coordination.set_alive(0, 2)  # broker 1 dies while no controller watches
        epoch = coordination.try_become_controller(0)
        assert epoch is not None
        successor = Controller(0, epoch, coordination, unclean_leader_election=lambda topic: False,
                               channels=Unreachable())
        successor.channels = channels  # type: ignore[assignment]
        successor._on_elected()  # t-0 is loaded Offline (its leader is dead) and stays so
        assert successor.partition_state_of(("t", 0)) is OFFLINE and leader(coordination, "t", 0) == -1
        assert successor.partition_state_of(("t", 1)) is ONLINE

    run_controller(tmp_path, test)


def test_an_illegal_transition_is_logged_and_not_written(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def test(coordination: Brokers, controller: Controller, channels: Channels) -> None:
        coordination.create_topic(TopicAssignment("t", uuid.uuid4(), {0: [1, 2]}), {})
        controller._on_elected()
        before = coordination.partition_state("t", 0)
        del controller.state.partition_states[("t", 0)]  # a bug: the controller forgot the partition
        coordination.set_alive(0, 2)
        with caplog.at_level(logging.ERROR, logger="moldau.controller.controller"):
            controller._process("brokers")
        assert coordination.partition_state("t", 0) == before  # NonExistent -> Online: not written
        assert controller.partition_state_of(("t", 0)) is NON_EXISTENT
        assert any("illegal state transition NonExistentPartition -> OnlinePartition" in r.getMessage()
                   for r in caplog.records)

    run_controller(tmp_path, test)

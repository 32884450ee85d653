"""`EmbeddedBroker`: one Moldau broker in a background thread of the calling process.

The broker is the one `moldau dev` runs (a `Broker` on the embedded coordinator),
on its own asyncio event loop in a daemon thread, listening on 127.0.0.1. Port 0 (the
default) lets the kernel choose a free port when the listener binds, so brokers started
in parallel (pytest-xdist workers, several tests) never race for a port. The data lives
in a temporary directory that `stop()` removes, unless it was given or kept.

Starting takes a few tens of milliseconds once Moldau is imported (about 0.4 s the
first time in a process); `start()` returns when the broker is its own controller and
knows itself as a live broker, so a client's first Metadata request already sees it and
`create_topic` can elect leaders at once.

Nothing Moldau-specific is imported until a broker starts: the pytest plugin imports
this module in every pytest run of a project that has Moldau installed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Coroutine, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from moldau.server.broker import Broker

# Broker properties that suit tests, as Kafka's testcontainers module sets them: no
# delay before a consumer group's first rebalance (Kafka waits 3 s for more members)
# and a one-partition __consumer_offsets (Kafka's 50 partitions cost a first group's
# join time for nothing on one broker). Anything given in `properties` wins.
TEST_PROPERTIES: dict[str, str] = {
    "group.initial.rebalance.delay.ms": "0",
    "offsets.topic.num.partitions": "1",
    "offsets.topic.replication.factor": "1",
}

_TOPIC_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9._-]+")


class EmbeddedBrokerError(RuntimeError):
    """The broker could not start, or refused a topic operation. `error` is Kafka's
    error name (``TOPIC_ALREADY_EXISTS``, ``INVALID_CONFIG``...) when the broker
    answered with one."""

    def __init__(self, message: str, error: str | None = None) -> None:
        super().__init__(f"{message} ({error})" if error else message)
        self.error = error


class EmbeddedBroker:
    """A Kafka broker for tests, in this process: a context manager (also ``async
    with``), or `start()` and `stop()`.

    ``port``: 0 for a free port chosen when the broker binds; ``data_dir``: where the
    logs go (default: a new temporary directory, removed on `stop()` unless
    ``keep_data``); ``properties``: broker properties by Kafka's names, over
    `TEST_PROPERTIES`.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        data_dir: str | Path | None = None,
        keep_data: bool = False,
        properties: Mapping[str, str] | None = None,
        start_timeout: float = 15.0,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port {port} is out of range")
        self.requested_port = port
        self.keep_data = keep_data or data_dir is not None
        self._given_data_dir = Path(data_dir) if data_dir is not None else None
        self.properties = {**TEST_PROPERTIES, **(properties or {})}
        self.start_timeout = start_timeout
        self.data_dir: Path | None = None
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: Broker | None = None

    # --- lifecycle -------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:<port>``, for a client's ``bootstrap.servers``."""
        if self.port is None:
            raise EmbeddedBrokerError("the broker is not running: start() it first")
        return f"127.0.0.1:{self.port}"

    def start(self) -> EmbeddedBroker:
        if self._thread is not None:
            raise EmbeddedBrokerError("the broker is already started")
        if self._given_data_dir is not None:
            self._given_data_dir.mkdir(parents=True, exist_ok=True)
            self.data_dir = self._given_data_dir
        else:
            self.data_dir = Path(tempfile.mkdtemp(prefix="moldau-"))
        ready: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="moldau-embedded-broker", daemon=True
        )
        self._thread.start()
        try:
            self.port = ready.result(self.start_timeout)
        except BaseException as exc:
            self.stop()
            if isinstance(exc, concurrent.futures.TimeoutError):
                raise EmbeddedBrokerError(f"the broker did not start within {self.start_timeout:g} s") from None
            if isinstance(exc, EmbeddedBrokerError):
                raise
            raise EmbeddedBrokerError(f"the broker could not start: {exc}") from exc
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Shut the broker down cleanly (its logs flushed, the clean-shutdown marker
        written), then remove the data dir unless it is kept. Idempotent."""
        thread, loop, broker = self._thread, self._loop, self._broker
        try:
            if thread is not None and loop is not None and thread.is_alive():
                if broker is not None:
                    try:
                        asyncio.run_coroutine_threadsafe(broker.stop(), loop).result(timeout)
                    finally:
                        loop.call_soon_threadsafe(loop.stop)
                thread.join(timeout)
        finally:
            self._thread = self._loop = self._broker = None
            self.port = None
            if self.data_dir is not None and not self.keep_data:
                shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    async def __aenter__(self) -> EmbeddedBroker:
        # Starting and stopping block on the broker's own thread: not on the caller's loop.
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await asyncio.to_thread(self.stop)

    def _run(self, ready: concurrent.futures.Future[int]) -> None:
        """The broker thread: start, serve until `stop()` stops the loop, clean up."""
        from moldau.controller.embedded_coordination import EmbeddedCoordination
        from moldau.server.broker import Broker
        from moldau.server.config import BrokerConfig

        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        broker: Broker | None = None
        try:
            assert self.data_dir is not None
            config = BrokerConfig.from_sources({
                **self.properties,
                "listeners": f"PLAINTEXT://127.0.0.1:{self.requested_port}",
                "log.dirs": str(self.data_dir),
            })
            broker = Broker(config, EmbeddedCoordination(config.log_dirs[0]))
            loop.run_until_complete(self._start(broker))
        except BaseException as exc:
            if broker is not None:
                try:
                    loop.run_until_complete(broker.stop())
                except Exception:
                    broker.logs.shutdown()
            _close(loop)
            ready.set_exception(exc)
            return
        self._broker = broker
        ready.set_result(broker.port)
        try:
            loop.run_forever()
        finally:
            _close(loop)

    async def _start(self, broker: Broker) -> None:
        await broker.start()
        # Alone, the broker elects itself controller and sends itself its metadata;
        # until then a client would see no broker and a new topic no leader.
        deadline = time.monotonic() + self.start_timeout
        while not (broker.controller is not None and broker.controller.active and broker.metadata.endpoints):
            if time.monotonic() > deadline:
                raise EmbeddedBrokerError("the broker did not become its own controller")
            await asyncio.sleep(0.005)

    # --- topics ----------------------------------------------------------------------

    def create_topic(
        self,
        name: str | None = None,
        partitions: int = 1,
        replication_factor: int = 1,
        config: Mapping[str, str] | None = None,
        timeout: float = 10.0,
    ) -> str:
        """Create a topic and wait until its partitions have a leader; returns its name
        (a new unique one when ``name`` is None). ``config``: topic configs by Kafka's
        names (``cleanup.policy``, ``retention.ms``...)."""
        topic = name if name is not None else unique_topic_name("topic")

        async def create(broker: Broker) -> None:
            await asyncio.to_thread(broker.create_topic, topic, partitions, replication_factor, dict(config or {}))
            await broker.wait_for_topics([topic], True, timeout)
            if topic not in broker.metadata.topics:
                raise EmbeddedBrokerError(f"topic '{topic}' has no leader after {timeout:g} s")

        self._call(create, timeout + 5)
        return topic

    def delete_topic(self, name: str, timeout: float = 10.0) -> None:
        """Delete a topic and wait until the broker no longer has it."""

        async def delete(broker: Broker) -> None:
            await asyncio.to_thread(broker.delete_topic, name)
            await broker.wait_for_topics([name], False, timeout)

        self._call(delete, timeout + 5)

    def topics(self) -> list[str]:
        """The names of the topics the broker has, internal ones included."""

        async def names(broker: Broker) -> list[str]:
            return sorted(broker.metadata.topics)

        return self._call(names, 10.0)

    def _call(self, fn: Any, timeout: float) -> Any:
        """Run ``fn(broker)`` (a coroutine function) on the broker's loop; a Kafka error
        becomes an EmbeddedBrokerError naming it."""
        from moldau.server.broker import TopicError

        loop, broker = self._loop, self._broker
        if loop is None or broker is None:
            raise EmbeddedBrokerError("the broker is not running: start() it first")
        coro: Coroutine[Any, Any, Any] = fn(broker)
        try:
            return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)
        except TopicError as exc:
            raise EmbeddedBrokerError(exc.message, exc.code.name.upper()) from None


def unique_topic_name(prefix: str) -> str:
    """``prefix`` made a legal Kafka topic name, with 8 random hex digits after it."""
    stem = _TOPIC_NAME_UNSAFE.sub("-", prefix).strip("-.")[:200] or "topic"
    return f"{stem}-{uuid.uuid4().hex[:8]}"


def _close(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left on the broker's loop and close it."""
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()

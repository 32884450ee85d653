"""The workload: real clients (confluent-kafka) that record what they do as a history.

* producers: idempotent, acks=all; each sends unique values (`<producer>-<n>`) at a
  steady rate; a send is `invoke`d when handed to the client and completed in its
  delivery report: `ok` with partition and offset, else `info` (a timeout or an error
  after retries: the write may or may not have happened).
* consumers: one group, manual commits; every poll, every (re)assignment and every
  commit is recorded. They commit what they have read, synchronously, every
  `commit_interval_s`.
* an offsets reader: OffsetFetch of the group's committed offsets every second.
* the final read (`final_read`): after the faults, each partition from its start to its
  high watermark, by a consumer of no group.

The history's clock is `time.monotonic()` minus the run's start. Client threads share one
writer under a lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from moldau.chaos.cluster import _quiet_logger
from moldau.chaos.history import HistoryWriter


class Recorder:
    """Thread-safe history recording with the run's clock."""

    def __init__(self, writer: HistoryWriter) -> None:
        self._writer = writer
        self._lock = threading.Lock()
        self.start = time.monotonic()

    def now(self) -> float:
        return round(time.monotonic() - self.start, 4)

    def record(self, process: str, type_: str, f: str, **fields: Any) -> None:
        with self._lock:
            self._writer.write({"time": self.now(), "process": process, "type": type_, "f": f, **fields})


@dataclass
class WorkloadOptions:
    topic: str = "chaos"
    partitions: int = 3
    producers: int = 2
    rate_per_producer: float = 40.0  # sends per second
    consumers: int = 2
    group: str = "chaos-group"
    commit_interval_s: float = 0.5
    # 0: sends never time out in the client. librdkafka answers a send's timeout by
    # bumping the idempotent producer's epoch and sending what it still holds again under
    # new sequence numbers, so a write that was persisted but not acknowledged is written
    # twice: duplicates made by the client, not the broker (librdkafka#4953, seen here in
    # the follower-partitioned scenario). Without timeouts, a duplicate is the broker's.
    message_timeout_ms: int = 0
    # How long stopping waits for outstanding sends; those left are indeterminate.
    flush_timeout_s: float = 20.0


@dataclass
class Workload:
    bootstrap: str
    recorder: Recorder
    options: WorkloadOptions = field(default_factory=WorkloadOptions)
    stopping: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _leaving: dict[str, threading.Event] = field(default_factory=dict)

    def start(self) -> None:
        for i in range(self.options.producers):
            self._spawn(f"producer-{i}", self._produce)
        for i in range(self.options.consumers):
            self._spawn(f"consumer-{i}", self._consume)
        self._spawn("offsets-reader", self._read_committed)

    def stop(self, timeout: float = 30.0) -> None:
        self.stopping.set()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.1, deadline - time.monotonic()))
        alive = [t.name for t in self.threads if t.is_alive()]
        if alive:
            self.errors.append(f"client threads still running after {timeout}s: {alive}")

    def add_consumer(self, name: str) -> None:
        """One more group member (consumer churn); `remove_consumer` makes it leave."""
        leave = threading.Event()
        self._leaving[name] = leave
        self._spawn(name, lambda n: self._consume(n, leave))

    def remove_consumer(self, name: str, timeout: float = 15.0) -> None:
        self._leaving[name].set()
        for t in self.threads:
            if t.name == name:
                t.join(timeout)

    def _spawn(self, name: str, target: Callable[[str], None]) -> None:
        def run() -> None:
            try:
                target(name)
            except Exception as e:  # noqa: BLE001 - a client bug must show in the report, not vanish
                self.errors.append(f"{name}: {type(e).__name__}: {e}")

        t = threading.Thread(target=run, name=name, daemon=True)
        self.threads.append(t)
        t.start()

    def _client_conf(self) -> dict[str, Any]:
        return {
            "bootstrap.servers": self.bootstrap,
            "logger": _quiet_logger(),
            "error_cb": lambda _e: None,
            "socket.connection.setup.timeout.ms": 3000,
            "reconnect.backoff.max.ms": 500,
            "topic.metadata.refresh.interval.ms": 2000,
        }

    # ------------------------------------------------------------------ produce

    def _new_producer(self) -> Producer:
        return Producer(
            {
                **self._client_conf(),
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "request.timeout.ms": 5000,
                "message.timeout.ms": self.options.message_timeout_ms,
                "retry.backoff.ms": 100,
            }
        )

    def _produce(self, name: str) -> None:
        rec = self.recorder
        producer = self._new_producer()
        interval = 1.0 / self.options.rate_per_producer
        n = 0
        fatal: list[KafkaError] = []

        def report(err: KafkaError | None, msg: Any) -> None:
            value = msg.value().decode()
            if err is None:
                rec.record(name, "ok", "send", value=value, partition=msg.partition(), offset=msg.offset())
            else:
                rec.record(name, "info", "send", value=value, error=err.name())
                if err.fatal():
                    fatal.append(err)

        next_send = time.monotonic()
        while not self.stopping.is_set():
            if fatal:
                # An idempotent producer's fatal error (e.g. a sequence gap after lost
                # writes): report it, start a new producer (a new producer id).
                rec.record(name, "info", "producer-fatal", value=fatal[0].name())
                producer.flush(5)
                fatal.clear()
                producer = self._new_producer()
            value = f"{name.rsplit('-', 1)[-1]}-{n}"
            n += 1
            rec.record(name, "invoke", "send", value=value)
            try:
                producer.produce(self.options.topic, value=value.encode(), on_delivery=report)
            except (BufferError, KafkaException) as e:
                rec.record(name, "fail", "send", value=value, error=str(e))  # never handed to the client
            producer.poll(0)
            next_send += interval
            delay = next_send - time.monotonic()
            if delay > 0:
                self.stopping.wait(delay)
            else:
                next_send = time.monotonic()
        # Outstanding sends end in their delivery reports; any left after this are never
        # completed in the history (indeterminate).
        left = producer.flush(self.options.flush_timeout_s)
        if left:
            rec.record(name, "info", "producer-unflushed", value=str(left))

    # ------------------------------------------------------------------ consume

    def _consume(self, name: str, leave: threading.Event | None = None) -> None:
        rec = self.recorder
        opts = self.options
        consumer = Consumer(
            {
                **self._client_conf(),
                "group.id": opts.group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 500,
                "max.poll.interval.ms": 30000,
                "client.id": name,
            }
        )
        positions: dict[int, int] = {}  # next offset to read, of what was read since assignment

        def commit() -> None:
            if not positions:
                return
            offsets = {str(p): o for p, o in positions.items()}
            rec.record(name, "invoke", "commit", group=opts.group, offsets=offsets)
            try:
                tps = [TopicPartition(opts.topic, p, o) for p, o in positions.items()]
                answer = consumer.commit(offsets=tps, asynchronous=False)
                errors = [tp for tp in answer or [] if tp.error is not None]
                if errors:
                    rec.record(name, "fail", "commit", group=opts.group, offsets=offsets, error=str(errors[0].error))
                else:
                    rec.record(name, "ok", "commit", group=opts.group, offsets=offsets)
            except KafkaException as e:
                err = e.args[0] if e.args else None
                # A commit refused by the coordinator (rebalance, generation) did nothing;
                # a timeout or transport error may have committed.
                definite = isinstance(err, KafkaError) and err.code() in (
                    KafkaError.REBALANCE_IN_PROGRESS,
                    KafkaError.ILLEGAL_GENERATION,
                    KafkaError.UNKNOWN_MEMBER_ID,
                    KafkaError._NO_OFFSET,
                )
                rec.record(
                    name, "fail" if definite else "info", "commit", group=opts.group, offsets=offsets, error=str(e)
                )

        def on_assign(c: Consumer, partitions: list[TopicPartition]) -> None:
            positions.clear()
            rec.record(name, "ok", "assign", partitions=sorted(tp.partition for tp in partitions))

        def on_revoke(c: Consumer, partitions: list[TopicPartition]) -> None:
            commit()
            positions.clear()
            rec.record(name, "ok", "assign", partitions=[])

        consumer.subscribe([opts.topic], on_assign=on_assign, on_revoke=on_revoke)
        last_commit = time.monotonic()
        try:
            while not self.stopping.is_set() and not (leave is not None and leave.is_set()):
                msgs = consumer.consume(num_messages=200, timeout=0.3)
                records = []
                for m in msgs:
                    if m.error() is not None:
                        continue
                    records.append([m.partition(), m.offset(), m.value().decode()])
                    positions[m.partition()] = m.offset() + 1
                if records:
                    rec.record(name, "ok", "poll", records=records)
                if time.monotonic() - last_commit >= opts.commit_interval_s:
                    commit()
                    last_commit = time.monotonic()
            commit()
        finally:
            consumer.close()

    def _read_committed(self, name: str) -> None:
        rec = self.recorder
        opts = self.options
        reader = Consumer({**self._client_conf(), "group.id": opts.group, "enable.auto.commit": False})
        tps = [TopicPartition(opts.topic, p) for p in range(opts.partitions)]
        try:
            while not self.stopping.wait(1.0):
                rec.record(name, "invoke", "committed", group=opts.group)
                try:
                    answer = reader.committed(tps, timeout=5)
                    offsets = {str(tp.partition): tp.offset for tp in answer if tp.error is None}
                    rec.record(name, "ok", "committed", group=opts.group, offsets=offsets)
                except KafkaException as e:
                    rec.record(name, "info", "committed", group=opts.group, error=str(e))
        finally:
            reader.close()


def final_read(bootstrap: str, recorder: Recorder, topic: str, partitions: int, timeout: float = 30.0) -> list[str]:
    """Read every partition from its start to its high watermark; record one `final-read`
    per partition. Problems (a partition it could not read) are returned, not raised."""
    problems: list[str] = []
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "chaos-final-read",
            "enable.auto.commit": False,
            "logger": _quiet_logger(),
            "error_cb": lambda _e: None,
        }
    )
    try:
        for p in range(partitions):
            deadline = time.monotonic() + timeout
            high = None
            while high is None and time.monotonic() < deadline:
                try:
                    _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)
                except KafkaException:
                    time.sleep(0.5)
            if high is None:
                problems.append(f"partition {p}: no high watermark within {timeout}s")
                continue
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING)])
            offsets: list[int] = []
            values: list[str] = []
            while (not offsets or offsets[-1] < high - 1) and high > 0 and time.monotonic() < deadline:
                for m in consumer.consume(num_messages=500, timeout=1.0):
                    if m.error() is None:
                        offsets.append(m.offset())
                        values.append(m.value().decode())
            if high > 0 and (not offsets or offsets[-1] < high - 1):
                problems.append(f"partition {p}: read up to {offsets[-1] if offsets else None} of {high} in {timeout}s")
                continue
            recorder.record(
                "final", "ok", "final-read", partition=p, offsets=offsets, values=values, high_watermark=high
            )
    finally:
        consumer.close()
    return problems

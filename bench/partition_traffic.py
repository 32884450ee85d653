#!/usr/bin/env python3
"""Traffic over many partitions on one broker (issue 9, item 4): what 10,000 idle
partitions cost, and produce/consume spread over them against the same over 6.

One broker process (`moldau server`, fresh temp data dir; or Tansu with memory storage)
on 127.0.0.1; confluent-kafka (librdkafka) clients in this process.

1. **Create** TOPICS x PARTITIONS partitions (default 100 x 100, RF 1; bench/partitions.py
   times this part) and one topic of 6 partitions.
2. **Idle**: the broker's CPU seconds (user + system, from /proc) over IDLE seconds with
   no client connected, as a share of one core; its open file descriptors.
3. **Produce** RECORDS records of 100 bytes, record i to partition i mod P, over the 6
   partitions and then over all TOPICS x PARTITIONS (one producer: acks=1, linger.ms=5,
   batch.size 1 MB, as bench/run.py), timed until flush() returns.
4. **Consume** them back: one consumer assigned every partition from offset 0, timed until
   the last record arrives.

Per phase: records/s and broker CPU microseconds per record; the "spread / 6" ratio of
CPU per record is the figure of the issue (target: at most 2x). The open file
descriptors after the traffic say whether an active partition costs one (the target)
or three (log + two index files).

The machine is shared and noisy (wall times vary 3x): read CPU per record and the
ratios, and repeat. Results: JSON in bench/results/partition_traffic.json and, unless
--no-doc, the section between the partition-traffic markers in docs/benchmarks.md.
`.venv/bin/python bench/partition_traffic.py [--topics N] [--partitions N] [--records N]
[--idle S] [--brokers moldau,tansu] [--no-doc]`; `--quick` is 10 x 100 and 100,000 records.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import run` from anywhere
import partitions as scale  # noqa: E402
import run as harness  # noqa: E402

REPO = harness.REPO
JSON_PATH = REPO / "bench" / "results" / "partition_traffic.json"
START_MARKER = "<!-- partition-traffic:start -->"
END_MARKER = "<!-- partition-traffic:end -->"
RECORD_SIZE = 100
SMALL_TOPIC = "six"
STALL_TIMEOUT_S = 60.0


def broker_fds(broker: scale.Broker) -> int:
    assert broker.process is not None
    return int(psutil.Process(broker.process.pid).num_fds())


def idle_phase(broker: scale.Broker, seconds: float) -> dict[str, Any]:
    cpu0, wall0 = broker.cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    cpu, wall = broker.cpu_seconds() - cpu0, time.monotonic() - wall0
    return {"seconds": wall, "cpu_s": cpu, "core_percent": 100 * cpu / wall, "fds": broker_fds(broker)}


def targets_of(topics: list[str], partitions: int) -> list[tuple[str, int]]:
    """Every (topic, partition), interleaved so that consecutive records go to different
    topics too."""
    return [(t, p) for p in range(partitions) for t in topics]


def produce_phase(broker: scale.Broker, targets: list[tuple[str, int]], records: int) -> dict[str, Any]:
    failures: list[str] = []

    def on_delivery(err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    producer = Producer({"bootstrap.servers": broker.bootstrap, **harness.PRODUCER_CONFIG,
                         "on_delivery": on_delivery})
    producer.list_topics(timeout=30)
    payload = os.urandom(RECORD_SIZE)
    produce, poll, n = producer.produce, producer.poll, len(targets)
    cpu0, start = broker.cpu_seconds(), time.perf_counter()
    for i in range(records):
        topic, partition = targets[i % n]
        while True:
            try:
                produce(topic, payload, partition=partition)
                break
            except BufferError:
                poll(0.005)
        if i & 0x3FFF == 0:
            poll(0)
    remaining = producer.flush(max(120.0, records / 5_000))
    seconds, cpu = time.perf_counter() - start, broker.cpu_seconds() - cpu0
    if remaining or failures:
        raise harness.BenchError(f"produce: {remaining} undelivered, {len(failures)} failed {failures[:1]}")
    return {"records": records, "seconds": seconds, "cpu_s": cpu, "fds_after": broker_fds(broker)}


def consume_phase(broker: scale.Broker, targets: list[tuple[str, int]], records: int) -> dict[str, Any]:
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, **harness.CONSUMER_CONFIG})
    try:
        consumer.assign([TopicPartition(t, p, 0) for t, p in targets])
        count = 0
        cpu0, start = broker.cpu_seconds(), time.perf_counter()
        last_progress = start
        while count < records:
            batch = consumer.consume(num_messages=10_000, timeout=0.5)
            now = time.perf_counter()
            if not batch:
                if now - last_progress > STALL_TIMEOUT_S:
                    raise harness.BenchError(f"consume: stalled at {count}/{records}")
                continue
            for msg in batch:
                if msg.error() is not None:
                    raise harness.BenchError(f"consume: {msg.error()}")
            count += len(batch)
            last_progress = now
        seconds, cpu = time.perf_counter() - start, broker.cpu_seconds() - cpu0
    finally:
        consumer.close()
    return {"records": count, "seconds": seconds, "cpu_s": cpu}


def run_broker(name: str, topics: int, partitions: int, records: int, idle_s: float) -> dict[str, Any]:
    result: dict[str, Any] = {"broker": name}
    try:
        with scale.broker_process(name) as broker:
            admin = AdminClient({"bootstrap.servers": broker.bootstrap})
            scale.wait_for_controller(admin)
            result["create"] = scale.create_phase(broker, topics, partitions)
            admin.create_topics([NewTopic(SMALL_TOPIC, 6, 1)])[SMALL_TOPIC].result(60)
            scale.wait_all_led(admin, SMALL_TOPIC, 6, time.monotonic(), 60)
            time.sleep(2.0)  # let the creation's last work settle
            result["idle"] = idle_phase(broker, idle_s)
            print(f"[traffic] {name}: idle {result['idle']['core_percent']:.2f}% of a core, "
                  f"{result['idle']['fds']} fds", file=sys.stderr, flush=True)
            spread = targets_of([f"p{i:05d}" for i in range(topics)], partitions)
            six = targets_of([SMALL_TOPIC], 6)
            for label, targets in (("six", six), ("spread", spread)):
                result[f"produce_{label}"] = produce_phase(broker, targets, records)
                result[f"consume_{label}"] = consume_phase(broker, targets, records)
                p, c = result[f"produce_{label}"], result[f"consume_{label}"]
                print(f"[traffic] {name} {label}: produce {records / p['seconds']:,.0f}/s "
                      f"{p['cpu_s'] * 1e6 / records:.2f} us CPU/record; consume {records / c['seconds']:,.0f}/s "
                      f"{c['cpu_s'] * 1e6 / records:.2f} us CPU/record; fds {p['fds_after']}",
                      file=sys.stderr, flush=True)
            result["idle_after"] = idle_phase(broker, idle_s)
            print(f"[traffic] {name}: idle after traffic {result['idle_after']['core_percent']:.2f}% of a core, "
                  f"{result['idle_after']['fds']} fds", file=sys.stderr, flush=True)
    except Exception as exc:  # noqa: BLE001 - a failure is a result, reported
        result["error"] = f"{type(exc).__name__}: {exc}"
        print(f"[traffic] {name} FAILED: {result['error']}", file=sys.stderr, flush=True)
    return result


def render(report: dict[str, Any]) -> str:
    total = report["topics"] * report["partitions"]
    lines = [f"Run {report['date']} ({report['wall_seconds']:.0f} s wall), commit {report['commit']}; "
             f"{total:,} partitions ({report['topics']} x {report['partitions']}, RF 1) and one topic of 6; "
             f"{report['records']:,} records of {RECORD_SIZE} B per phase, record i to partition i mod P.", "",
             "| Broker | Partitions written | Produce rec/s | Produce broker µs CPU/rec | Consume rec/s | "
             "Consume broker µs CPU/rec | Open fds after |", "|---|--:|--:|--:|--:|--:|--:|"]
    for r in report["runs"]:
        for label, n in (("six", 6), ("spread", total)):
            p, c = r.get(f"produce_{label}"), r.get(f"consume_{label}")
            if p and c:
                lines.append(f"| {r['broker']} | {n:,} | {p['records'] / p['seconds']:,.0f} | "
                             f"{p['cpu_s'] * 1e6 / p['records']:.2f} | {c['records'] / c['seconds']:,.0f} | "
                             f"{c['cpu_s'] * 1e6 / c['records']:.2f} | {p['fds_after']:,} |")
    lines.append("")
    for r in report["runs"]:
        if "error" in r:
            lines.append(f"- {r['broker']}: FAILED: {r['error']}")
        p6, ps, c6, cs = (r.get(k) for k in ("produce_six", "produce_spread", "consume_six", "consume_spread"))
        if p6 and ps and c6 and cs:
            lines.append(f"- {r['broker']}: broker CPU per record, spread / 6 partitions: produce "
                         f"{ps['cpu_s'] / p6['cpu_s']:.2f}x, consume {cs['cpu_s'] / c6['cpu_s']:.2f}x; "
                         f"wall per record: produce {ps['seconds'] / p6['seconds']:.2f}x, "
                         f"consume {cs['seconds'] / c6['seconds']:.2f}x.")
        for key, label in (("idle", "idle, before traffic"), ("idle_after", "idle, after traffic")):
            i = r.get(key)
            if i:
                lines.append(f"- {r['broker']}, {label}: {i['core_percent']:.2f}% of a core "
                             f"({i['cpu_s']:.2f} s CPU in {i['seconds']:.0f} s), {i['fds']:,} open fds.")
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topics", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=100, help="partitions per topic")
    parser.add_argument("--records", type=int, default=2_000_000, help="records per produce/consume phase")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of idle CPU measured")
    parser.add_argument("--brokers", type=lambda s: [x.strip().lower() for x in s.split(",")],
                        default=["moldau", "tansu"], help="comma-separated subset of moldau,tansu")
    parser.add_argument("--quick", action="store_true", help="10 x 100 partitions, 100,000 records; no doc")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.topics, args.records, args.idle, args.no_doc = 10, 100_000, 5.0, True
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    names = {"moldau": "Moldau", "tansu": "Tansu"}
    runs = [run_broker(names[b], args.topics, args.partitions, args.records, args.idle)
            for b in args.brokers if b in names]
    fields = {"topics": args.topics, "partitions": args.partitions, "records": args.records}
    scale.report_and_save(fields, runs, started, JSON_PATH, render, args.no_doc,
                          START_MARKER, END_MARKER)
    return 0


if __name__ == "__main__":
    sys.exit(main())

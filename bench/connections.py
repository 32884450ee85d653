#!/usr/bin/env python3
"""Many client connections on one broker (issue 9, item 6): 10,000 connections open at
once, the broker's RSS with them, and how long a produce takes meanwhile.

One broker process (`moldau server`, fresh temp data dir; or Tansu with memory storage)
on 127.0.0.1. This process opens CONNECTIONS TCP connections to it and sends an
ApiVersions v0 request on each (so that the broker has set the connection up and
answered on it), reads the answers, and keeps them all open. Then:

- the broker's RSS (process and children) and open file descriptors;
- PRODUCES produce round trips from a confluent-kafka (librdkafka) producer (acks=1,
  linger.ms=0, one 100-byte record, waited for before the next), timed from produce()
  to the delivery callback: median, p99 and max. The same is measured before the
  connections are opened, for comparison.

Target: RSS under 300 MB with 10,000 connections, a produce answered in under 5 ms.
The machine is shared: latencies move with its load. Results: JSON in
bench/results/connections.json and, unless --no-doc, the section between the
connections markers in docs/benchmarks.md.
`.venv/bin/python bench/connections.py [--connections N] [--produces N] [--brokers moldau,tansu] [--no-doc]`.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import struct
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import run` from anywhere
import partitions as scale  # noqa: E402
import run as harness  # noqa: E402

REPO = harness.REPO
JSON_PATH = REPO / "bench" / "results" / "connections.json"
START_MARKER = "<!-- connections:start -->"
END_MARKER = "<!-- connections:end -->"
TOPIC = "conn"
API_VERSIONS_V0 = struct.pack(">hhih", 18, 0, 1, 5) + b"bench"  # header v1, client id "bench"
FRAME = struct.pack(">i", len(API_VERSIONS_V0)) + API_VERSIONS_V0


def broker_memory(broker: scale.Broker) -> tuple[float, int]:
    """(RSS MB of the process and its children, open fds of the process)."""
    assert broker.process is not None
    proc = psutil.Process(broker.process.pid)
    rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
    return rss / 1e6, int(proc.num_fds())


def open_connections(port: int, count: int) -> list[socket.socket]:
    """`count` connections, each answered one ApiVersions; opened 500 at a time."""
    conns: list[socket.socket] = []
    while len(conns) < count:
        batch = []
        for _ in range(min(500, count - len(conns))):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.sendall(FRAME)
            batch.append(s)
        for s in batch:
            size = struct.unpack(">i", _recv_exactly(s, 4))[0]
            _recv_exactly(s, size)
        conns.extend(batch)
    return conns


def _recv_exactly(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise harness.BenchError("connection closed by the broker")
        buf += chunk
    return bytes(buf)


def produce_latencies(bootstrap: str, count: int) -> dict[str, float]:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": 1, "linger.ms": 0, "enable.idempotence": False})
    payload = os.urandom(100)
    done: list[float] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            raise harness.BenchError(f"produce failed: {err}")
        done.append(time.perf_counter())

    for _ in range(20):  # warm up: metadata, connection
        producer.produce(TOPIC, payload, partition=0, on_delivery=delivered)
        producer.flush(30)
    out = []
    for _ in range(count):
        done.clear()
        sent = time.perf_counter()
        producer.produce(TOPIC, payload, partition=0, on_delivery=delivered)
        while not done:
            producer.poll(0.0005)
        out.append((done[0] - sent) * 1e3)
    producer.flush(10)
    out.sort()
    return {"median_ms": statistics.median(out), "p99_ms": out[int(len(out) * 0.99) - 1], "max_ms": out[-1]}


def run_broker(name: str, connections: int, produces: int) -> dict[str, Any]:
    result: dict[str, Any] = {"broker": name}
    try:
        with scale.broker_process(name) as broker:
            admin = AdminClient({"bootstrap.servers": broker.bootstrap})
            scale.wait_for_controller(admin)
            admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(60)
            scale.wait_all_led(admin, TOPIC, 1, time.monotonic(), 60)
            result["rss_mb_before"], result["fds_before"] = broker_memory(broker)
            result["produce_before"] = produce_latencies(broker.bootstrap, produces)
            started = time.monotonic()
            conns = open_connections(broker.port, connections)
            result["open_s"] = time.monotonic() - started
            time.sleep(1.0)
            result["rss_mb_with"], result["fds_with"] = broker_memory(broker)
            result["produce_with"] = produce_latencies(broker.bootstrap, produces)
            result["connections"] = len(conns)
            print(f"[connections] {name}: {len(conns):,} open in {result['open_s']:.1f} s; RSS "
                  f"{result['rss_mb_before']:.0f} -> {result['rss_mb_with']:.0f} MB; produce median/p99 "
                  f"{result['produce_before']['median_ms']:.2f}/{result['produce_before']['p99_ms']:.2f} -> "
                  f"{result['produce_with']['median_ms']:.2f}/{result['produce_with']['p99_ms']:.2f} ms",
                  file=sys.stderr, flush=True)
            for s in conns:
                s.close()
    except Exception as exc:  # noqa: BLE001 - a failure is a result, reported
        result["error"] = f"{type(exc).__name__}: {exc}"
        print(f"[connections] {name} FAILED: {result['error']}", file=sys.stderr, flush=True)
    return result


def render(report: dict[str, Any]) -> str:
    lines = [f"Run {report['date']} ({report['wall_seconds']:.0f} s wall), commit {report['commit']}; "
             f"{report['connections']:,} connections (each answered one ApiVersions), "
             f"{report['produces']} produce round trips (acks=1, one 100-byte record) before and with them.", "",
             "| Broker | Connections | RSS MB before | RSS MB with | Open fds with | "
             "Produce median ms (before → with) | p99 ms | max ms |", "|---|--:|--:|--:|--:|--:|--:|--:|"]
    for r in report["runs"]:
        if "error" in r:
            lines.append(f"| {r['broker']} | FAILED: {r['error']} | | | | | | |")
            continue
        b, w = r["produce_before"], r["produce_with"]
        lines.append(f"| {r['broker']} | {r['connections']:,} | {r['rss_mb_before']:.0f} | {r['rss_mb_with']:.0f} | "
                     f"{r['fds_with']:,} | {b['median_ms']:.2f} → {w['median_ms']:.2f} | "
                     f"{b['p99_ms']:.2f} → {w['p99_ms']:.2f} | {b['max_ms']:.2f} → {w['max_ms']:.2f} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--produces", type=int, default=500, help="produce round trips timed")
    parser.add_argument("--brokers", type=lambda s: [x.strip().lower() for x in s.split(",")],
                        default=["moldau", "tansu"], help="comma-separated subset of moldau,tansu")
    parser.add_argument("--quick", action="store_true", help="1,000 connections, 100 produces; no doc")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.connections, args.produces, args.no_doc = 1_000, 100, True
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # this process holds the client ends
    if hard < args.connections + 100:
        print(f"[connections] open-file limit {hard} is below {args.connections} connections", file=sys.stderr)
    started = time.monotonic()
    names = {"moldau": "Moldau", "tansu": "Tansu"}
    runs = [run_broker(names[b], args.connections, args.produces) for b in args.brokers if b in names]
    fields = {"connections": args.connections, "produces": args.produces}
    scale.report_and_save(fields, runs, started, JSON_PATH, render, args.no_doc,
                          START_MARKER, END_MARKER)
    return 0


if __name__ == "__main__":
    sys.exit(main())

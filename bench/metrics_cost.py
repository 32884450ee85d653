"""What the metrics hooks cost per Produce request, measured in one process.

The worst case for per-request hooks: a Produce request carrying one 100-byte record
(acks=1). One broker (moldau.testing's EmbeddedBroker); the same request frame is handed
to the request dispatcher in blocks, with the hooks on (the dispatcher's request hook and
the partition's per-topic counters) and off (no request hook, `NoTopicStats`), the blocks
interleaved (on/off, off/on, ...) so that the load of a shared machine falls on both
alike. CPU time of the broker's thread per request; the paired differences of
neighbouring blocks show the spread. No network: a real request also costs a socket read
and write, so the hooks' share of a whole request is smaller than printed here.

usage: python bench/metrics_cost.py [--blocks N] [--per-block N]
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import io
import os
import statistics
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kio.index import load_request_schema  # noqa: E402
from kio.schema.produce.v8 import request as produce_v8  # noqa: E402
from kio.serial import entity_writer  # noqa: E402

from moldau.protocol.records import RecordInput, build_batch  # noqa: E402
from moldau.replication.seams import NoTopicStats  # noqa: E402
from moldau.server.broker_metrics import RequestMetrics  # noqa: E402
from moldau.server.dispatcher import RequestDispatcher  # noqa: E402
from moldau.testing.embedded_broker import EmbeddedBroker  # noqa: E402


def produce_frame(topic: str, records: bytes) -> bytes:
    """A Produce v8 request (header v1 and body), without the size prefix."""
    request = produce_v8.ProduceRequest(
        transactional_id=None, acks=1, timeout=datetime.timedelta(seconds=5),  # type: ignore[arg-type]
        topic_data=(produce_v8.TopicProduceData(name=topic, partition_data=(
            produce_v8.PartitionProduceData(index=0, records=records),)),))
    body = io.BytesIO()
    entity_writer(load_request_schema(0, 8))(body, request)
    return struct.pack(">hhih", 0, 8, 1, 5) + b"bench" + body.getvalue()


class Connection:
    """What the dispatcher reads of a connection."""

    received_at = 0.0
    peer_host = "/127.0.0.1"
    listener = "PLAINTEXT"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=120, help="blocks per side (default: %(default)s)")
    parser.add_argument("--per-block", type=int, default=1000, help="requests per block (default: %(default)s)")
    args = parser.parse_args()
    with EmbeddedBroker() as embedded:
        embedded.create_topic("metrics-cost", 1)
        broker, loop = embedded._broker, embedded._loop
        assert broker is not None and loop is not None
        frame = produce_frame("metrics-cost", build_batch([RecordInput(os.urandom(100))], timestamp=1))
        on = RequestDispatcher(broker.context, RequestMetrics(broker.metrics))
        off = RequestDispatcher(broker.context, None)

        async def run() -> dict[bool, list[float]]:
            partition = broker.replicas.partitions[("metrics-cost", 0)]
            counters, none = partition.stats, NoTopicStats()
            conn = Connection()
            cpu_us: dict[bool, list[float]] = {True: [], False: []}
            for block in range(args.blocks):
                for hooks in (True, False) if block % 2 == 0 else (False, True):
                    dispatcher = on if hooks else off
                    partition.stats = counters if hooks else none
                    await asyncio.sleep(0.05)  # the broker's own tasks run (its leadership lease)
                    end = partition.log.log_end_offset
                    started = time.thread_time()
                    for _ in range(args.per_block):
                        conn.received_at = time.perf_counter()
                        await dispatcher.handle(frame, conn)  # type: ignore[arg-type]
                    cpu_us[hooks].append((time.thread_time() - started) / args.per_block * 1e6)
                    assert partition.log.log_end_offset == end + args.per_block, "a produce was refused"
            partition.stats = counters
            return cpu_us

        cpu_us = asyncio.run_coroutine_threadsafe(run(), loop).result()
    on_us, off_us = statistics.median(cpu_us[True]), statistics.median(cpu_us[False])
    pairs = sorted(a - b for a, b in zip(cpu_us[True], cpu_us[False], strict=True))
    print(f"CPU per one-record Produce request, median of {args.blocks} blocks of {args.per_block}: "
          f"hooks on {on_us:.2f} us, off {off_us:.2f} us; paired difference median {statistics.median(pairs):+.2f} us "
          f"({statistics.median(pairs) / off_us * 100:+.1f} %), quartiles {pairs[len(pairs) // 4]:+.2f} .. "
          f"{pairs[3 * len(pairs) // 4]:+.2f} us")


if __name__ == "__main__":
    main()

"""A consumer-group member as its own process, for tests that kill members.

Prints one line per event, flushed at once, so a test can follow it:
    ASSIGN t:p,t:p   (partitions added)     REVOKE t:p,...   (partitions taken away)
    RECORD <partition> <offset> <value>     (after the offset is committed)
"""
from __future__ import annotations

import argparse
import asyncio
import sys


def out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def fmt(parts: list) -> str:  # type: ignore[type-arg]
    return ",".join(f"{p.topic}:{p.partition}" for p in parts)


def run_confluent(args: argparse.Namespace) -> None:
    from confluent_kafka import Consumer

    conf = {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": args.session_timeout_ms,
        "heartbeat.interval.ms": max(100, args.session_timeout_ms // 6),
        "partition.assignment.strategy": args.strategy,
    }
    if args.instance_id:
        conf["group.instance.id"] = args.instance_id
    c = Consumer(conf)
    c.subscribe(
        [args.topic],
        on_assign=lambda _c, parts: out(f"ASSIGN {fmt(parts)}"),
        on_revoke=lambda _c, parts: out(f"REVOKE {fmt(parts)}"),
    )
    while True:
        m = c.poll(0.1)
        if m is None or m.error():
            continue
        c.commit(message=m, asynchronous=False)
        out(f"RECORD {m.partition()} {m.offset()} {m.value().decode()}")


def run_kafka_python(args: argparse.Namespace) -> None:
    from kafka import ConsumerRebalanceListener, KafkaConsumer

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):  # type: ignore[no-untyped-def]
            out(f"REVOKE {fmt(list(revoked))}")

        def on_partitions_assigned(self, assigned):  # type: ignore[no-untyped-def]
            out(f"ASSIGN {fmt(list(assigned))}")

    c = KafkaConsumer(bootstrap_servers=args.bootstrap, group_id=args.group, auto_offset_reset="earliest",
                      enable_auto_commit=False, session_timeout_ms=args.session_timeout_ms,
                      heartbeat_interval_ms=max(100, args.session_timeout_ms // 6))
    c.subscribe([args.topic], listener=Listener())
    while True:
        for _tp, msgs in c.poll(timeout_ms=100).items():
            for m in msgs:
                c.commit()
                out(f"RECORD {m.partition} {m.offset} {m.value.decode()}")


def run_aiokafka(args: argparse.Namespace) -> None:
    from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener

    class Listener(ConsumerRebalanceListener):
        async def on_partitions_revoked(self, revoked):  # type: ignore[no-untyped-def]
            out(f"REVOKE {fmt(list(revoked))}")

        async def on_partitions_assigned(self, assigned):  # type: ignore[no-untyped-def]
            out(f"ASSIGN {fmt(list(assigned))}")

    async def main() -> None:
        c = AIOKafkaConsumer(bootstrap_servers=args.bootstrap, group_id=args.group, auto_offset_reset="earliest",
                             enable_auto_commit=False, session_timeout_ms=args.session_timeout_ms,
                             heartbeat_interval_ms=max(100, args.session_timeout_ms // 6))
        c.subscribe([args.topic], listener=Listener())
        await c.start()
        async for m in c:
            await c.commit()
            out(f"RECORD {m.partition} {m.offset} {m.value.decode()}")

    asyncio.run(main())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--client", choices=["confluent", "kafka-python", "aiokafka"], default="confluent")
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--session-timeout-ms", type=int, default=6000)
    ap.add_argument("--instance-id")
    ap.add_argument("--strategy", default="range")
    args = ap.parse_args()
    {"confluent": run_confluent, "kafka-python": run_kafka_python, "aiokafka": run_aiokafka}[args.client](args)


if __name__ == "__main__":
    main()

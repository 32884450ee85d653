#!/usr/bin/env python3
"""Transactions benchmark (issue 10): transactional produce against idempotent produce,
same broker, same run.

One Moldau broker (a fresh process and temp dir on 127.0.0.1), one topic of one
partition, confluent-kafka (librdkafka) clients in this process, 100-byte values:

1. **Idempotent produce**: `enable.idempotence=true`, acks=all, a fixed number of records
   produced as fast as the client goes, then flush(): records per second, the median of
   three runs.
2. **Transactional produce** with 1, 100 and 10,000 records per transaction: each
   transaction is begin, produce, commit_transaction() (which flushes, then EndTxn, and
   returns once the coordinator has written PrepareCommit; the markers follow in the
   background). Records per second over the whole run, and the latency of
   commit_transaction() (p50, p99).
3. A read_committed consumer then reads the topic from the start: every committed
   record must be there (a check, not a measurement).

Ratios against idempotent produce are what to read: the machines are shared and noisy.
Results: a markdown section in docs/benchmarks.md (between the transactions markers),
raw JSON in bench/results/transactions.json. Runnable alone:
`.venv/bin/python bench/transactions.py [--quick] [--no-doc]`. There is no Tansu column:
transactions are what is measured, and the comparison is with Moldau's own idempotent path.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import run` from anywhere
import run as harness  # noqa: E402

REPO = harness.REPO
DOC_PATH = harness.DOC_PATH
JSON_PATH = REPO / "bench" / "results" / "transactions.json"
START_MARKER = "<!-- transactions:start -->"
END_MARKER = "<!-- transactions:end -->"
VALUE = b"v" * 100
# (records per transaction, transactions) for the full run; --quick divides by 5.
CASES = [(1, 300), (100, 100), (10_000, 5)]
IDEMPOTENT_RECORDS = 50_000


def log(message: str) -> None:
    print(f"[transactions] {message}", file=sys.stderr, flush=True)


def idempotent(bootstrap: str, topic: str, records: int) -> dict[str, Any]:
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    p.produce(topic, VALUE)  # warm-up outside the clock: metadata, producer id (the
    p.flush(30)  # transactional runs do theirs in init_transactions, also untimed)
    start = time.perf_counter()
    for _ in range(records):
        while True:
            try:
                p.produce(topic, VALUE)
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    p.flush(60)
    elapsed = time.perf_counter() - start
    return {"records": records, "seconds": elapsed, "records_per_s": records / elapsed}


def transactional(bootstrap: str, topic: str, per_txn: int, transactions: int) -> dict[str, Any]:
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"bench-{uuid.uuid4().hex}",
                  "linger.ms": 5})
    p.init_transactions(30)
    commits: list[float] = []
    start = time.perf_counter()
    for _ in range(transactions):
        p.begin_transaction()
        for _ in range(per_txn):
            while True:
                try:
                    p.produce(topic, VALUE)
                    break
                except BufferError:
                    p.poll(0.01)
            p.poll(0)
        t0 = time.perf_counter()
        p.commit_transaction(60)
        commits.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    commits.sort()
    return {
        "records_per_txn": per_txn, "transactions": transactions, "seconds": elapsed,
        "records_per_s": per_txn * transactions / elapsed, "txn_per_s": transactions / elapsed,
        "commit_p50_ms": 1000 * statistics.median(commits),
        "commit_p99_ms": 1000 * commits[min(len(commits) - 1, int(len(commits) * 0.99))],
    }


def committed_count(bootstrap: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex, "isolation.level": "read_committed",
                  "enable.partition.eof": True})
    c.assign([TopicPartition(topic, 0, 0)])
    count = 0
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            msgs = c.consume(10_000, 1.0)
            count += sum(1 for m in msgs if not m.error())
            if any(m.error() is not None and m.error().code() == -191 for m in msgs):  # _PARTITION_EOF
                break
    finally:
        c.close()
    return count


def run_all(quick: bool) -> dict[str, Any]:
    scale = 5 if quick else 1
    spec = harness.moldau_spec()
    results: dict[str, Any] = {"machine": harness.machine_info(), "quick": quick}
    with harness.running_broker(spec) as broker:
        notes: list[str] = []
        topic = f"bench-idem-{uuid.uuid4().hex[:6]}"
        harness.create_topic(broker.bootstrap, topic, notes)
        log("idempotent produce (three runs, the median is the reference)")
        runs = sorted((idempotent(broker.bootstrap, topic, IDEMPOTENT_RECORDS // scale) for _ in range(3)),
                      key=lambda r: r["records_per_s"])
        results["idempotent"] = {**runs[1], "runs_records_per_s": [r["records_per_s"] for r in runs]}
        results["transactional"] = []
        for per_txn, transactions in CASES:
            topic = f"bench-txn-{uuid.uuid4().hex[:6]}"
            harness.create_topic(broker.bootstrap, topic, notes)
            n = max(1, transactions // scale) if per_txn < 10_000 else transactions
            log(f"transactional produce: {per_txn} record(s) per transaction, {n} transactions")
            case = transactional(broker.bootstrap, topic, per_txn, n)
            case["read_committed_count"] = committed_count(broker.bootstrap, topic)
            if case["read_committed_count"] != per_txn * n:
                raise harness.BenchError(f"read_committed saw {case['read_committed_count']} of {per_txn * n}")
            results["transactional"].append(case)
    return results


def render_section(report: dict[str, Any]) -> str:
    idem = report["idempotent"]["records_per_s"]
    lines = [
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, one Moldau broker, confluent-kafka, 100-byte "
        f"values, one partition. Idempotent produce: {idem:,.0f} records/s, the median of three runs of "
        f"{report['idempotent']['records']:,} records ("
        + ", ".join(f"{r:,.0f}" for r in report["idempotent"]["runs_records_per_s"]) + ").",
        "",
        "| records per transaction | transactions | records/s | vs. idempotent | transactions/s "
        "| commit p50 | commit p99 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in report["transactional"]:
        lines.append(f"| {c['records_per_txn']:,} | {c['transactions']} | {c['records_per_s']:,.0f} "
                     f"| {c['records_per_s'] / idem:.2f} | {c['txn_per_s']:,.1f} | {c['commit_p50_ms']:.1f} ms "
                     f"| {c['commit_p99_ms']:.1f} ms |")
    lines += ["", "Every committed record was read back by a read_committed consumer.", ""]
    return "\n".join(lines)


DOC_SECTION_INTRO = """## Transactions: transactional vs. idempotent produce

`bench/transactions.py` (see its docstring). A transaction costs a round trip to the
coordinator per new partition (AddPartitionsToTxn), EndTxn with the PrepareCommit write,
and the COMMIT marker written by the leader: with one record per transaction that
dominates; with 10,000 the cost is spread thin.

"""


def update_doc(section: str, path: Path = DOC_PATH) -> None:
    block = f"{START_MARKER}\n{section}{END_MARKER}"
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(re.escape(START_MARKER) + r".*?" + re.escape(END_MARKER), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + DOC_SECTION_INTRO + block + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a fifth of the work, no doc update")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    report = run_all(args.quick)
    section = render_section(report)
    print(section)
    if not args.quick:
        JSON_PATH.parent.mkdir(parents=True, exist_ok=True)
        JSON_PATH.write_text(json.dumps(report, indent=2) + "\n")
        if not args.no_doc:
            update_doc(section)
            log(f"updated {DOC_PATH.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

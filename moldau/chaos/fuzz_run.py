"""Protocol fuzzing against a live broker: `python -m moldau.chaos.fuzz_run`.

One broker process (its own free port and temp dir, killed at the end). Requests from
`fuzz.generate` for every advertised API and version, most of them mutated, are sent one
at a time, each followed on the same connection by an ApiVersions v0 "ping". Kafka
answers a connection's requests in order, so once the ping's answer arrives the fuzzed
request has been dealt with: answered (its answer came first), or not (Produce with
acks=0, or a request the broker refused by closing the connection, which ends the
ping too). What counts as an anomaly:

* `crash`: the broker process exited;
* `hang`: neither the ping's answer nor a close within `response_timeout_s`;
* `unanswered-valid`: a request as generated (not mutated) was not answered: the
  broker closed the connection on a request a Kafka client may send;
* `wrong-correlation`: an answer to a correlation id that was not asked;
* `rss`: the broker's resident memory went past `rss_limit_mb`;
* `client`: a real client (confluent-kafka) could not produce and read back a record.

Each anomaly is written with the seed, the request's index and its bytes (hex): the
request alone reproduces it (`--replay HEX`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moldau.chaos import fuzz
from moldau.cluster.zookeeper_process import free_port

PING_CORRELATION = 0x7FFFFFF0
PING = struct.pack(">i", 14) + struct.pack(">hhih", 18, 0, PING_CORRELATION, 4) + b"ping"


@dataclass
class FuzzOptions:
    seed: int = 0
    requests: int = 2000
    mutate_ratio: float = 0.7
    response_timeout_s: float = 10.0
    rss_limit_mb: float = 600.0
    client_check_every: int = 2000
    progress_every: int = 0  # print a line every N requests (0: quiet)
    inter_broker: bool = False  # also LeaderAndIsr, StopReplica, UpdateMetadata, ControlledShutdown
    bounded: bool = False  # partition counts in generated requests stay small (docs/reliability.md #3)


@dataclass
class FuzzReport:
    seed: int
    sent: int = 0
    answered: int = 0
    closed: int = 0
    anomalies: list[dict[str, Any]] = field(default_factory=list)
    mutations: Counter[str] = field(default_factory=Counter)
    closed_by_api: Counter[str] = field(default_factory=Counter)
    rss_mb_start: float = 0.0
    rss_mb_max: float = 0.0
    client_checks: int = 0
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "sent": self.sent,
            "answered": self.answered,
            "closed": self.closed,
            "requests_per_s": round(self.sent / self.seconds, 1) if self.seconds else 0,
            "rss_mb_start": round(self.rss_mb_start, 1),
            "rss_mb_max": round(self.rss_mb_max, 1),
            "client_checks": self.client_checks,
            "mutations": dict(self.mutations),
            "closed_by_api": dict(self.closed_by_api.most_common(20)),
            "anomalies": self.anomalies[:50],
            "anomaly_count": len(self.anomalies),
        }


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class BrokerUnderTest:
    """One `moldau server` (embedded coordinator) on a free port in a temp dir."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.log_path = workdir / "broker.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        args = [sys.executable, "-m", "moldau.cli.main", "server"]
        for k, v in {
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "log.dirs": str(self.workdir / "data"),
            "group.initial.rebalance.delay.ms": "0",
            "offsets.topic.num.partitions": "2",
        }.items():
            args += ["--override", f"{k}={v}"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited with {self.proc.returncode}: {self.log()[-3000:]}")
            if "ready on" in self.log():
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                    return
                except OSError:
                    pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"broker did not start within {timeout}s: {self.log()[-3000:]}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class _Conn:
    def __init__(self, port: int, timeout: float) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = bytearray()

    def close(self) -> None:
        self.sock.close()

    def read_frame(self) -> bytes | None:
        """One response frame, None when the broker closed the connection; raises
        socket.timeout when nothing comes."""
        while True:
            if len(self.buf) >= 4:
                size = struct.unpack_from(">i", self.buf, 0)[0]
                if len(self.buf) >= 4 + size:
                    frame = bytes(self.buf[4 : 4 + size])
                    del self.buf[: 4 + size]
                    return frame
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            self.buf += chunk


def client_check(port: int, topic: str) -> str | None:
    """Produce one record with a real client and read it back; None when it worked."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    value = uuid.uuid4().hex.encode()
    conf = {"bootstrap.servers": f"127.0.0.1:{port}", "error_cb": lambda _e: None}
    producer = Producer({**conf, "acks": "all", "message.timeout.ms": 10000})
    delivered: list[Any] = []
    producer.produce(topic, value=value, on_delivery=lambda err, msg: delivered.append((err, msg)))
    producer.flush(12)
    if not delivered or delivered[0][0] is not None:
        return f"produce failed: {delivered[0][0] if delivered else 'no delivery report'}"
    msg = delivered[0][1]
    consumer = Consumer({**conf, "group.id": "fuzz-check", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, msg.partition(), msg.offset())])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is not None and m.error() is None:
                return None if m.value() == value else f"read {m.value()!r} at offset {m.offset()}, wrote {value!r}"
        return "record not read back within 10s"
    finally:
        consumer.close()


def run_fuzz(broker: BrokerUnderTest, options: FuzzOptions) -> FuzzReport:
    assert broker.proc is not None
    rng = random.Random(options.seed)
    report = FuzzReport(seed=options.seed)
    report.rss_mb_start = report.rss_mb_max = rss_mb(broker.proc.pid)
    targets = fuzz.advertised(options.inter_broker)
    started = time.monotonic()
    conn: _Conn | None = None
    topic = "fuzz-real"  # not in fuzz.NAMES: fuzzed requests never touch it

    def anomaly(kind: str, index: int, frame: bytes = b"", **detail: Any) -> None:
        report.anomalies.append({"kind": kind, "seed": options.seed, "index": index, "request": frame.hex(), **detail})

    for index in range(options.requests):
        if not broker.alive():
            anomaly("crash", index, exit_code=broker.proc.returncode, log=broker.log()[-2000:])
            break
        api_key, version = rng.choice(targets)
        correlation = index & 0x3FFFFFFF
        frame = fuzz.generate(api_key, version, correlation, rng, options.bounded)
        mutation = "none"
        if rng.random() < options.mutate_ratio:
            mutation, frame = fuzz.mutate(frame, rng)
        report.mutations[mutation] += 1
        try:
            if conn is None:
                conn = _Conn(broker.port, options.response_timeout_s)
            conn.sock.sendall(frame + PING)
            report.sent += 1
            answered = False
            while True:
                answer = conn.read_frame()
                if answer is None:
                    report.closed += 1
                    report.closed_by_api[f"{api_key}v{version}:{mutation}"] += 1
                    conn.close()
                    conn = None
                    break
                cid = struct.unpack_from(">i", answer, 0)[0]
                if cid == PING_CORRELATION:
                    break
                if cid != correlation:
                    anomaly("wrong-correlation", index, frame, got=cid, expected=correlation)
                answered = True
            if answered:
                report.answered += 1
            elif mutation == "none" and not (api_key == 0 and _acks_zero(frame)):
                anomaly("unanswered-valid", index, frame, api=f"{api_key}v{version}", closed=conn is None)
        except TimeoutError:
            anomaly("hang", index, frame, api=f"{api_key}v{version}", mutation=mutation)
            if conn is not None:
                conn.close()
            conn = None
        except (ConnectionRefusedError, BrokenPipeError, ConnectionResetError, OSError) as e:
            if conn is not None:
                conn.close()
            conn = None
            if not broker.alive():
                continue  # reported as a crash at the top of the loop
            report.closed += 1
            report.closed_by_api[f"{api_key}v{version}:{mutation}:{type(e).__name__}"] += 1
        if index % 500 == 0:
            rss = rss_mb(broker.proc.pid)
            report.rss_mb_max = max(report.rss_mb_max, rss)
            if rss > options.rss_limit_mb:
                anomaly("rss", index, rss_mb=rss)
                break
        if options.client_check_every and index and index % options.client_check_every == 0:
            problem = client_check(broker.port, topic)
            report.client_checks += 1
            if problem is not None:
                anomaly("client", index, problem=problem)
        if options.progress_every and index and index % options.progress_every == 0:
            elapsed = time.monotonic() - started
            print(
                f"{index} requests, {index / elapsed:.0f}/s, rss {report.rss_mb_max:.0f} MB, "
                f"anomalies {len(report.anomalies)}",
                flush=True,
            )
    if conn is not None:
        conn.close()
    if broker.alive():
        problem = client_check(broker.port, topic)
        report.client_checks += 1
        if problem is not None:
            anomaly("client", options.requests, problem=problem)
        report.rss_mb_max = max(report.rss_mb_max, rss_mb(broker.proc.pid))
    else:
        anomaly("crash", options.requests, exit_code=broker.proc.returncode, log=broker.log()[-2000:])
    report.seconds = time.monotonic() - started
    return report


def _acks_zero(frame: bytes) -> bool:
    """Whether a generated Produce request has acks=0 (no answer is Kafka's contract).
    acks is the body's first int16 after the (nullable) transactional id."""
    from moldau.protocol.framing import body_offset, decode_request, parse_request_header

    payload = frame[4:]
    try:
        head, pos = parse_request_header(payload)
        request = decode_request(head.api_key, head.api_version, payload, body_offset(head, pos, payload))
    except Exception:  # noqa: BLE001
        return False
    return int(request.acks) == 0


def replay(broker: BrokerUnderTest, frame_hex: str, timeout: float = 10.0) -> str:
    """Send one request (hex, size prefix included) and say what happened."""
    conn = _Conn(broker.port, timeout)
    try:
        conn.sock.sendall(bytes.fromhex(frame_hex) + PING)
        answers = []
        while True:
            answer = conn.read_frame()
            if answer is None:
                return f"connection closed after {len(answers)} answer(s)"
            if struct.unpack_from(">i", answer, 0)[0] == PING_CORRELATION:
                return f"answered: {[a.hex()[:200] for a in answers]}"
            answers.append(answer)
    except TimeoutError:
        return f"no answer within {timeout}s (a hang)"
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so every `finally` kills what
    # the run started and removes its namespaces.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(prog="python -m moldau.chaos.fuzz_run", description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--rss-limit-mb", type=float, default=600.0)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--replay", help="send this one request (hex) instead of fuzzing")
    parser.add_argument("--bounded", action="store_true", help="keep partition counts small (docs/reliability.md #3)")
    parser.add_argument("--inter-broker", action="store_true", help="also the controller-to-broker APIs")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="moldau-fuzz-"))
    broker = BrokerUnderTest(workdir)
    try:
        broker.start()
        if args.replay:
            print(replay(broker, args.replay))
            print("broker alive:", broker.alive())
            return 0
        options = FuzzOptions(
            seed=args.seed,
            requests=args.requests,
            rss_limit_mb=args.rss_limit_mb,
            progress_every=10000,
            bounded=args.bounded,
            inter_broker=args.inter_broker,
        )
        report = run_fuzz(broker, options)
    finally:
        broker.kill()
    summary = report.summary()
    summary["broker_log"] = str(broker.log_path)
    text = json.dumps(summary, indent=2, default=str)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 1 if report.anomalies else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

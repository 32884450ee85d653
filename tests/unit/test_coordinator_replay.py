"""Replaying a coordinator partition with transactions: offsets committed in a
transaction take effect at its COMMIT marker, an aborted one's never, an open one's stay
pending by producer id."""

from __future__ import annotations

from pathlib import Path

from moldau.log.config import LogConfig
from moldau.log.log import Log
from moldau.protocol.records import RecordInput, build_batch, validate_batches
from moldau.server.coordinator_log import replay_coordinator_partition
from moldau.transactions.control import ControlRecordType, EndTransactionMarker, build_end_txn_marker


def test_transactional_records_take_effect_at_their_commit_marker(tmp_path: Path) -> None:
    log = Log.open(tmp_path / "__consumer_offsets-0", LogConfig(), now_ms=0)

    def append(data: bytes) -> None:
        buf = bytearray(data)
        log.append(buf, validate_batches(buf), leader_epoch=0, now_ms=1, check_sequences=False)

    def txn(pid: int, key: bytes) -> bytes:
        return build_batch([RecordInput(b"v", key)], producer_id=pid, producer_epoch=0, base_sequence=-1,
                           transactional=True)

    def marker(pid: int, control: ControlRecordType) -> bytes:
        return build_end_txn_marker(EndTransactionMarker(pid, 0, control, 0), 1)

    append(build_batch([RecordInput(b"v", b"plain-1")]))
    append(txn(1, b"committed"))
    append(txn(2, b"aborted"))
    append(txn(3, b"open"))
    append(build_batch([RecordInput(b"v", b"plain-2")]))
    append(marker(2, ControlRecordType.ABORT))
    append(marker(1, ControlRecordType.COMMIT))
    records, pending = replay_coordinator_partition(log)
    assert [k for k, _ in records] == [b"plain-1", b"plain-2", b"committed"]
    assert [(pid, [k for k, _ in rs]) for pid, rs in pending] == [(3, [b"open"])]
    log.close()

"""Property tests: a Log driven by random operations agrees with a list of records."""

import dataclasses
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from moldau.log.checkpoint import LEADER_EPOCH_CHECKPOINT
from moldau.log.config import LogConfig
from moldau.log.errors import OffsetOutOfRangeError, RecordTooLargeError
from moldau.log.leader_epoch import EpochEntry
from moldau.log.log import Log
from moldau.protocol.records import (
    Compression,
    RecordInput,
    build_batch,
    iter_batches,
    iter_records,
    validate_batches,
)

records_strategy = st.lists(
    st.tuples(st.binary(max_size=40), st.integers(min_value=0, max_value=10_000)),
    min_size=1,
    max_size=5,
)
batches_strategy = st.lists(records_strategy, min_size=1, max_size=3)


@dataclasses.dataclass
class ModelRecord:
    offset: int
    value: bytes
    timestamp: int
    epoch: int


class LogMachine(RuleBasedStateMachine):
    """The model: every record appended and not truncated with the leader epoch of its
    batch, the batch bounds (a truncation goes to a batch boundary), the log start
    offset and the high watermark. Epochs only go up, as leaders change; some batches
    come through the follower path with the epoch the leader stamped."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="moldau-log-props-"))
        self.directory = self.tmp / "prop-0"
        self.records: list[ModelRecord] = []
        self.batch_bounds: list[tuple[int, int]] = []
        self.log_start = 0
        self.log_end = 0
        self.high_watermark = 0
        self.epoch = 0
        self.now = 0

    @initialize(
        segment_bytes=st.integers(min_value=120, max_value=1500),
        index_interval_bytes=st.sampled_from([0, 40, 4096]),
        segment_index_bytes=st.sampled_from([16, 100, 10_485_760]),
        timestamp_type=st.sampled_from(["CreateTime", "LogAppendTime"]),
        compression=st.sampled_from([Compression.NONE, Compression.GZIP]),
    )
    def open_log(
        self,
        segment_bytes: int,
        index_interval_bytes: int,
        segment_index_bytes: int,
        timestamp_type: str,
        compression: int,
    ) -> None:
        self.config = LogConfig(
            segment_bytes=segment_bytes,
            index_interval_bytes=index_interval_bytes,
            segment_index_bytes=segment_index_bytes,
            message_timestamp_type=timestamp_type,
            retention_ms=-1,
        )
        self.compression = compression
        self.log = Log.open(self.directory, self.config, now_ms=self.now)

    def teardown(self) -> None:
        log = getattr(self, "log", None)
        if log is not None:
            log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- operations ---------------------------------------------------------------------

    @rule(batches=batches_strategy, elapsed=st.integers(min_value=0, max_value=300))
    def append(self, batches: list[list[tuple[bytes, int]]], elapsed: int) -> None:
        self.now += elapsed
        encoded = [
            build_batch([RecordInput(v, timestamp=t) for v, t in batch], compression=self.compression)
            for batch in batches
        ]
        buf = bytearray(b"".join(encoded))
        headers = validate_batches(buf)
        if any(len(b) > self.config.segment_bytes for b in encoded):
            with pytest.raises(RecordTooLargeError):
                self.log.append(buf, headers, leader_epoch=1, now_ms=self.now)
            return
        info = self.log.append(buf, headers, leader_epoch=self.epoch, now_ms=self.now)
        assert info.first_offset == self.log_end
        append_time = self.config.message_timestamp_type == "LogAppendTime"
        for batch in batches:
            base = self.log_end
            for i, (value, ts) in enumerate(batch):
                self.records.append(ModelRecord(base + i, value, self.now if append_time else ts, self.epoch))
            self.log_end = base + len(batch)
            self.batch_bounds.append((base, self.log_end - 1))
        assert info.last_offset == self.log_end - 1

    @rule(step=st.integers(min_value=1, max_value=3))
    def new_leader_epoch(self, step: int) -> None:
        self.epoch += step

    @rule(batches=batches_strategy, steps=st.lists(st.integers(min_value=0, max_value=2), min_size=3, max_size=3))
    def append_as_follower(self, batches: list[list[tuple[bytes, int]]], steps: list[int]) -> None:
        """Batches as a leader stored them (offsets and epochs set, CreateTime): written
        byte for byte, whatever this log's timestamp type."""
        encoded: list[bytes] = []
        epochs: list[int] = []
        base = self.log_end
        epoch = self.epoch
        for batch, step in zip(batches, steps, strict=False):
            epoch += step
            encoded.append(
                build_batch(
                    [RecordInput(v, timestamp=t) for v, t in batch],
                    compression=self.compression,
                    base_offset=base,
                    partition_leader_epoch=epoch,
                )
            )
            epochs.append(epoch)
            base += len(batch)
        data = b"".join(encoded)
        headers = validate_batches(data)
        if any(len(b) > self.config.segment_bytes for b in encoded):
            with pytest.raises(RecordTooLargeError):
                self.log.append_as_follower(data, headers)
            return
        self.log.append_as_follower(data, headers)
        assert self.log.read(self.log_end, 10**9) == data
        for batch, epoch in zip(batches, epochs, strict=False):
            first = self.log_end
            for i, (value, ts) in enumerate(batch):
                self.records.append(ModelRecord(first + i, value, ts, epoch))
            self.log_end = first + len(batch)
            self.batch_bounds.append((first, self.log_end - 1))
        self.epoch = epochs[-1]

    @rule(data=st.data())
    def update_high_watermark(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(min_value=-5, max_value=self.log_end + 5))
        expected = min(max(offset, self.log_start), self.log_end)
        assert self.log.update_high_watermark(offset) == expected
        self.high_watermark = expected

    @rule(offset=st.integers(min_value=0, max_value=200))
    def truncate_to(self, offset: int) -> None:
        self.log.truncate_to(offset)
        if offset >= self.log_end:
            return
        batch_base = next(
            (base for base, last in self.batch_bounds if base <= offset <= last), offset
        )
        if offset < self.log_start:
            # The batch holding offset may already be deleted with its segment: then the
            # log restarts at offset itself, else at the batch's base.
            assert self.log.log_end_offset in (offset, batch_base)
            boundary = self.log.log_end_offset
        else:
            boundary = batch_base
        self.records = [r for r in self.records if r.offset < boundary]
        self.batch_bounds = [b for b in self.batch_bounds if b[1] < boundary]
        self.log_end = boundary
        self.log_start = min(self.log_start, boundary)
        self.high_watermark = min(self.high_watermark, boundary)

    @rule()
    def roll(self) -> None:
        self.log.roll(self.now)

    @rule(
        recover=st.booleans(),
        flush=st.booleans(),
        from_zero=st.booleans(),
        epoch_checkpoint=st.sampled_from(["kept", "deleted", "corrupt"]),
    )
    def reopen(self, recover: bool, flush: bool, from_zero: bool, epoch_checkpoint: str) -> None:
        """Close and open again, as after a clean shutdown (no recovery) or a crash
        (recovery from the checkpointed recovery point, or from the start); the epoch
        cache comes back from its checkpoint, or from the batches without one."""
        if flush:
            self.log.flush()
        recovery_point = 0 if from_zero else self.log.recovery_point
        self.log.close()
        path = self.directory / LEADER_EPOCH_CHECKPOINT
        if epoch_checkpoint == "deleted":
            path.unlink(missing_ok=True)
        elif epoch_checkpoint == "corrupt":
            path.write_text("0\n7\n1 2\n")
        self.log = Log.open(
            self.directory,
            self.config,
            now_ms=self.now,
            recovery_point=recovery_point,
            log_start_offset=self.log_start,
            recover=recover,
            high_watermark=self.high_watermark,
        )

    @rule(cut=st.integers(min_value=1, max_value=400), recover=st.booleans())
    def crash_with_torn_tail(self, cut: int, recover: bool) -> None:
        """The end of the last segment never reached the disk: it must come back as a
        prefix of what was appended, ending at a batch boundary."""
        self.log.close()
        last = max(self.directory.glob("*.log"))
        size = last.stat().st_size
        with last.open("r+b") as f:
            f.truncate(max(size - cut, 0))
        self.log = Log.open(
            self.directory,
            self.config,
            now_ms=self.now,
            recovery_point=self.log.recovery_point,
            log_start_offset=self.log_start,
            recover=recover,
            high_watermark=self.high_watermark,
        )
        log_end = self.log.log_end_offset
        assert log_end <= self.log_end
        # a batch boundary, or the log start if everything from there on was lost
        assert log_end in {self.log_end, self.log_start} | {b for b, _ in self.batch_bounds}
        self.records = [r for r in self.records if r.offset < log_end]
        self.batch_bounds = [b for b in self.batch_bounds if b[1] < log_end]
        self.log_end = log_end
        self.high_watermark = min(self.high_watermark, log_end)

    @rule(data=st.data())
    def delete_records_before(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(min_value=self.log_start, max_value=self.log_end))
        assert self.log.delete_records_before(offset) == offset
        self.log_start = offset
        self.high_watermark = max(self.high_watermark, offset)

    @rule(
        retention_bytes=st.sampled_from([-1, 0, 200, 600]),
        retention_ms=st.sampled_from([-1, 300]),
        elapsed=st.integers(min_value=0, max_value=300),
    )
    def retention(self, retention_bytes: int, retention_ms: int, elapsed: int) -> None:
        self.now += elapsed
        self.log.update_config(
            dataclasses.replace(
                self.config, retention_bytes=retention_bytes, retention_ms=retention_ms
            )
        )
        before = self.log.log_start_offset
        self.log.delete_old_segments(self.now)
        self.log.update_config(self.config)
        assert before <= self.log.log_start_offset <= self.log_end
        self.log_start = self.log.log_start_offset
        self.high_watermark = max(self.high_watermark, self.log_start)

    @rule(timestamp=st.integers(min_value=0, max_value=11_000))
    def lookup_timestamp(self, timestamp: int) -> None:
        visible = [r for r in self.records if r.offset >= self.log_start]
        expected = next(((r.offset, r.timestamp) for r in visible if r.timestamp >= timestamp), None)
        assert self.log.offset_for_timestamp(timestamp) == expected
        if visible:
            top = max(r.timestamp for r in visible)
            first = next(r for r in visible if r.timestamp == top)
            assert self.log.max_timestamp_offset() == (first.offset, top)
        else:
            assert self.log.max_timestamp_offset() is None

    # --- what must always hold ----------------------------------------------------------

    @invariant()
    def offsets_agree(self) -> None:
        if not hasattr(self, "log"):
            return
        assert self.log.log_end_offset == self.log_end
        assert self.log.log_start_offset == self.log_start
        assert self.log.recovery_point <= self.log_end
        assert self.log.high_watermark == self.high_watermark
        assert self.log_start <= self.high_watermark <= self.log_end

    @invariant()
    def epochs_agree(self) -> None:
        """The epoch cache holds one entry per run of equal epochs in the log, starting
        where the run (or the log) starts; an empty log may keep the latest epoch, at
        the log end. So every offset maps to the epoch of its batch."""
        if not hasattr(self, "log"):
            return
        cache = self.log.leader_epoch_cache
        entries = cache.entries()
        visible = [r for r in self.records if r.offset >= self.log_start]
        expected: list[EpochEntry] = []
        for r in visible:
            if not expected or expected[-1].epoch != r.epoch:
                expected.append(EpochEntry(r.epoch, r.offset))
        if visible:
            assert entries == expected
        else:
            assert len(entries) <= 1
            assert all(e.start_offset == self.log_start for e in entries)
        for r in visible:
            assert cache.epoch_for_offset(r.offset) == r.epoch
        # OffsetForLeaderEpoch against the model: an epoch ends where the first record
        # of a later epoch is, the latest at the log end.
        for e in {r.epoch for r in visible}:
            later = [r.offset for r in visible if r.epoch > e]
            assert self.log.end_offset_for_epoch(e) == (e, later[0] if later else self.log_end)
        on_disk = (self.directory / LEADER_EPOCH_CHECKPOINT)
        if on_disk.exists():
            loaded = type(cache).load(on_disk)
            if cache.unsynced:
                # Loading cut the cache at the log end and start and left the file for
                # the next flush: the file, cut the same way, is the cache.
                loaded.truncate_from_end(self.log_end, durable=False)
                loaded.truncate_from_start(self.log_start, durable=False)
            assert loaded.entries() == entries
        else:
            assert entries == []

    @invariant()
    def reads_agree(self) -> None:
        if not hasattr(self, "log"):
            return
        expected = [(r.offset, r.value, r.timestamp) for r in self.records
                    if r.offset >= self.log_start]
        epochs = {r.offset: r.epoch for r in self.records}
        assert [e[0] for e in expected] == list(range(self.log_start, self.log_end))
        for max_bytes in (10**9, 100):
            got: list[tuple[int, bytes | None, int]] = []
            offset = self.log_start
            while offset < self.log_end:
                data = self.log.read(offset, max_bytes)
                validate_batches(data)
                for header, batch in iter_batches(data):
                    for record in iter_records(batch):
                        if record.offset >= offset:
                            got.append((record.offset, record.value, record.timestamp))
                            assert header.partition_leader_epoch == epochs[record.offset]
                    offset = header.next_offset
            assert got == expected
        assert self.log.read(self.log_end, 100) == b""
        with pytest.raises(OffsetOutOfRangeError):
            self.log.read(self.log_end + 1, 100)
        if self.log_start > 0:
            with pytest.raises(OffsetOutOfRangeError):
                self.log.read(self.log_start - 1, 100)


LogMachine.TestCase.settings = settings(
    max_examples=250, stateful_step_count=40, deadline=None
)
TestLogAgainstModel = LogMachine.TestCase

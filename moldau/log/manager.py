"""LogManager: every partition log in a broker's log dirs, and the dirs themselves.

A log dir holds one "<topic>-<partition>" directory per log, Kafka's checkpoint files,
a ``.lock`` (held with flock while a broker uses the dir) and, between a clean shutdown
and the next start, ``.kafka_cleanshutdown``: its presence means every log was flushed
and closed, so loading trusts the files instead of re-reading them.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from moldau.log.checkpoint import (
    CLEANER_OFFSET_CHECKPOINT,
    LOG_START_OFFSET_CHECKPOINT,
    RECOVERY_POINT_CHECKPOINT,
    REPLICATION_OFFSET_CHECKPOINT,
    OffsetCheckpointFile,
    fsync_directory,
)
from moldau.log.cleaner_manager import LogToClean, filthiest_log
from moldau.log.config import LONG_MAX, LogConfig
from moldau.log.errors import CheckpointError, LogDirLockedError, LogError
from moldau.log.log import DELETE_DIR_SUFFIX, Log, parse_partition_dir

LOCK_FILE = ".lock"
CLEAN_SHUTDOWN_FILE = ".kafka_cleanshutdown"
_LEGAL_TOPIC = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")

logger = logging.getLogger(__name__)


@dataclass
class _LogDir:
    path: Path
    lock_fd: int = -1


class LogManager:
    """Opens, creates, deletes and checkpoints the logs of one broker."""

    def __init__(
        self, log_dirs: list[Path], default_config: LogConfig, *, recovery_threads_per_dir: int = 1
    ) -> None:
        if not log_dirs:
            raise LogError("at least one log dir is needed")
        self.default_config = default_config
        # Kafka's num.recovery.threads.per.data.dir: logs of a dir are opened (and
        # recovered) by this many threads; reading 10,000 partition dirs waits on the disk.
        self.recovery_threads_per_dir = max(1, recovery_threads_per_dir)
        self._dirs = [_LogDir(Path(d)) for d in log_dirs]
        self._logs: dict[tuple[str, int], Log] = {}
        self._log_dir_of: dict[tuple[str, int], _LogDir] = {}
        # The logs with something to flush and a finite flush.ms (Log.on_unflushed): the
        # only ones the periodic flush visits. Insertion-ordered, a log at most once.
        self._unflushed: dict[Log, None] = {}
        # (topic, config) of the deprecated topic configs already logged as ignored.
        self._ignored_logged: set[tuple[str, str]] = set()

    # --- start and stop -------------------------------------------------------------

    def load(self, now_ms: int) -> None:
        """Lock every log dir and open the logs in it, recovering them unless the last
        shutdown was clean."""
        try:
            for log_dir in self._dirs:
                log_dir.path.mkdir(parents=True, exist_ok=True)
                self._lock(log_dir)
            for log_dir in self._dirs:
                self._load_dir(log_dir, now_ms)
        except BaseException:
            for log in self._logs.values():
                log.close()
            self._logs.clear()
            self._log_dir_of.clear()
            self._unflushed.clear()
            self._unlock_all()
            raise

    def _lock(self, log_dir: _LogDir) -> None:
        fd = os.open(log_dir.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LogDirLockedError(
                f"log dir {log_dir.path} is locked by another process: is another broker "
                f"using it?"
            ) from None
        log_dir.lock_fd = fd

    def _unlock_all(self) -> None:
        for log_dir in self._dirs:
            if log_dir.lock_fd >= 0:
                os.close(log_dir.lock_fd)  # closing the fd releases the flock
                log_dir.lock_fd = -1

    def _load_dir(self, log_dir: _LogDir, now_ms: int) -> None:
        marker = log_dir.path / CLEAN_SHUTDOWN_FILE
        clean = marker.exists()
        recovery_points = _read_checkpoint(log_dir.path / RECOVERY_POINT_CHECKPOINT)
        log_start_offsets = _read_checkpoint(log_dir.path / LOG_START_OFFSET_CHECKPOINT)
        high_watermarks = _read_checkpoint(log_dir.path / REPLICATION_OFFSET_CHECKPOINT)
        first_dirty_offsets = _read_checkpoint(log_dir.path / CLEANER_OFFSET_CHECKPOINT)
        children = sorted(log_dir.path.iterdir())
        # A new, empty dir has no marker either: only logs left without one need recovery.
        if not clean and any(child.is_dir() and parse_partition_dir(child.name) for child in children):
            logger.info("%s was not shut down cleanly: recovering its logs", log_dir.path)
        to_open: list[tuple[Path, tuple[str, int]]] = []
        for child in children:
            if not child.is_dir():
                continue
            if child.name.endswith(DELETE_DIR_SUFFIX):
                shutil.rmtree(child, ignore_errors=True)  # a deletion a crash interrupted
                continue
            parsed = parse_partition_dir(child.name)
            if parsed is None:
                continue
            if parsed in self._logs:
                raise LogError(
                    f"{parsed[0]}-{parsed[1]} is in both {self._log_dir_of[parsed].path} "
                    f"and {log_dir.path}"
                )
            to_open.append((child, parsed))

        def open_log(item: tuple[Path, tuple[str, int]]) -> Log:
            child, parsed = item
            return Log.open(
                child,
                self.default_config,
                now_ms=now_ms,
                recovery_point=recovery_points.get(parsed, 0),
                log_start_offset=log_start_offsets.get(parsed, 0),
                recover=not clean,
                high_watermark=high_watermarks.get(parsed, 0),
            )

        def register(parsed: tuple[str, int], log: Log) -> None:
            log.first_dirty_offset = first_dirty_offsets.get(parsed)
            self._add(parsed, log, log_dir)

        if self.recovery_threads_per_dir == 1 or len(to_open) < 2:
            for item in to_open:
                register(item[1], open_log(item))
        else:
            with ThreadPoolExecutor(self.recovery_threads_per_dir, thread_name_prefix="log-recovery") as pool:
                futures = [pool.submit(open_log, item) for item in to_open]
                failure: BaseException | None = None
                for (_, parsed), future in zip(to_open, futures, strict=True):
                    try:
                        register(parsed, future.result())
                    except BaseException as exc:  # the others are registered, to be closed
                        failure = failure or exc
                if failure is not None:
                    raise failure
        if clean:
            # From here on the files change again: the next start must not trust them
            # unless this broker shuts down cleanly too.
            marker.unlink()
            fsync_directory(log_dir.path)

    def shutdown(self) -> None:
        """Flush and checkpoint every log, close them, mark each dir cleanly shut down
        and release the locks."""
        for log in self._logs.values():
            log.flush()
        self.checkpoint()
        for log in self._logs.values():
            log.close()
        for log_dir in self._dirs:
            if log_dir.lock_fd < 0:
                continue
            marker = log_dir.path / CLEAN_SHUTDOWN_FILE
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            fsync_directory(log_dir.path)
        self._logs.clear()
        self._log_dir_of.clear()
        self._unflushed.clear()
        self._unlock_all()

    # --- logs -----------------------------------------------------------------------

    def log_dirs(self) -> dict[Path, list[Log]]:
        """Each log dir with the logs it holds (DescribeLogDirs)."""
        out: dict[Path, list[Log]] = {d.path: [] for d in self._dirs}
        for key, log in self._logs.items():
            out[self._log_dir_of[key].path].append(log)
        return out

    def get(self, topic: str, partition: int) -> Log | None:
        return self._logs.get((topic, partition))

    def all_logs(self) -> dict[tuple[str, int], Log]:
        return dict(self._logs)

    def create(self, topic: str, partition: int, config: LogConfig, now_ms: int) -> Log:
        """The log of a partition, created in the log dir holding the fewest partitions
        if it does not exist yet. An existing log takes ``config``."""
        key = (topic, partition)
        existing = self._logs.get(key)
        self._log_ignored_configs(topic, config)
        if existing is not None:
            existing.update_config(config)
            return existing
        if not _LEGAL_TOPIC.match(topic) or topic in (".", ".."):
            raise LogError(f"illegal topic name {topic!r}")
        if partition < 0:
            raise LogError(f"illegal partition {partition}")
        if len(self._dirs) == 1:
            log_dir = self._dirs[0]
        else:  # counting is O(partitions): only where there is a choice
            counts = {id(d): 0 for d in self._dirs}
            for held in self._log_dir_of.values():
                counts[id(held)] += 1
            log_dir = min(self._dirs, key=lambda d: counts[id(d)])
        log = Log.open(
            log_dir.path / f"{topic}-{partition}", config, now_ms=now_ms, recover=False
        )
        self._add(key, log, log_dir)
        return log

    def _add(self, key: tuple[str, int], log: Log, log_dir: _LogDir) -> None:
        self._logs[key] = log
        self._log_dir_of[key] = log_dir
        log.on_unflushed = self._note_unflushed
        if log.unflushed:  # recovered or created with something to flush
            self._note_unflushed(log)

    def _note_unflushed(self, log: Log) -> None:
        if log.config.flush_ms < LONG_MAX:
            self._unflushed[log] = None

    def delete(self, topic: str, partition: int) -> None:
        key = (topic, partition)
        log = self._logs.pop(key, None)
        self._log_dir_of.pop(key, None)
        if log is not None:
            self._unflushed.pop(log, None)
            log.on_unflushed = None
            log.delete()
        if not any(t == topic for t, _ in self._logs):
            self._ignored_logged = {(t, n) for t, n in self._ignored_logged if t != topic}

    def update_config(self, topic: str, config: LogConfig) -> None:
        hosted = False
        for (log_topic, _), log in self._logs.items():
            if log_topic == topic:
                log.update_config(config)
                hosted = True
        if hosted:
            self._log_ignored_configs(topic, config)

    def _log_ignored_configs(self, topic: str, config: LogConfig) -> None:
        """Say once per topic and config that a deprecated topic config is ignored (Kafka 3.9
        warns likewise); one the topic no longer sets is forgotten, so setting it again is said again."""
        now_set = {name for name, _ in config.deprecated_overrides}
        self._ignored_logged = {(t, n) for t, n in self._ignored_logged if t != topic or n in now_set}
        for name, value in config.deprecated_overrides:
            if (topic, name) not in self._ignored_logged:
                self._ignored_logged.add((topic, name))
                logger.warning("Topic configuration %s=%s of topic %s is ignored: it is deprecated (removed in "
                               "Kafka 4.0) and has no effect on this broker", name, value, topic)

    # --- periodic work --------------------------------------------------------------

    def filthiest_log(self, now_ms: int, skip: set[tuple[str, int]] | frozenset[tuple[str, int]] = frozenset()
                      ) -> LogToClean | None:
        """The compacted log the cleaner should clean next (see cleaner_manager)."""
        return filthiest_log((log for key, log in self._logs.items() if key not in skip), now_ms)

    def checkpoint_cleaner_offsets(self, log: Log) -> None:
        """Write the ``cleaner-offset-checkpoint`` of the dir holding ``log`` (after a
        cleaning moved its first dirty offset)."""
        log_dir = self._log_dir_of.get((log.topic, log.partition))
        if log_dir is not None and self._logs.get((log.topic, log.partition)) is log:
            self._write_cleaner_checkpoint(log_dir)

    def _write_cleaner_checkpoint(self, log_dir: _LogDir) -> None:
        offsets = {
            key: log.first_dirty_offset
            for key, log in self._logs.items()
            if self._log_dir_of[key] is log_dir and log.first_dirty_offset is not None
        }
        OffsetCheckpointFile(log_dir.path / CLEANER_OFFSET_CHECKPOINT).write(offsets)

    def run_retention(self, now_ms: int) -> int:
        return sum(log.delete_old_segments(now_ms) for log in self._logs.values())

    def flush_due(self, now_ms: int) -> None:
        """flush.ms: flush the logs that have waited that long since their last flush.
        Only logs with something to flush are visited (they say so when written); one
        with nothing left to flush leaves the set until it is written again."""
        for log in list(self._unflushed):
            if log.closed:
                del self._unflushed[log]
                continue
            log.flush_if_due(now_ms)
            if not log.unflushed or log.config.flush_ms >= LONG_MAX:
                del self._unflushed[log]

    def checkpoint(self) -> None:
        """Write each dir's recovery points, log start offsets and high watermarks."""
        for log_dir in self._dirs:
            logs = {
                key: log for key, log in self._logs.items() if self._log_dir_of[key] is log_dir
            }
            files = (
                (RECOVERY_POINT_CHECKPOINT, {k: log.recovery_point for k, log in logs.items()}),
                (LOG_START_OFFSET_CHECKPOINT, {k: log.log_start_offset for k, log in logs.items()}),
                (REPLICATION_OFFSET_CHECKPOINT, {k: log.high_watermark for k, log in logs.items()}),
            )
            for name, offsets in files:
                OffsetCheckpointFile(log_dir.path / name).write(offsets)
            self._write_cleaner_checkpoint(log_dir)


def _read_checkpoint(path: Path) -> dict[tuple[str, int], int]:
    """A checkpoint's offsets; an unreadable one counts as absent, which only makes
    recovery re-read more."""
    try:
        return OffsetCheckpointFile(path).read()
    except CheckpointError as exc:
        logger.warning("ignoring %s: %s", path, exc)
        return {}

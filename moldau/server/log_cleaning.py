"""The log cleaner's task (Kafka's LogCleaner thread): clean the filthiest compacted log,
again at once after progress, else after ``log.cleaner.backoff.ms``. The offset map and
the cleaned segments are built in worker threads (moldau/log/cleaner.py) while the event
loop keeps serving the log; each swap runs on the loop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from moldau.log.cleaner import CleaningRound, offset_map_capacity
from moldau.log.errors import LogError
from moldau.log.log import Log
from moldau.log.manager import LogManager
from moldau.log.throttler import Throttler
from moldau.server.config import BrokerConfig

log = logging.getLogger(__name__)


class LogCleanerTask:
    def __init__(self, logs: LogManager, config: BrokerConfig, clock: Callable[[], int]) -> None:
        self.logs = logs
        self.config = config
        self.clock = clock
        self._uncleanable: dict[tuple[str, int], Log] = {}  # logs the cleaner failed on
        self._cleaner_throttler: Throttler | None = None

    async def run(self) -> None:
        await self._run_log_cleaner()

    async def _run_log_cleaner(self) -> None:
        """Kafka's cleaner thread: clean the filthiest compacted log; look again at once
        when that made progress, else after ``log.cleaner.backoff.ms``."""
        while True:
            try:
                progressed = await self._clean_filthiest_log()
            except Exception:
                log.exception("log cleaner failed")
                progressed = False
            if not progressed:
                await asyncio.sleep(int(self.config["log.cleaner.backoff.ms"]) / 1000)

    async def _clean_filthiest_log(self) -> bool:
        """One cleaning round (see moldau/log/cleaner.py): the offset map and the cleaned
        segments are built in a worker thread while this loop keeps serving the log; each
        swap runs here. Returns whether the log's first dirty offset moved."""
        skip = {key for key, plog in self._uncleanable.items() if self.logs.get(*key) is plog}
        todo = self.logs.filthiest_log(self.clock(), skip)
        if todo is None:
            return False
        plog, key = todo.log, (todo.log.topic, todo.log.partition)
        v = self.config.values
        capacity = offset_map_capacity(v["log.cleaner.dedupe.buffer.size"], v["log.cleaner.io.buffer.load.factor"])
        rate = float(v["log.cleaner.io.max.bytes.per.second"])
        if self._cleaner_throttler is None or self._cleaner_throttler.max_bytes_per_s != rate:
            self._cleaner_throttler = Throttler(rate)
        cleaning = CleaningRound(plog, todo.first_dirty_offset, todo.first_uncleanable_offset, capacity,
                                 self._cleaner_throttler)
        started, size_before = time.monotonic(), plog.size_in_bytes
        try:
            offset_map = await asyncio.to_thread(cleaning.build_offset_map)
            for group in cleaning.groups(offset_map):
                cleaned = await asyncio.to_thread(cleaning.clean_group, group, offset_map)
                if not cleaning.swap(cleaned, group):
                    log.info("log cleaner: %s-%d changed while it was cleaned; will retry", *key)
                    return False
        except asyncio.CancelledError:
            cleaning.abort()
            raise
        except LogError as exc:
            if cleaning.log_changed():
                # A truncation or deletion under the reader explains a torn batch: retry.
                log.warning("log cleaner: %s-%d changed while it was read; will retry: %s", key[0], key[1], exc)
                return False
            # Kafka marks such a partition uncleanable rather than failing on it forever.
            self._uncleanable[key] = plog
            log.error("log cleaner: %s-%d is not cleanable: %s", key[0], key[1], exc)
            return False
        except OSError as exc:
            # Most likely a segment deleted by retention, or the log deleted, meanwhile.
            log.warning("log cleaner: cleaning %s-%d failed, will retry: %s", key[0], key[1], exc)
            return False
        plog.first_dirty_offset = offset_map.end_offset
        self.logs.checkpoint_cleaner_offsets(plog)
        log.info("log cleaner: cleaned %s-%d up to offset %d (dirty from %d) in %.3f s: %d -> %d bytes, "
                 "%d segment(s)", key[0], key[1], offset_map.end_offset, todo.first_dirty_offset,
                 time.monotonic() - started, size_before, plog.size_in_bytes, len(plog.segment_base_offsets()))
        return offset_map.end_offset > todo.first_dirty_offset


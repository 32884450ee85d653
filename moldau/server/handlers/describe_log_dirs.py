"""DescribeLogDirs (v1-v4): each log dir of this broker with the partitions it holds,
their size on disk and how far each replica's log end is behind the high watermark;
v4 adds the file system's total and usable bytes. ``topics`` null means every partition."""
from __future__ import annotations

import os
import shutil
from typing import Any

from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.protocol.framing import RequestHeader, build
from moldau.server.context import HandlerContext
from moldau.server.handlers._common import NO_THROTTLE, response_types


async def handle(ctx: HandlerContext, header: RequestHeader, request: Any) -> Any:
    t = response_types(ApiKey.DESCRIBE_LOG_DIRS, header.api_version)
    wanted: dict[str, set[int]] | None = None
    if request.topics is not None:
        wanted = {}
        for topic in request.topics:
            wanted.setdefault(topic.topic, set()).update(topic.partitions)
    results = []
    for path, logs in ctx.logs.log_dirs().items():
        by_topic: dict[str, list[Any]] = {}
        for plog in sorted(logs, key=lambda lg: (lg.topic, lg.partition)):
            if wanted is not None and plog.partition not in wanted.get(plog.topic, ()):
                continue
            by_topic.setdefault(plog.topic, []).append(build(
                t.DescribeLogDirsPartition, partition_index=plog.partition, partition_size=plog.size_in_bytes,
                offset_lag=max(plog.high_watermark - plog.log_end_offset, 0), is_future_key=False))
        try:
            usage = shutil.disk_usage(path)
            total, usable, code = usage.total, usage.free, ErrorCode.none
        except OSError:
            total, usable, code = -1, -1, ErrorCode.kafka_storage_error
        results.append(build(
            t.DescribeLogDirsResult, error_code=code, log_dir=os.fspath(path.resolve()),
            topics=tuple(build(t.DescribeLogDirsTopic, name=name, partitions=tuple(parts))
                         for name, parts in by_topic.items()),
            total_bytes=total, usable_bytes=usable))
    return build(t.DescribeLogDirsResponse, throttle_time=NO_THROTTLE, error_code=ErrorCode.none,
                 results=tuple(results))

"""Compression codecs of Kafka record batches: gzip, snappy (xerial framing), lz4, zstd.

The broker stores and serves batches as the producer compressed them; these codecs are
used only where records must be read (timestamps, tools, tests).
"""
from __future__ import annotations

import struct

import cramjam

from moldau.protocol.records import Compression, CorruptRecordError

# Kafka's Java client writes snappy in xerial's framing: a magic header, then
# [int32 length, snappy block] chunks. librdkafka reads and writes the same.
_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = _XERIAL_MAGIC + struct.pack(">ii", 1, 1)


def compress(codec: int, data: bytes) -> bytes:
    if codec == Compression.GZIP:
        return bytes(cramjam.gzip.compress(data))
    if codec == Compression.SNAPPY:
        block = bytes(cramjam.snappy.compress_raw(data))
        return _XERIAL_HEADER + struct.pack(">i", len(block)) + block
    if codec == Compression.LZ4:
        # Independent blocks: Kafka's Java client rejects linked blocks.
        return bytes(cramjam.lz4.compress(data))
    if codec == Compression.ZSTD:
        return bytes(cramjam.zstd.compress(data))
    raise ValueError(f"unknown compression codec {codec}")


def decompress(codec: int, data: bytes) -> bytes:
    try:
        if codec == Compression.GZIP:
            return bytes(cramjam.gzip.decompress(data))
        if codec == Compression.SNAPPY:
            if data.startswith(_XERIAL_MAGIC):
                out = bytearray()
                pos = 16
                while pos < len(data):
                    (n,) = struct.unpack_from(">i", data, pos)
                    pos += 4
                    out += bytes(cramjam.snappy.decompress_raw(data[pos : pos + n]))
                    pos += n
                return bytes(out)
            return bytes(cramjam.snappy.decompress_raw(data))
        if codec == Compression.LZ4:
            return bytes(cramjam.lz4.decompress(data))
        if codec == Compression.ZSTD:
            return bytes(cramjam.zstd.decompress(data))
    except Exception as exc:  # cramjam raises its own DecompressionError
        raise CorruptRecordError(f"cannot decompress batch: {exc}") from exc
    raise CorruptRecordError(f"unknown compression codec {codec}")

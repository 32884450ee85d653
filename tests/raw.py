"""Raw-socket Kafka requests for tests: frames encoded and decoded with kio, so a test
can send exactly the bytes it means (bad input, hand-made batches)."""
from __future__ import annotations

import datetime
import io
import socket
import struct

from kio.index import load_request_schema, load_response_schema
from kio.serial import entity_reader, entity_writer

from tests.helpers import BrokerProcess


def encode(api_key: int, version: int, request: object, correlation_id: int = 1) -> bytes:
    cls = load_request_schema(api_key, version)
    header = struct.pack(">hhih", api_key, version, correlation_id, 4) + b"test"
    if cls.__flexible__:
        header += b"\x00"
    body = io.BytesIO()
    entity_writer(cls)(body, request)
    payload = header + body.getvalue()
    return struct.pack(">i", len(payload)) + payload


def recv_frame(sock: socket.socket) -> bytes | None:
    def exact(n: int) -> bytes | None:
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    size = exact(4)
    if size is None:
        return None
    return exact(struct.unpack(">i", size)[0])


def decode(api_key: int, version: int, frame: bytes) -> object:
    cls = load_response_schema(api_key, version)
    pos = 4 + (1 if cls.__flexible__ and api_key != 18 else 0)
    return entity_reader(cls)(memoryview(frame).toreadonly(), pos)[0]


def connect(broker: BrokerProcess) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", broker.port), timeout=10)
    return s


def is_closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def produce_request(topic: str, partition: int, records: bytes, version: int = 8, acks: int = 1) -> object:
    t = __import__(f"kio.schema.produce.v{version}.request", fromlist=["x"])
    return t.ProduceRequest(
        transactional_id=None, acks=acks, timeout=datetime.timedelta(seconds=5),
        topic_data=(t.TopicProduceData(name=topic, partition_data=(
            t.PartitionProduceData(index=partition, records=records),)),))

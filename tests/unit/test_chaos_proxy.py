"""The latency proxy (netem's delay without netem): bytes delayed each way, in order,
the delay changed while connected, an end of stream passed on."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from moldau.chaos.proxy import ThreadedProxy


@pytest.fixture
def echo_server() -> Iterator[tuple[str, int]]:
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(data)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield server.getsockname()[:2]
    finally:
        stop.set()
        t.join(5)
        server.close()


def round_trip(sock: socket.socket, data: bytes) -> tuple[bytes, float]:
    start = time.monotonic()
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        got += sock.recv(65536)
    return got, time.monotonic() - start


def test_bytes_are_delayed_each_way_in_order_and_the_delay_can_change(echo_server: tuple[str, int]) -> None:
    proxy = ThreadedProxy(echo_server, delay_s=0.15)
    try:
        address = proxy.start()
        with socket.create_connection(address, timeout=5) as sock:
            payload = bytes(range(256)) * 400  # several chunks
            got, took = round_trip(sock, payload)
            assert got == payload and took >= 0.3
            proxy.set_delay(0.0)
            got, took = round_trip(sock, b"fast")
            assert got == b"fast" and took < 0.25
            sock.shutdown(socket.SHUT_WR)
            assert sock.recv(10) == b""  # the echo server saw the end and closed
    finally:
        proxy.stop()


def test_a_target_that_refuses_closes_the_client(echo_server: tuple[str, int]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        closed_port = s.getsockname()[1]
    proxy = ThreadedProxy(("127.0.0.1", closed_port))
    try:
        with socket.create_connection(proxy.start(), timeout=5) as sock:
            assert sock.recv(10) == b""
    finally:
        proxy.stop()

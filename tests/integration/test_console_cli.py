"""`moldau dev --console` starts a broker and its console, and stops both; `moldau console`
refuses bad flags with a usage error."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.helpers import free_port

CLI = [sys.executable, "-m", "moldau.cli.main"]


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=20) as response:
        return response.read().decode()


def test_dev_with_console_serves_the_broker_and_stops_with_it(tmp_path: Path) -> None:
    port, console_port = free_port(), free_port()
    log_path = tmp_path / "dev.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*CLI, "dev", "--port", str(port), "--data-dir", str(tmp_path / "data"),
             "--console", "--console-port", str(console_port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while "ready on http://" not in log_path.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log_path.read_text()
            time.sleep(0.1)
        html = ""
        while time.monotonic() < deadline:  # the console may start before the broker is up
            try:
                html = get(f"http://127.0.0.1:{console_port}/brokers")
                break
            except urllib.error.HTTPError:
                time.sleep(0.2)
        assert f"127.0.0.1:{port}" in html and 'id="controller">broker 0<' in html
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        try:
            get(f"http://127.0.0.1:{console_port}/brokers")
            raise AssertionError("the console outlived `moldau dev`")
        except urllib.error.URLError:
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        print(log_path.read_text()[-5000:])


def test_console_bad_flags_are_usage_errors() -> None:
    for args, message in [
        (["--port", "70000"], "not a port"),
        (["--refresh", "0"], "must be positive"),
        (["--timeout", "soon"], "not a number"),
    ]:
        result = subprocess.run([*CLI, "console", *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr


def test_console_on_a_busy_port_is_a_one_line_error() -> None:
    port = free_port()
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        result = subprocess.run(
            [*CLI, "console", "--port", str(port), "--bootstrap-server", "127.0.0.1:1"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("moldau: error: cannot serve on"), result.stderr

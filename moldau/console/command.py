"""The command line that runs a console next to brokers (`moldau dev --console`,
`moldau cluster up --console`): a process of its own, so a slow page never competes with
a broker's event loop. Kept apart from `server` so callers need not import the web stack."""

from __future__ import annotations

import sys

READY_LINE = "Moldau console for "  # the start of the line `moldau console` prints once it serves


def console_command(bootstrap: str, port: int, host: str = "127.0.0.1") -> list[str]:
    return [
        sys.executable, "-m", "moldau.cli.main", "console",
        "--bootstrap-server", bootstrap, "--host", host, "--port", str(port),
    ]  # fmt: skip

"""Run the console: a uvicorn server for the Starlette app, until SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping

import uvicorn

from moldau.console.app import DEFAULT_REFRESH_S, create_app
from moldau.console.command import READY_LINE
from moldau.console.gateway import KafkaGateway

log = logging.getLogger("moldau.console")


def serve(
    bootstrap: str,
    host: str,
    port: int,
    timeout_s: float,
    client_properties: Mapping[str, str] | None = None,
    refresh_s: float = DEFAULT_REFRESH_S,
) -> None:
    # Bind here, not in uvicorn: a busy port is then an OSError for the command to report
    # in one line, and port 0 tells its real number.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family)
    gateway = KafkaGateway(bootstrap, timeout_s, client_properties)
    app = create_app(gateway, timeout_s, refresh_s)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        # Live views keep connections open; do not wait for browsers to leave.
        timeout_graceful_shutdown=1,
        lifespan="off",
    )
    where = sock.getsockname()
    print(f"{READY_LINE}{bootstrap} ready on http://{where[0]}:{where[1]}/", flush=True)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        gateway.close()

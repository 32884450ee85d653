"""Run the console: a uvicorn server for the Starlette app, until SIGINT/SIGTERM."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import uvicorn

from moldau.console.app import DEFAULT_REFRESH_S, create_app
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
    server = uvicorn.Server(config)
    original_startup = server.startup

    async def startup(sockets: object = None) -> None:
        await original_startup(sockets=sockets)  # type: ignore[arg-type]
        if server.started:
            bound = [s.getsockname() for srv in server.servers for s in (srv.sockets or [])]
            where = f"{bound[0][0]}:{bound[0][1]}" if bound else f"{host}:{port}"
            print(f"Moldau console for {bootstrap} ready on http://{where}/", flush=True)

    server.startup = startup  # type: ignore[method-assign]
    try:
        server.run()
    finally:
        gateway.close()

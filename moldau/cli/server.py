"""`moldau server` (Kafka's kafka-server-start) and `moldau dev` (zero configuration)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import subprocess
import sys
from pathlib import Path

from moldau.server.config import BrokerConfig, ConfigError, read_properties

log = logging.getLogger("moldau")


def add_parsers(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    server = subparsers.add_parser(
        "server", help="run a broker", description="Run a Moldau broker (Kafka property names)."
    )
    server.add_argument("--config", type=Path, help="a server.properties file")
    server.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a property, overriding the file (repeatable)",
    )
    server.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    server.set_defaults(func=run_server)

    dev = subparsers.add_parser(
        "dev",
        help="run one broker for development: no config, no ZooKeeper",
        description="Run one broker on 127.0.0.1 with its data in a local directory.",
    )
    dev.add_argument("--port", type=int, default=9092)
    dev.add_argument("--data-dir", type=Path, default=Path("./data"))
    dev.add_argument("--log-level", default="INFO")
    dev.add_argument("--console", action="store_true", help="also run the web console (moldau console)")
    dev.add_argument("--console-port", type=int, default=8080, metavar="PORT", help="the console's HTTP port")
    dev.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                     help="serve Prometheus metrics at http://127.0.0.1:PORT/metrics (0: any free port)")
    dev.set_defaults(func=run_dev)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _raise_open_file_limit() -> None:
    """Every partition holds its active segment open, every client a socket: raise the
    soft limit on open files to the hard one, as the JVM does for Kafka (MaxFDLimit)."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError) as exc:  # not on this platform, or refused
        log.debug("open file limit left as it is: %s", exc)


def run_server(args: argparse.Namespace) -> int:
    _raise_open_file_limit()
    try:
        props = read_properties(args.config) if args.config else {}
        config = BrokerConfig.from_sources(props, args.override)
    except ConfigError as exc:
        print(f"moldau: error: {exc}", file=sys.stderr)
        return 2
    _setup_logging(args.log_level)
    for name in config.ignored:
        log.info("property %s is accepted for compatibility and has no effect", name)
    return serve(config)


def run_dev(args: argparse.Namespace) -> int:
    for flag, port in (("--port", args.port), ("--console-port", args.console_port),
                       ("--metrics-port", args.metrics_port)):
        if port is not None and not 0 <= port <= 65535:
            print(f"moldau: error: {flag} {port} is out of range", file=sys.stderr)
            return 2
    config = BrokerConfig.from_sources(
        {
            "listeners": f"PLAINTEXT://127.0.0.1:{args.port}",
            "log.dirs": str(args.data_dir.resolve()),
            **({"metrics.port": str(args.metrics_port)} if args.metrics_port is not None else {}),
        }
    )
    _setup_logging(args.log_level)
    _raise_open_file_limit()
    if not args.console:
        return serve(config)
    from moldau.console.command import console_command

    console = subprocess.Popen(console_command(f"127.0.0.1:{args.port}", args.console_port), stdin=subprocess.DEVNULL)
    try:
        return serve(config)
    finally:
        console.terminate()
        try:
            console.wait(5)
        except subprocess.TimeoutExpired:
            console.kill()
            console.wait()


def serve(config: BrokerConfig) -> int:
    from moldau.controller.coordination import CoordinationError
    from moldau.log.errors import LogDirLockedError
    from moldau.server.broker import Broker

    async def main() -> int:
        if config["zookeeper.connect"]:
            broker = Broker(config)
        else:
            # Alone, the same broker and controller run on the embedded coordinator.
            from moldau.controller.embedded_coordination import EmbeddedCoordination

            config.log_dirs[0].mkdir(parents=True, exist_ok=True)
            broker = Broker(config, EmbeddedCoordination(config.log_dirs[0]))
        try:
            await broker.start()
        except (LogDirLockedError, OSError, RuntimeError, CoordinationError) as exc:
            log.error("cannot start: %s", exc)
            try:
                broker.logs.shutdown()
            except Exception:
                pass
            return 1
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        listener = broker.bound[0]
        if broker.metrics_endpoint.url:
            print(f"Moldau broker {broker.broker_id} metrics on {broker.metrics_endpoint.url}", file=sys.stderr)
        print(
            f"Moldau broker {broker.broker_id} ready on {listener.host}:{listener.port}",
            file=sys.stderr,
            flush=True,
        )
        await stop.wait()
        log.info("shutting down")
        await broker.stop()
        return 0

    return asyncio.run(main())

"""The ``gateway`` command: serve, demo, export-schema, check-config."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import errno
import gc
import json
import logging
import math
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from gateway.config import ConfigError, ServerSettings, Settings, unknown_variables
from gateway.server.connections import LimitedConfig

if TYPE_CHECKING:
    from gateway.server.runtime import Gateway

logger = logging.getLogger("gateway.cli")

SAMPLE_QUERY = """\
query Demo {
  subscriptions(first: 3) {
    totalCount
    nodes {
      id
      skuName
      createdAt
      resources { resourceId name status expiresAt attachedResources { resourceId name } }
    }
  }
}"""


CURL_BODY = '{"query": "{ subscriptions(first: 2) { totalCount nodes { id skuName } } }"}'
DASHBOARD_QUERY = """\
query Dashboard($since: DateTime) {
  subscriptions(first: 50, window: { from: $since }) {
    totalCount
    nodes { id orderId status skuName createdAt expiresAt }
  }
}"""
DEMO_EPILOG = """\
Ports: --port (or GATEWAY_PORT) for the gateway, --simulator-port for the simulator;
each is checked before anything starts, and a port in use is said by name (exit 2).
Other GATEWAY_* settings apply as in `gateway serve`, except the upstream URLs (the
simulator's) and the profile (development: GraphiQL on). The simulator's data ends
today: every tenant's is the same for a given day and --seed."""


class DrainingServer(uvicorn.Server):
    """On SIGTERM/SIGINT: readiness turns false at once; after ``drain_delay`` uvicorn
    stops accepting, lets in-flight requests finish within the grace period, and exits."""

    def __init__(self, config: uvicorn.Config, gateway: Gateway, drain_delay: float) -> None:
        super().__init__(config)
        self._gateway = gateway
        self._drain_delay = drain_delay
        self._draining_since: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._draining_since is not None:
            super().handle_exit(sig, frame)  # a second signal: stop now
            return
        self._draining_since = time.monotonic()
        self._gateway.draining = True
        logger.info("draining: readiness is now false", extra={"signal": sig})
        if self._drain_delay > 0:
            # uvicorn polls should_exit; setting it later from a timer thread is safe.
            timer = threading.Timer(self._drain_delay, super().handle_exit, (sig, frame))
            timer.daemon = True
            timer.start()
        else:
            super().handle_exit(sig, frame)


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    server = settings.server
    overrides = {
        key: value
        for key, value in (
            ("host", getattr(args, "host", None)),
            ("port", getattr(args, "port", None)),
            ("workers", getattr(args, "workers", None)),
        )
        if value is not None
    }
    if overrides:
        server = dataclasses.replace(server, **overrides)
        settings = settings.replace(server=server)
    return settings


def _whole_number(minimum: int, maximum: int = 2**31 - 1) -> Callable[[str], int]:
    """An argparse type: the bounds GATEWAY_* values are held to (gateway.config)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"{value} is not in {minimum}..{maximum}")
        return value

    return parse


PORT = _whole_number(0, 65535)


def _uvicorn_config(app: object, server: ServerSettings, **options: Any) -> LimitedConfig:
    """uvicorn's configuration with the gateway's connection limits (header size, header and
    body timeouts, idle connections, connection count: ``gateway.server.connections``)."""
    return LimitedConfig(
        app,
        server,
        host=server.host,
        port=server.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=math.ceil(server.shutdown_grace),
        server_header=False,
        # The app believes X-Forwarded-For from GATEWAY_TRUSTED_PROXIES only; uvicorn's own
        # handling would believe it from loopback (its default), before the app sees it.
        proxy_headers=False,
        **options,
    )


def _warn_of_unknown_variables() -> None:
    for warning in unknown_variables():
        logger.warning(warning)


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.logs import configure_logging
    from gateway.server.app import create_app
    from gateway.server.runtime import Gateway

    settings = _settings(args)
    configure_logging(settings.server.log_level)
    _warn_of_unknown_variables()
    if settings.server.workers > 1:
        # Several workers need an import string; each builds its own gateway. What
        # uvicorn.run does for workers, with the configuration (and its limits) made here.
        config = _uvicorn_config(
            "gateway.server.cli:app_from_environment",
            settings.server,
            factory=True,
            workers=settings.server.workers,
        )
        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return 0
    gateway = Gateway.build(settings)
    app = create_app(gateway)
    server = DrainingServer(
        _uvicorn_config(app, settings.server), gateway, settings.server.drain_delay
    )
    logger.info(
        "serving",
        extra={
            "host": settings.server.host,
            "port": settings.server.port,
            "profile": settings.profile,
        },
    )
    _exit_cleanly_after_drain()
    tune_garbage_collector(settings.server)
    server.run()
    return 0


def _exit_cleanly_after_drain() -> None:
    """uvicorn re-raises the signal it drained for to the handler it found at start; with
    this one a completed drain ends the process with status 0, not killed by SIGTERM."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)


def app_from_environment() -> object:
    from gateway.logs import configure_logging
    from gateway.server.app import create_app
    from gateway.server.runtime import Gateway

    settings = Settings.from_env()
    configure_logging(settings.server.log_level)
    app = create_app(Gateway.build(settings))
    tune_garbage_collector(settings.server)
    return app


def tune_garbage_collector(server: ServerSettings) -> None:
    """Once the app is built: what exists now lives as long as the process, so the
    collector stops walking it (``gc.freeze``), and collects young objects less often."""
    gc.collect()
    gc.freeze()
    if server.gc_threshold == 0:
        gc.disable()
    else:
        gc.set_threshold(server.gc_threshold, 50, 100)


class PortTaken(Exception):
    """A port the demo cannot listen on, said for a person to act on."""


def _listen(host: str, port: int, what: str, option: str) -> socket.socket:
    """A socket bound to ``host:port`` (uvicorn listens on it), or ``PortTaken``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortTaken(
                f"port {port} on {host} is taken: the {what} cannot listen there. "
                f"Stop what uses it, or choose another port with {option}."
            ) from None
        raise PortTaken(
            f"the {what} cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None
    return sock


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.logs import configure_logging, quiet_server
    from gateway.server.app import create_app
    from gateway.server.runtime import Gateway
    from gateway.simulator import Simulator, SimulatorConfig

    base = Settings.from_env()
    host = args.host if args.host is not None else base.server.host
    port = args.port if args.port is not None else base.server.port
    # Both ports before anything is printed or started: a port in use is one clear line.
    try:
        if port != 0 and port == args.simulator_port:
            raise PortTaken(
                f"the gateway and the simulator cannot share port {port}: "
                "choose another with --port (or GATEWAY_PORT) or --simulator-port"
            )
        simulator_socket = _listen(
            "127.0.0.1", args.simulator_port, "simulator", "--simulator-port"
        )
        try:
            gateway_socket = _listen(host, port, "gateway", "--port (or GATEWAY_PORT)")
        except PortTaken:
            simulator_socket.close()
            raise
    except PortTaken as exc:
        print(f"gateway demo: {exc}", file=sys.stderr)
        return 2
    port = gateway_socket.getsockname()[1]
    simulator_url = f"http://127.0.0.1:{simulator_socket.getsockname()[1]}"
    settings = base.replace(
        profile="development",
        oma=dataclasses.replace(base.oma, base_url=simulator_url),
        cbc=dataclasses.replace(base.cbc, base_url=simulator_url),
        server=dataclasses.replace(base.server, host=host, port=port),
    )
    configure_logging(settings.server.log_level)
    _warn_of_unknown_variables()
    simulator = Simulator(SimulatorConfig(seed=args.seed, subscriptions=args.subscriptions))
    gateway = Gateway.build(settings)
    gateway_server = DrainingServer(
        _uvicorn_config(create_app(gateway), settings.server), gateway, settings.server.drain_delay
    )
    simulator_server = uvicorn.Server(
        uvicorn.Config(
            simulator.app,
            host="127.0.0.1",
            port=args.simulator_port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{port}/graphql"
    since = (simulator.config.today - datetime.timedelta(days=30)).isoformat()
    variables = json.dumps({"since": f"{since}T00:00:00Z"})
    print(
        f"\nGateway demo: GraphiQL at {url}\n"
        f"Simulator of OMA and CBC at {simulator_url}\n"
        f"Any token works as a tenant of its own; in GraphiQL's Headers tab put\n"
        f'  {{"X-Auth-Token": "demo-token"}}\nand try:\n\n{SAMPLE_QUERY}\n\n'
        f"or, with the Variables {variables} (the simulator's data ends today):\n\n"
        f"{DASHBOARD_QUERY}\n\n"
        f"or from a shell:\n  curl -s {url} -H 'Content-Type: application/json' "
        f"-H 'X-Auth-Token: demo-token' -d '{CURL_BODY}'\n",
        flush=True,
    )

    logger.info(
        "serving the demo",
        extra={"host": host, "port": port, "simulator": simulator_url, "profile": settings.profile},
    )

    async def serve_simulator() -> None:
        with quiet_server():  # its start-up lines would repeat the gateway's
            await simulator_server.serve(sockets=[simulator_socket])

    async def run_both() -> None:
        simulator_task = asyncio.create_task(serve_simulator())
        try:
            await gateway_server.serve(sockets=[gateway_socket])
        finally:
            simulator_server.should_exit = True
            await simulator_task

    _exit_cleanly_after_drain()
    asyncio.run(run_both())
    return 0


def cmd_export_schema(_: argparse.Namespace) -> int:
    from schema.build import print_sdl

    sys.stdout.write(print_sdl())
    return 0


def cmd_check_config(_: argparse.Namespace) -> int:
    from gateway.server.persisted import Manifest
    from schema.build import build_schema

    # A name the gateway does not read is no error (the setting keeps its default), but
    # it is most likely a misspelt one.
    for warning in unknown_variables():
        print(f"warning: {warning}", file=sys.stderr)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        # What start-up builds from the settings: an extension they turn on must be installed.
        schema = build_schema(
            settings.limits,
            production=settings.is_production,
            tracing=settings.server.otel_enabled,
        )
    except RuntimeError as exc:
        print(f"configuration cannot start the gateway: {exc}", file=sys.stderr)
        return 2
    persisted = settings.persisted
    manifest = None
    if persisted.documents_path is not None:
        try:
            # As start-up loads it: every document must parse and validate.
            manifest = Manifest.load(persisted.documents_path, schema, settings.limits)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 2
    print(f"configuration is valid (profile {settings.profile})")
    print(f"  OMA upstream: {settings.oma.base_url}")
    print(f"  CBC upstream: {settings.cbc.base_url}")
    print(f"  cache: {settings.cache.url.split('@')[-1]}")
    print(f"  listening on {settings.server.host}:{settings.server.port}")
    if manifest is not None:
        runs = "only these run" if persisted.documents_only else "other documents run too"
        print(f"  persisted documents: {len(manifest)} from {persisted.documents_path} ({runs})")
    apq = "on" if persisted.apq_enabled and not persisted.documents_only else "off"
    print(f"  automatic persisted queries: {apq}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="GraphQL gateway over the OMA subscription and CBC resource APIs.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the production server (uvicorn)")
    serve.add_argument("--host", help="listen address (GATEWAY_HOST)")
    serve.add_argument("--port", type=PORT, help="listen port (GATEWAY_PORT)")
    serve.add_argument(
        "--workers", type=_whole_number(1), help="worker processes (GATEWAY_WORKERS)"
    )
    serve.set_defaults(handler=cmd_serve)

    demo = commands.add_parser(
        "demo",
        help="run the simulator and the gateway wired together",
        description="Run the simulator of both upstreams and the gateway wired to it,\n"
        "with GraphiQL at http://HOST:PORT/graphql.",
        epilog=DEMO_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--host", help="the gateway's listen address (default: GATEWAY_HOST, else 127.0.0.1)"
    )
    demo.add_argument(
        "--port", type=PORT, help="the gateway's port (default: GATEWAY_PORT, else 8000)"
    )
    demo.add_argument(
        "--simulator-port",
        type=PORT,
        default=8081,
        help="the simulator's port, on 127.0.0.1 (default: 8081)",
    )
    demo.add_argument(
        "--seed", type=int, default=7, help="seed of every tenant's data (default: 7)"
    )
    demo.add_argument(
        "--subscriptions",
        type=_whole_number(0),
        default=300,
        help="subscriptions per tenant (default: 300)",
    )
    demo.set_defaults(handler=cmd_demo)

    export = commands.add_parser("export-schema", help="print the GraphQL SDL")
    export.set_defaults(handler=cmd_export_schema)

    check = commands.add_parser("check-config", help="validate GATEWAY_* settings")
    check.set_defaults(handler=cmd_check_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())

"""The ``gateway`` command: serve, demo, export-schema, check-config."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from gateway.config import ConfigError, ServerSettings, Settings
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


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.logs import configure_logging
    from gateway.server.app import create_app
    from gateway.server.runtime import Gateway

    settings = _settings(args)
    configure_logging(settings.server.log_level)
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


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.logs import configure_logging
    from gateway.server.app import create_app
    from gateway.server.runtime import Gateway
    from gateway.simulator import Simulator, SimulatorConfig

    base = Settings.from_env()
    simulator_url = f"http://127.0.0.1:{args.simulator_port}"
    settings = base.replace(
        profile="development",
        oma=dataclasses.replace(base.oma, base_url=simulator_url),
        cbc=dataclasses.replace(base.cbc, base_url=simulator_url),
        server=dataclasses.replace(base.server, host=args.host, port=args.port),
    )
    configure_logging(settings.server.log_level)
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
    url = f"http://{args.host}:{args.port}/graphql"
    print(
        f"\nGateway demo: GraphiQL at {url}\n"
        f"Simulator of OMA and CBC at {simulator_url}\n"
        f"Any token works as a tenant of its own; in GraphiQL's Headers tab put\n"
        f'  {{"X-Auth-Token": "demo-token"}}\nand try:\n\n{SAMPLE_QUERY}\n\n'
        f"or from a shell:\n  curl -s {url} -H 'Content-Type: application/json' "
        f"-H 'X-Auth-Token: demo-token' -d '{CURL_BODY}'\n",
        flush=True,
    )

    async def run_both() -> None:
        simulator_task = asyncio.create_task(simulator_server.serve())
        try:
            await gateway_server.serve()
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
    from schema.build import build_schema

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        # What start-up builds from the settings: an extension they turn on must be installed.
        build_schema(
            settings.limits,
            production=settings.is_production,
            tracing=settings.server.otel_enabled,
        )
    except RuntimeError as exc:
        print(f"configuration cannot start the gateway: {exc}", file=sys.stderr)
        return 2
    print(f"configuration is valid (profile {settings.profile})")
    print(f"  OMA upstream: {settings.oma.base_url}")
    print(f"  CBC upstream: {settings.cbc.base_url}")
    print(f"  cache: {settings.cache.url.split('@')[-1]}")
    print(f"  listening on {settings.server.host}:{settings.server.port}")
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

    demo = commands.add_parser("demo", help="run the simulator and the gateway wired together")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=PORT, default=8000)
    demo.add_argument("--simulator-port", type=PORT, default=8081)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--subscriptions", type=int, default=300)
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

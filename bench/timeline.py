"""When each upstream call of a request goes out and comes back, and what the gateway does
between: ``python -m bench.timeline s3``.

Runs the gateway in this process (pinned to core 0, as ``bench.run`` pins it) against
the simulator (20 ms latency) while ``bench.load`` replays the scenario at concurrency 1
from core 1. Each request's events are marked in-process and printed in ms from the
request's arrival at the ASGI app (``start``): ``execute`` when Strawberry starts
executing, ``send``/``recv`` per upstream call, ``parsed`` per upstream page,
``leaf-list``/``leaf-done`` around a list completed by the executor's shortcut,
``encode``/``encoded`` around the JSON answer, ``sent`` once the answer is handed to the
server, and ``gc`` for each garbage collection. The middle request of the run is printed,
with the p50 of each mark's last time over all of them, and the client's p50 latency.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import strawberry
import uvicorn

from bench.profile import operation_query
from bench.run import TOKEN, cache_env, free_port, gateway_env, start_simulator, wait_up
from gateway.config import Settings
from gateway.server.app import GatewayGraphQL, create_app
from gateway.server.middleware import RequestObserver
from gateway.server.runtime import Gateway
from gateway.upstreams import cbc, oma
from gateway.upstreams import transport as http
from schema.execution.executor import GatewayExecutor

Event = tuple[str, float]


def split_requests(events: list[Event]) -> list[list[Event]]:
    """The events of each request, from its ``start``, in ms from that start."""
    requests: list[list[Event]] = []
    started = 0.0
    for name, moment in events:
        if name == "start":
            started = moment
            requests.append([])
        if requests:
            requests[-1].append((name, (moment - started) * 1000))
    return requests


def render(request: list[Event]) -> str:
    return " ".join(f"{name}@{at:.1f}" for name, at in request)


@contextmanager
def marked(events: list[Event]) -> Iterator[None]:
    """Wrap the functions whose start or end is an event; restore them afterwards."""

    def mark(name: str) -> None:
        events.append((name, time.perf_counter()))

    originals: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, attribute: str, make: Callable[[Any], Any]) -> None:
        original = getattr(owner, attribute)
        originals.append((owner, attribute, original))
        setattr(owner, attribute, make(original))

    def around_post(original: Any) -> Any:
        async def post_json(self: Any, *args: Any, **kwargs: Any) -> Any:
            mark("send")
            answer = await original(self, *args, **kwargs)
            mark("recv")
            return answer

        return post_json

    def after_parse(original: Any) -> Any:
        def parse(self: Any, *args: Any) -> Any:
            page = original(self, *args)
            mark("parsed")
            return page

        return parse

    def around_encode(original: Any) -> Any:
        def encode_json(self: Any, data: object) -> bytes:
            mark("encode")
            encoded: bytes = original(self, data)
            mark("encoded")
            return encoded

        return encode_json

    def around_request(original: Any) -> Any:
        async def observe(self: Any, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http" or scope.get("path") != "/graphql":
                await original(self, scope, receive, send)
                return
            mark("start")

            async def marked_send(message: Any) -> None:
                await send(message)
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    mark("sent")

            await original(self, scope, receive, marked_send)

        return observe

    def before_execute(original: Any) -> Any:
        async def execute(self: Any, *args: Any, **kwargs: Any) -> Any:
            mark("execute")
            return await original(self, *args, **kwargs)

        return execute

    def around_leaf_list(original: Any) -> Any:
        def complete(self: Any, *args: Any, **kwargs: Any) -> Any:
            mark("leaf-list")
            completed = original(self, *args, **kwargs)
            mark("leaf-done")
            return completed

        return complete

    def collected(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            mark(f"gc{info['generation']}")

    wrap(http.UpstreamHttp, "post_json", around_post)
    wrap(oma.QueryResourceEndpoint, "parse", after_parse)
    wrap(cbc.ResourcesQueryEndpoint, "parse", after_parse)
    wrap(GatewayGraphQL, "encode_json", around_encode)
    wrap(RequestObserver, "__call__", around_request)
    wrap(strawberry.Schema, "execute", before_execute)
    wrap(GatewayExecutor, "_complete_leaf_list", around_leaf_list)
    gc.callbacks.append(collected)
    try:
        yield
    finally:
        gc.callbacks.remove(collected)
        for owner, attribute, original in reversed(originals):
            setattr(owner, attribute, original)


async def serve_and_replay(gateway: Gateway, body: Path, requests: int) -> list[float]:
    """The client's latencies, in seconds, after the first request's."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(gateway), host="127.0.0.1", port=port, log_config=None, access_log=False
        )
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn has a flag for this, not an event
        await asyncio.sleep(0.05)
    client = await asyncio.create_subprocess_exec(
        "taskset", "-c", "1", sys.executable, "-m", "bench.load",
        "--url", f"http://127.0.0.1:{port}/graphql", "--body", str(body), "--token", TOKEN,
        "--concurrency", "1", "--requests", str(requests),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    output, _ = await client.communicate()
    server.should_exit = True
    await serving
    latencies: list[float] = json.loads(output)["latencies"]
    return latencies[1:]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.timeline")
    # s5 needs resource ids from the simulator; the other three are whole documents.
    parser.add_argument("scenario", choices=["s1", "s2", "s3"])
    parser.add_argument("--requests", type=int, default=25)
    parser.add_argument("--latency", type=float, default=0.02)
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})
    sim_port = free_port()
    sim = f"http://127.0.0.1:{sim_port}"
    simulator = start_simulator(sim_port, subscriptions=1200, latency=args.latency)
    events: list[Event] = []
    try:
        wait_up(f"{sim}/_sim/healthz")
        settings = Settings.from_env({**gateway_env(sim), **cache_env(False)})
        query = operation_query(args.scenario)
        with tempfile.TemporaryDirectory() as scratch:
            body = Path(scratch) / "body.json"
            body.write_text(json.dumps({"query": query}))
            gateway = Gateway.build(settings)
            # As ``gateway serve`` runs: startup objects frozen, a young generation of 50,000.
            gc.collect()
            gc.freeze()
            gc.set_threshold(50_000, 50, 100)
            with marked(events):
                latencies = asyncio.run(serve_and_replay(gateway, body, args.requests))
    finally:
        simulator.terminate()
        simulator.wait(timeout=20)
    requests = split_requests(events)[1:]  # the first warms connections up
    if not requests:
        print("no request was timed")
        return 1
    print(render(requests[len(requests) // 2]))
    names = ("execute", "send", "recv", "parsed", "leaf-list", "leaf-done", "encode")
    for name in (*names, "encoded", "sent"):
        last = [max((at for event, at in r if event == name), default=0.0) for r in requests]
        print(f"p50 of the last {name}: {statistics.median(last):.1f} ms")
    print(f"p50 of the client's latency: {statistics.median(latencies) * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

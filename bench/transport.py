"""Which HTTP transport the upstream clients use, by measurement: ``python -m bench.transport``.

Fires rounds of 100 concurrent POSTs at the simulator and reports the client
process's CPU time per round for httpx's default transport, ``httpx.AsyncClient`` over
the aiohttp transport, ``gateway.http.UpstreamHttp`` (that transport called directly:
what the gateway uses), and aiohttp alone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import resource
import sys

import aiohttp
import httpx
import orjson
from httpx_aiohttp import AiohttpTransport

from bench.run import free_port, start_simulator, wait_up
from gateway.config import Settings
from gateway.upstreams.oma import PATH
from gateway.upstreams.transport import UpstreamHttp

BODY = {"limit": 10, "offset": 0}
HEADERS = {"X-Auth-Token": "bench"}
ROUNDS = 20


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def with_httpx(url: str, transport: httpx.AsyncBaseTransport | None) -> float:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(transport=transport, limits=limits) as client:
        await asyncio.gather(*(client.post(url, json=BODY, headers=HEADERS) for _ in range(100)))
        before = cpu()
        for _ in range(ROUNDS):
            await asyncio.gather(
                *(client.post(url, json=BODY, headers=HEADERS) for _ in range(100))
            )
        return (cpu() - before) / ROUNDS


async def with_upstream_http(url: str) -> float:
    base = url.removesuffix(PATH)
    settings = dataclasses.replace(Settings.from_env({}).oma, base_url=base, max_concurrency=100)
    http = UpstreamHttp(settings)
    target = http.url(PATH)
    body = orjson.dumps(BODY)
    timeouts = httpx.Timeout(10.0)

    async def post() -> None:
        await http.post_json(target, body, HEADERS["X-Auth-Token"], timeouts)

    try:
        await asyncio.gather(*(post() for _ in range(100)))
        before = cpu()
        for _ in range(ROUNDS):
            await asyncio.gather(*(post() for _ in range(100)))
        return (cpu() - before) / ROUNDS
    finally:
        await http.aclose()


async def with_aiohttp(url: str) -> float:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:

        async def post() -> None:
            async with session.post(url, json=BODY, headers=HEADERS) as response:
                await response.read()

        await asyncio.gather(*(post() for _ in range(100)))
        before = cpu()
        for _ in range(ROUNDS):
            await asyncio.gather(*(post() for _ in range(100)))
        return (cpu() - before) / ROUNDS


def main() -> int:
    port = free_port()
    simulator = start_simulator(port)
    url = f"http://127.0.0.1:{port}{PATH}"
    try:
        wait_up(f"http://127.0.0.1:{port}/_sim/healthz")
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        results = {
            "httpx, default transport": asyncio.run(with_httpx(url, None)),
            "httpx.AsyncClient over httpx-aiohttp": asyncio.run(
                with_httpx(url, AiohttpTransport(limits=limits))
            ),
            "UpstreamHttp: the httpx-aiohttp transport directly (used)": asyncio.run(
                with_upstream_http(url)
            ),
            "aiohttp alone": asyncio.run(with_aiohttp(url)),
        }
    finally:
        simulator.terminate()
        simulator.wait(timeout=10)
    print("| client | CPU ms per 100 concurrent POSTs |\n|---|---|")
    for name, seconds in results.items():
        print(f"| {name} | {seconds * 1000:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Three gateway processes sharing one Redis behave as one gateway."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.gateway.server.test_cli import wait_until_up
from tests.gateway.upstreams.test_rate_limit import most_in_a_window
from tests.support.redis_server import RedisServer, free_port

RATE = 5.0
QUERY = "{ subscriptions(first: 5) { totalCount nodes { id } } }"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[str, list[subprocess.Popen[bytes]], list[str]]]:
    redis = RedisServer(tmp_path)
    redis.start()
    sim_port = free_port()
    processes: list[subprocess.Popen[bytes]] = []
    simulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.simulator",
            "--port",
            str(sim_port),
            "--oma-latency",
            "0.2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sim_url = f"http://127.0.0.1:{sim_port}"
    urls: list[str] = []
    try:
        wait_until_up(f"{sim_url}/_sim/healthz", simulator)
        for _ in range(3):
            port = free_port()
            env = {
                **os.environ,
                "GATEWAY_PROFILE": "production",
                "GATEWAY_PORT": str(port),
                "GATEWAY_OMA_BASE_URL": sim_url,
                "GATEWAY_CBC_BASE_URL": sim_url,
                "GATEWAY_CACHE_URL": redis.url,
                # Four processes share two cores here: give Redis more than the 100 ms default.
                "GATEWAY_CACHE_TIMEOUT": "0.5",
                "GATEWAY_OMA_RATE_LIMIT": str(RATE),
                "GATEWAY_OMA_RATE_LIMIT_MAX_WAIT": "10",
                "GATEWAY_OMA_DEADLINE": "20",
                "GATEWAY_LOG_LEVEL": "warning",
            }
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "gateway.server.cli", "serve"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        for url, process in zip(urls, processes, strict=True):
            wait_until_up(f"{url}/healthz", process)
        yield sim_url, processes, urls
    finally:
        for process in [*processes, simulator]:
            if process.poll() is None:
                process.terminate()
        for process in [*processes, simulator]:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        redis.stop()


async def ask(http: httpx.AsyncClient, url: str, token: str) -> httpx.Response:
    return await http.post(f"{url}/graphql", json={"query": QUERY}, headers={"X-Auth-Token": token})


@pytest.mark.slow
async def test_replicas_share_cache_stampede_protection_and_the_rate_limit(
    cluster: tuple[str, list[subprocess.Popen[bytes]], list[str]],
) -> None:
    sim_url, _, urls = cluster
    tokens = ["shared"] * 30 + [f"tenant-{i}" for i in range(10)] * 2
    async with httpx.AsyncClient(timeout=30) as http:
        responses = await asyncio.gather(
            *(ask(http, urls[i % 3], token) for i, token in enumerate(tokens))
        )
        assert [r.status_code for r in responses] == [200] * len(tokens)
        assert all("errors" not in r.json() for r in responses)
        calls = (await http.get(f"{sim_url}/_sim/calls")).json()
    oma_calls = [c for c in calls if c["endpoint"] == "oma.queryresource"]
    # One upstream call per distinct page across all three replicas.
    per_page = Counter(
        (c["token"], orjson.dumps(c["body"], option=orjson.OPT_SORT_KEYS)) for c in oma_calls
    )
    assert len(per_page) == 11
    assert set(per_page.values()) == {1}
    # The three replicas together keep to the configured limit as the simulator counts
    # arrivals: no second, wherever it starts, holds more than ``RATE`` calls (the limiter
    # before the quota's shape let twice that through: its burst, then its pace).
    assert most_in_a_window([c["at"] for c in oma_calls], 1.0) <= RATE


@pytest.mark.slow
async def test_a_replica_killed_mid_burst_costs_no_answers_from_the_others(
    cluster: tuple[str, list[subprocess.Popen[bytes]], list[str]],
) -> None:
    _, processes, urls = cluster
    async with httpx.AsyncClient(timeout=30) as http:
        burst = [asyncio.create_task(ask(http, urls[i % 2], f"burst-{i % 7}")) for i in range(40)]
        doomed = [asyncio.create_task(ask(http, urls[2], f"burst-{i}")) for i in range(5)]
        await asyncio.sleep(0.3)
        processes[2].send_signal(signal.SIGKILL)
        answers = await asyncio.gather(*burst)
        await asyncio.gather(*doomed, return_exceptions=True)
    assert [a.status_code for a in answers] == [200] * 40
    assert all(a.json()["data"]["subscriptions"]["totalCount"] == 301 for a in answers)

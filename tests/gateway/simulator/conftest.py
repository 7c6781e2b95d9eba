"""A small simulator and a client posting to it in-process, for the simulator's own tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway.simulator import Simulator, SimulatorConfig
from gateway.simulator.app import CBC_PATH, OMA_PATH

SEED = 3
SUBSCRIPTIONS = 120
TOKEN = "alice"
OTHER_TOKEN = "bob"


class Upstreams:
    """Posts to the simulated APIs the way the gateway's clients do."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def oma(
        self, body: Any, token: str | None = TOKEN, header: str = "X-Auth-Token"
    ) -> httpx.Response:
        return await self._post(OMA_PATH, body, {header: token} if token is not None else {})

    async def cbc(self, body: Any, token: str | None = TOKEN) -> httpx.Response:
        return await self._post(
            CBC_PATH, body, {"X-Auth-Token": token} if token is not None else {}
        )

    async def _post(self, path: str, body: Any, headers: dict[str, str]) -> httpx.Response:
        if isinstance(body, bytes):  # raw bytes, for bodies that are not JSON
            return await self.http.post(path, content=body, headers=headers)
        return await self.http.post(path, json=body, headers=headers)

    async def all_subscriptions(self, token: str = TOKEN, **window: int) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        while True:
            page = (await self.oma({"limit": 99, "offset": len(records), **window}, token)).json()
            records.extend(page["result"])
            if not page["result"]:
                return records

    async def all_resources(self, body: dict[str, Any], token: str = TOKEN) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        while True:
            page = (await self.cbc({**body, "limit": 500, "offset": len(records)}, token)).json()
            records.extend(page["data"])
            if not page["data"]:
                return records


@pytest.fixture
def sim() -> Simulator:
    return Simulator(SimulatorConfig(seed=SEED, subscriptions=SUBSCRIPTIONS))


@pytest.fixture
async def http(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sim.app), base_url="http://sim"
    ) as client:
        yield client


@pytest.fixture
def upstreams(http: httpx.AsyncClient) -> Upstreams:
    return Upstreams(http)

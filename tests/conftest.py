"""Shared fixtures: the simulator of both upstreams, and a gateway wired to it in-process.

The gateway reaches the simulator through ``httpx.ASGITransport`` (the transport
seam of ``gateway.http``), so these tests open no socket.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.app import create_app
from gateway.config import Settings
from gateway.runtime import Gateway
from gateway.simulator import Simulator, SimulatorConfig

FIXTURES = Path(__file__).parent / "fixtures"
TOKEN = "token-alice"
OTHER_TOKEN = "token-bob"


def load_fixture(name: str) -> Any:
    return orjson.loads((FIXTURES / name).read_bytes())


@pytest.fixture
def simulator() -> Simulator:
    return Simulator(SimulatorConfig(seed=7, subscriptions=300))


def settings_for_tests(**changes: Any) -> Settings:
    """Development profile, the rate limit off (the simulator has no quota), quick deadlines."""
    base = Settings.from_env({"GATEWAY_PROFILE": "development"})
    upstream_changes = {
        "base_url": "http://simulator",
        "rate_limit": 0.0,
        "deadline": 5.0,
        "retry_backoff": 0.01,
    }
    settings = base.replace(
        oma=dataclasses.replace(base.oma, **upstream_changes),
        cbc=dataclasses.replace(base.cbc, **upstream_changes),
    )
    return settings.replace(**changes) if changes else settings


@pytest.fixture
def settings() -> Settings:
    return settings_for_tests()


GatewayFactory = Callable[..., Gateway]


@pytest.fixture
async def make_gateway(simulator: Simulator) -> AsyncIterator[GatewayFactory]:
    built: list[Gateway] = []

    def make(settings: Settings | None = None, **kwargs: Any) -> Gateway:
        transports = {
            "oma": httpx.ASGITransport(app=simulator.app),
            "cbc": httpx.ASGITransport(app=simulator.app),
        }
        gateway = Gateway.build(settings or settings_for_tests(), transports=transports, **kwargs)
        built.append(gateway)
        return gateway

    yield make
    for gateway in built:
        await gateway.aclose()


@pytest.fixture
def gateway(make_gateway: GatewayFactory, settings: Settings) -> Gateway:
    return make_gateway(settings)


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(gateway)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as http:
        yield http


class GraphQLClient:
    """Posts operations to the gateway app like a frontend would."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def post(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = TOKEN,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        all_headers = {"X-Auth-Token": token} if token else {}
        all_headers.update(headers or {})
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=all_headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def graphql(client: httpx.AsyncClient) -> GraphQLClient:
    return GraphQLClient(client)

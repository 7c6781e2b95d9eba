"""Shared fixtures: the simulator of both upstreams, and a gateway wired to it in-process.

The gateway reaches the simulator through ``httpx.ASGITransport`` (the transport
seam of ``gateway.http``), so these tests open no socket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import hypothesis
import pytest

from gateway.config import Settings
from gateway.server.app import create_app
from gateway.server.runtime import Gateway
from gateway.simulator import Simulator, SimulatorConfig
from tests.support.helpers import GraphQLClient, settings_for_tests
from tests.support.upstream_mocks import make_upstreams  # noqa: F401 - a shared fixture

# On a fresh clone the first text a strategy draws builds Hypothesis's Unicode tables
# (over a second, under .hypothesis/), which the too_slow health check then fails.
# How fast inputs are generated is not what these tests check, and on a shared CI
# machine neither is how fast one example runs: the properties are.
hypothesis.settings.register_profile(
    "gateway", suppress_health_check=[hypothesis.HealthCheck.too_slow], deadline=None
)
hypothesis.settings.load_profile("gateway")


@pytest.fixture
def simulator() -> Simulator:
    return Simulator(SimulatorConfig(seed=7, subscriptions=300))


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


@pytest.fixture
def graphql(client: httpx.AsyncClient) -> GraphQLClient:
    return GraphQLClient(client)

"""Faults on the wire, through the production transport (httpx over aiohttp) and a TCP proxy."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.server.app import create_app
from gateway.server.runtime import Gateway
from gateway.simulator import Simulator
from tests.support.fault_proxy import FaultProxy
from tests.support.helpers import TOKEN, settings_for_tests
from tests.support.live_server import serve

BOTH = {
    "query": "{ subscriptions(first: 2) { nodes { id } } resources(first: 2) { nodes { resourceId } } }"
}


@pytest.fixture
async def wired(
    simulator: Simulator,
) -> AsyncIterator[tuple[httpx.AsyncClient, FaultProxy, Gateway]]:
    """The gateway with real sockets: OMA straight to the simulator, CBC through the proxy."""
    async with serve(simulator.app) as sim_url:
        proxy = FaultProxy(int(sim_url.rsplit(":", 1)[1]))
        async with proxy.running():
            settings = settings_for_tests()
            upstream = {
                "max_retries": 2,
                "retry_backoff": 0.01,
                "deadline": 1.0,
                "read_timeout": 0.5,
            }
            settings = settings.replace(
                oma=dataclasses.replace(settings.oma, base_url=sim_url, **upstream),
                cbc=dataclasses.replace(
                    settings.cbc, base_url=f"http://127.0.0.1:{proxy.port}", **upstream
                ),
            )
            gateway = Gateway.build(settings)
            app = create_app(gateway)
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://gateway",
                headers={"X-Auth-Token": TOKEN},
            ) as http:
                yield http, proxy, gateway
            await gateway.aclose()


async def test_reset_connections_fail_only_their_fields_within_the_retry_budget(
    wired: tuple[httpx.AsyncClient, FaultProxy, Gateway],
) -> None:
    http, proxy, _ = wired
    proxy.mode = "reset"
    body = (await http.post("/graphql", json=BOTH)).json()
    assert body["data"]["subscriptions"]["nodes"]
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "UPSTREAM_UNAVAILABLE", "upstream": "cbc"}
    assert proxy.connections == 3  # the first try and two retries, no more
    proxy.mode = "pass"
    healed = (await http.post("/graphql", json=BOTH)).json()
    assert "errors" not in healed  # the failure was not cached


async def test_a_stalled_upstream_answers_within_the_deadline(
    wired: tuple[httpx.AsyncClient, FaultProxy, Gateway],
) -> None:
    http, proxy, _ = wired
    proxy.mode = "stall"
    started = time.monotonic()
    body = (await http.post("/graphql", json=BOTH)).json()
    assert time.monotonic() - started < 1.5  # the 1 s deadline, plus the gateway's own work
    assert body["data"]["subscriptions"]["nodes"]
    assert body["errors"][0]["extensions"]["code"] == "UPSTREAM_TIMEOUT"


async def test_the_real_transport_answers_normally(
    wired: tuple[httpx.AsyncClient, FaultProxy, Gateway],
) -> None:
    http, proxy, _ = wired
    body = (await http.post("/graphql", json=BOTH)).json()
    assert "errors" not in body and len(body["data"]["resources"]["nodes"]) == 2
    assert proxy.connections >= 1

"""Random selections over the real schema (``tests.support.selections``) answer what stock
Strawberry answers: the same data (keys in the same order), the same errors, the same
upstream calls."""

from __future__ import annotations

import dataclasses
from typing import Any
from unittest import mock

import httpx
import orjson
from hypothesis import HealthCheck, given, settings
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from gateway.server.app import create_app
from gateway.server.runtime import Gateway
from gateway.simulator import Simulator, SimulatorConfig
from schema import build as schema_build
from tests.support.helpers import TOKEN, settings_for_tests
from tests.support.selections import operation

SIMULATOR = Simulator(SimulatorConfig(seed=11, subscriptions=40))
IDS = [r["resource_id"] for r in SIMULATOR.dataset(TOKEN).resources[:12]] + ["not-a-resource"]


async def answer(query: str, *, stock: bool) -> tuple[bytes, list[bytes], dict[str, int]]:
    base = settings_for_tests()
    no_cache = {"cache_ttl": 0}
    configured = base.replace(
        oma=dataclasses.replace(base.oma, **no_cache), cbc=dataclasses.replace(base.cbc, **no_cache)
    )
    executor = StrawberryGraphQLCoreExecutionContext if stock else schema_build.GatewayExecutor
    with mock.patch.object(schema_build, "GatewayExecutor", executor):
        gateway = Gateway.build(
            configured,
            transports={
                "oma": httpx.ASGITransport(app=SIMULATOR.app),
                "cbc": httpx.ASGITransport(app=SIMULATOR.app),
            },
        )
    SIMULATOR.reset()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(gateway)), base_url="http://gateway"
        ) as http:
            response = await http.post(
                "/graphql", json={"query": query}, headers={"X-Auth-Token": TOKEN}
            )
    finally:
        await gateway.aclose()
    parsed: dict[str, Any] = orjson.loads(response.content)
    errors = sorted(orjson.dumps(e, option=orjson.OPT_SORT_KEYS) for e in parsed.get("errors", []))
    return orjson.dumps(parsed.get("data")), errors, SIMULATOR.counts()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(query=operation(IDS))
async def test_random_selections_answer_as_stock_strawberry(query: str) -> None:
    ours = await answer(query, stock=False)
    stock = await answer(query, stock=True)
    assert ours == stock, query

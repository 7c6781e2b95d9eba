"""The naive build the benchmarks compare against answers the same data, the slow way."""

from __future__ import annotations

import dataclasses

import httpx
import pytest

from bench.naive import install
from gateway.server.app import create_app
from gateway.simulator import Simulator
from tests.conftest import GatewayFactory
from tests.support.helpers import GraphQLClient, settings_for_tests

LINKED = """
{ subscriptions(first: 12) { nodes { id orderId
    resources { id resourceId name status parent { id name } attachedResources { id name } }
} } }
"""


async def answer(make_gateway: GatewayFactory) -> dict[str, object]:
    settings = settings_for_tests()  # caching off, as in the benchmarks
    settings = settings.replace(
        oma=dataclasses.replace(settings.oma, cache_ttl=0),
        cbc=dataclasses.replace(settings.cbc, cache_ttl=0),
    )
    app = create_app(make_gateway(settings))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as http:
        return await GraphQLClient(http).post(LINKED)


async def test_the_naive_build_answers_the_same_with_one_call_per_field(
    make_gateway: GatewayFactory, simulator: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours = await answer(make_gateway)
    our_calls = sum(simulator.counts().values())
    simulator.reset()

    install(monkeypatch.setattr)
    naive = await answer(make_gateway)
    naive_calls = sum(simulator.counts().values())

    assert "errors" not in ours and naive == ours
    resources = [r for s in ours["data"]["subscriptions"]["nodes"] for r in s["resources"]]  # type: ignore[index]
    linked = [r for r in resources if r["parent"] is not None or r["attachedResources"]]
    assert linked
    # Ours: 1 OMA page, one CBC call per order, then ids 50 at a time. Naive: a call for
    # each subscription's resources and one for each parent or attachment lookup.
    assert our_calls < naive_calls
    assert naive_calls >= 1 + 12 + len(linked)

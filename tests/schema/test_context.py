"""What a request's credentials and address are, before any upstream call."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from gateway.config import SecuritySettings
from gateway.server.app import create_app
from gateway.server.runtime import Gateway
from gateway.simulator import Simulator
from schema.context import GatewayContext, RequestCredentials
from schema.loaders import OrderResourcesKey
from tests.conftest import GatewayFactory
from tests.support.helpers import TOKEN, settings_for_tests

BOTH = {"query": "{ subscriptions(first: 1) { totalCount } resources(first: 1) { totalCount } }"}


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("M" * 17_000, "the token is longer than 12288 characters, which no IAM token is"),
        ("token with spaces", "the token holds characters an IAM token never does"),
        ("tökén", "the token holds characters an IAM token never does"),
    ],
)
async def test_a_token_no_upstream_could_accept_is_refused_without_a_call(
    make_gateway: GatewayFactory, simulator: Simulator, token: str, reason: str
) -> None:
    app = create_app(make_gateway())
    simulator.reset()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as http:
        response = await http.post("/graphql", json=BOTH, headers={"X-Auth-Token": token.encode()})
    body = response.json()
    assert body["data"] == {"subscriptions": None, "resources": None}
    assert sorted(
        (error["extensions"]["code"], error["extensions"]["upstream"], error["message"])
        for error in body["errors"]
    ) == [
        ("UNAUTHENTICATED", "cbc", f"{reason}: not sent"),
        ("UNAUTHENTICATED", "oma", f"{reason}: not sent"),
    ]
    assert simulator.counts() == {}


async def test_only_the_upstream_whose_token_is_refused_goes_without(
    make_gateway: GatewayFactory, simulator: Simulator
) -> None:
    app = create_app(make_gateway())
    simulator.reset()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as http:
        body = (
            await http.post(
                "/graphql",
                json=BOTH,
                headers={"X-Oma-Auth-Token": "bad token", "X-Cbc-Auth-Token": TOKEN},
            )
        ).json()
    assert body["data"]["subscriptions"] is None
    assert body["data"]["resources"]["totalCount"] > 0
    assert [e["extensions"]["upstream"] for e in body["errors"]] == ["oma"]
    assert simulator.counts() == {"cbc.resources_query": 1}


async def test_the_token_cap_is_the_configured_one(
    make_gateway: GatewayFactory, simulator: Simulator
) -> None:
    settings = settings_for_tests(security=SecuritySettings(max_token_bytes=64))
    app = create_app(make_gateway(settings))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as http:
        long = await http.post("/graphql", json=BOTH, headers={"X-Auth-Token": "t" * 65})
        fits = await http.post("/graphql", json=BOTH, headers={"X-Auth-Token": "t" * 64})
    assert {e["extensions"]["code"] for e in long.json()["errors"]} == {"UNAUTHENTICATED"}
    assert "errors" not in fits.json()


@pytest.mark.parametrize(
    ("peer", "trusted", "forwarded", "client"),
    [
        ("198.51.100.4", (), "203.0.113.9", "198.51.100.4"),  # nobody trusted: the peer
        ("198.51.100.4", ("10.0.0.0/8",), "203.0.113.9", "198.51.100.4"),  # not a proxy
        ("10.1.2.3", ("10.0.0.0/8",), "203.0.113.9", "203.0.113.9"),  # a trusted proxy
        ("10.1.2.3", ("10.0.0.0/8",), "203.0.113.9, 10.4.5.6", "203.0.113.9"),  # two hops
        ("10.1.2.3", ("10.0.0.0/8",), "192.0.2.66, 203.0.113.9", "203.0.113.9"),  # forged head
    ],
)
async def test_the_clients_address_is_forwarded_only_by_trusted_proxies(
    make_gateway: GatewayFactory,
    caplog: pytest.LogCaptureFixture,
    peer: str,
    trusted: tuple[str, ...],
    forwarded: str,
    client: str,
) -> None:
    settings = settings_for_tests(security=SecuritySettings(trusted_proxies=trusted))
    app = create_app(make_gateway(settings))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(peer, 40000)), base_url="http://gateway"
    ) as http:
        with caplog.at_level(logging.INFO, logger="gateway.request"):
            await http.post(
                "/graphql",
                json={"query": "{ __typename }"},
                headers={"X-Forwarded-For": forwarded},
            )
    (line,) = [r for r in caplog.records if r.name == "gateway.request"]
    assert line.client == client  # type: ignore[attr-defined]


class Slow(httpx.AsyncBaseTransport):
    """The simulator, a second late; notes the calls that start and those cancelled."""

    def __init__(self, simulator: Simulator) -> None:
        self._inner = httpx.ASGITransport(app=simulator.app)
        self.started = 0
        self.cancelled = 0
        self.delay = 0.0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.started += 1
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return await self._inner.handle_async_request(request)


async def test_closing_the_context_stops_the_batches_still_loading(
    simulator: Simulator,
) -> None:
    """The request has ended (its client left in the middle of an answer in parts): the
    calls its loaders still make are cancelled, the page fetches with them."""
    cbc = Slow(simulator)
    gateway = Gateway.build(
        settings_for_tests(),
        transports={"oma": httpx.ASGITransport(app=simulator.app), "cbc": cbc},
    )
    try:
        context = GatewayContext(
            upstreams=gateway.upstreams,
            limits=gateway.settings.limits,
            credentials=RequestCredentials.from_headers(TOKEN),
        )
        orders = [s["orderId"] for s in simulator.dataset(TOKEN).subscriptions[:4]]
        keys = [OrderResourcesKey(order, False, ()) for order in orders]
        # A first call, so that CBC has vouched for the token: the others then go at once.
        assert await context.loaders.order_resources.load(keys.pop()) is not None
        cbc.started, cbc.delay = 0, 1.0
        loaders = context.loaders
        loading = [asyncio.ensure_future(loaders.order_resources.load(key)) for key in keys]
        family = asyncio.ensure_future(loaders.resource_family.load("some-resource"))
        await asyncio.sleep(0.2)
        assert (cbc.started, cbc.cancelled) == (4, 0)  # in flight
        context.close()
        await asyncio.sleep(0.05)
        assert cbc.cancelled == 4
        assert not any(future.done() and not future.cancelled() for future in [*loading, family])
        cbc.delay = 0.0
        assert await context.loaders.order_resources.load(keys[0]) is not None
        assert cbc.started == 5  # fetched anew: nothing was cached
    finally:
        await gateway.aclose()

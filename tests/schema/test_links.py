"""Linked fields with the lookahead and the executor's link shortcut answer exactly what
Strawberry's stock executor answers, with exactly the same upstream calls, and
without running a resolver per linked field.

Each case runs one operation through two gateways over the same simulator: one
built as shipped, one on Strawberry's stock executor (which has no lookahead and
no shortcut, so each linked field goes through its resolver and the DataLoader).
Data must match byte for byte (key order included), errors as a set, and the
simulator must see the same calls. Some CBC calls fail on purpose, by order id
and by resource id, so errors land in the middle of lists.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import orjson
import pytest
from graphql.execution.executor import Executor
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from gateway.server.app import create_app
from gateway.server.runtime import Gateway
from gateway.simulator import Simulator
from schema import build as schema_build
from schema.links import Link
from tests.support.helpers import TOKEN, settings_for_tests

DEPTH_3 = """{ subscriptions(first: 40) { nodes { id orderId skuName
  resources { id resourceId name status isMainResource expiresAt
    parent { id resourceId name status }
    attachedResources { id resourceId name status expiresAt } } } } }"""

OPERATIONS: list[tuple[str, dict[str, Any]]] = [
    (DEPTH_3, {}),
    # Links before leaves, __typename, and one link under another.
    (
        """{ subscriptions(first: 25) { nodes { resources { __typename
             parent { attachedResources { name parent { resourceId } } name } id }
           id } } }""",
        {},
    ),
    # The same link under aliases with different arguments: a key each.
    (
        """query($s: [ResourceStatus!]) { subscriptions(first: 30) { nodes { id
             main: resources(onlyMainResources: true) { resourceId attachedResources { id } }
             some: resources(statuses: $s) { resourceId status parent { id } }
             all: resources { resourceId } } } }""",
        {"s": ["PROVISIONED", "FROZEN"]},
    ),
    (
        "{ subscriptions(first: 30) { nodes { id resources(onlyMainResources: true) "
        "{ resourceId attachedResources { resourceId } } } } }",
        {},
    ),
    # Fragments, and links the variables switch off (no call may be made for them).
    (
        """query($with: Boolean!, $without: Boolean!) { subscriptions(first: 30) {
             nodes { ...S } } }
           fragment S on SoftwareSubscription { id
             resources @include(if: $with) { ...R attachedResources @skip(if: $without) { id } }
           }
           fragment R on CloudResource { resourceId parent @include(if: $without) { id } }""",
        {"with": True, "without": False},
    ),
    (
        "query($with: Boolean!) { subscriptions(first: 30) { nodes { id "
        "resources @include(if: $with) { id parent { id } } } } }",
        {"with": False},
    ),
    # Through edges (a resolver the lookahead does not follow: it starts again below it).
    (
        """{ subscriptions(first: 20) { totalCount edges { cursor node { id
             resources { resourceId parent { resourceId attachedResources { resourceId } } } } }
           pageInfo { hasNextPage endCursor } } }""",
        {},
    ),
    # Roots that load by id, and CBC's own connection.
    (
        """query($ids: [ID!]!) { resourcesByIds(resourceIds: $ids) { resourceId
             parent { resourceId attachedResources { resourceId } }
             attachedResources { resourceId parent { resourceId } } } }""",
        {"ids": "FIRST_60_RESOURCE_IDS"},
    ),
    (
        """query($id: ID!) { resource(resourceId: $id) { resourceId
             attachedResources { resourceId parent { name } } parent { name } } }""",
        {"id": "FIRST_RESOURCE_ID"},
    ),
    (
        """{ resources(first: 80) { nodes { resourceId isMainResource
             parent { resourceId } attachedResources { resourceId status } } } }""",
        {},
    ),
]


class FailingCbc(httpx.AsyncBaseTransport):
    """The simulator, with CBC failing every call that names one of some orders or ids."""

    def __init__(self, simulator: Simulator, orders: set[str], resource_ids: set[str]) -> None:
        self._upstream = httpx.ASGITransport(app=simulator.app)
        self._orders = orders
        self._resource_ids = resource_ids

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        if body.get("order_id") in self._orders or self._resource_ids & set(
            body.get("resource_ids") or ()
        ):
            return httpx.Response(
                500, json={"error_code": "CBC.0999", "error_msg": "Other errors."}
            )
        return await self._upstream.handle_async_request(request)


Post = Callable[..., Awaitable[tuple[bytes, dict[str, int]]]]


@pytest.fixture
async def post_through(
    simulator: Simulator, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[[bool, set[str], set[str]], Post]]:
    gateways: list[Gateway] = []
    base = settings_for_tests()
    no_cache = {"cache_ttl": 0, "max_retries": 1, "breaker_threshold": 10_000}
    settings = base.replace(
        oma=dataclasses.replace(base.oma, **no_cache),
        cbc=dataclasses.replace(base.cbc, **no_cache),
    )

    def make(stock: bool, orders: set[str], resource_ids: set[str]) -> Post:
        with monkeypatch.context() as patch:
            if stock:
                patch.setattr(
                    schema_build, "GatewayExecutor", StrawberryGraphQLCoreExecutionContext
                )
            gateway = Gateway.build(
                settings,
                transports={
                    "oma": httpx.ASGITransport(app=simulator.app),
                    "cbc": FailingCbc(simulator, orders, resource_ids),
                },
            )
        gateways.append(gateway)
        app = create_app(gateway)

        async def post(
            query: str, variables: dict[str, Any], headers: dict[str, str] | None = None
        ) -> tuple[bytes, dict[str, int]]:
            simulator.reset()
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://gateway"
            ) as http:
                response = await http.post(
                    "/graphql",
                    json={"query": query, "variables": variables},
                    headers=headers or {"X-Auth-Token": TOKEN},
                )
            assert response.status_code == 200, response.text
            return response.content, simulator.counts()

        return post

    yield make
    for gateway in gateways:
        await gateway.aclose()


async def sample_ids(simulator: Simulator) -> list[str]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=simulator.app), base_url="http://sim"
    ) as http:
        response = await http.post(
            "/v2/orders/suscriptions/resources/query",
            json={"limit": 60},
            headers={"X-Auth-Token": TOKEN},
        )
    return [r["resource_id"] for r in response.json()["data"]]


def split(body: bytes) -> tuple[bytes, list[bytes]]:
    """The data as the client reads it (key order kept), and the errors as a sorted list."""
    parsed = orjson.loads(body)
    errors = sorted(orjson.dumps(e, option=orjson.OPT_SORT_KEYS) for e in parsed.get("errors", []))
    return orjson.dumps(parsed.get("data")), errors


@pytest.mark.parametrize("failing", [False, True], ids=["healthy", "some-cbc-calls-fail"])
@pytest.mark.parametrize("operation", range(len(OPERATIONS)))
async def test_linked_fields_answer_as_the_stock_executor_does(
    post_through: Callable[[bool, set[str], set[str]], Post],
    simulator: Simulator,
    monkeypatch: pytest.MonkeyPatch,
    operation: int,
    failing: bool,
) -> None:
    query, variables = OPERATIONS[operation]
    ids = await sample_ids(simulator)
    if variables.get("ids") == "FIRST_60_RESOURCE_IDS":
        variables = {"ids": ids}
    if variables.get("id") == "FIRST_RESOURCE_ID":
        variables = {"id": ids[0]}
    orders: set[str] = set()
    bad_ids: set[str] = set()
    if failing:
        dataset = simulator.dataset(TOKEN)
        orders = {s["orderId"] for s in dataset.subscriptions[3:40:4]}
        bad_ids = {ids[0], *ids[5:60:9]}

    ours, our_calls = await post_through(False, orders, bad_ids)(query, variables)
    stock, stock_calls = await post_through(True, orders, bad_ids)(query, variables)

    assert split(ours) == split(stock)
    assert our_calls == stock_calls
    data, errors = split(ours)
    assert orjson.loads(data) is not None
    assert bool(errors) == (failing and operation != 5), errors


async def test_without_a_cbc_token_every_linked_field_fails_alone_as_before(
    post_through: Callable[[bool, set[str], set[str]], Post],
) -> None:
    headers = {"X-Oma-Auth-Token": TOKEN}
    ours, our_calls = await post_through(False, set(), set())(DEPTH_3, {}, headers)
    stock, stock_calls = await post_through(True, set(), set())(DEPTH_3, {}, headers)
    assert split(ours) == split(stock) and our_calls == stock_calls == {"oma.queryresource": 1}
    body = orjson.loads(ours)
    assert all(node["resources"] is None for node in body["data"]["subscriptions"]["nodes"])
    assert {e["extensions"]["code"] for e in body["errors"]} == {"UNAUTHENTICATED"}
    assert len(body["errors"]) == 40


async def test_a_linked_query_runs_no_resolver_per_linked_field(
    post_through: Callable[[bool, set[str], set[str]], Post],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolved: list[str] = []
    executed: list[str] = []
    link_resolve = Link.resolve
    execute_field = Executor.execute_field

    def counting_resolve(self: Link[Any, Any, Any, Any], *args: Any) -> Any:
        resolved.append("link")
        return link_resolve(self, *args)

    def counting_execute_field(self: Executor, parent_type: Any, *args: Any) -> Any:
        executed.append(parent_type.name)
        return execute_field(self, parent_type, *args)

    monkeypatch.setattr(Link, "resolve", counting_resolve)
    monkeypatch.setattr(Executor, "execute_field", counting_execute_field)
    body, calls = await post_through(False, set(), set())(DEPTH_3, {})

    nodes = orjson.loads(body)["data"]["subscriptions"]["nodes"]
    resources = [r for n in nodes for r in n["resources"]]
    assert len(nodes) == 40 and len(resources) > 80
    assert any(r["parent"] for r in resources) and any(r["attachedResources"] for r in resources)
    # Three levels, each batched: 1 OMA call, then the orders, then the families.
    assert calls["oma.queryresource"] == 1
    # graphql-core resolved the root field and the connection's list; the lookahead had
    # loaded the rest, which was completed in one pass without a resolver.
    assert resolved == []
    assert executed == ["Query", "SoftwareSubscriptionConnection"]

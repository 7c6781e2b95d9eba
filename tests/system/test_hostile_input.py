"""Hostile and malformed input: a clear error, no upstream call, and the gateway unharmed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway.server.app import create_app
from gateway.simulator import Simulator
from tests.conftest import GatewayFactory
from tests.support.helpers import TOKEN, batching_settings, settings_for_tests

NORMAL = {"query": "{ subscriptions(first: 1) { totalCount } }"}


@pytest.fixture
async def production(make_gateway: GatewayFactory) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_gateway(settings_for_tests(profile="production")))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://gateway",
        headers={"X-Auth-Token": TOKEN},
    ) as http:
        yield http


def nested(depth: int) -> str:
    return '{ resource(resourceId: "x") { ' + "parent { " * depth + "id" + " }" * depth + " } }"


HOSTILE: list[tuple[str, dict[str, Any] | bytes | None, str]] = [
    ("malformed JSON", b'{"query": "{ subscriptions ', "application/json"),
    ("form post", b"query=%7B__typename%7D", "application/x-www-form-urlencoded"),
    ("text/plain post", b"{ __typename }", "text/plain"),
    ("empty query", {"query": ""}, "application/json"),
    ("absent query", {"variables": {}}, "application/json"),
    ("query is not a string", {"query": 42}, "application/json"),
    ("variables not an object", {"query": "{ __typename }", "variables": [1]}, "application/json"),
    ("10 MB body", {"query": "{ __typename }", "padding": "x" * 10_000_000}, "application/json"),
    ("nesting 50 deep", {"query": nested(50)}, "application/json"),
    (
        "fragments spreading each other in a cycle",
        {"query": "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }"},
        "application/json",
    ),
    (
        "101 aliases",
        {"query": "{ " + " ".join(f"a{i}: __typename" for i in range(101)) + " }"},
        "application/json",
    ),
    (
        "aliases multiplied through fragment spreads",
        {
            "query": "{ ...F ...F ...F ...F } fragment F on Query { "
            + " ".join(f"a{i}: __typename" for i in range(10))
            + " }"
        },
        "application/json",
    ),
    (
        "1000 repeated directives",
        {"query": "{ __typename " + "@skip(if: false) " * 1000 + "}"},
        "application/json",
    ),
    ("20,000-token document", {"query": "{ " + "__typename " * 20_000 + "}"}, "application/json"),
    ("batch of operations", [NORMAL, NORMAL], "application/json"),
    (
        "first: 99999999",
        {"query": "{ subscriptions(first: 99999999) { totalCount } }"},
        "application/json",
    ),
    ("negative first", {"query": "{ resources(first: -5) { totalCount } }"}, "application/json"),
    (
        "forged cursor",
        {"query": '{ resources(after: "Yz58OTk5fGZvcmdlZA") { totalCount } }'},
        "application/json",
    ),
    (
        "window from after to",
        {
            "query": '{ subscriptions(window: {from: "2025-01-02T00:00:00Z", to: 1735689600000}) { totalCount } }'
        },
        "application/json",
    ),
    (
        "a timestamp that is no time",
        {"query": '{ subscriptions(window: {from: "soon"}) { totalCount } }'},
        "application/json",
    ),
    (
        "51 ids where CBC allows 50",
        {
            "query": "query($ids: [ID!]) { resources(filter: {resourceIds: $ids}) { totalCount } }",
            "variables": {"ids": [f"r{i}" for i in range(51)]},
        },
        "application/json",
    ),
    (
        "an order id over 64 characters",
        {"query": '{ resources(filter: {orderId: "' + "9" * 65 + '"}) { totalCount } }'},
        "application/json",
    ),
    (
        "introspection in production",
        {"query": "{ __schema { queryType { name } } }"},
        "application/json",
    ),
    ("a mutation", {"query": "mutation { steal }"}, "application/json"),
]


@pytest.mark.parametrize(("name", "payload", "content_type"), HOSTILE, ids=[h[0] for h in HOSTILE])
async def test_hostile_input_gets_a_clear_error_and_no_upstream_call(
    production: httpx.AsyncClient,
    simulator: Simulator,
    name: str,
    payload: dict[str, Any] | bytes | None,
    content_type: str,
) -> None:
    simulator.reset()
    if isinstance(payload, bytes):
        response = await production.post(
            "/graphql", content=payload, headers={"Content-Type": content_type}
        )
    else:
        response = await production.post("/graphql", json=payload)
    assert response.status_code in (200, 400, 405, 413), name
    if response.status_code == 200:
        body = response.json()
        assert body["errors"], name
        assert all(error["message"] for error in body["errors"])
        assert not body.get("data") or all(v is None for v in body["data"].values())
    else:
        assert response.text, name
    assert simulator.counts() == {}, name
    healthy = await production.post("/graphql", json=NORMAL)
    assert healthy.json()["data"]["subscriptions"]["totalCount"] == 301


async def test_no_field_suggestions_in_production(production: httpx.AsyncClient) -> None:
    response = await production.post("/graphql", json={"query": "{ subscription { totalCount } }"})
    assert "Did you mean" not in response.text and response.json()["errors"]


async def test_graphiql_is_off_in_production(production: httpx.AsyncClient) -> None:
    assert (await production.get("/graphql", headers={"Accept": "text/html"})).status_code == 404
    assert (await production.get("/graphiql-assets/graphiql.min.js")).status_code == 404


async def test_batches_are_limited_when_configured(
    make_gateway: GatewayFactory, simulator: Simulator
) -> None:
    app = create_app(make_gateway(batching_settings(max_batch_size=3)))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as http:
        ok = await http.post("/graphql", json=[NORMAL] * 3, headers={"X-Auth-Token": TOKEN})
        assert ok.status_code == 200 and len(ok.json()) == 3
        simulator.reset()
        too_many = await http.post("/graphql", json=[NORMAL] * 4, headers={"X-Auth-Token": TOKEN})
        assert too_many.status_code == 400
        assert simulator.counts() == {}


async def test_interleaved_callers_each_get_only_their_own_data(
    make_gateway: GatewayFactory, simulator: Simulator
) -> None:
    app = create_app(make_gateway(settings_for_tests()))
    tokens = [f"tenant-{i % 10}" for i in range(100)]
    query = {
        "query": "{ subscriptions(first: 3) { nodes { id orderId } } resources(first: 3) { nodes { resourceId } } }"
    }
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as http:
        answers = await asyncio.gather(
            *(http.post("/graphql", json=query, headers={"X-Auth-Token": t}) for t in tokens)
        )
    for token, answer in zip(tokens, answers, strict=True):
        tenant = simulator.dataset(token)
        data = answer.json()["data"]
        assert [n["id"] for n in data["subscriptions"]["nodes"]] == [
            s["id"] for s in tenant.subscriptions[:3]
        ]
        visible = [r for r in tenant.resources if r["status"] != 3]
        assert [n["resourceId"] for n in data["resources"]["nodes"]] == [
            r["resource_id"] for r in visible[:3]
        ]
    # Every upstream call carried the token of the request it was made for, and the
    # cache shared nothing across tokens: one call per token and endpoint.
    calls = list(simulator.calls)
    assert {c["token"] for c in calls} == set(tokens)
    assert len(calls) == 20


async def test_breaker_opens_fails_fast_and_closes_after_one_probe(
    make_gateway: GatewayFactory, simulator: Simulator
) -> None:
    import dataclasses

    settings = settings_for_tests()
    settings = settings.replace(
        oma=dataclasses.replace(
            settings.oma,
            max_retries=0,
            breaker_threshold=3,
            breaker_min_callers=3,
            breaker_cooldown=0.3,
            cache_ttl=0,
        )
    )
    gateway = make_gateway(settings)
    app = create_app(gateway)
    tenants = [{"X-Auth-Token": f"tenant-{i}"} for i in range(3)]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as http:
        for headers in tenants:  # each tenant answered once: verified
            assert (
                "errors" not in (await http.post("/graphql", json=NORMAL, headers=headers)).json()
            )
        simulator.knobs.oma.error_rate = 1.0
        for headers in tenants[:2]:
            await http.post("/graphql", json=NORMAL, headers=headers)
        assert gateway.upstreams.breaker_states()["oma"] == "closed"  # two callers of three
        await http.post("/graphql", json=NORMAL, headers=tenants[2])
        assert gateway.upstreams.breaker_states()["oma"] == "open"
        simulator.reset()
        fast = await http.post("/graphql", json=NORMAL, headers=tenants[0])
        assert fast.json()["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
        assert simulator.counts() == {}  # failing fast: no upstream traffic
        assert (await http.get("/readyz")).json()["breakers"]["oma"] == "open"
        simulator.knobs.oma.error_rate = 0.0
        await asyncio.sleep(0.35)
        probe = await http.post("/graphql", json=NORMAL, headers=tenants[1])
        assert "errors" not in probe.json()
        assert simulator.counts() == {"oma.queryresource": 1}
        assert gateway.upstreams.breaker_states()["oma"] == "closed"


DEEP_VARIABLES = (
    b'{"query": "query($ids: [ID!]) { resources(filter: {resourceIds: $ids}) { totalCount } }",'
    b' "variables": {"ids": ' + b"[" * 20_000 + b"]" * 20_000 + b"}}"
)
NO_OPERATION: list[tuple[str, bytes, str]] = [
    ("a string", b'"x"', "The request body must be a JSON object, not a string"),
    ("a number", b"5", "The request body must be a JSON object, not a number"),
    ("null", b"null", "The request body must be a JSON object, not null"),
    ("a boolean", b"true", "The request body must be a JSON object, not a boolean"),
    ("a UTF-16 byte-order mark", b"\xff\xfe{", "Unable to parse the request body as JSON"),
    ("variables nested 20,000 deep", DEEP_VARIABLES, "Unable to parse the request body as JSON"),
]


@pytest.mark.parametrize(("name", "body", "reason"), NO_OPERATION, ids=[n[0] for n in NO_OPERATION])
async def test_a_body_that_is_no_operation_is_a_400_with_its_reason(
    production: httpx.AsyncClient, simulator: Simulator, name: str, body: bytes, reason: str
) -> None:
    simulator.reset()
    response = await production.post(
        "/graphql", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, name
    (error,) = response.json()["errors"]
    assert error["message"].startswith(reason), response.text
    assert error["extensions"]["code"] == "INVALID_GRAPHQL_REQUEST"
    assert simulator.counts() == {}, name
    healthy = await production.post("/graphql", json=NORMAL)
    assert healthy.json()["data"]["subscriptions"]["totalCount"] == 301


NOT_AN_OPERATION: list[tuple[list[Any], str]] = [
    ([1], "Operation 0 of the batch must be a JSON object, not a number"),
    (["x"], "Operation 0 of the batch must be a JSON object, not a string"),
    ([None], "Operation 0 of the batch must be a JSON object, not null"),
    ([[]], "Operation 0 of the batch must be a JSON object, not a list"),
    ([NORMAL, True], "Operation 1 of the batch must be a JSON object, not a boolean"),
    ([{"query": 5}], "Operation 0 of the batch has a `query` that is not a string"),
    ([{**NORMAL, "variables": [1]}], "Operation 0 of the batch has `variables` that are not"),
    ([{**NORMAL, "extensions": "x"}], "Operation 0 of the batch has `extensions` that are not"),
    (5, "The request body must be a JSON object or a list of them, not a number"),
]


async def test_a_batch_of_what_is_no_operation_is_a_400_with_its_reason(
    make_gateway: GatewayFactory, simulator: Simulator
) -> None:
    app = create_app(make_gateway(batching_settings()))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://gateway",
        headers={"X-Auth-Token": TOKEN},
    ) as http:
        for body, reason in NOT_AN_OPERATION:
            simulator.reset()
            response = await http.post("/graphql", json=body)
            assert response.status_code == 400, body
            (error,) = response.json()["errors"]
            assert error["message"].startswith(reason), response.text
            assert error["extensions"]["code"] == "INVALID_GRAPHQL_REQUEST"
            assert simulator.counts() == {}, body
        batch = await http.post("/graphql", json=[NORMAL, NORMAL])
        assert [a["data"]["subscriptions"]["totalCount"] for a in batch.json()] == [301, 301]

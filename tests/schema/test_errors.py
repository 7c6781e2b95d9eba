"""Every error code a client can see, and failures that stay in their own fields."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import pytest

from gateway.config import Settings
from gateway.server.app import create_app
from gateway.server.runtime import Gateway
from gateway.simulator import Simulator
from tests.conftest import GatewayFactory
from tests.support.helpers import TOKEN, GraphQLClient, settings_for_tests

BOTH = "{ subscriptions(first: 2) { nodes { id } } resources(first: 2) { nodes { resourceId } } }"


def quick(**upstream_changes: Any) -> Settings:
    base = settings_for_tests()
    changes = {
        "max_retries": 1,
        "retry_backoff": 0.001,
        "breaker_threshold": 100,
        **upstream_changes,
    }
    return base.replace(
        oma=dataclasses.replace(base.oma, **changes), cbc=dataclasses.replace(base.cbc, **changes)
    )


async def client_for(make_gateway: GatewayFactory, settings: Settings) -> GraphQLClient:
    app = create_app(make_gateway(settings))
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")
    return GraphQLClient(http)


def codes(body: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {
        e["path"][0]: (e["extensions"]["code"], e["extensions"].get("upstream"))
        for e in body.get("errors", [])
    }


async def test_a_missing_token_is_unauthenticated_for_that_upstream_only(
    graphql: GraphQLClient, simulator: Simulator
) -> None:
    simulator.reset()
    body = await graphql.post(BOTH, token=None, headers={"X-Cbc-Auth-Token": TOKEN})
    assert codes(body) == {"subscriptions": ("UNAUTHENTICATED", "oma")}
    assert body["data"]["subscriptions"] is None
    assert body["data"]["resources"]["nodes"]
    assert simulator.counts() == {"cbc.resources_query": 1}


async def test_per_upstream_tokens_override_the_shared_one(
    graphql: GraphQLClient, simulator: Simulator
) -> None:
    simulator.reset()
    await graphql.post(BOTH, token="shared", headers={"X-Oma-Auth-Token": "oma-only"})
    tokens = {(c["endpoint"], c["token"]) for c in simulator.calls}
    assert tokens == {("oma.queryresource", "oma-only"), ("cbc.resources_query", "shared")}


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (
            "invalid-token",
            {"subscriptions": ("UNAUTHENTICATED", "oma"), "resources": ("UNAUTHENTICATED", "cbc")},
        ),
        (
            "forbidden-token",
            {"subscriptions": ("UNAUTHENTICATED", "oma"), "resources": ("FORBIDDEN", "cbc")},
        ),
    ],
)
async def test_upstream_refusals_keep_their_meaning(
    graphql: GraphQLClient, token: str, expected: dict[str, tuple[str, str]]
) -> None:
    body = await graphql.post(BOTH, token=token)
    assert codes(body) == expected


@pytest.mark.parametrize(
    ("knobs", "code"),
    [
        ({"error_rate": 1.0}, "UPSTREAM_UNAVAILABLE"),
        ({"throttle_rate": 1.0, "retry_after": 0}, "UPSTREAM_THROTTLED"),
        ({"fault": "non_json"}, "UPSTREAM_BAD_RESPONSE"),
        ({"fault": "wrong_shape"}, "UPSTREAM_BAD_RESPONSE"),
        ({"fault": "redirect"}, "UPSTREAM_BAD_RESPONSE"),
        ({"fault": "hang"}, "UPSTREAM_TIMEOUT"),
    ],
)
async def test_one_upstream_failing_never_blanks_the_other(
    make_gateway: GatewayFactory, simulator: Simulator, knobs: dict[str, Any], code: str
) -> None:
    client = await client_for(make_gateway, quick(deadline=0.3))
    simulator.knobs.patch({"cbc": knobs})
    body = await client.post(BOTH)
    assert codes(body) == {"resources": (code, "cbc")}
    assert len(body["data"]["subscriptions"]["nodes"]) == 2
    assert body["data"]["resources"] is None
    await client.http.aclose()


async def test_failures_are_not_cached(make_gateway: GatewayFactory, simulator: Simulator) -> None:
    client = await client_for(make_gateway, quick())
    simulator.knobs.cbc.error_rate = 1.0
    assert codes(await client.post(BOTH))["resources"][0] == "UPSTREAM_UNAVAILABLE"
    simulator.knobs.cbc.error_rate = 0.0
    assert "errors" not in await client.post(BOTH)
    await client.http.aclose()


async def test_unexpected_errors_are_masked(
    graphql: GraphQLClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from schema import enums

    lookup = enums._lookup

    def explode(table: Any, value: Any, what: str) -> Any:
        if table is enums._SUBSCRIPTION_STATUSES:
            raise RuntimeError("secret internals at http://internal.example/?token=" + TOKEN)
        return lookup(table, value, what)

    # A subscription's status is read through that lookup: it now raises.
    monkeypatch.setattr(enums, "_lookup", explode)
    body = await graphql.post(
        "{ subscriptions(first: 2) { nodes { id status } } resources(first: 2) { nodes { resourceId } } }"
    )
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}
    assert "internal.example" not in str(body) and TOKEN not in str(body)
    assert body["data"]["resources"]["nodes"]
    assert "unexpected error in a resolver" in caplog.text


@pytest.mark.parametrize(
    "document",
    ["{", "{ subscriptions(first: 1) { nodes { id } }", "{ " + "__typename " * 2100 + "}"],
)
async def test_a_document_that_does_not_parse_says_so_in_its_code(
    graphql: GraphQLClient, document: str
) -> None:
    body = await graphql.post(document)
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "GRAPHQL_PARSE_FAILED"}
    assert error["message"].startswith("Syntax Error")


async def test_an_upstream_number_beyond_int_is_null_with_an_error_at_its_field(
    simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    async def odd_amount(request: httpx.Request) -> httpx.Response:
        answer = await httpx.ASGITransport(app=simulator.app).handle_async_request(request)
        await answer.aread()
        page = answer.json()
        page["result"][0]["amount"] = "3000000000"
        return httpx.Response(200, json=page)

    transports = {
        "oma": httpx.MockTransport(odd_amount),
        "cbc": httpx.ASGITransport(app=simulator.app),
    }
    gateway = Gateway.build(settings_for_tests(), transports=transports)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(gateway)), base_url="http://gateway"
        ) as http:
            body = await GraphQLClient(http).post(
                "{ subscriptions(first: 2) { nodes { id quantity } } }"
            )
    finally:
        await gateway.aclose()
    first, second = body["data"]["subscriptions"]["nodes"]
    assert first["quantity"] is None and first["id"] and second["id"]
    (error,) = body["errors"]
    assert error["path"] == ["subscriptions", "nodes", 0, "quantity"]
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}
    assert "32-bit" in error["message"]
    assert "a value the schema cannot represent" in caplog.text


async def test_an_argument_execution_cannot_coerce_is_bad_user_input_at_its_field(
    graphql: GraphQLClient,
) -> None:
    body = await graphql.post(
        'query($id: ID = "x") { resource(resourceId: $id) { resourceId } }', {"id": None}
    )
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}
    assert error["path"] == ["resource"]


async def test_stale_pages_are_served_and_marked_while_an_upstream_fails(
    make_gateway: GatewayFactory, simulator: Simulator
) -> None:
    settings = quick(cache_ttl=0.05)
    settings = settings.replace(cache=dataclasses.replace(settings.cache, stale_if_error=60))
    client = await client_for(make_gateway, settings)
    fresh = await client.post(BOTH)
    import asyncio

    await asyncio.sleep(0.1)
    simulator.knobs.oma.error_rate = 1.0
    stale = await client.post(BOTH)
    assert "errors" not in stale
    assert stale["data"] == fresh["data"]
    assert stale["extensions"]["stale"]["upstreams"] == ["oma"]
    await client.http.aclose()


async def test_no_cache_header_refreshes_the_pages_a_request_touches(
    graphql: GraphQLClient, simulator: Simulator
) -> None:
    await graphql.post(BOTH)
    simulator.reset()
    await graphql.post(BOTH)
    assert simulator.counts() == {}
    await graphql.post(BOTH, headers={"Cache-Control": "no-cache"})
    assert simulator.counts() == {"oma.queryresource": 1, "cbc.resources_query": 1}
    simulator.reset()
    await graphql.post(BOTH)
    assert simulator.counts() == {}


async def test_an_operation_over_the_cost_budget_is_refused_before_any_call(
    graphql: GraphQLClient, simulator: Simulator
) -> None:
    simulator.reset()
    body = await graphql.post(
        "{ subscriptions(first: 1000) { nodes { resources { attachedResources { id } } } } }"
    )
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COSTLY"
    assert body["data"] is None
    assert simulator.counts() == {}


async def test_the_benchmark_depth_three_query_is_within_budget(
    graphql: GraphQLClient,
) -> None:
    body = await graphql.post(
        "{ subscriptions(first: 100) { nodes { resources { parent { id } attachedResources { id } } } } }"
    )
    assert "errors" not in body


@pytest.mark.parametrize(
    ("query", "message"),
    [
        # Eleven deep (a top-level leaf is 0), every field a real one.
        (
            '{ resource(resourceId: "x") { ' + "parent { " * 10 + "id" + " }" * 10 + " } }",
            "'anonymous' exceeds maximum operation depth of 10",
        ),
        (
            "{ " + " ".join(f'a{i}: resource(resourceId: "x") {{ id }}' for i in range(31)) + " }",
            "31 aliases found. Allowed: 30",
        ),
        (
            '{ resource(resourceId: "x") { id ' + "@skip(if: false) " * 6 + "} }",
            "'id' has 6 directives; at most 5 are allowed per field.",
        ),
        (
            "{ " + " ".join(f"r{i}: __typename" for i in range(11)) + " }",
            "the operation selects 11 root fields; at most 10 are allowed.",
        ),
    ],
)
async def test_limits_refuse_before_any_call(
    graphql: GraphQLClient, simulator: Simulator, query: str, message: str
) -> None:
    simulator.reset()
    body = await graphql.post(query)
    assert body["data"] is None
    assert message in [error["message"] for error in body["errors"]]
    assert {error["extensions"]["code"] for error in body["errors"]} == {
        "GRAPHQL_VALIDATION_FAILED"
    }
    assert simulator.counts() == {}


async def test_a_value_reading_syntax_error_is_a_validation_failure(
    graphql: GraphQLClient,
) -> None:
    """The code follows the error's kind, not words the client's own value put in it."""
    body = await graphql.post('{ subscriptions(first: "Syntax Error") { totalCount } }')
    (error,) = body["errors"]
    assert error["message"] == 'Int cannot represent non-integer value: "Syntax Error"'
    assert error["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}

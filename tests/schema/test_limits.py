"""The cost limit and the argument checks of ``schema.limits``, as a client sees them:
the error code, and the upstream calls made (none when refused)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.server.app import create_app
from gateway.simulator import Simulator
from tests.conftest import GatewayFactory
from tests.support.helpers import TOKEN, GraphQLClient, batching_settings

# 1000 subscriptions, with their resources: about 1011 calls against the default 200.
COSTLY_BODY = "totalCount nodes { id resources { resourceId } }"
COSTLY = "subscriptions(first: $n) { " + COSTLY_BODY + " }"


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        # The operation's default applies when the variable is not sent.
        ("query($n: Int = 1000) { " + COSTLY + " }", None),
        # A float GraphQL Int coercion accepts is the integer it coerces to.
        ("query($n: Int) { " + COSTLY + " }", {"n": 1000.0}),
        ("query($n: Int = 3) { " + COSTLY + " }", {"n": 1000.0}),
        ("query($n: Int) { " + COSTLY + " }", {"n": 1000}),
    ],
)
async def test_the_budget_sees_the_variables_execution_will_use(
    graphql: GraphQLClient, simulator: Simulator, query: str, variables: dict[str, Any] | None
) -> None:
    simulator.reset()
    body = await graphql.post(query, variables)
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COSTLY"
    assert body["data"] is None
    assert simulator.counts() == {}


async def test_a_variable_default_within_budget_is_used(
    graphql: GraphQLClient, simulator: Simulator
) -> None:
    simulator.reset()
    body = await graphql.post("query($n: Int = 3) { " + COSTLY + " }")
    assert "errors" not in body
    assert len(body["data"]["subscriptions"]["nodes"]) == 3
    assert simulator.counts()["oma.queryresource"] == 1


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        (
            "{ subscriptions(first: 30) { nodes { id resources(statuses: [CLOSED]) { id } } } }",
            None,
        ),
        (
            "query($s: [ResourceStatus!]) { subscriptions(first: 30) "
            "{ nodes { id resources(statuses: $s) { id } } } }",
            {"s": ["FROZEN", "CLOSED"]},
        ),
        (
            "query($s: [ResourceStatus!] = [CLOSED]) { subscriptions(first: 30) "
            "{ nodes { id resources(statuses: $s) { id } } } }",
            None,
        ),
        (
            "{ subscriptions(first: 2) { nodes { id } } "
            "resources(filter: {statuses: [CLOSED]}) { totalCount } }",
            None,
        ),
    ],
)
async def test_a_status_cbc_never_lists_is_refused_once_before_any_call(
    graphql: GraphQLClient, simulator: Simulator, query: str, variables: dict[str, Any] | None
) -> None:
    simulator.reset()
    body = await graphql.post(query, variables)
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "CLOSED" in error["message"]
    assert body["data"] is None
    assert simulator.counts() == {}


async def test_the_statuses_cbc_lists_are_accepted(
    graphql: GraphQLClient, simulator: Simulator
) -> None:
    body = await graphql.post(
        "{ subscriptions(first: 3) { nodes { resources(statuses: [PROVISIONED, FROZEN, EXPIRED]) "
        "{ status } } } }"
    )
    assert "errors" not in body
    assert len(body["data"]["subscriptions"]["nodes"]) == 3


async def test_a_batch_shares_one_budget(
    make_gateway: GatewayFactory, simulator: Simulator
) -> None:
    # 150 subscriptions with their resources: about 152 calls each, 304 together.
    app = create_app(make_gateway(batching_settings()))
    batch = [{"query": "query($n: Int = 150) { " + COSTLY + " }"}] * 2
    simulator.reset()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as http:
        response = await http.post("/graphql", json=batch, headers={"X-Auth-Token": TOKEN})
    answers = response.json()
    refused = [a for a in answers if a.get("errors")]
    (refusal,) = refused
    assert refusal["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"
    assert "batch" in refusal["errors"][0]["message"]
    (answered,) = [a for a in answers if not a.get("errors")]
    assert len(answered["data"]["subscriptions"]["nodes"]) == 150
    assert simulator.counts()["oma.queryresource"] == 2  # one operation's pages only


async def test_in_a_batch_an_operation_over_budget_alone_is_refused_alone(
    make_gateway: GatewayFactory, simulator: Simulator
) -> None:
    app = create_app(make_gateway(batching_settings()))
    batch = [
        {"query": "query($n: Int = 1000) { " + COSTLY + " }"},
        {"query": "{ subscriptions(first: 2) { nodes { id } } }"},
    ]
    simulator.reset()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as http:
        response = await http.post("/graphql", json=batch, headers={"X-Auth-Token": TOKEN})
    costly, cheap = response.json()
    assert costly["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"
    assert len(cheap["data"]["subscriptions"]["nodes"]) == 2
    assert simulator.counts() == {"oma.queryresource": 1}


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        (
            "query($no: Boolean!) { "
            + COSTLY.replace("$n", "1000").replace(" {", " @include(if: $no) {", 1)
            + " }",
            {"no": False},
        ),
        ("{ " + COSTLY.replace("$n", "1000").replace(" {", " @skip(if: true) {", 1) + " }", None),
        (
            "{ subscriptions(first: 1) { nodes { id ...F @skip(if: true) } } }"
            " fragment F on SoftwareSubscription { resources(statuses: [CLOSED]) { id } }",
            None,
        ),
        (
            "{ subscriptions(first: 1) { nodes { id resources(statuses: [CLOSED]) @skip(if: true) "
            "{ id } } } }",
            None,
        ),
    ],
)
async def test_what_skip_and_include_leave_out_costs_nothing_and_is_not_checked(
    graphql: GraphQLClient, simulator: Simulator, query: str, variables: dict[str, Any] | None
) -> None:
    simulator.reset()
    body = await graphql.post(query, variables)
    assert "errors" not in body, body
    assert simulator.counts().get("cbc.resources_query", 0) == 0


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        (
            "query($w: TimeWindow) { subscriptions(first: 1000, window: $w) { "
            + COSTLY_BODY
            + " } }",
            {"w": {"to": "1969-12-31T00:00:00Z"}},
        ),
        (
            "query($w: TimeWindow) { subscriptions(first: 1000, window: $w) { "
            + COSTLY_BODY
            + " } }",
            {"w": {"from": "2024-01-01T00:00:00.0001Z", "to": "2024-01-01T00:00:00.0002Z"}},
        ),
        (
            "query($w: TimeWindow) { resources(first: 1000, filter: {expiring: $w}) "
            "{ totalCount nodes { attachedResources { id } } } }",
            {"w": {"from": "2024-01-01T00:00:00.2Z", "to": "2024-01-01T00:00:00.8Z"}},
        ),
    ],
)
async def test_a_window_that_holds_nothing_costs_nothing(
    graphql: GraphQLClient, simulator: Simulator, query: str, variables: dict[str, Any]
) -> None:
    """Answered empty without a call, so never refused as costly."""
    simulator.reset()
    body = await graphql.post(query, variables)
    assert "errors" not in body, body
    (connection,) = body["data"].values()
    assert connection["totalCount"] == 0
    assert simulator.counts() == {}

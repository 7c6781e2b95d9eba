"""The cost limit and the argument checks of ``schema.limits``, as a client sees them:
the error code, and the upstream calls made (none when refused)."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import httpx
import pytest
from graphql import (
    FragmentDefinitionNode,
    get_operation_ast,
    get_variable_values,
    parse,
)

from gateway.server.app import create_app
from gateway.simulator import Simulator
from schema.build import build_schema
from schema.limits import CallPlan, CostEstimate, UpstreamCalls
from tests.conftest import GatewayFactory
from tests.support import hostile_documents
from tests.support.helpers import TOKEN, GraphQLClient, batching_settings, settings_for_tests

SCHEMA = build_schema()._schema

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
    assert error["message"] == (
        "`statuses` cannot include CLOSED: CBC lists resources by PROVISIONED, FROZEN, "
        "EXPIRED only."
    )
    assert error["locations"]  # at the field that asks
    assert body["data"] is None
    assert simulator.counts() == {}


async def test_the_statuses_cbc_lists_are_accepted(
    graphql: GraphQLClient, simulator: Simulator
) -> None:
    simulator.reset()
    body = await graphql.post(
        "{ subscriptions(first: 3) { nodes { resources(statuses: [PROVISIONED, FROZEN, EXPIRED]) "
        "{ status } } } }"
    )
    assert "errors" not in body
    nodes = body["data"]["subscriptions"]["nodes"]
    assert len(nodes) == 3
    statuses = {r["status"] for node in nodes for r in node["resources"]}
    assert statuses and statuses <= {"PROVISIONED", "FROZEN", "EXPIRED"}
    sent = [call["body"] for call in simulator.calls if call["endpoint"] == "cbc.resources_query"]
    assert len(sent) == 3
    assert all(each["status_list"] == [2, 4, 5] for each in sent)


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
    (error,) = refusal["errors"]
    assert error["extensions"] == {"code": "QUERY_TOO_COSTLY", "cost": 152}
    assert error["message"] == (
        "with the batch's operations before it, the request would make about 304 upstream "
        "calls; the limit is 200."
    )
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
            "{ totalCount nodes { attachedResources { parent { attachedResources { parent { id } } } } } } }",
            {"w": {"from": "2024-01-01T00:00:00.2Z", "to": "2024-01-01T00:00:00.8Z"}},
        ),
    ],
)
async def test_a_window_that_holds_nothing_costs_nothing(
    graphql: GraphQLClient, simulator: Simulator, query: str, variables: dict[str, Any]
) -> None:
    """Answered empty without a call, so never refused as costly; with a window that
    holds something the same operation is over budget."""
    simulator.reset()
    body = await graphql.post(query, variables)
    assert "errors" not in body, body
    (connection,) = body["data"].values()
    assert connection["totalCount"] == 0
    assert simulator.counts() == {}
    body = await graphql.post(query, {"w": {"from": "2024-01-01T00:00:00Z"}})
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"
    assert simulator.counts() == {}


# -- the estimate, to the call ------------------------------------------------------


def estimate(
    document: str, variables: dict[str, Any] | None = None, operation_name: str | None = None
) -> UpstreamCalls:
    ast = parse(document)
    operation = get_operation_ast(ast, operation_name)
    assert operation is not None
    values = get_variable_values(SCHEMA, operation.variable_definitions or (), variables or {})
    assert not isinstance(values, list), values
    fragments = {d.name.value: d for d in ast.definitions if isinstance(d, FragmentDefinitionNode)}
    return CostEstimate(SCHEMA, fragments, values).operation(operation).calls


def oma(calls: int) -> UpstreamCalls:
    return UpstreamCalls(oma=calls)


def cbc(calls: int) -> UpstreamCalls:
    return UpstreamCalls(cbc=calls)


RESOURCES_OF_EACH = "nodes { resources { id } }"
IDS_51 = "[" + ", ".join(f'"r{i}"' for i in range(51)) + "]"


@pytest.mark.parametrize(
    ("document", "variables", "expected"),
    [
        # Root lists: the pages `first` spans, one at least (for the total).
        ("{ subscriptions { totalCount } }", None, oma(1)),  # first's default, 20
        (
            "{ subscriptions(first: null) { " + RESOURCES_OF_EACH + " } }",
            None,
            UpstreamCalls(1, 20),
        ),
        ("{ subscriptions(first: 0) { " + RESOURCES_OF_EACH + " } }", None, oma(1)),
        ("{ subscriptions(first: -5) { " + RESOURCES_OF_EACH + " } }", None, oma(1)),
        ("{ subscriptions(first: 99) { totalCount } }", None, oma(1)),
        ("{ subscriptions(first: 100) { totalCount } }", None, oma(2)),
        ("{ subscriptions(first: 198) { totalCount } }", None, oma(2)),
        ("{ subscriptions(first: 199) { totalCount } }", None, oma(3)),
        ("{ resources(first: 500) { totalCount } }", None, cbc(1)),
        ("{ resources(first: 501) { totalCount } }", None, cbc(2)),
        ("query($n: Int = 150) { subscriptions(first: $n) { totalCount } }", None, oma(2)),
        ("query($n: Int = 150) { subscriptions(first: $n) { totalCount } }", {"n": 250}, oma(3)),
        # Ids: 50 a call.
        ('{ resourcesByIds(resourceIds: ["a"]) { id } }', None, cbc(1)),
        ("{ resourcesByIds(resourceIds: []) { id } }", None, cbc(0)),
        (
            "{ resourcesByIds(resourceIds: "
            + IDS_51[: IDS_51.index(', "r50"')]
            + "]) { parent { id } } }",
            None,
            cbc(2),
        ),
        ("{ resourcesByIds(resourceIds: " + IDS_51 + ") { id } }", None, cbc(2)),
        (
            "{ resourcesByIds(resourceIds: "
            + IDS_51
            + ") { parent { id } attachedResources { id } } }",
            None,
            cbc(6),
        ),
        ('{ resource(resourceId: "x") { id } }', None, cbc(1)),
        (
            '{ resource(resourceId: "x") { parent { id } attachedResources { parent { id } } } }',
            None,
            cbc(4),
        ),
        (
            '{ resource(resourceId: "x") { attachedResources { attachedResources { '
            "attachedResources { attachedResources { id } } } } } }",
            None,
            cbc(1 + 1 + 1 + 1 + 1),  # for 1, 3, 9 and 27 parents (2 would be 54: 2 calls)
        ),
        # Two objects of one type with the same parents, selecting differently.
        (
            '{ a: resource(resourceId: "x") { parent { id } } '
            'b: resource(resourceId: "y") { id } }',
            None,
            cbc(1 + 1 + 1),
        ),
        # Each link: one call per order; 50 parents a call; 3 attached per primary.
        ("{ subscriptions(first: 10) { " + RESOURCES_OF_EACH + " } }", None, UpstreamCalls(1, 10)),
        (
            "{ subscriptions(first: 10) { edges { node { resources { id } } } } }",
            None,
            UpstreamCalls(1, 10),
        ),
        (
            "{ subscriptions(first: 12) { nodes { resources { attachedResources { id } } } } }",
            None,
            UpstreamCalls(1, 12 + 1),  # 48 resources
        ),
        (
            "{ subscriptions(first: 13) { nodes { resources { attachedResources { id } } } } }",
            None,
            UpstreamCalls(1, 13 + 2),  # 52 resources
        ),
        (
            "{ subscriptions(first: 100) { nodes { resources { parent { id } "
            "attachedResources { id } } } } }",
            None,
            UpstreamCalls(2, 100 + 8 + 8),
        ),
        (
            "{ resources(first: 16) { nodes { attachedResources { parent { id } } } } }",
            None,
            cbc(1 + 1 + 1),  # 48 attached
        ),
        (
            "{ resources(first: 17) { nodes { attachedResources { parent { id } } } } }",
            None,
            cbc(1 + 1 + 2),  # 51 attached
        ),
        (
            "{ resources(first: 120) { nodes { parent { id } attachedResources { parent { id } } } } }",
            None,
            cbc(1 + 3 + 3 + 8),
        ),
        # Fragments and inline fragments, merged as execution merges them.
        (
            "{ ...Q } fragment Q on Query { subscriptions(first: 10) { nodes { ...S } } } "
            "fragment S on SoftwareSubscription { resources { id } }",
            None,
            UpstreamCalls(1, 10),
        ),
        (
            "{ ...Q ...Q } fragment Q on Query { subscriptions(first: 10) { nodes { ...S ...S } } } "
            "fragment S on SoftwareSubscription { resources { id } }",
            None,
            UpstreamCalls(1, 10),
        ),
        (
            "{ subscriptions(first: 10) { totalCount } subscriptions(first: 10) { "
            + RESOURCES_OF_EACH
            + " } }",
            None,
            UpstreamCalls(1, 10),
        ),
        (
            "{ a: subscriptions(first: 10) { "
            + RESOURCES_OF_EACH
            + " } b: subscriptions(first: 10) { "
            + RESOURCES_OF_EACH
            + " } }",
            None,
            UpstreamCalls(2, 20),
        ),
        (
            "{ ... on Query { subscriptions(first: 150) { totalCount } } "
            '... { resource(resourceId: "x") { id } } }',
            None,
            UpstreamCalls(2, 1),
        ),
        # The same fragment below different numbers of parents is estimated for each.
        (
            "{ resources(first: 100) { nodes { parent { ...P } attachedResources { ...P } } } } "
            "fragment P on CloudResource { parent { id } }",
            None,
            cbc(1 + 2 + 2 + 2 + 6),
        ),
        # @skip and @include, on fields, inline fragments and spreads.
        ("{ subscriptions(first: 150) @skip(if: true) { totalCount } }", None, oma(0)),
        ("{ subscriptions(first: 150) @include(if: false) { totalCount } }", None, oma(0)),
        (
            "query($yes: Boolean!) { subscriptions(first: 150) @include(if: $yes) { totalCount } }",
            {"yes": True},
            oma(2),
        ),
        (
            "query($yes: Boolean!) { subscriptions(first: 10) { nodes { "
            "... @skip(if: $yes) { resources { id } } } } }",
            {"yes": True},
            oma(1),
        ),
        (
            "query($yes: Boolean!) { subscriptions(first: 10) { nodes { "
            "... @skip(if: $yes) { resources { id } } } } }",
            {"yes": False},
            UpstreamCalls(1, 10),
        ),
        (
            "query($yes: Boolean!) { subscriptions(first: 10) { nodes { ...S @include(if: $yes) } } } "
            "fragment S on SoftwareSubscription { resources { id } }",
            {"yes": False},
            oma(1),
        ),
        # Windows that hold nothing make no call, nor do the links below them.
        (
            '{ subscriptions(first: 1000, window: { to: "1969-12-31T00:00:00Z" }) { '
            + RESOURCES_OF_EACH
            + " } }",
            None,
            oma(0),
        ),
        (
            '{ subscriptions(first: 10, window: { from: "2024-01-01T00:00:00Z" }) { '
            + RESOURCES_OF_EACH
            + " } }",
            None,
            UpstreamCalls(1, 10),
        ),
        (
            '{ resources(first: 1000, filter: { expiring: { from: "2024-01-01T00:00:00.2Z", '
            'to: "2024-01-01T00:00:00.8Z" } }) { nodes { attachedResources { id } } } }',
            None,
            cbc(0),
        ),
        (
            '{ resources(first: 100, filter: { expiring: { from: "2024-01-01T00:00:00Z" } }) '
            "{ nodes { attachedResources { id } } } }",
            None,
            cbc(1 + 2),
        ),
        (
            '{ resources(first: 100, filter: { orderId: "o" }) { nodes { attachedResources { id } } } }',
            None,
            cbc(1 + 2),
        ),
        # No upstream behind these (nor do they hide the fields after them).
        ('{ __typename __type(name: "Query") { name } }', None, oma(0)),
        ("{ __typename subscriptions(first: 150) { totalCount } }", None, oma(2)),
        (
            '{ __type(name: "Query") { name } subscriptions(first: 150) { totalCount } }',
            None,
            oma(2),
        ),
        # A field execution cannot coerce an argument of fails before its resolver.
        (
            'query($id: ID = "x") { resource(resourceId: $id) { parent { id } } '
            "subscriptions(first: 150) { totalCount } }",
            {"id": None},
            oma(2),
        ),
        # A selection execution cannot collect fails its field: its own calls are made.
        (
            "query($v: Boolean = true) { subscriptions(first: 10) { nodes { "
            "id @skip(if: $v) resources { id } } } }",
            {"v": None},
            oma(1),
        ),
        (
            "query($v: Boolean = true) { subscriptions(first: 10) @skip(if: $v) { totalCount } }",
            {"v": None},
            oma(0),
        ),
    ],
)
def test_the_estimate_counts_each_call(
    document: str, variables: dict[str, Any] | None, expected: UpstreamCalls
) -> None:
    calls = estimate(document, variables)
    assert calls == expected
    assert calls.total == expected.oma + expected.cbc


def plan(document: str, variables: dict[str, Any] | None = None) -> CallPlan:
    ast = parse(document)
    operation = get_operation_ast(ast)
    assert operation is not None
    values = get_variable_values(SCHEMA, operation.variable_definitions or (), variables or {})
    assert not isinstance(values, list), values
    fragments = {d.name.value: d for d in ast.definitions if isinstance(d, FragmentDefinitionNode)}
    return CostEstimate(SCHEMA, fragments, values).operation(operation)


@pytest.mark.parametrize(
    ("document", "variables", "initial", "deferred"),
    [
        (
            "{ subscriptions(first: 100) { nodes { id ... @defer { resources { id } } } } }",
            None,
            oma(2),
            cbc(100),
        ),
        # Everything below a deferred field is deferred, whatever its own directives.
        (
            "{ subscriptions(first: 100) { nodes { ... @defer { resources { "
            "parent { id } attachedResources { id } } } } } }",
            None,
            oma(2),
            cbc(100 + 8 + 8),
        ),
        (
            "{ subscriptions(first: 100) { nodes { resources { id "
            "... @defer { parent { id } } } } } }",
            None,
            UpstreamCalls(2, 100),
            cbc(8),
        ),
        # Asked for outside the fragment too: it comes with the initial payload.
        (
            "{ subscriptions(first: 10) { nodes { resources { id } "
            "... @defer { resources { status } } } } }",
            None,
            UpstreamCalls(1, 10),
            oma(0),
        ),
        # A deferred root field.
        (
            '{ resource(resourceId: "x") { id } ... @defer { subscriptions(first: 10) { '
            "totalCount } } }",
            None,
            cbc(1),
            oma(1),
        ),
        # @defer(if: false) is no deferral, nor @stream(if: false) a stream.
        (
            "query($d: Boolean!) { subscriptions(first: 10) { nodes { "
            "... @defer(if: $d) { resources { id } } } } }",
            {"d": False},
            UpstreamCalls(1, 10),
            oma(0),
        ),
        (
            "{ subscriptions(first: 10) { nodes @stream(if: false) { resources { id } } } }",
            None,
            UpstreamCalls(1, 10),
            oma(0),
        ),
        # A streamed list: its first items' calls first, the rest's after.
        (
            "{ subscriptions(first: 10) { nodes @stream(initialCount: 3) { resources { id } } } }",
            None,
            UpstreamCalls(1, 3),
            cbc(7),
        ),
        (
            "query($n: Int) { subscriptions(first: 10) { nodes @stream(initialCount: $n) { "
            "resources { id } } } }",
            {"n": 12},
            UpstreamCalls(1, 10),
            oma(0),
        ),
        (
            "{ subscriptions(first: 10) { edges @stream { node { resources { id } } } } }",
            None,
            oma(1),
            cbc(10),
        ),
        # Each subscription's first resource, of 4 expected, comes first: 10 of 40 parents.
        (
            "{ subscriptions(first: 10) { nodes { resources @stream(initialCount: 1) { "
            "attachedResources { id } } } } }",
            None,
            UpstreamCalls(1, 10 + 1),
            cbc(1),
        ),
    ],
)
def test_the_estimate_puts_deferred_and_streamed_calls_apart(
    document: str,
    variables: dict[str, Any] | None,
    initial: UpstreamCalls,
    deferred: UpstreamCalls,
) -> None:
    estimated = plan(document, variables)
    assert (estimated.initial, estimated.deferred) == (initial, deferred)
    assert estimated.calls == initial + deferred
    assert estimated.total == (initial + deferred).total


def test_call_plans_add_up_part_by_part() -> None:
    one = CallPlan(UpstreamCalls(1, 2), UpstreamCalls(3, 4))
    two = CallPlan(UpstreamCalls(10, 20), UpstreamCalls(30, 40))
    assert one + two == CallPlan(UpstreamCalls(11, 22), UpstreamCalls(33, 44))
    assert one.put(UpstreamCalls(5, 6), deferred=False) == CallPlan(
        UpstreamCalls(6, 8), UpstreamCalls(3, 4)
    )
    assert one.put(UpstreamCalls(5, 6), deferred=True) == CallPlan(
        UpstreamCalls(1, 2), UpstreamCalls(8, 10)
    )
    assert one.total == 10


def test_calls_add_up_per_upstream() -> None:
    assert UpstreamCalls(1, 2) + UpstreamCalls(10, 20) == UpstreamCalls(oma=11, cbc=22)
    assert UpstreamCalls(3, 4).total == 7
    with pytest.raises(dataclasses.FrozenInstanceError):
        UpstreamCalls().oma = 1  # type: ignore[misc]


def test_a_merged_tree_is_estimated_once_per_group_of_field_nodes() -> None:
    """Each fragment nests the next under ``parent`` twice (aliased): 2^21 - 2 parent
    fields in the merged tree, each one call, estimated from 20 memoised groups."""
    levels = 20
    fragments = "".join(
        f"fragment F{i} on CloudResource {{ parent {{ ...F{i + 1} }} p: parent {{ ...F{i + 1} }} }}"
        for i in range(levels)
    )
    document = (
        '{ resource(resourceId: "x") { ...F0 } } '
        + fragments
        + f" fragment F{levels} on CloudResource {{ id }}"
    )
    started = time.process_time()
    calls = estimate(document)
    elapsed = time.process_time() - started
    assert calls == cbc(1 + 2 ** (levels + 1) - 2)
    assert elapsed < 0.05, f"{elapsed * 1000:.1f} ms of CPU"


@pytest.mark.parametrize(
    "document",
    [hostile_documents.merged_bomb(20, 8), hostile_documents.fragment_bomb(20, 8)],
    ids=["merged", "root"],
)
def test_a_fragment_bomb_is_estimated_in_linear_time(document: str) -> None:
    started = time.process_time()
    calls = estimate(document)
    elapsed = time.process_time() - started
    assert calls == (oma(1) if "subscriptions" in document else oma(0))
    assert elapsed < 0.05, f"{elapsed * 1000:.1f} ms of CPU"


# -- the estimate against what the gateway sends ------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        "{ subscriptions(first: 99) { nodes { id } } }",
        "{ subscriptions(first: 100) { nodes { id } } }",
        "{ subscriptions(first: 199) { nodes { id } } }",
        "{ resources(first: 500) { totalCount } }",
        "{ resources(first: 501) { totalCount } }",
        "{ resourcesByIds(resourceIds: " + IDS_51 + ") { id } }",
        "{ subscriptions(first: 0) { nodes { resources { id } } } }",
        "query($v: Boolean = true) { subscriptions(first: 10) { nodes { "
        "id @skip(if: $v) resources { id } } } }",
    ],
)
async def test_where_the_estimate_is_exact_the_gateway_makes_those_calls(
    graphql: GraphQLClient, simulator: Simulator, document: str
) -> None:
    variables = {"v": None} if "$v" in document else None
    expected = estimate(document, variables)
    simulator.reset()
    await graphql.post(document, variables)
    counts = simulator.counts()
    assert counts.get("oma.queryresource", 0) == expected.oma
    assert counts.get("cbc.resources_query", 0) == expected.cbc


# -- the budget, as a client sees it ------------------------------------------------

TEN_ORDERS = "{ subscriptions(first: 10) { nodes { id resources { id } } } }"  # 11 calls


@pytest.mark.parametrize(("max_cost", "refused"), [(11, False), (10, True)])
async def test_the_budget_lets_through_what_it_equals(
    make_gateway: GatewayFactory, simulator: Simulator, max_cost: int, refused: bool
) -> None:
    settings = settings_for_tests()
    settings = settings.replace(limits=dataclasses.replace(settings.limits, max_cost=max_cost))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(make_gateway(settings))),
        base_url="http://gateway",
    ) as http:
        simulator.reset()
        body = await GraphQLClient(http).post(TEN_ORDERS)
    if refused:
        (error,) = body["errors"]
        assert error["extensions"] == {"code": "QUERY_TOO_COSTLY", "cost": 11}
        assert error["message"] == (
            "the operation would make about 11 upstream calls; the limit is 10. "
            "Ask for fewer items."
        )
        assert error["locations"] == [{"line": 1, "column": 1}]  # the operation
        assert body["data"] is None
        assert simulator.counts() == {}
    else:
        assert "errors" not in body
        assert len(body["data"]["subscriptions"]["nodes"]) == 10
        assert simulator.counts()["oma.queryresource"] == 1


TWO_OPERATIONS = (
    "query Costly { subscriptions(first: 1000) { nodes { resources { id } } } } "
    'query Cheap { resource(resourceId: "x") { id } }'
)


@pytest.mark.parametrize(("operation_name", "cost"), [("Costly", 11 + 1000), ("Cheap", None)])
async def test_the_named_operation_is_the_one_estimated(
    client: httpx.AsyncClient, simulator: Simulator, operation_name: str, cost: int | None
) -> None:
    simulator.reset()
    response = await client.post(
        "/graphql",
        json={"query": TWO_OPERATIONS, "operationName": operation_name},
        headers={"X-Auth-Token": TOKEN},
    )
    body = response.json()
    if cost is None:
        assert "errors" not in body
        assert simulator.counts() == {"cbc.resources_query": 1}
    else:
        (error,) = body["errors"]
        assert error["extensions"] == {"code": "QUERY_TOO_COSTLY", "cost": cost}
        assert simulator.counts() == {}


async def test_without_a_request_context_the_budget_is_the_operations_alone() -> None:
    schema = build_schema(dataclasses.replace(settings_for_tests().limits, max_cost=1))
    result = await schema.execute("{ subscriptions(first: 100) { totalCount } }")
    (error,) = result.errors or ()
    assert error.message.startswith("the operation would make about 2 upstream calls")

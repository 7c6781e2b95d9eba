"""Random selections over the real schema answer what stock Strawberry answers: the same data
(keys in the same order), the same errors, the same upstream calls."""

from __future__ import annotations

import dataclasses
from typing import Any
from unittest import mock

import httpx
import orjson
from graphql import GraphQLList, GraphQLNonNull, GraphQLObjectType, GraphQLOutputType
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from gateway.server.app import create_app
from gateway.server.runtime import Gateway
from gateway.simulator import Simulator, SimulatorConfig
from schema import build as schema_build
from schema.build import build_schema
from tests.support.helpers import TOKEN, settings_for_tests

SCHEMA = build_schema(production=False)._schema
SIMULATOR = Simulator(SimulatorConfig(seed=11, subscriptions=40))
STATUSES = ["PROVISIONED", "FROZEN", "EXPIRED"]


def object_type(output_type: GraphQLOutputType) -> GraphQLObjectType | None:
    while isinstance(output_type, GraphQLNonNull | GraphQLList):
        output_type = output_type.of_type
    return output_type if isinstance(output_type, GraphQLObjectType) else None


@st.composite
def selection(draw: st.DrawFn, type_name: str, depth: int) -> str:
    """Some fields of a type: leaves, links and nested objects (to ``depth``), with
    aliases, __typename, inline fragments and @include/@skip now and then."""
    parent = SCHEMA.type_map[type_name]
    assert isinstance(parent, GraphQLObjectType)
    names = sorted(parent.fields)
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=6, unique=True))
    parts: list[str] = []
    for name in chosen:
        field = parent.fields[name]
        child = object_type(field.type)
        text = name
        if draw(st.integers(0, 5)) == 0:
            text = f"{draw(st.sampled_from(['a', 'b', 'c']))}{name}: {name}"
        if name == "resources" and type_name == "SoftwareSubscription":
            arguments = []
            main = draw(st.sampled_from([None, True, False]))
            if main is not None:
                arguments.append(f"onlyMainResources: {str(main).lower()}")
            statuses = draw(st.lists(st.sampled_from(STATUSES), max_size=2, unique=True))
            if statuses:
                arguments.append(f"statuses: [{', '.join(statuses)}]")
            if arguments:
                text += f"({', '.join(arguments)})"
        if child is not None:
            if depth == 0:
                continue
            text += " { " + draw(selection(child.name, depth - 1)) + " }"
        directive = draw(st.sampled_from(["", "", "", " @include(if: false)", " @skip(if: false)"]))
        parts.append(text + directive)
    if draw(st.booleans()):
        parts.append("__typename")
    if not parts:
        parts.append("__typename")
    body = " ".join(parts)
    if draw(st.integers(0, 4)) == 0:
        return f"... on {type_name} {{ {body} }}"
    return body


@st.composite
def operation(draw: st.DrawFn) -> str:
    root = draw(st.sampled_from(["subscriptions", "resources", "resourcesByIds", "resource"]))
    depth = draw(st.integers(1, 4))
    if root == "subscriptions":
        first = draw(st.sampled_from([0, 1, 3, 12]))
        inner = draw(selection("SoftwareSubscriptionConnection", depth))
        return f"{{ subscriptions(first: {first}) {{ {inner} }} }}"
    if root == "resources":
        first = draw(st.sampled_from([1, 5, 30]))
        inner = draw(selection("CloudResourceConnection", depth))
        return f"{{ resources(first: {first}) {{ {inner} }} }}"
    ids = ", ".join(f'"{rid}"' for rid in draw(st.lists(st.sampled_from(IDS), max_size=5)))
    inner = draw(selection("CloudResource", depth - 1))
    if root == "resourcesByIds":
        return f"{{ resourcesByIds(resourceIds: [{ids}]) {{ {inner} }} }}"
    return f'{{ resource(resourceId: "{IDS[0]}") {{ {inner} }} }}'


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
@given(query=operation())
async def test_random_selections_answer_as_stock_strawberry(query: str) -> None:
    ours = await answer(query, stock=False)
    stock = await answer(query, stock=True)
    assert ours == stock, query

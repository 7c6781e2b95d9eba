"""@defer and @stream through the gateway's executor: what stock Strawberry answers, what the
operation answers without them, the initial payload before any call of the deferred parts,
those calls after the initial payloads' (the deferred priority), and the shortcut and the
lookahead still at work inside deferred fragments."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from typing import Any, NamedTuple
from unittest import mock

import httpx
import pytest
from graphql.execution.executor import Executor
from hypothesis import HealthCheck, given, settings
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from gateway.server.runtime import Gateway
from gateway.simulator import Simulator, SimulatorConfig
from gateway.upstreams.resilience import CALL_PRIORITY
from schema import build as schema_build
from schema.context import GatewayContext, RequestCredentials
from tests.support.helpers import TOKEN, settings_for_tests
from tests.support.incremental import delivered, merged, plain
from tests.support.selections import operation

SIMULATOR = Simulator(SimulatorConfig(seed=11, subscriptions=40))
IDS = [r["resource_id"] for r in SIMULATOR.dataset(TOKEN).resources[:12]] + ["not-a-resource"]


class Call(NamedTuple):
    upstream: str
    by_ids: bool  # CBC asked for resources by id (a parent, attached resources)
    priority: str


class Recording(httpx.AsyncBaseTransport):
    """The simulator, noting each call's priority as the caller's context had it."""

    def __init__(
        self, upstream: str, calls: list[Call], slow: frozenset[str] = frozenset()
    ) -> None:
        self._inner = httpx.ASGITransport(app=SIMULATOR.app)
        self._upstream = upstream
        self._calls = calls
        self._slow = slow

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        by_ids = b"resource_ids" in request.content
        self._calls.append(Call(self._upstream, by_ids, CALL_PRIORITY.get()))
        if any(order.encode() in request.content for order in self._slow):
            await asyncio.sleep(0.5)
        return await self._inner.handle_async_request(request)


class Run(NamedTuple):
    payloads: list[dict[str, Any]]
    initial_calls: list[Call]  # made when the initial payload was ready
    calls: list[Call]


async def run(query: str, *, stock: bool = False, slow: frozenset[str] = frozenset()) -> Run:
    base = settings_for_tests()
    no_cache = {"cache_ttl": 0}
    configured = base.replace(
        oma=dataclasses.replace(base.oma, **no_cache), cbc=dataclasses.replace(base.cbc, **no_cache)
    )
    calls: list[Call] = []
    executor = StrawberryGraphQLCoreExecutionContext if stock else schema_build.GatewayExecutor
    with mock.patch.object(schema_build, "GatewayExecutor", executor):
        gateway = Gateway.build(
            configured,
            transports={"oma": Recording("oma", calls), "cbc": Recording("cbc", calls, slow)},
        )
    context = GatewayContext(
        upstreams=gateway.upstreams,
        limits=gateway.settings.limits,
        credentials=RequestCredentials.from_headers(TOKEN),
    )
    try:
        result: Any = await gateway.schema.execute(query, context_value=context)
        if not hasattr(result, "initial_result"):
            answer = {"data": result.data}
            if result.errors:
                answer["errors"] = [error.formatted for error in result.errors]
            return Run([answer], list(calls), list(calls))
        initial_calls = list(calls)
        payloads = [result.initial_result.formatted]
        async for subsequent in result.subsequent_results:
            payloads.append(subsequent.formatted)
        return Run(payloads, initial_calls, list(calls))
    finally:
        await gateway.aclose()


def without_directives(query: str) -> str:
    query = re.sub(r" @stream\(initialCount: \d+\)", "", query)
    return re.sub(r"\.\.\. @defer(\(label: \"\w+\"\))? {", "... {", query)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(query=operation(IDS, incremental=True))
async def test_random_deferred_and_streamed_selections_answer_as_stock_strawberry(
    query: str,
) -> None:
    ours = await run(query)
    stock = await run(query, stock=True)
    assert delivered(ours.payloads) == delivered(stock.payloads), query
    # The same calls (stock Strawberry knows no priority).
    assert sorted(call[:2] for call in ours.calls) == sorted(call[:2] for call in stock.calls)
    whole = await run(without_directives(query))
    if "errors" not in whole.payloads[0]:
        assert merged(ours.payloads) == plain(whole.payloads[0]), query


DEFERRED_RESOURCES = """{ subscriptions(first: 12) { nodes { id ... @defer {
    resources { resourceId status parent { resourceId } } } } } }"""


async def test_the_initial_payload_is_ready_before_any_call_of_the_deferred_parts() -> None:
    deferred = await run(DEFERRED_RESOURCES)
    whole = await run(without_directives(DEFERRED_RESOURCES))
    assert [call.upstream for call in deferred.initial_calls] == ["oma"]
    initial = deferred.payloads[0]
    assert initial["hasNext"] is True
    nodes = initial["data"]["subscriptions"]["nodes"]
    assert len(nodes) == 12
    assert all(list(node) == ["id"] for node in nodes)
    assert merged(deferred.payloads) == plain(whole.payloads[0])
    # Twelve orders and the parents, in batches as without @defer.
    assert sorted(deferred.calls) == sorted(
        call._replace(priority="deferred") if call.upstream == "cbc" else call
        for call in whole.calls
    )


async def test_deferred_parts_call_after_the_initial_payloads() -> None:
    result = await run(DEFERRED_RESOURCES)
    priorities = {(call.upstream, call.priority) for call in result.calls}
    assert priorities == {("oma", "interactive"), ("cbc", "deferred")}


async def test_a_deferred_field_below_one_of_the_initial_payload_is_loaded_in_its_own_run() -> None:
    """``resources`` is in the initial payload, its ``parent`` deferred: the lookahead of the
    initial payload does not load the parents."""
    query = """{ subscriptions(first: 12) { nodes { resources { resourceId }
        ... @defer { resources { parent { resourceId } } } } } }"""
    result = await run(query)
    assert not any(call.by_ids for call in result.initial_calls)
    assert {call.priority for call in result.initial_calls} == {"interactive"}
    parents = [call for call in result.calls if call.by_ids]
    assert parents
    assert {call.priority for call in parents} == {"deferred"}
    whole = await run(without_directives(query))
    assert merged(result.payloads) == plain(whole.payloads[0])


async def test_a_streamed_list_loads_only_its_first_items_for_the_initial_payload() -> None:
    query = "{ subscriptions(first: 6) { nodes @stream(initialCount: 2) { id resources { resourceId } } } }"
    result = await run(query)
    initial_nodes = result.payloads[0]["data"]["subscriptions"]["nodes"]
    assert len(initial_nodes) == 2
    cbc = [call for call in result.initial_calls if call.upstream == "cbc"]
    assert len(cbc) == 2
    assert {call.priority for call in cbc} == {"interactive"}
    later = [call for call in result.calls[len(result.initial_calls) :] if call.upstream == "cbc"]
    assert len(later) == 4
    assert {call.priority for call in later} == {"deferred"}
    whole = await run(without_directives(query))
    assert merged(result.payloads) == plain(whole.payloads[0])


class FieldsExecuted:
    """The names of the fields graphql-core executes one by one."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.names: list[str] = []
        original = Executor.execute_field

        def noting(executor: Executor, *args: Any, **kwargs: Any) -> Any:
            self.names.append(args[2][0].node.name.value)
            return original(executor, *args, **kwargs)

        monkeypatch.setattr(Executor, "execute_field", noting)


async def test_the_shortcut_completes_the_objects_of_deferred_fragments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    executed = FieldsExecuted(monkeypatch)
    query = """{ subscriptions(first: 12) { nodes { id ... @defer {
        skuName status resources { resourceId status expiresAt } } } } }"""
    ours = await run(query)
    ours_names = list(executed.names)
    executed.names.clear()
    stock = await run(query, stock=True)
    assert merged(ours.payloads) == merged(stock.payloads)
    assert stock.payloads[0]["hasNext"] is True
    assert executed.names.count("resourceId") > 12
    assert "resourceId" not in ours_names
    assert "expiresAt" not in ours_names
    assert "id" not in ours_names


@pytest.mark.parametrize(
    "query",
    [
        # parent loaded for the initial payload, its status deferred
        """{ subscriptions(first: 12) { nodes { resources { resourceId parent { resourceId } }
            ... @defer { resources { parent { status } } } } } }""",
        # a list of the initial payload, some of its items' fields deferred
        """{ subscriptions(first: 12) { nodes { resources { resourceId }
            ... @defer { resources { status attachedResources { resourceId } } } } } }""",
        # a deferred fragment inside a deferred fragment
        """{ subscriptions(first: 12) { nodes { id ... @defer { resources { resourceId
            ... @defer { parent { resourceId status } } } } } } }""",
        # a streamed list inside a deferred fragment, and the other way round
        """{ subscriptions(first: 12) { ... @defer { nodes @stream(initialCount: 1) { id
            resources { resourceId ... @defer { parent { resourceId } } } } } } }""",
    ],
)
async def test_each_part_comes_when_stock_strawberry_sends_it(query: str) -> None:
    ours = await run(query)
    stock = await run(query, stock=True)
    assert delivered(ours.payloads) == delivered(stock.payloads)
    whole = await run(without_directives(query))
    assert merged(ours.payloads) == plain(whole.payloads[0])


async def test_a_deferred_part_comes_as_its_batch_of_orders_answers() -> None:
    """Deferred parts load orders ten to a batch: under the quota the first come while
    the later ones are still queued, instead of all of them at the end."""
    query = "{ subscriptions(first: 30) { nodes { id ... @defer { resources { resourceId } } } } }"
    ids = [node["id"] for node in (await run(query)).payloads[0]["data"]["subscriptions"]["nodes"]]
    by_id = {s["id"]: s["orderId"] for s in SIMULATOR.dataset(TOKEN).subscriptions}
    # The 26th subscription's order answers late: only its batch of ten waits for it.
    result = await run(query, slow=frozenset({by_id[ids[25]]}))
    node_of = {p["id"]: p["path"][2] for p in result.payloads[0]["pending"]}
    came = [
        {node_of[part["id"]] for part in payload.get("incremental", [])}
        for payload in result.payloads[1:]
    ]
    late = next(index for index, nodes in enumerate(came) if nodes & set(range(20, 30)))
    assert set().union(*came[:late]) == set(range(20))
    assert set().union(*came[late:]) == set(range(20, 30))

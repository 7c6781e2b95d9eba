"""Answers in parts over HTTP: multipart/mixed and text/event-stream payloads that both
formats of client merge into the answer without the directives; a client that cannot
read parts refused before any call; a client that leaves ends the upstream calls."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import httpx
import pytest

from gateway.server.app import create_app, parts_transport
from gateway.server.parts import PartPaths
from gateway.simulator import Simulator
from tests.conftest import GatewayFactory
from tests.support.helpers import TOKEN, batching_settings, settings_for_tests
from tests.support.incremental import (
    merged,
    merged_by_path,
    multipart_payloads,
    plain,
    sse_events,
)
from tests.support.live_server import serve

MULTIPART = "multipart/mixed;incrementalSpec=v0.2, application/graphql-response+json"
SSE = "text/event-stream"

QUERIES = [
    "{ subscriptions(first: 6) { nodes { id ... @defer { resources { resourceId } } } } }",
    # data below the pending path (a subPath)
    """{ subscriptions(first: 6) { nodes { resources { resourceId }
        ... @defer { resources { status parent { resourceId } } } } } }""",
    "{ subscriptions(first: 6) { nodes @stream(initialCount: 2) { id resources { resourceId } } } }",
    # a stream announced inside a deferred part, a part deferred inside a stream
    """{ subscriptions(first: 6) { totalCount ... @defer(label: "all") {
        edges @stream(initialCount: 1) { cursor node { id
          ... @defer(label: "more") { resources { resourceId } } } } } } }""",
]


def whole(query: str) -> str:
    return (
        query.replace(" @stream(initialCount: 2)", "")
        .replace(" @stream(initialCount: 1)", "")
        .replace('... @defer(label: "all") {', "... {")
        .replace('... @defer(label: "more") {', "... {")
        .replace("... @defer {", "... {")
    )


async def post(http: httpx.AsyncClient, query: str, accept: str, **body: Any) -> httpx.Response:
    return await http.post(
        "/graphql",
        json={"query": query, **body},
        headers={"X-Auth-Token": TOKEN, "Accept": accept},
    )


@pytest.mark.parametrize("query", QUERIES)
async def test_multipart_payloads_add_up_to_the_whole_answer_in_either_format(
    client: httpx.AsyncClient, query: str
) -> None:
    response = await post(client, query, MULTIPART)
    assert response.status_code == 200
    payloads = multipart_payloads(response)
    assert len(payloads) >= 2
    assert payloads[0]["hasNext"] is True
    assert payloads[-1]["hasNext"] is False
    expected = plain((await post(client, whole(query), "application/json")).json())
    assert merged(payloads) == expected  # by pending id and subPath (Apollo Client)
    assert merged_by_path(payloads) == expected  # by path (urql)
    assert response.headers["cache-control"].startswith("private, no-store")


@pytest.mark.parametrize("query", QUERIES)
async def test_server_sent_events_carry_the_same_payloads(
    client: httpx.AsyncClient, query: str
) -> None:
    response = await post(client, query, SSE)
    assert response.status_code == 200
    events = sse_events(response)
    assert [name for name, _ in events][-1] == "complete"
    payloads = [data for name, data in events if name == "next"]
    assert all(data is not None for data in payloads)
    expected = plain((await post(client, whole(query), "application/json")).json())
    assert merged(payloads) == expected
    assert merged_by_path(payloads) == expected


async def test_an_operation_in_one_part_goes_as_one_event_to_an_event_stream_client(
    client: httpx.AsyncClient,
) -> None:
    response = await post(client, "{ subscriptions(first: 2) { totalCount } }", SSE)
    events = sse_events(response)
    assert [name for name, _ in events] == ["next", "complete"]
    assert events[0][1] == {"data": {"subscriptions": {"totalCount": 301}}}


@pytest.mark.parametrize("accept", ["application/json", "application/graphql-response+json", ""])
async def test_a_client_that_cannot_read_parts_is_refused_before_any_call(
    client: httpx.AsyncClient, simulator: Simulator, accept: str
) -> None:
    simulator.reset()
    response = await post(client, QUERIES[0], accept)
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "INCREMENTAL_DELIVERY_NOT_ACCEPTED"
    assert "Accept: multipart/mixed" in body["errors"][0]["message"]
    assert body["errors"][0]["locations"] == [{"line": 1, "column": 44}]
    assert simulator.counts() == {}


async def test_a_directive_that_splits_nothing_needs_no_parts(client: httpx.AsyncClient) -> None:
    query = """query($d: Boolean!) { subscriptions(first: 2) { nodes { id
        ... @defer(if: $d) { resources { resourceId } } } } }"""
    response = await post(client, query, "application/json", variables={"d": False})
    body = response.json()
    assert "errors" not in body
    assert len(body["data"]["subscriptions"]["nodes"][0]) == 2


async def test_an_operation_of_a_batch_cannot_be_answered_in_parts(
    make_gateway: GatewayFactory, simulator: Simulator
) -> None:
    app = create_app(make_gateway(batching_settings()))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as http:
        simulator.reset()
        response = await http.post(
            "/graphql",
            json=[{"query": "{ subscriptions(first: 1) { totalCount } }"}, {"query": QUERIES[0]}],
            headers={"X-Auth-Token": TOKEN, "Accept": MULTIPART},
        )
    first, second = response.json()
    assert first == {"data": {"subscriptions": {"totalCount": 301}}}
    assert second["errors"][0]["extensions"]["code"] == "INCREMENTAL_DELIVERY_NOT_ACCEPTED"
    assert simulator.counts() == {"oma.queryresource": 1}


async def test_a_client_that_leaves_in_the_middle_ends_the_upstream_calls(
    make_gateway: GatewayFactory, simulator: Simulator
) -> None:
    """Under a quota of 10 calls/s the deferred parts of 40 subscriptions take 4 s: the
    client reads the first deferred part and leaves, and the calls stop with it (those
    queued for the quota included)."""
    settings = settings_for_tests()
    slow = dataclasses.replace(
        settings.cbc, rate_limit=10.0, rate_limit_max_wait=30.0, deadline=40.0
    )
    gateway = make_gateway(settings.replace(cbc=slow))
    query = "{ subscriptions(first: 40) { nodes { id ... @defer { resources { resourceId } } } } }"
    async with serve(create_app(gateway)) as base, httpx.AsyncClient() as http:
        for accept in (MULTIPART, SSE):
            simulator.reset()
            async with http.stream(
                "POST",
                f"{base}/graphql",
                json={"query": query},
                headers={"X-Auth-Token": TOKEN, "Accept": accept},
            ) as response:
                async for chunk in response.aiter_bytes():
                    if b"incremental" in chunk:
                        break
            await asyncio.sleep(0.3)
            after_leaving = simulator.counts().get("cbc.resources_query", 0)
            await asyncio.sleep(1.5)
            assert simulator.counts().get("cbc.resources_query", 0) == after_leaving, accept
            assert after_leaving < 30


@pytest.mark.parametrize(
    ("accept", "transport"),
    [
        (MULTIPART, "multipart"),
        ("multipart/mixed;deferSpec=20220824,application/json", "multipart"),
        # urql: JSON first, both stream types accepted
        (
            "application/graphql-response+json, application/graphql+json, application/json, "
            "text/event-stream, multipart/mixed",
            "multipart",
        ),
        ("text/event-stream", "sse"),
        ("Text/Event-Stream; charset=utf-8, application/json", "sse"),
        ("text/event-stream;q=0, multipart/mixed", "multipart"),
        ("multipart/mixed;q=0", None),
        ("application/json, text/event-stream", None),
        ("*/*", None),
        ("application/json", None),
        ("", None),
    ],
)
def test_the_transport_for_parts_follows_the_accept_header(
    accept: str, transport: str | None
) -> None:
    assert parts_transport(accept) == transport


def test_each_part_gets_the_whole_path_a_2022_client_reads() -> None:
    paths = PartPaths()
    initial: dict[str, Any] = {
        "data": {"a": {"list": [1, 2]}, "b": None},
        "pending": [{"id": "0", "path": ["a", "list"]}, {"id": "1", "path": ["b"]}],
        "hasNext": True,
    }
    paths.add_paths(initial)
    assert "path" not in initial
    first: dict[str, Any] = {
        "incremental": [
            {"id": "0", "items": [3, 4, 5]},
            {"id": "1", "data": {"x": 1}, "subPath": ["c", 0], "label": None},
        ],
        "pending": [{"id": "2", "path": ["b", "c", 0, "more"], "label": "m"}],
        "hasNext": True,
    }
    paths.add_paths(first)
    assert first["incremental"] == [
        {"id": "0", "items": [3, 4, 5], "path": ["a", "list", 2]},
        {"id": "1", "data": {"x": 1}, "subPath": ["c", 0], "path": ["b", "c", 0]},
    ]
    later: dict[str, Any] = {
        "incremental": [
            {"id": "0", "items": [6], "label": "s"},
            {"id": "2", "items": [7]},
        ],
        "hasNext": False,
    }
    paths.add_paths(later)
    assert later["incremental"] == [
        {"id": "0", "items": [6], "label": "s", "path": ["a", "list", 5]},
        {"id": "2", "items": [7], "path": ["b", "c", 0, "more", 0]},
    ]


def test_a_stream_announced_with_a_deferred_part_starts_after_the_items_that_part_has() -> None:
    paths = PartPaths()
    paths.add_paths({"data": {}, "pending": [{"id": "0", "path": []}], "hasNext": True})
    deferred: dict[str, Any] = {
        "incremental": [{"id": "0", "data": {"edges": [{"n": 1}], "total": 3}}],
        "pending": [{"id": "1", "path": ["edges"]}],
        "hasNext": True,
    }
    paths.add_paths(deferred)
    assert deferred["incremental"][0]["path"] == []
    items: dict[str, Any] = {"incremental": [{"id": "1", "items": [{"n": 2}]}], "hasNext": False}
    paths.add_paths(items)
    assert items["incremental"][0]["path"] == ["edges", 1]

"""The HTTP app: transport rules, probes, metrics, headers, limits, logs."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import Message

from gateway import metrics
from gateway.server.app import create_app
from gateway.server.refusals import GRAPHQL_RESPONSE_JSON
from gateway.simulator import Simulator
from schema.context import GatewayContext
from tests.conftest import GatewayFactory
from tests.support.helpers import TOKEN, GraphQLClient, post_json_text, settings_for_tests

QUERY = "{ subscriptions(first: 2) { totalCount nodes { id } } }"


async def test_post_answers_with_private_no_store_and_a_request_id(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/graphql", json={"query": QUERY}, headers={"X-Auth-Token": TOKEN})
    assert response.status_code == 200
    assert response.json()["data"]["subscriptions"]["totalCount"] > 0
    assert response.headers["cache-control"] == "private, no-store"
    assert len(response.headers["x-request-id"]) == 32


async def test_a_sane_request_id_is_kept_and_a_hostile_one_replaced(
    client: httpx.AsyncClient,
) -> None:
    kept = await client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert kept.headers["x-request-id"] == "abc-123"
    replaced = await client.get("/healthz", headers={"X-Request-Id": "x\u0000" * 200})
    assert replaced.headers["x-request-id"] != "x\u0000" * 200


async def test_get_runs_queries_but_never_mutations(
    client: httpx.AsyncClient, simulator: Simulator
) -> None:
    response = await client.get(
        "/graphql", params={"query": QUERY}, headers={"X-Auth-Token": TOKEN}
    )
    assert response.status_code == 200 and response.json()["data"]["subscriptions"]["nodes"]
    simulator.reset()
    mutation = await client.get(
        "/graphql", params={"query": "mutation { x }"}, headers={"X-Auth-Token": TOKEN}
    )
    # GraphQL over HTTP: 405, halting before execution.
    assert refusal(mutation) == (
        405,
        "MUTATION_FORBIDDEN",
        "Mutations can only be sent over HTTP POST",
    )
    assert mutation.headers["allow"] == "POST"
    assert sum(simulator.counts().values()) == 0


def refusal(response: httpx.Response) -> tuple[int, str, str]:
    """A refusal's status, code and message; it is a GraphQL response without data."""
    body = response.json()
    (error,) = body["errors"]
    assert "data" not in body
    return response.status_code, error["extensions"]["code"], error["message"]


BIG = "{ __typename }" + " " * (settings_for_tests().limits.max_body_bytes + 10)
REFUSED: list[tuple[str, dict[str, object], tuple[int, str, str]]] = [
    (
        "a form post",
        {
            "content": "query=%7B__typename%7D",
            "headers": {"Content-Type": "application/x-www-form-urlencoded"},
        },
        (
            400,
            "INVALID_CONTENT_TYPE_HEADER",
            "A GraphQL POST body is JSON: send Content-Type: application/json",
        ),
    ),
    (
        "text/plain",
        {"content": "{ __typename }", "headers": {"Content-Type": "text/plain"}},
        (
            400,
            "INVALID_CONTENT_TYPE_HEADER",
            "A GraphQL POST body is JSON: send Content-Type: application/json",
        ),
    ),
    (
        "no content type",
        {"content": '{"query": "{ __typename }"}'},
        (
            400,
            "INVALID_CONTENT_TYPE_HEADER",
            "A GraphQL POST body is JSON: send Content-Type: application/json",
        ),
    ),
    (
        "bad JSON",
        {"content": "{not json", "headers": {"Content-Type": "application/json"}},
        (
            400,
            "INVALID_GRAPHQL_REQUEST",
            "Unable to parse the request body as JSON: Expecting property name enclosed in "
            "double quotes: line 1 column 2 (char 1)",
        ),
    ),
    (
        "no query",
        {"json": {"variables": {}}},
        (
            400,
            "MISSING_QUERY_STRING",
            "No GraphQL document in the request: send `query`, a `documentId` or the "
            "`persistedQuery` extension",
        ),
    ),
    (
        "an empty query",
        {"json": {"query": ""}},
        (400, "MISSING_QUERY_STRING", "The GraphQL document is empty"),
    ),
    (
        "an operationName that is no string",
        {"json": {"query": "{ __typename }", "operationName": ["A"]}},
        (400, "INVALID_GRAPHQL_REQUEST", "The request has an `operationName` that is not a string"),
    ),
    (
        "a batch, with batching off",
        {"json": [{"query": QUERY}, {"query": QUERY}]},
        (400, "BATCHING_NOT_ENABLED", "Batching is not enabled: send one operation"),
    ),
    (
        "a body over the limit, declared",
        {"json": {"query": BIG}},
        (413, "REQUEST_BODY_TOO_LARGE", "The request body is over 65536 bytes"),
    ),
    (
        "a body over the limit, streamed",
        {"content": "streamed", "headers": {"Content-Type": "application/json"}},
        (413, "REQUEST_BODY_TOO_LARGE", "The request body is over 65536 bytes"),
    ),
]


@pytest.mark.parametrize(("name", "request_", "expected"), REFUSED, ids=[r[0] for r in REFUSED])
@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        (None, "application/json"),
        ("application/json", "application/json"),
        ("application/graphql-response+json, application/json;q=0.9", GRAPHQL_RESPONSE_JSON),
    ],
)
async def test_every_refusal_is_a_graphql_response_with_a_code_and_no_upstream_call(
    client: httpx.AsyncClient,
    simulator: Simulator,
    name: str,
    request_: dict[str, Any],
    expected: tuple[int, str, str],
    accept: str | None,
    media_type: str,
) -> None:
    simulator.reset()
    headers = {"X-Auth-Token": TOKEN, **request_.get("headers", {})}
    if accept is not None:
        headers["Accept"] = accept
    kwargs = {key: value for key, value in request_.items() if key != "headers"}
    if kwargs.get("content") == "streamed":
        kwargs["content"] = chunks(b"x" * 40_000, 2)  # no Content-Length: counted as it comes
    response = await client.post("/graphql", headers=headers, **kwargs)
    assert refusal(response) == expected, name
    assert response.headers["content-type"] == f"{media_type}; charset=utf-8"
    assert response.headers["cache-control"] == "private, no-store"
    assert simulator.counts() == {}


async def chunks(chunk: bytes, count: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield chunk


async def test_routing_refusals_are_graphql_responses_too(client: httpx.AsyncClient) -> None:
    assert refusal(await client.get("/nowhere")) == (404, "NOT_FOUND", "Not Found")
    put = await client.put("/graphql", json={"query": QUERY})
    assert refusal(put) == (405, "METHOD_NOT_ALLOWED", "Method Not Allowed")
    assert {"GET", "POST"} <= set(put.headers["allow"].split(", "))


async def test_a_get_without_a_document_is_refused_not_shown_an_ide(
    client: httpx.AsyncClient,
) -> None:
    # Accept */* with no query: Strawberry answered 404 "Not Found" (its IDE is off).
    response = await client.get("/graphql", headers={"Accept": "*/*"})
    assert refusal(response)[:2] == (400, "MISSING_QUERY_STRING")


async def test_a_refusal_is_logged_with_its_code_and_reason(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="gateway.request"):
        await client.post("/graphql", json=[{"query": QUERY}], headers={"X-Auth-Token": TOKEN})
        await client.post("/graphql", json={"query": BIG})
        await client.post(
            "/graphql",
            json={"query": "{ nope }"},
            headers={"Accept": "application/graphql-response+json"},
        )
        await client.post("/graphql", json={"query": "{ nope }"})  # 200: no reason to log
    batch, too_large, invalid, answered = [
        r.__dict__ for r in caplog.records if r.name == "gateway.request"
    ]
    assert batch["status"] == 400 and batch["error_codes"] == ["BATCHING_NOT_ENABLED"]
    assert batch["reason"] == "Batching is not enabled: send one operation"
    assert too_large["status"] == 413 and too_large["error_codes"] == ["REQUEST_BODY_TOO_LARGE"]
    assert too_large["reason"] == "The request body is over 65536 bytes"
    assert invalid["status"] == 400 and invalid["error_codes"] == ["GRAPHQL_VALIDATION_FAILED"]
    assert invalid["reason"] == "Cannot query field 'nope' on type 'Query'."
    assert answered["status"] == 200 and "reason" not in answered


async def test_refusals_count_as_errors_of_no_operation(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics, "_operation_labels", set())
    before = await scrape(client)
    tenant = {"X-Auth-Token": TOKEN}
    await client.post("/graphql", json={"query": QUERY}, headers=tenant)  # vouched for
    await client.post("/graphql", json=[{"query": QUERY}], headers=tenant)
    await client.post("/graphql", json={"query": BIG}, headers=tenant)
    await client.post("/graphql", json={"query": "query A { __typename }", "operationName": "B"})
    after = await scrape(client)
    assert moved(
        before, after, "gateway_graphql_requests_total", "gateway_graphql_errors_total"
    ) == {
        "gateway_graphql_requests_total{operation=anonymous,outcome=ok}": 1,
        "gateway_graphql_requests_total{operation=invalid,outcome=error}": 3,
        "gateway_graphql_errors_total{code=BATCHING_NOT_ENABLED}": 1,
        "gateway_graphql_errors_total{code=REQUEST_BODY_TOO_LARGE}": 1,
        "gateway_graphql_errors_total{code=OPERATION_RESOLUTION_FAILURE}": 1,
    }


async def test_the_memory_cache_is_a_backend_that_is_up(make_gateway: GatewayFactory) -> None:
    metrics.CACHE_BACKEND_UP.set(0)  # as a Redis that went away in an earlier test left it
    app = create_app(make_gateway(settings_for_tests()))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as http:
        series = await scrape(http)
    assert series[("gateway_cache_backend_up", frozenset())] == 1.0


# --- GetOperation and ExecuteRequest (the GraphQL spec), as the gateway applies them ----------

TWO = "query First { __typename } query Second { subscriptions(first: 1) { totalCount } }"


async def post(
    client: httpx.AsyncClient, body: dict[str, Any], accept: str = "application/json"
) -> httpx.Response:
    return await client.post(
        "/graphql", json=body, headers={"X-Auth-Token": TOKEN, "Accept": accept}
    )


async def test_one_operation_and_no_name_runs_it(client: httpx.AsyncClient) -> None:
    for body in ({"query": "{ __typename }"}, {"query": "query Only { __typename }"}):
        assert (await post(client, body)).json() == {"data": {"__typename": "Query"}}


async def test_an_empty_operation_name_is_none_given(client: httpx.AsyncClient) -> None:
    response = await post(client, {"query": "query Only { __typename }", "operationName": ""})
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_the_named_operation_runs_not_the_first(
    client: httpx.AsyncClient, simulator: Simulator
) -> None:
    simulator.reset()
    response = await post(client, {"query": TWO, "operationName": "Second"})
    assert response.json() == {"data": {"subscriptions": {"totalCount": 301}}}
    first = await post(client, {"query": TWO, "operationName": "First"})
    assert first.json() == {"data": {"__typename": "Query"}}
    assert simulator.counts() == {"oma.queryresource": 1}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"query": TWO},
            "Must provide operation name if query contains multiple operations.",
        ),
        (
            {"query": "{ a: __typename } { b: __typename }"},
            "Must provide operation name if query contains multiple operations.",
        ),
        ({"query": TWO, "operationName": "Third"}, 'Unknown operation named "Third".'),
        ({"query": "{ __typename }", "operationName": "Named"}, 'Unknown operation named "Named".'),
        (
            {"query": "{ __typename }", "operationName": "N" * 100},
            f'Unknown operation named "{"N" * 80}...".',
        ),
        ({"query": "fragment F on Query { __typename }"}, "Must provide an operation."),
    ],
)
@pytest.mark.parametrize(
    ("accept", "status"),
    [("application/json", 200), ("application/graphql-response+json", 400)],
)
async def test_no_operation_to_run_is_a_request_error_and_no_call(
    client: httpx.AsyncClient,
    simulator: Simulator,
    body: dict[str, Any],
    message: str,
    accept: str,
    status: int,
) -> None:
    simulator.reset()
    response = await post(client, body, accept)
    assert response.status_code == status
    (error,) = response.json()["errors"]
    assert error == {"message": message, "extensions": {"code": "OPERATION_RESOLUTION_FAILURE"}}
    # A request error: execution never began (without data under graphql-response+json).
    assert response.json().get("data") is None
    assert simulator.counts() == {}


async def test_variables_that_do_not_coerce_are_a_request_error_and_no_call(
    client: httpx.AsyncClient, simulator: Simulator
) -> None:
    simulator.reset()
    body = {
        "query": "query($n: Int!) { subscriptions(first: $n) { totalCount } }",
        "variables": {"n": "many"},
    }
    response = await post(client, body, "application/graphql-response+json")
    assert response.status_code == 400 and "data" not in response.json()
    (error,) = response.json()["errors"]
    assert "'many'" in error["message"] and error["extensions"]["code"]
    assert simulator.counts() == {}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("mutation { steal }", "The mutation operation is not supported by the schema."),
        ("subscription { watch }", "The subscription operation is not supported by the schema."),
    ],
)
async def test_only_queries_execute_there_being_no_mutation_or_subscription_type(
    client: httpx.AsyncClient, simulator: Simulator, query: str, message: str
) -> None:
    simulator.reset()
    response = await post(client, {"query": query})
    (error,) = response.json()["errors"][:1]
    assert error["message"] == message
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert simulator.counts() == {}


async def test_probes(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "alive"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ok" and body["breakers"] == {"oma": "closed", "cbc": "closed"}
    assert body["cache"]["backend"] == "memory"


async def test_readiness_is_503_while_draining(client: httpx.AsyncClient) -> None:
    client_app = client._transport.app  # type: ignore[attr-defined]
    client_app.state.gateway.draining = True
    response = await client.get("/readyz")
    assert response.status_code == 503 and response.json()["status"] == "draining"


Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient) -> Series:
    """Every sample /metrics shows, by name and labels."""
    text = (await client.get("/metrics")).text
    assert TOKEN not in text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def moved(before: Series, after: Series, *names: str) -> dict[str, float]:
    """The series of ``names`` that changed, each as name{labels} with its increase."""
    changes = {}
    for (name, labels), value in after.items():
        increase = value - before.get((name, labels), 0.0)
        if name in names and increase:
            rendered = ",".join(f"{k}={v}" for k, v in sorted(labels))
            changes[f"{name}{{{rendered}}}"] = increase
    return changes


async def test_metrics_count_requests_upstream_calls_and_cache(client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    # One page of OMA's: fetched (a miss), then answered from the cache (a hit).
    for _ in range(2):
        await client.post(
            "/graphql", json={"query": "query Dash " + QUERY}, headers={"X-Auth-Token": TOKEN}
        )
    # Refused before any call: an error, and nothing upstream or in the cache.
    await client.post(
        "/graphql",
        json={"query": '{ subscriptions(after: "bm90LWEtY3Vyc29y") { totalCount } }'},
        headers={"X-Auth-Token": TOKEN},
    )
    after = await scrape(client)
    assert moved(
        before,
        after,
        "gateway_graphql_requests_total",
        "gateway_graphql_request_seconds_count",
        "gateway_graphql_errors_total",
        "gateway_upstream_calls_total",
        "gateway_upstream_call_seconds_count",
        "gateway_cache_events_total",
    ) == {
        "gateway_graphql_requests_total{operation=Dash,outcome=ok}": 2,
        "gateway_graphql_request_seconds_count{operation=Dash}": 2,
        "gateway_graphql_requests_total{operation=anonymous,outcome=error}": 1,
        "gateway_graphql_request_seconds_count{operation=anonymous}": 1,
        "gateway_graphql_errors_total{code=BAD_USER_INPUT}": 1,
        "gateway_upstream_calls_total{endpoint=queryresource,outcome=ok,upstream=oma}": 1,
        "gateway_upstream_call_seconds_count{endpoint=queryresource,upstream=oma}": 1,
        "gateway_cache_events_total{event=miss,upstream=oma}": 1,
        "gateway_cache_events_total{event=hit,upstream=oma}": 1,
    }


async def test_one_log_line_per_request_and_no_token_in_it(
    graphql: GraphQLClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        await graphql.post("query Named " + QUERY)
    lines = [r for r in caplog.records if r.name == "gateway.request"]
    assert len(lines) == 1
    line = lines[0]
    assert line.operation == "Named"  # type: ignore[attr-defined]
    assert line.upstream_calls == 1  # type: ignore[attr-defined]
    assert all(TOKEN not in r.getMessage() and TOKEN not in str(r.__dict__) for r in caplog.records)


async def test_development_offers_suggestions(client: httpx.AsyncClient) -> None:
    typo = await client.post("/graphql", json={"query": "{ subscriptionz { totalCount } }"})
    assert "Did you mean" in typo.text


async def test_cors_allows_configured_origins_only(make_gateway: GatewayFactory) -> None:
    import dataclasses

    settings = settings_for_tests()
    settings = settings.replace(
        server=dataclasses.replace(settings.server, cors_origins=("https://app.example",))
    )
    app = create_app(make_gateway(settings))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as http:
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-auth-token",
        }
        allowed = await http.options(
            "/graphql", headers={"Origin": "https://app.example", **preflight}
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        assert "x-auth-token" in allowed.headers["access-control-allow-headers"].lower()
        refused = await http.options(
            "/graphql", headers={"Origin": "https://evil.example", **preflight}
        )
        assert "access-control-allow-origin" not in refused.headers
        simple = await http.post(
            "/graphql", json={"query": "{ __typename }"}, headers={"Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in simple.headers


async def test_no_cors_headers_without_configured_origins(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"Origin": "https://app.example"}
    )
    assert "access-control-allow-origin" not in response.headers


async def test_a_request_lets_go_of_what_it_loaded_once_answered(
    make_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    close = GatewayContext.close

    def recorded_close(context: GatewayContext) -> None:
        events.append("released")
        close(context)

    monkeypatch.setattr(GatewayContext, "close", recorded_close)
    app = create_app(make_gateway())
    query = "{ subscriptions(first: 3) { nodes { id resources { resourceId } } } }"
    sent: list[bytes] = []
    received: list[Message] = []

    async def receive() -> Message:
        return received.pop() if received else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            events.append("sent")
            sent.append(message.get("body", b""))

    for body in (orjson.dumps({"query": query}), b"{not json"):
        events.clear()
        sent.clear()
        received[:] = [{"type": "http.request", "body": body, "more_body": False}]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/graphql",
            "raw_path": b"/graphql",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"content-type", b"application/json"), (b"x-auth-token", b"t")],
            "client": ("127.0.0.1", 1),
            "server": ("gateway", 80),
        }
        await app(scope, receive, send)
        # Released once per request, a refused body's too; the answer still goes out whole.
        assert events.count("released") == 1
        assert "sent" in events and b"".join(sent)


async def test_operation_names_beyond_the_bound_share_one_series(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fresh set of admitted names: earlier tests in this process admitted theirs.
    monkeypatch.setattr(metrics, "_operation_labels", set())
    bound = metrics.MAX_OPERATION_LABELS

    def count(operation: str) -> float:
        labels = {"operation": operation, "outcome": "ok"}
        return metrics.REGISTRY.get_sample_value("gateway_graphql_requests_total", labels) or 0.0

    others_before = count(metrics.OTHER_OPERATION)
    # A tenant the upstreams have answered: its names are its own.
    tenant = {"X-Auth-Token": TOKEN}
    first = {"query": "{ subscriptions(first: 1) { totalCount } }"}
    assert "errors" not in (await client.post("/graphql", json=first, headers=tenant)).json()
    names = [f"Flood{i}" for i in range(bound + 30)]
    for name in [*names, names[0]]:
        response = await client.post(
            "/graphql",
            json={"query": f"query {name} {{ __typename }}", "operationName": name},
            headers=tenant,
        )
        assert response.status_code == 200
    text = (await client.get("/metrics")).text
    series = set(re.findall(r'operation="(Flood\d+)"', text))
    assert series == set(names[:bound])  # the first names seen, each as itself
    assert count(names[0]) == 2 and count(names[bound - 1]) == 1
    assert count(metrics.OTHER_OPERATION) - others_before == 30
    assert f'operation="{metrics.OTHER_OPERATION}"' in text


async def test_names_from_strangers_and_invalid_documents_take_no_series(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics, "_operation_labels", set())

    def count(operation: str, outcome: str = "ok") -> float:
        labels = {"operation": operation, "outcome": outcome}
        return metrics.REGISTRY.get_sample_value("gateway_graphql_requests_total", labels) or 0.0

    unverified, invalid = count("unverified"), count("invalid", "error")
    for index in range(150):
        # No token at all, and an invented one the upstreams never answered.
        headers = {"X-Auth-Token": f"invented{index}"} if index % 2 else {}
        await client.post(
            "/graphql",
            json={"query": f"query Junk{index} {{ __typename }}", "operationName": f"Junk{index}"},
            headers=headers,
        )
        await client.post("/graphql", json={"query": f"query Bad{index} {{ nope }}"})
    text = (await client.get("/metrics")).text
    assert not re.findall(r'operation="(Junk|Bad)\d+"', text)
    assert count("unverified") - unverified == 150
    assert count("invalid", "error") - invalid == 150
    assert metrics._operation_labels == set()  # every place is still free for the tenants


async def test_a_large_numeric_id_reaches_the_upstream_digit_for_digit(
    client: httpx.AsyncClient, simulator: Simulator
) -> None:
    simulator.reset()
    body = (
        b'{"query": "query($id: ID!) { resource(resourceId: $id) { resourceId } }",'
        b' "variables": {"id": 123456789012345678901234567}}'
    )
    response = await post_json_text(client, body)
    assert response.status_code == 200
    (call,) = simulator.calls
    assert call["body"]["resource_ids"] == ["123456789012345678901234567"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"query": "query A { __typename }", "operationName": "\\ud800"}',
        b'{"query": "{ __typename }", "variables": {"x": ["\\udfff"]}}',
    ],
)
async def test_a_lone_surrogate_anywhere_in_the_body_is_a_400(
    client: httpx.AsyncClient, simulator: Simulator, body: bytes
) -> None:
    # Echoed in an error (an unknown operation's name), it could not be written: a 500.
    simulator.reset()
    response = await post_json_text(client, body)
    assert response.status_code == 400
    assert "surrogate" in response.text
    assert not simulator.calls


async def test_an_escaped_character_outside_the_basic_plane_is_fine(
    client: httpx.AsyncClient,
) -> None:
    body = b'{"query": "{ __typename }", "variables": {"x": "\\ud83d\\ude00"}}'
    response = await post_json_text(client, body)
    assert response.status_code == 200

"""The HTTP app: transport rules, probes, metrics, headers, limits, logs."""

from __future__ import annotations

import logging
import re

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import Message

from gateway import metrics
from gateway.server.app import create_app
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
    assert mutation.status_code in (400, 405)
    assert sum(simulator.counts().values()) == 0


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        ("query=%7B__typename%7D", "application/x-www-form-urlencoded"),
        ("{ __typename }", "text/plain"),
        ("{not json", "application/json"),
    ],
)
async def test_wrong_bodies_are_refused(
    client: httpx.AsyncClient, content: str, content_type: str
) -> None:
    response = await client.post(
        "/graphql", content=content, headers={"Content-Type": content_type}
    )
    assert response.status_code == 400


async def test_batches_are_refused_unless_configured(
    client: httpx.AsyncClient, simulator: Simulator
) -> None:
    simulator.reset()
    response = await client.post(
        "/graphql", json=[{"query": QUERY}, {"query": QUERY}], headers={"X-Auth-Token": TOKEN}
    )
    assert response.status_code == 400
    assert sum(simulator.counts().values()) == 0


async def test_an_oversized_body_is_413(client: httpx.AsyncClient) -> None:
    big = "{ __typename }" + " " * (settings_for_tests().limits.max_body_bytes + 10)
    response = await client.post("/graphql", json={"query": big})
    assert response.status_code == 413


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

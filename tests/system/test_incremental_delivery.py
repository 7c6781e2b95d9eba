"""@defer and @stream through real clients (npm, tests/clients/incremental.mjs): Apollo
Client 4, urql and graphql-sse's client each show the first payload before the parts the
upstreams are slow to give, and end with what the query answers without the directives."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from gateway.server.app import create_app
from gateway.simulator import Simulator
from tests.conftest import GatewayFactory
from tests.support.incremental import merged
from tests.support.live_server import serve

CLIENTS = Path(__file__).resolve().parents[1] / "clients"
CBC_LATENCY = 0.4

DEFERRED = """{ subscriptions(first: 5) { totalCount nodes { id
    ... @defer(label: "resources") { resources { resourceId status
      ... @defer(label: "parent") { parent { resourceId } } } } } } }"""
STREAMED = """{ subscriptions(first: 5) { nodes @stream(initialCount: 2) { id
    resources { resourceId } } } }"""


async def run_client(base: str, kind: str, token: str, query: str) -> dict[str, Any]:
    node = shutil.which("node")
    assert node, "Node.js runs the clients (npm packages @apollo/client, @urql/core, graphql-sse)"
    assert (CLIENTS / "node_modules" / "graphql-sse").is_dir(), (
        "run .ci/setup test (npm ci in tests/clients)"
    )
    process = await asyncio.create_subprocess_exec(
        node,
        str(CLIENTS / "incremental.mjs"),
        kind,
        f"{base}/graphql",
        token,
        query,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    seen: dict[str, Any] = json.loads(stdout)
    return seen


def without_typenames(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_typenames(v) for k, v in value.items() if k != "__typename"}
    if isinstance(value, list):
        return [without_typenames(item) for item in value]
    return value


@pytest.mark.parametrize("query", [DEFERRED, STREAMED], ids=["defer", "stream"])
@pytest.mark.parametrize("kind", ["apollo", "urql", "sse"])
async def test_a_real_client_shows_the_first_payload_first_and_ends_with_the_whole_answer(
    make_gateway: GatewayFactory, simulator: Simulator, kind: str, query: str
) -> None:
    simulator.knobs.cbc.latency = CBC_LATENCY
    token = f"incremental-{kind}"
    async with serve(create_app(make_gateway())) as base:
        seen = await run_client(base, kind, token, query)
    results, whole = seen["results"], seen["whole"]
    if kind == "sse":
        # graphql-sse's client gives each payload as it came: merged here.
        payloads = [result["payload"] for result in results]
        final = merged(payloads)
        assert "errors" not in final
        assert final["data"] == whole
        first_at = results[0]["at"]
        assert results[0]["payload"]["hasNext"] is True
        types = {response["contentType"] for response in seen["responses"]}
        assert types == {"text/event-stream"}
    else:
        final = results[-1]
        assert "error" not in final
        assert without_typenames(final["data"]) == without_typenames(whole)
        shown = [r for r in results if r["data"] is not None]
        first_at = shown[0]["at"]
        first = without_typenames(shown[0]["data"])["subscriptions"]
        # The first payload the application sees has the subscriptions, not yet every
        # subscription's resources.
        if query is DEFERRED:
            assert first["totalCount"] == 301
            assert not any("resources" in node for node in first["nodes"])
        else:
            assert len(first["nodes"]) == 2
        assert seen["responses"][0]["contentType"].startswith("multipart/mixed")
    # The deferred parts wait for CBC; the first payload did not.
    assert results[-1]["at"] - first_at >= CBC_LATENCY * 1000 * 0.8
    ids = [s["id"] for s in simulator.dataset(token).subscriptions[:5]]
    assert [node["id"] for node in without_typenames(whole)["subscriptions"]["nodes"]] == ids

"""GraphQL-over-HTTP conformance: graphql-http's audit suite against the running gateway,
and real clients' automatic persisted queries (Apollo Client, urql) against it."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from gateway.server.app import create_app
from gateway.server.runtime import Gateway
from gateway.simulator import Simulator
from tests.support.live_server import serve

AUDIT = Path(__file__).resolve().parents[1] / "audit"
CLIENTS = Path(__file__).resolve().parents[1] / "clients"
# SHOULD-level audits the gateway does not follow, each with its reason. None today.
ACCEPTED_WARNINGS: dict[str, str] = {}


async def test_no_must_or_should_failure_in_the_graphql_http_audit(gateway: Gateway) -> None:
    node = shutil.which("node")
    assert node, "Node.js runs the audit (npm package graphql-http)"
    assert (AUDIT / "node_modules" / "graphql-http").is_dir(), (
        "run .ci/setup (npm ci in tests/audit)"
    )
    async with serve(create_app(gateway)) as base:
        process = await asyncio.create_subprocess_exec(
            node,
            str(AUDIT / "audit.mjs"),
            f"{base}/graphql",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    results = json.loads(stdout)
    assert len(results) > 40
    failures = [r for r in results if r["status"] == "error"]
    warnings = [r for r in results if r["status"] == "warn" and r["name"] not in ACCEPTED_WARNINGS]
    assert not failures, failures
    assert not warnings, warnings


async def run_client(gateway: Gateway, kind: str, token: str, method: str) -> dict[str, Any]:
    """What ``tests/clients/persisted.mjs`` saw: each run's answer and every HTTP request."""
    node = shutil.which("node")
    assert node, "Node.js runs the clients (npm packages @apollo/client, @urql/core)"
    assert (CLIENTS / "node_modules" / "@apollo" / "client").is_dir(), (
        "run .ci/setup test (npm ci in tests/clients)"
    )
    async with serve(create_app(gateway)) as base:
        process = await asyncio.create_subprocess_exec(
            node,
            str(CLIENTS / "persisted.mjs"),
            kind,
            f"{base}/graphql",
            token,
            method,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    seen: dict[str, Any] = json.loads(stdout)
    return seen


@pytest.mark.parametrize("method", ["post", "get"])
@pytest.mark.parametrize("kind", ["apollo", "urql"])
async def test_real_clients_fall_back_to_the_document_once_then_send_only_its_hash(
    gateway: Gateway, simulator: Simulator, kind: str, method: str
) -> None:
    """Apollo Client's PersistedQueryLink and urql's persistedExchange: the first request
    sends the hash alone and is told PersistedQueryNotFound, the client sends the document
    with it, and every later request is the hash alone, answered with the data."""
    token = f"persisting-{kind}-{method}"
    seen = await run_client(gateway, kind, token, method)
    ids = [s["id"] for s in simulator.dataset(token).subscriptions]
    answers = [answer["data"]["subscriptions"] for answer in seen["answers"]]
    assert [answer["error"] for answer in seen["answers"]] == [None, None, None]
    assert [a["totalCount"] for a in answers] == [301, 301, 301]
    assert [[n["id"] for n in a["nodes"]] for a in answers] == [ids[:2], ids[:2], ids[:3]]
    sent = [(r["method"], r["query"], r["hash"], r["status"]) for r in seen["requests"]]
    hashed = "GET" if method == "get" else "POST"
    # Apollo sends the document by POST (it may be long), urql as it sent the hash.
    whole = "POST" if kind == "apollo" else hashed
    assert sent == [
        (hashed, False, True, 404),
        (whole, True, True, 200),
        (hashed, False, True, 200),
        (hashed, False, True, 200),
    ]
    assert all(
        r["contentType"].startswith("application/graphql-response+json") for r in seen["requests"]
    )

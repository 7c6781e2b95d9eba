"""Helpers shared by tests: fixture files, test settings, a GraphQL client, warnings."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson

from gateway.config import Settings

FIXTURES = Path(__file__).parent.parent / "fixtures"
TOKEN = "token-alice"
OTHER_TOKEN = "token-bob"


def load_fixture(name: str) -> Any:
    return orjson.loads((FIXTURES / name).read_bytes())


def settings_for_tests(**changes: Any) -> Settings:
    """Development profile, the rate limit off (the simulator has no quota), quick deadlines."""
    base = Settings.from_env({"GATEWAY_PROFILE": "development"})
    upstream_changes = {
        "base_url": "http://simulator",
        "rate_limit": 0.0,
        "deadline": 5.0,
        "retry_backoff": 0.01,
    }
    settings = base.replace(
        oma=dataclasses.replace(base.oma, **upstream_changes),
        cbc=dataclasses.replace(base.cbc, **upstream_changes),
    )
    return settings.replace(**changes) if changes else settings


def batching_settings(**limit_changes: Any) -> Settings:
    """``settings_for_tests`` with JSON arrays of operations allowed."""
    settings = settings_for_tests()
    limits = dataclasses.replace(settings.limits, allow_batching=True, **limit_changes)
    return settings.replace(limits=limits)


async def post_json_text(
    http: httpx.AsyncClient, body: bytes, *, token: str = TOKEN
) -> httpx.Response:
    """POSTs a body as the client wrote it: JSON text a Python value cannot always make
    (a lone surrogate escape, an integer past 64 bits)."""
    return await http.post(
        "/graphql",
        content=body,
        headers={"Content-Type": "application/json", "X-Auth-Token": token},
    )


class GraphQLClient:
    """Posts operations to the gateway app like a frontend would."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def post(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = TOKEN,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        all_headers = {"X-Auth-Token": token} if token else {}
        all_headers.update(headers or {})
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=all_headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


T = TypeVar("T")
Warned = list[tuple[str, object, object]]


def with_warnings(run: Callable[..., T], *args: Any) -> tuple[T, Warned]:
    """``run(*args)``'s result and the warnings the upstream readers logged meanwhile, each
    as (message, field, value); they are kept from the log's other handlers."""
    warnings: Warned = []

    class Kept(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            fields = record.__dict__
            warnings.append((record.getMessage(), fields.get("field"), fields.get("value")))

    logger = logging.getLogger("gateway.upstream")
    kept = Kept(logging.WARNING)
    logger.addHandler(kept)
    propagate, logger.propagate = logger.propagate, False
    try:
        return run(*args), warnings
    finally:
        logger.removeHandler(kept)
        logger.propagate = propagate

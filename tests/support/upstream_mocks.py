"""Mock upstreams for client tests: httpx.MockTransport handlers that record requests."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest

from gateway.cache.pages import PageCache
from gateway.config import CacheSettings
from gateway.upstreams.clients import Upstreams, build_upstreams
from tests.support.helpers import load_fixture, settings_for_tests

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A mock upstream that records every request it gets."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def bodies(self) -> list[dict[str, Any]]:
        return [orjson.loads(r.content) for r in self.requests]


def example_oma_response(_: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=load_fixture("oma_example_response.json"))


@pytest.fixture
async def make_upstreams() -> AsyncIterator[Callable[..., Upstreams]]:
    built: list[Upstreams] = []

    def make(
        recorder: Recorder, *, security: dict[str, Any] | None = None, **upstream_changes: Any
    ) -> Upstreams:
        settings = settings_for_tests()
        settings = settings.replace(
            oma=dataclasses.replace(settings.oma, **upstream_changes),
            security=dataclasses.replace(settings.security, **(security or {})),
        )
        upstreams = build_upstreams(
            settings,
            PageCache.from_settings(CacheSettings()),
            transports={"oma": httpx.MockTransport(recorder), "cbc": httpx.MockTransport(recorder)},
        )
        built.append(upstreams)
        return upstreams

    yield make
    for upstreams in built:
        await upstreams.aclose()

"""The HTTP seam keeps no cookies: one upstream client serves every tenant."""

from __future__ import annotations

import dataclasses

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.http import build_http_client
from tests.support.helpers import settings_for_tests
from tests.support.live_server import serve


async def cookie_setting_upstream(request: Request) -> JSONResponse:
    """Answers each caller with a session cookie named after its token, and says which
    cookie it received."""
    response = JSONResponse({"cookie": request.headers.get("cookie")})
    response.set_cookie("session", request.headers["x-auth-token"], path="/")
    return response


APP = Starlette(routes=[Route("/query", cookie_setting_upstream, methods=["POST"])])


async def test_a_cookie_set_for_one_caller_never_reaches_the_next_production_transport() -> None:
    async with serve(APP) as url:
        # By name, not by address: aiohttp's default jar ignores cookies from IP addresses.
        by_name = url.replace("127.0.0.1", "localhost")
        client = build_http_client(dataclasses.replace(settings_for_tests().oma, base_url=by_name))
        try:
            first = await client.post("/query", headers={"X-Auth-Token": "alice"})
            second = await client.post("/query", headers={"X-Auth-Token": "bob"})
        finally:
            await client.aclose()
    assert "session=alice" in first.headers["set-cookie"]
    assert second.json() == {"cookie": None}


async def test_a_cookie_set_for_one_caller_never_reaches_the_next_any_transport() -> None:
    received: list[str | None] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        received.append(request.headers.get("cookie"))
        token = request.headers["x-auth-token"]
        return httpx.Response(200, json={}, headers={"Set-Cookie": f"session={token}; Path=/"})

    client = build_http_client(settings_for_tests().oma, httpx.MockTransport(upstream))
    try:
        await client.post("/query", headers={"X-Auth-Token": "alice"})
        await client.post("/query", headers={"X-Auth-Token": "bob"})
    finally:
        await client.aclose()
    assert received == [None, None]
    assert not list(client.cookies.jar)

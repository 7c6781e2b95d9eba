"""The HTTP seam: endpoint URLs under a base path, whole answers, and no cookies kept (one
transport serves every tenant)."""

from __future__ import annotations

import dataclasses

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.http import UpstreamHttp
from tests.support.helpers import settings_for_tests
from tests.support.live_server import serve


async def cookie_setting_upstream(request: Request) -> JSONResponse:
    """Answers each caller with a session cookie named after its token, and says which
    cookie it received."""
    response = JSONResponse({"cookie": request.headers.get("cookie")})
    response.set_cookie("session", request.headers["x-auth-token"], path="/")
    return response


TIMEOUTS = httpx.Timeout(5.0)
APP = Starlette(routes=[Route("/query", cookie_setting_upstream, methods=["POST"])])


async def test_a_cookie_set_for_one_caller_never_reaches_the_next_production_transport() -> None:
    async with serve(APP) as url:
        # By name, not by address: aiohttp's default jar ignores cookies from IP addresses.
        by_name = url.replace("127.0.0.1", "localhost")
        http = UpstreamHttp(dataclasses.replace(settings_for_tests().oma, base_url=by_name))
        try:
            first = await http.post_json(http.url("/query"), b"{}", "alice", TIMEOUTS)
            second = await http.post_json(http.url("/query"), b"{}", "bob", TIMEOUTS)
        finally:
            await http.aclose()
    assert "session=alice" in first.headers["set-cookie"]
    assert orjson.loads(second.content) == {"cookie": None}


async def test_a_cookie_set_for_one_caller_never_reaches_the_next_any_transport() -> None:
    received: list[str | None] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        received.append(request.headers.get("cookie"))
        token = request.headers["x-auth-token"]
        return httpx.Response(200, json={}, headers={"Set-Cookie": f"session={token}; Path=/"})

    http = UpstreamHttp(settings_for_tests().oma, httpx.MockTransport(upstream))
    await http.post_json(http.url("/query"), b"{}", "alice", TIMEOUTS)
    await http.post_json(http.url("/query"), b"{}", "bob", TIMEOUTS)
    await http.aclose()
    assert received == [None, None]


async def test_a_call_sends_the_body_token_and_json_headers_under_the_base_path() -> None:
    seen: list[httpx.Request] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            201, content=b'{"ok": true}', headers={"X-Upstream": "yes"}, request=request
        )

    settings = dataclasses.replace(settings_for_tests().oma, base_url="https://api.example/v1/")
    http = UpstreamHttp(settings, httpx.MockTransport(upstream))
    answer = await http.post_json(
        http.url("/rest/query"), b'{"limit": 5}', "alice", httpx.Timeout(3.0, connect=1.0)
    )
    await http.aclose()
    assert (answer.status, answer.content, answer.headers["x-upstream"]) == (
        201,
        b'{"ok": true}',
        "yes",
    )
    [request] = seen
    assert str(request.url) == "https://api.example/v1/rest/query"
    assert request.content == b'{"limit": 5}'
    assert request.headers["x-auth-token"] == "alice"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"
    assert "cookie" not in request.headers
    assert request.extensions["timeout"] == {"connect": 1.0, "read": 3.0, "write": 3.0, "pool": 3.0}

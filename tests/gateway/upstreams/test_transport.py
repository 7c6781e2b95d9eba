"""The HTTP seam: endpoint URLs under a base path, whole answers, and no cookies kept (one
transport serves every tenant)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gzip
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.upstreams.transport import UpstreamHttp
from tests.support.helpers import settings_for_tests
from tests.support.live_server import serve


async def cookie_setting_upstream(request: Request) -> JSONResponse:
    """Answers each caller with a session cookie named after its token, and says which
    cookie it received."""
    response = JSONResponse({"cookie": request.headers.get("cookie")})
    response.set_cookie("session", request.headers["x-auth-token"], path="/")
    return response


async def echo_upstream(request: Request) -> JSONResponse:
    """Says what arrived: the headers that frame the body, and the body."""
    body = await request.body()
    return JSONResponse(
        {
            "host": request.headers.get("host"),
            "content-length": request.headers.get("content-length"),
            "transfer-encoding": request.headers.get("transfer-encoding"),
            "token": request.headers.get("x-auth-token"),
            "body": body.decode(),
        }
    )


# Large enough to arrive in several chunks.
LARGE = orjson.dumps({"data": [{"resource_id": f"r-{index}", "n": index} for index in range(5000)]})


async def large_upstream(request: Request) -> Response:
    return Response(LARGE, media_type="application/json")


async def gzip_upstream(request: Request) -> Response:
    return Response(
        gzip.compress(LARGE), media_type="application/json", headers={"Content-Encoding": "gzip"}
    )


TIMEOUTS = httpx.Timeout(5.0)
APP = Starlette(
    routes=[
        Route("/query", cookie_setting_upstream, methods=["POST"]),
        Route("/echo", echo_upstream, methods=["POST"]),
        Route("/large", large_upstream, methods=["POST"]),
        Route("/gzip", gzip_upstream, methods=["POST"]),
    ]
)


@contextlib.asynccontextmanager
async def production_http(base_url: str) -> AsyncIterator[UpstreamHttp]:
    """The production transport to ``base_url``, closed afterwards."""
    http = UpstreamHttp(dataclasses.replace(settings_for_tests().oma, base_url=base_url))
    try:
        yield http
    finally:
        await http.aclose()


async def test_a_cookie_set_for_one_caller_never_reaches_the_next_production_transport() -> None:
    async with serve(APP) as url:
        # By name, not by address: aiohttp's default jar ignores cookies from IP addresses.
        async with production_http(url.replace("127.0.0.1", "localhost")) as http:
            first = await http.post_json(http.url("/query"), b"{}", "alice", TIMEOUTS)
            second = await http.post_json(http.url("/query"), b"{}", "bob", TIMEOUTS)
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


async def test_the_body_arrives_framed_by_host_and_content_length_production_transport() -> None:
    async with serve(APP) as url, production_http(url) as http:
        answer = await http.post_json(
            http.url("/echo"), '{"name": "été"}'.encode(), "alice", TIMEOUTS
        )
    assert orjson.loads(answer.content) == {
        "host": url.removeprefix("http://"),
        "content-length": str(len('{"name": "été"}'.encode())),
        "transfer-encoding": None,
        "token": "alice",
        "body": '{"name": "été"}',
    }


async def test_a_whole_answer_is_read_plain_or_compressed_production_transport() -> None:
    async with serve(APP) as url, production_http(url) as http:
        plain = await http.post_json(http.url("/large"), b"{}", "alice", TIMEOUTS)
        compressed = await http.post_json(http.url("/gzip"), b"{}", "alice", TIMEOUTS)
    assert len(LARGE) > 100_000
    assert plain.content == LARGE
    assert compressed.headers["content-encoding"] == "gzip"
    assert compressed.content == LARGE


async def test_a_call_carries_the_headers_httpx_would_give_its_body() -> None:
    """The request is built with its headers set by hand: they must be the ones httpx
    itself would set for ``content=`` (Host without a default port, Content-Length)."""
    seen: list[httpx.Request] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=b"{}")

    for base_url in ("https://api.example", "http://api.example:8080/base"):
        settings = dataclasses.replace(settings_for_tests().oma, base_url=base_url)
        http = UpstreamHttp(settings, httpx.MockTransport(upstream))
        await http.post_json(http.url("/q"), b'{"limit": 5}', "alice", TIMEOUTS)
        await http.aclose()
        [request] = seen
        seen.clear()
        by_httpx = httpx.Request(
            "POST",
            request.url,
            headers=[
                (k, v)
                for k, v in request.headers.raw
                if k.lower() not in (b"host", b"content-length")
            ],
            content=b'{"limit": 5}',
        )
        assert sorted(request.headers.multi_items()) == sorted(by_httpx.headers.multi_items())
        assert request.headers["host"] == base_url.split("//")[1].split("/")[0]


async def test_the_headers_read_as_text_are_those_httpx_would_decode() -> None:
    """The header encoding is set for an ASCII token rather than found on each call: the
    transport reads the headers as text, and must read what httpx itself would."""
    seen: list[httpx.Request] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=b"{}")

    http = UpstreamHttp(settings_for_tests().oma, httpx.MockTransport(upstream))
    try:
        for token in ("alice", "d\u00e9j\u00e0-vu"):
            await http.post_json(http.url("/q"), b"{}", token, TIMEOUTS)
    finally:
        await http.aclose()
    for request, token in zip(seen, ("alice", "d\u00e9j\u00e0-vu"), strict=True):
        found_by_httpx = httpx.Headers(request.headers.raw)
        assert request.headers.encoding == found_by_httpx.encoding
        assert list(request.headers.items()) == list(found_by_httpx.items())
        assert request.headers["x-auth-token"] == token


async def test_a_malformed_http_answer_is_an_httpx_error_production_transport() -> None:
    async def answer_with_a_header_too_long(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nX-Trace: " + b"a" * 9000 + b"\r\nContent-Length: 2\r\n\r\n{}"
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer_with_a_header_too_long, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = settings_for_tests().oma
    http = UpstreamHttp(dataclasses.replace(settings, base_url=f"http://127.0.0.1:{port}"))
    try:
        # An httpx error is what the upstream client translates (UPSTREAM_UNAVAILABLE,
        # retried, counted by the breaker); anything else would be an internal error.
        with pytest.raises(httpx.RemoteProtocolError, match="malformed HTTP answer"):
            await http.post_json(http.url("/q"), b"{}", "t", httpx.Timeout(5, connect=2))
    finally:
        await http.aclose()
        server.close()
        await server.wait_closed()

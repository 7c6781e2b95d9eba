"""The HTTP seam: one httpx transport per upstream for the life of the app.

Production traffic goes through httpx over the aiohttp transport: with a
hundred concurrent calls it costs about a tenth of the client CPU of httpx's
default transport (encode/httpx#3215). Tests pass any other httpx transport
(``httpx.MockTransport``, ``httpx.ASGITransport``) through ``transport``.

Calls go to the transport directly, not through ``httpx.AsyncClient``: the
client's per-call work (URL merging, auth and redirect flows, a cookie jar, a
response tied to its stream in a reference cycle) was a fifth of an upstream
call's CPU, and the gateway wants none of it. It follows no redirect (the
caller's token must not reach another host) and keeps no cookie (one transport
serves every tenant: a cookie set on one caller's answer must never ride on
another caller's request).
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from gateway.config import UpstreamSettings

USER_AGENT = "oma-cbc-gateway/0.1"
# As bytes, so httpx has nothing to normalise or encode on each call.
_HEADERS = (
    (b"User-Agent", USER_AGENT.encode()),
    (b"Accept", b"application/json"),
    (b"Accept-Encoding", b"gzip, deflate"),
    (b"Content-Type", b"application/json"),
)


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """An upstream's whole answer, read and released."""

    status: int
    headers: httpx.Headers
    content: bytes


KEEPALIVE_SECONDS = 5.0  # httpx's default keep-alive expiry


async def read_body(response: httpx.Response) -> bytes:
    """The whole body, decoded. An answer without ``Content-Encoding`` (what both
    upstreams send unless they compress) is joined straight from the transport's
    stream: ``aread`` passes each chunk through two more async generators, a decoder
    and two chunkers that have nothing to do then, 6 % of a call's instructions. A
    compressed answer goes through ``aread``, which decodes it."""
    if (
        response.is_stream_consumed  # built from bytes, as test transports do: read already
        or "content-encoding" in response.headers
        or not isinstance(response.stream, httpx.AsyncByteStream)
    ):
        return await response.aread()
    return b"".join([chunk async for chunk in response.stream])


def build_transport(settings: UpstreamSettings) -> httpx.AsyncBaseTransport:
    # trust_env=False: proxies and certificates come from configuration, not ambient variables.
    ssl_context = httpx.create_ssl_context(trust_env=False)

    def session() -> aiohttp.ClientSession:
        # Made lazily, inside the running loop, as aiohttp requires. The transport's
        # own default session would keep cookies across callers. The pool is the
        # session's: the transport's own limits apply only to a session it makes.
        connector = aiohttp.TCPConnector(
            limit=settings.max_concurrency, keepalive_timeout=KEEPALIVE_SECONDS, ssl=ssl_context
        )
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    transport: httpx.AsyncBaseTransport = AiohttpTransport(trust_env=False, client=session)
    return transport


class UpstreamHttp:
    """POSTs JSON to one upstream and reads the whole answer."""

    def __init__(
        self, settings: UpstreamSettings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._base_url = settings.base_url.rstrip("/")
        self._transport = transport if transport is not None else build_transport(settings)

    def url(self, path: str) -> httpx.URL:
        """An endpoint's URL: its path under the base URL (a base path is kept)."""
        return httpx.URL(f"{self._base_url}/{path.lstrip('/')}")

    async def post_json(
        self, url: httpx.URL, body: bytes, token: str, timeouts: httpx.Timeout
    ) -> HttpAnswer:
        """``timeouts`` per phase (connect, read) are the transport's to enforce. Raises
        only ``httpx.HTTPError`` (``httpx.TimeoutException`` when one runs out)."""
        # The body goes in as a stream with every header already set, Host first as
        # httpx orders it: with ``content=`` httpx would work out Host and Content-Length
        # and normalise the headers twice, 13 µs a call against 4. ``read()`` then
        # makes ``request.content`` the body, as ``content=`` would.
        request = httpx.Request(
            "POST",
            url,
            headers=[
                (b"Host", url.netloc),
                *_HEADERS,
                (b"Content-Length", str(len(body)).encode()),
                # Latin-1: the bytes the caller sent, as Starlette decoded them.
                (b"X-Auth-Token", token.encode("latin-1")),
            ],
            stream=httpx.ByteStream(body),
            extensions={"timeout": timeouts.as_dict()},
        )
        if token.isascii():
            # What httpx would find by decoding every header (the others are ASCII), and
            # does on each call when the transport reads them as text.
            request.headers.encoding = "ascii"
        request.read()
        try:
            response = await self._transport.handle_async_request(request)
            try:
                content = await read_body(response)
            finally:
                await response.aclose()
        except aiohttp.ClientError as exc:
            # What httpx-aiohttp does not map (a header too long or with control
            # characters: ClientResponseError) is still the upstream speaking bad HTTP.
            raise httpx.RemoteProtocolError(
                f"malformed HTTP answer ({type(exc).__name__})", request=request
            ) from exc
        return HttpAnswer(response.status_code, response.headers, content)

    async def aclose(self) -> None:
        await self._transport.aclose()

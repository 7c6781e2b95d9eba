"""The HTTP app: GraphQL, GraphiQL, probes and metrics on Starlette."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from cross_web import HTTPException
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from gateway.metrics import REGISTRY
from gateway.server.middleware import BodySizeLimit, RequestObserver
from gateway.server.runtime import Gateway
from schema.context import GatewayContext, RequestCredentials

logger = logging.getLogger("gateway.app")

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
CLIENT_CLOSED_REQUEST = 499
CREDENTIAL_HEADERS = ("X-Auth-Token", "X-Oma-Auth-Token", "X-Cbc-Auth-Token")


class GatewayGraphQL(GraphQL[GatewayContext, None]):
    """Strawberry's ASGI view with the gateway's per-request context."""

    def __init__(self, gateway: Gateway) -> None:
        limits = gateway.settings.limits
        super().__init__(
            gateway.schema,
            graphql_ide=None,  # the gateway serves its own offline GraphiQL
            allow_queries_via_get=True,
            multipart_uploads_enabled=False,
        )
        self.gateway = gateway
        self._max_batch = limits.max_batch_size if limits.allow_batching else 0

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> GatewayContext:
        headers = request.headers
        gateway = self.gateway
        context = GatewayContext(
            upstreams=gateway.upstreams,
            limits=gateway.settings.limits,
            credentials=RequestCredentials.from_headers(
                headers.get("x-auth-token"),
                headers.get("x-oma-auth-token"),
                headers.get("x-cbc-auth-token"),
                max_bytes=gateway.settings.security.max_token_bytes,
            ),
            fresh="no-cache" in headers.get("cache-control", "").lower(),
            # The peer, or the client a trusted proxy names (ProxyHeadersMiddleware).
            origin=request.client.host if request.client else "",
            credential_key=gateway.credential_key,
        )
        request.state.graphql_context = context
        if isinstance(response, Response):
            # The answer depends on the caller's token: no shared cache may keep it.
            response.headers["Cache-Control"] = "private, no-store"
            request.state.graphql_sub_response = response
        return context

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        # The json module, not orjson, which reads integers beyond 64 bits as floats: an
        # ID sent as such a number would silently become another. Bodies are UTF-8.
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = json.loads(text)
        if "\\u" in text:
            # json.loads takes a lone surrogate (\ud800), which no answer or upstream
            # request can carry (echoed in an error, it failed the answer): refused here.
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        return value

    def parse_json(self, data: str | bytes) -> Any:
        try:
            parsed = self.decode_json(data)
        except (ValueError, RecursionError) as exc:
            # Not JSON, not UTF-8 (a UTF-16 byte-order mark), or nested deeper than
            # Python recurses: each a 400, never a 500.
            where = "request body" if isinstance(data, bytes) else "query parameter"
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise HTTPException(400, f"Unable to parse the {where} as JSON: {reason}") from exc
        # The request body comes as bytes, query parameters (variables, extensions) as
        # str. Strawberry checks the shape of the latter, but calls ``.get`` on the body
        # and on each operation of a batch unchecked: ``5`` or ``[1]`` would be a 500.
        if isinstance(data, bytes):
            _check_body_shape(parsed, allow_batching=self._max_batch > 0)
        return parsed

    def create_response(
        self, response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse], sub_response: Response
    ) -> Response:
        response = super().create_response(response_data, sub_response)
        if getattr(sub_response, "graphql_response_json", False):
            response.headers["content-type"] = f"{GRAPHQL_RESPONSE_JSON}; charset=utf-8"
        return response

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        response = await super().process_result(request, result)
        sub_response: Response | None = getattr(request.state, "graphql_sub_response", None)
        if sub_response is not None and GRAPHQL_RESPONSE_JSON in request.headers.get("accept", ""):
            # GraphQL over HTTP: with this media type a request that never executed
            # (unparsable, invalid, bad variables) is a 400 without a data entry.
            sub_response.graphql_response_json = True  # type: ignore[attr-defined]
            if result.data is None and result.errors:
                sub_response.status_code = 400
                response.pop("data", None)
        context: GatewayContext | None = getattr(request.state, "graphql_context", None)
        if context is not None and context.stats.stale_served:
            extensions: dict[str, Any] = dict(response.get("extensions") or {})
            extensions["stale"] = {
                "upstreams": sorted(context.stats.stale_served),
                "message": "an upstream failed; some data was served from an expired cache entry",
            }
            response["extensions"] = extensions
        return response


def _check_body_shape(body: object, *, allow_batching: bool) -> None:
    """Refuse, with 400, a JSON body that is not one operation (an object) or, with
    batching allowed, a list of them."""
    if isinstance(body, dict):
        return  # Strawberry checks the entries of a single operation itself
    if isinstance(body, list):
        if not allow_batching:
            return  # Strawberry refuses it with "Batching is not enabled"
        for index, item in enumerate(body):
            _check_batched_operation(index, item)
        return
    expected = "a JSON object or a list of them" if allow_batching else "a JSON object"
    raise HTTPException(400, f"The request body must be {expected}, not {_json_kind(body)}")


def _check_batched_operation(index: int, item: object) -> None:
    # Strawberry checks these entries for a single operation but not in a batch, where a
    # query of 5 would fail inside the parser and a list of variables be dropped unseen.
    if not isinstance(item, dict):
        reason = f"must be a JSON object, not {_json_kind(item)}"
    elif not isinstance(item.get("query"), str | None):
        reason = "has a `query` that is not a string"
    elif not isinstance(item.get("variables"), dict | None):
        reason = "has `variables` that are not an object"
    elif not isinstance(item.get("extensions"), dict | None):
        reason = "has `extensions` that are not an object"
    else:
        return
    raise HTTPException(400, f"Operation {index} of the batch {reason}")


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "a number"


def create_app(gateway: Gateway) -> Starlette:
    settings = gateway.settings
    graphql = GatewayGraphQL(gateway)
    graphiql_enabled = settings.graphiql_enabled

    async def graphql_endpoint(request: Request) -> Response:
        if request.method == "GET" and _wants_html(request) and "query" not in request.query_params:
            if not graphiql_enabled:
                return PlainTextResponse("GraphiQL is off in the production profile", 404)
            return _graphiql_response()
        try:
            return await graphql.run(request)
        except ClientDisconnect:
            # The client went away before its body was in (or the server cut it off for
            # sending it too slowly): nobody to answer. 499, as proxies log it.
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        except HTTPException as exc:
            # Transport-level refusals (bad JSON, content type, GET mutation, batches).
            return PlainTextResponse(exc.reason, status_code=exc.status_code)
        finally:
            # Before the answer is sent: deferred until after, the records of requests
            # whose answers drain slowly stayed alive, 11 MB more at c=32 (bench.run).
            context: GatewayContext | None = getattr(request.state, "graphql_context", None)
            if context is not None:
                context.close()

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(_: Request) -> Response:
        cache_ok = await gateway.cache.ping()
        body: dict[str, Any] = {
            "status": "draining" if gateway.draining else ("ok" if cache_ok else "degraded"),
            "profile": settings.profile,
            "cache": gateway.cache.status(),
            "breakers": gateway.upstreams.breaker_states(),
        }
        # Redis is an accelerator: without it the gateway still answers, so it stays ready.
        return JSONResponse(body, status_code=503 if gateway.draining else 200)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    routes: list[Route | Mount] = [
        Route("/graphql", graphql_endpoint, methods=["GET", "POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    if graphiql_enabled:
        from gateway.server.graphiql_page import assets_built, graphiql_assets_app

        if assets_built():
            routes.append(Mount("/graphiql-assets", app=graphiql_assets_app()))

    middleware = [
        # X-Forwarded-For names the client only when a proxy the settings trust sent it.
        Middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.security.trusted_proxies)),
        Middleware(RequestObserver),
        Middleware(BodySizeLimit, max_bytes=settings.limits.max_body_bytes),
    ]
    if settings.server.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.server.cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=[
                    "Content-Type",
                    "Cache-Control",
                    "X-Request-Id",
                    *CREDENTIAL_HEADERS,
                ],
                expose_headers=["X-Request-Id"],
                max_age=600,
            )
        )

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await gateway.aclose()

    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.gateway = gateway
    return app


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _graphiql_response() -> Response:
    from gateway.server.graphiql_page import CONTENT_SECURITY_POLICY, assets_built, graphiql_html

    if not assets_built():
        return PlainTextResponse(
            "GraphiQL assets are not built: run .ci/build-graphiql", status_code=503
        )
    return HTMLResponse(
        graphiql_html(), headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY}
    )

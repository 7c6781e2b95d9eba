"""The HTTP app: GraphQL, GraphiQL, probes and metrics on Starlette."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from functools import partial
from typing import Any, cast

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from graphql import ExperimentalIncrementalExecutionResults, GraphQLError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import MissingQueryError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_SSE_PROTOCOL
from strawberry.types import ExecutionResult, SubscriptionExecutionResult
from strawberry.types.graphql import OperationType
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from gateway.metrics import REGISTRY
from gateway.server.middleware import BodySizeLimit, RequestObserver
from gateway.server.parts import AnswerInParts, PartPaths
from gateway.server.persisted import GatewayRequest, PersistedOperations
from gateway.server.refusals import (
    BATCH_LIMIT_EXCEEDED,
    BATCHING_NOT_ENABLED,
    GRAPHQL_RESPONSE_JSON,
    INVALID_CONTENT_TYPE_HEADER,
    INVALID_GRAPHQL_REQUEST,
    METHOD_NOT_ALLOWED,
    MISSING_QUERY_STRING,
    MUTATION_FORBIDDEN,
    NOT_FOUND,
    OPERATION_RESOLUTION_FAILURE,
    Refusal,
    refusal_response,
)
from gateway.server.runtime import Gateway
from schema.build import OperationNotChosen
from schema.context import GatewayContext, RequestCredentials

logger = logging.getLogger("gateway.app")

CLIENT_CLOSED_REQUEST = 499
CREDENTIAL_HEADERS = ("X-Auth-Token", "X-Oma-Auth-Token", "X-Cbc-Auth-Token")
_SHOWN_NAME = 80
"""Characters of an unknown operation's name quoted back in its error."""


class GatewayGraphQL(GraphQL[GatewayContext, None]):
    """Strawberry's ASGI view with the gateway's per-request context. An answer in parts
    (@defer, @stream) goes as multipart/mixed (Strawberry's own) or, to a client asking
    for text/event-stream first, as server-sent events (graphql-sse's distinct
    connections: an event ``next`` per payload, then ``complete``)."""

    def __init__(self, gateway: Gateway, persisted: PersistedOperations) -> None:
        limits = gateway.settings.limits
        super().__init__(
            gateway.schema,
            graphql_ide=None,  # the gateway serves its own offline GraphiQL
            allow_queries_via_get=True,
            multipart_uploads_enabled=False,
            subscription_protocols=(*GraphQL.protocols, GRAPHQL_SSE_PROTOCOL),
        )
        self.gateway = gateway
        self.persisted = persisted
        self._max_batch = limits.max_batch_size if limits.allow_batching else 0

    def should_render_graphql_ide(self, request: Any) -> bool:
        # The route serves GraphiQL; here a GET without `query` (a persisted document's,
        # say) is a GraphQL request, never Strawberry's 404.
        return False

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
            incremental_delivery=parts_transport(headers.get("accept", "")) is not None,
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
            raise Refusal(
                400, INVALID_GRAPHQL_REQUEST, f"Unable to parse the {where} as JSON: {reason}"
            ) from exc
        if isinstance(data, bytes):
            _check_body_shape(parsed, allow_batching=self._max_batch > 0)
        return parsed

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        """The request's operation (or batch), every parameter checked: what is not a
        GraphQL-over-HTTP request is refused here with its code."""
        if request.method == "GET":
            data: Any = self.parse_query_params(request.query_params)
        else:
            content_type = (request.content_type or "").partition(";")[0].strip().lower()
            if content_type != "application/json":
                raise Refusal(
                    400,
                    INVALID_CONTENT_TYPE_HEADER,
                    "A GraphQL POST body is JSON: send Content-Type: application/json",
                )
            data = self.parse_json(await request.get_body())
        if isinstance(data, dict):
            operation = _request_data(data, None)
            if parts_transport(request.headers.get("accept", "")) == "sse":
                operation.protocol = "sse"
            return operation
        if not self._max_batch:
            raise Refusal(400, BATCHING_NOT_ENABLED, "Batching is not enabled: send one operation")
        if len(data) > self._max_batch:
            raise Refusal(
                400,
                BATCH_LIMIT_EXCEEDED,
                f"A batch holds at most {self._max_batch} operations, not {len(data)}",
            )
        return [_request_data(item, index) for index, item in enumerate(data)]

    async def execute_operation(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        request_data: GraphQLRequestData | list[GraphQLRequestData],
        context: GatewayContext,
        root_value: None,
        sub_response: Response,
    ) -> ExecutionResult | list[ExecutionResult] | SubscriptionExecutionResult:
        # Every operation's document is found (or refused) before any runs: a refusal comes
        # before any upstream call, the batch's others' included.
        persisted = self.persisted
        if isinstance(request_data, list):
            context.incremental_delivery = False  # a batch's answer is one JSON list
        operations = request_data if isinstance(request_data, list) else [request_data]
        for operation in operations:
            assert isinstance(operation, GatewayRequest)
            if persisted.involved(operation):
                await persisted.resolve(operation, context)
            if operation.query is None:
                raise Refusal(
                    400,
                    MISSING_QUERY_STRING,
                    "No GraphQL document in the request: send `query`, a `documentId` "
                    "or the `persistedQuery` extension",
                )
        if isinstance(request_data, GraphQLRequestData) and request_data.protocol == "sse":
            # Run as any other operation (coded refusals, APQ), then sent as events.
            result = await self.execute_single(
                request, request_adapter, sub_response, context, root_value, request_data
            )
            return _as_events(result)
        return await super().execute_operation(
            request, request_adapter, request_data, context, root_value, sub_response
        )

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: GatewayContext,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        get = request_adapter.method == "GET"
        try:
            result = await self.schema.execute(
                request_data.query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=_GET_OPERATIONS if get else _POST_OPERATIONS,
                operation_extensions=request_data.extensions,
            )
        except CannotGetOperationTypeError as exc:
            return _unresolved_operation(exc, context)
        except InvalidOperationTypeError as exc:
            # GraphQL over HTTP: a mutation by GET is 405, halting before execution.
            raise Refusal(
                405,
                MUTATION_FORBIDDEN,
                f"{exc.operation_type.value.capitalize()}s can only be sent over HTTP POST",
                {"allow": "POST"},
            ) from exc
        except MissingQueryError as exc:  # an empty `query`
            raise Refusal(400, MISSING_QUERY_STRING, "The GraphQL document is empty") from exc
        # Strawberry's type says ExecutionResult; @defer and @stream make a container.
        answer: object = result
        if isinstance(answer, ExperimentalIncrementalExecutionResults):
            request.state.incremental_result = answer  # closed when the answer ends
        # A document that ran is kept for APQ (an incremental answer's container, of @defer,
        # is no ExecutionResult: such a document is sent again next time).
        if (
            isinstance(request_data, GatewayRequest)
            and request_data.registration is not None
            and isinstance(result, ExecutionResult)
            and result.data is not None
        ):
            await self.persisted.register(request_data, context)
        return result

    async def _process_stream_result(
        self, request: Request, value: Any, all_pending: list[Any]
    ) -> tuple[GraphQLHTTPResponse, list[Any]]:
        # Strawberry's own step for each payload of an answer in parts (not public API;
        # tests/test_dependencies.py names it), whose `path` on each part is its pending
        # path: wrong for a part below it (urql merged such data in the wrong place).
        response, all_pending = await super()._process_stream_result(request, value, all_pending)
        paths: PartPaths | None = getattr(request.state, "part_paths", None)
        if paths is None:
            paths = request.state.part_paths = PartPaths()
        paths.add_paths(cast("dict[str, Any]", response))
        if response.get("extensions", ...) is None:
            del response["extensions"]
        return response, all_pending

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
                request.state.reason = result.errors[0].message  # for the request's log line
        context: GatewayContext | None = getattr(request.state, "graphql_context", None)
        if context is not None and context.stats.stale_served:
            extensions: dict[str, Any] = dict(response.get("extensions") or {})
            extensions["stale"] = {
                "upstreams": sorted(context.stats.stale_served),
                "message": "an upstream failed; some data was served from an expired cache entry",
            }
            response["extensions"] = extensions
        return response


def parts_transport(accept: str) -> str | None:
    """How a client with this Accept header takes an answer in parts: ``sse`` when it
    names text/event-stream before any JSON type (graphql-sse), else ``multipart`` when
    it accepts multipart/mixed (Apollo Client, urql), else None (plain JSON only)."""
    json_first = False
    multipart = False
    for part in accept.split(","):
        media_type, _, parameters = part.partition(";")
        media_type = media_type.strip().lower()
        if _refused_by_quality(parameters):
            continue
        if media_type == "text/event-stream" and not json_first:
            return "sse"
        if media_type in _JSON_TYPES:
            json_first = True
        elif media_type == "multipart/mixed":
            multipart = True
    return "multipart" if multipart else None


def _refused_by_quality(parameters: str) -> bool:
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value) <= 0
            except ValueError:
                return False
    return False


_JSON_TYPES = frozenset({"application/json", GRAPHQL_RESPONSE_JSON, "*/*", "application/*"})


def _as_events(result: Any) -> SubscriptionExecutionResult:
    """An answer as the payloads an event stream sends: an incremental answer's initial
    payload and each one after it, or the one result."""

    async def events() -> AsyncIterator[Any]:
        if isinstance(result, ExperimentalIncrementalExecutionResults):
            yield result.initial_result
            async with contextlib.aclosing(result.subsequent_results) as subsequent:
                async for payload in subsequent:
                    yield payload
        else:
            yield result

    return cast("SubscriptionExecutionResult", events())


_GET_OPERATIONS = frozenset({OperationType.QUERY, OperationType.SUBSCRIPTION})
_POST_OPERATIONS = frozenset(
    {OperationType.QUERY, OperationType.MUTATION, OperationType.SUBSCRIPTION}
)


def _check_body_shape(body: object, *, allow_batching: bool) -> None:
    """Refuse a JSON body that is neither one operation (an object) nor a list of them
    (which, with batching off, is refused as a batch)."""
    if not isinstance(body, dict | list):
        expected = "a JSON object or a list of them" if allow_batching else "a JSON object"
        raise Refusal(
            400,
            INVALID_GRAPHQL_REQUEST,
            f"The request body must be {expected}, not {_json_kind(body)}",
        )


def _request_data(item: object, index: int | None) -> GatewayRequest:
    """One operation's parameters, each of the type GraphQL over HTTP gives it; ``index``
    is its place in a batch. A parameter of another type is refused, never passed on (a
    `query` of 5 would fail inside the parser, a list of variables be dropped unseen)."""
    where = "The request" if index is None else f"Operation {index} of the batch"
    if not isinstance(item, dict):
        raise Refusal(
            400, INVALID_GRAPHQL_REQUEST, f"{where} must be a JSON object, not {_json_kind(item)}"
        )
    query = item.get("query")
    variables = item.get("variables")
    extensions = item.get("extensions")
    operation_name = item.get("operationName")
    document_id = item.get("documentId")
    if not isinstance(query, str | None):
        reason = "has a `query` that is not a string"
    elif not isinstance(variables, dict | None):
        reason = "has `variables` that are not an object"
    elif not isinstance(extensions, dict | None):
        reason = "has `extensions` that are not an object"
    elif not isinstance(operation_name, str | None):
        reason = "has an `operationName` that is not a string"
    elif not isinstance(document_id, str | None):
        reason = "has a `documentId` that is not a string"
    else:
        return GatewayRequest(
            query=query,
            variables=variables,
            # GraphQL over HTTP: an empty operationName is one not given.
            operation_name=operation_name or None,
            extensions=extensions,
            document_id=document_id,
        )
    raise Refusal(400, INVALID_GRAPHQL_REQUEST, f"{where} {reason}")


def _unresolved_operation(
    error: CannotGetOperationTypeError, context: GatewayContext
) -> ExecutionResult:
    """The GraphQL spec's request error for a document without the operation asked for
    (GetOperation): an answer without data, 400 under graphql-response+json."""
    name = error.operation_name
    if isinstance(error.__cause__, OperationNotChosen):
        message = str(error.__cause__)
    elif name is not None:
        shown = name if len(name) <= _SHOWN_NAME else name[:_SHOWN_NAME] + "..."
        message = f'Unknown operation named "{shown}".'
    else:
        message = "Must provide an operation."
    context.error_codes.append(OPERATION_RESOLUTION_FAILURE)
    return ExecutionResult(
        data=None,
        errors=[GraphQLError(message, extensions={"code": OPERATION_RESOLUTION_FAILURE})],
    )


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
    """The app; ``ConfigError`` when the persisted documents' manifest cannot be used."""
    settings = gateway.settings
    persisted = PersistedOperations.from_settings(
        settings.persisted, gateway.schema, settings.limits, gateway.cache
    )
    graphql = GatewayGraphQL(gateway, persisted)
    graphiql_enabled = settings.graphiql_enabled

    async def graphql_endpoint(request: Request) -> Response | AnswerInParts:
        if request.method == "GET" and _wants_html(request) and _names_no_document(request):
            if not graphiql_enabled:
                return _refused(
                    request, Refusal(404, NOT_FOUND, "GraphiQL is off in the production profile")
                )
            return _graphiql_response()
        response: Response | None = None
        try:
            response = await graphql.run(request)
        except ClientDisconnect:
            # The client went away before its body was in (or the server cut it off for
            # sending it too slowly): nobody to answer. 499, as proxies log it.
            response = Response(status_code=CLIENT_CLOSED_REQUEST)
        except Refusal as refusal:
            response = _refused(request, refusal)
        except HTTPException as exc:  # what Strawberry still refuses itself
            response = _refused(
                request, Refusal(exc.status_code, INVALID_GRAPHQL_REQUEST, exc.reason)
            )
        finally:
            context: GatewayContext | None = getattr(request.state, "graphql_context", None)
            if context is not None and not isinstance(response, StreamingResponse):
                # Before the answer is sent: deferred until after, the records of requests
                # whose answers drain slowly stayed alive, 11 MB more at c=32 (bench.run).
                context.close()
        if context is not None and isinstance(response, StreamingResponse):
            # An answer in parts is still being made as it is sent: the request's work
            # ends with its last part, or when the client leaves.
            return AnswerInParts(response, partial(_end_parts, request, context))
        return response

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

    async def routing_refusal(request: Request, exc: Exception) -> Response:
        # Starlette's own 404 (no such path) and 405 (a method the route does not take).
        assert isinstance(exc, StarletteHTTPException)
        code = METHOD_NOT_ALLOWED if exc.status_code == 405 else NOT_FOUND
        return _refused(request, Refusal(exc.status_code, code, exc.detail, exc.headers))

    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={StarletteHTTPException: routing_refusal},
    )
    app.state.gateway = gateway
    app.state.persisted = persisted
    return app


async def _end_parts(request: Request, context: GatewayContext) -> None:
    """What is left of an answer in parts once it is sent or abandoned: the parts not made
    yet (graphql-core cancels them as its stream closes), the batches still loading."""
    result = getattr(request.state, "incremental_result", None)
    if isinstance(result, ExperimentalIncrementalExecutionResults):
        await result.subsequent_results.aclose()
    context.close()


def _refused(request: Request, refusal: Refusal) -> Response:
    """The refusal as a GraphQL answer; the request's log line gives its code and reason."""
    request.state.refusal = refusal
    context: GatewayContext | None = getattr(request.state, "graphql_context", None)
    if context is not None:
        context.error_codes.append(refusal.code)
    return refusal_response(refusal, request.headers)


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _names_no_document(request: Request) -> bool:
    params = request.query_params
    return "query" not in params and "documentId" not in params and "extensions" not in params


def _graphiql_response() -> Response:
    from gateway.server.graphiql_page import CONTENT_SECURITY_POLICY, assets_built, graphiql_html

    if not assets_built():
        return PlainTextResponse(
            "GraphiQL assets are not built: run .ci/build-graphiql", status_code=503
        )
    return HTMLResponse(
        graphiql_html(), headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY}
    )

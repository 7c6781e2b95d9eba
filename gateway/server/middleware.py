"""ASGI middleware: request ids, the per-request log line and metrics, body limits."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.metrics import (
    GRAPHQL_ERRORS,
    GRAPHQL_LATENCY,
    GRAPHQL_REQUESTS,
    IN_FLIGHT,
    INVALID_OPERATION,
    operation_label,
)
from gateway.server.refusals import (
    OPERATION_RESOLUTION_FAILURE,
    REFUSAL_CODES,
    REQUEST_BODY_TOO_LARGE,
    Refusal,
    refusal_body,
    refusal_headers,
)

logger = logging.getLogger("gateway.request")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# The codes of a request that never became an operation: a document that did not parse or
# validate (schema.errors), an operation not in it, a request refused (refusals).
_REFUSED_DOCUMENT = frozenset(
    {"GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED", OPERATION_RESOLUTION_FAILURE}
    | REFUSAL_CODES
)
_REASON_CHARACTERS = 200
"""Characters of a refusal's reason in the log line."""


class RequestObserver:
    """Gives every request an id (accepting a sane ``X-Request-Id``), and logs one JSON
    line per request with what it cost upstream."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Request-Id"] = request_id
                headers.setdefault("X-Content-Type-Options", "nosniff")
            await send(message)

        IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            IN_FLIGHT.dec()
            self._record(scope, request_id, status, time.perf_counter() - started)

    def _record(self, scope: Scope, request_id: str, status: int, elapsed: float) -> None:
        path: str = scope.get("path", "")
        client = scope.get("client")
        entry: dict[str, Any] = {
            "request_id": request_id,
            "method": scope.get("method"),
            "path": path,
            # The peer, or the client a trusted proxy named (ProxyHeadersMiddleware).
            "client": client[0] if client else None,
            "status": status,
            "duration_ms": round(elapsed * 1000, 2),
        }
        state = scope.get("state", {})
        context = state.get("graphql_context")
        refusal: Refusal | None = state.get("refusal")
        if context is not None:
            operation = operation_label(
                context.operation_name,
                validated=not _REFUSED_DOCUMENT & set(context.error_codes),
                trusted=context.vouched_for(),
            )
            outcome = "error" if context.error_codes or status >= 400 else "ok"
            GRAPHQL_REQUESTS.labels(operation, outcome).inc()
            GRAPHQL_LATENCY.labels(operation).observe(elapsed)
            for code in context.error_codes:
                GRAPHQL_ERRORS.labels(code).inc()
            entry.update(
                operation=context.operation_name,
                upstream_calls=context.stats.upstream_calls,
                cache_hits=context.stats.cache_hits,
                cache_misses=context.stats.cache_misses,
                error_codes=sorted(set(context.error_codes)),
            )
        elif refusal is not None and path == "/graphql":
            # Refused before the request had a context (a body over the limit).
            GRAPHQL_REQUESTS.labels(INVALID_OPERATION, "error").inc()
            GRAPHQL_LATENCY.labels(INVALID_OPERATION).observe(elapsed)
            GRAPHQL_ERRORS.labels(refusal.code).inc()
            entry["error_codes"] = [refusal.code]
        reason = refusal.message if refusal is not None else state.get("reason")
        if reason is not None and status >= 400:
            # Why the client was refused, in the words it was told.
            entry["reason"] = reason[:_REASON_CHARACTERS]
        if path in ("/healthz", "/readyz", "/metrics"):
            logger.debug("request", extra=entry)
        else:
            logger.info("request", extra=entry)


class BodySizeLimit:
    """Refuses request bodies over ``max_bytes`` with 413, whether declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await _too_large(scope, send, self.max_bytes)
            return
        received = 0
        refused = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    raise _BodyTooLarge
            return message

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _too_large(scope, send, self.max_bytes)
        except Exception:
            if refused and not started:
                await _too_large(scope, send, self.max_bytes)
            else:
                raise


class _BodyTooLarge(Exception):
    pass


async def _too_large(scope: Scope, send: Send, max_bytes: int) -> None:
    refusal = Refusal(413, REQUEST_BODY_TOO_LARGE, f"The request body is over {max_bytes} bytes")
    state = scope.setdefault("state", {})
    state["refusal"] = refusal
    context = state.get("graphql_context")
    if context is not None:
        context.error_codes.append(refusal.code)
    body = refusal_body(refusal.code, refusal.message)
    headers = refusal_headers(_header(scope, b"accept") or "")
    await send(
        {
            "type": "http.response.start",
            "status": refusal.status,
            "headers": [
                *((name.encode(), value.encode()) for name, value in headers.items()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            decoded: str = value.decode("latin-1")
            return decoded
    return None

"""Refusals: every 4xx the gateway answers itself is a GraphQL response with a code.

A request the gateway will not run (a body that is not JSON, a batch with batching off, a
hash it does not know) gets ``{"errors": [{"message", "extensions": {"code"}}]}``, as
``application/graphql-response+json`` when the client accepts it, else as
``application/json``: what GraphiQL, Apollo Client and urql read as a GraphQL error, where
plain text read as a broken answer. The codes follow Apollo Router's where it has one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from starlette.datastructures import Headers
from starlette.responses import Response

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"

# The request itself: not JSON, not UTF-8, or parameters of the wrong type.
INVALID_GRAPHQL_REQUEST = "INVALID_GRAPHQL_REQUEST"
INVALID_CONTENT_TYPE_HEADER = "INVALID_CONTENT_TYPE_HEADER"
MISSING_QUERY_STRING = "MISSING_QUERY_STRING"
MUTATION_FORBIDDEN = "MUTATION_FORBIDDEN"
BATCHING_NOT_ENABLED = "BATCHING_NOT_ENABLED"
BATCH_LIMIT_EXCEEDED = "BATCH_LIMIT_EXCEEDED"
REQUEST_BODY_TOO_LARGE = "REQUEST_BODY_TOO_LARGE"
NOT_FOUND = "NOT_FOUND"
METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
# Persisted operations (gateway.server.persisted).
PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
PERSISTED_QUERY_NOT_SUPPORTED = "PERSISTED_QUERY_NOT_SUPPORTED"
PERSISTED_QUERY_HASH_MISMATCH = "PERSISTED_QUERY_HASH_MISMATCH"
PERSISTED_QUERY_NOT_IN_LIST = "PERSISTED_QUERY_NOT_IN_LIST"
PERSISTED_QUERY_ID_REQUIRED = "PERSISTED_QUERY_ID_REQUIRED"
# Not a refusal but a request error (an ExecutionResult): which operation of the document.
OPERATION_RESOLUTION_FAILURE = "OPERATION_RESOLUTION_FAILURE"

REFUSAL_CODES = frozenset(
    {
        INVALID_GRAPHQL_REQUEST,
        INVALID_CONTENT_TYPE_HEADER,
        MISSING_QUERY_STRING,
        MUTATION_FORBIDDEN,
        BATCHING_NOT_ENABLED,
        BATCH_LIMIT_EXCEEDED,
        REQUEST_BODY_TOO_LARGE,
        NOT_FOUND,
        METHOD_NOT_ALLOWED,
        PERSISTED_QUERY_NOT_FOUND,
        PERSISTED_QUERY_NOT_SUPPORTED,
        PERSISTED_QUERY_HASH_MISMATCH,
        PERSISTED_QUERY_NOT_IN_LIST,
        PERSISTED_QUERY_ID_REQUIRED,
    }
)
"""Codes of requests that never became an operation."""


class Refusal(Exception):
    """A request the gateway answers ``status`` without running anything."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def media_type(accept: str) -> str:
    """The GraphQL media type a client with this ``Accept`` reads: the GraphQL-over-HTTP
    one when it names it, else ``application/json``, which every client reads."""
    return GRAPHQL_RESPONSE_JSON if GRAPHQL_RESPONSE_JSON in accept else "application/json"


def refusal_body(code: str, message: str) -> bytes:
    # The json module's ASCII escapes: a message may quote the request (an operation
    # name), and no character of it can make the answer fail to encode.
    return json.dumps({"errors": [{"message": message, "extensions": {"code": code}}]}).encode()


def refusal_headers(accept: str) -> dict[str, str]:
    return {
        "content-type": f"{media_type(accept)}; charset=utf-8",
        # Like every answer: nothing in between may keep it (a refusal of one caller's
        # hash is not another's).
        "cache-control": "private, no-store",
    }


def refusal_response(refusal: Refusal, request_headers: Headers) -> Response:
    headers = refusal_headers(request_headers.get("accept", ""))
    headers.update(refusal.headers)
    return Response(
        refusal_body(refusal.code, refusal.message), status_code=refusal.status, headers=headers
    )

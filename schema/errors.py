"""Errors as clients see them: every error carries ``extensions.code``.

Translated once, here, for the whole schema: upstream failures keep their kind
and upstream name, refusals become BAD_USER_INPUT, and anything unexpected is
masked (no stack, URL or token reaches the client) and logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql.error import GraphQLError, GraphQLSyntaxError
from strawberry.extensions import SchemaExtension
from strawberry.types.execution import ExecutionResult as StrawberryExecutionResult

from gateway.errors import InvalidRequest, UpstreamError

logger = logging.getLogger("gateway.schema")

INTERNAL_ERROR_MESSAGE = "Internal error; it has been logged."


def translate_error(error: GraphQLError) -> GraphQLError:
    original = error.original_error
    if isinstance(original, GraphQLError) and original is not error:
        if original.original_error is None and error.path is not None:
            if original.nodes:
                # An argument of the field that graphql-core could not coerce (a variable
                # given null for a non-null argument): the client's input.
                return _with(error, original.message, {"code": "BAD_USER_INPUT"})
            # graphql-core refusing a value in a field (an upstream's number beyond Int's
            # 32 bits): the field is null, and the error says why, at the field's path.
            logger.warning(
                "a value the schema cannot represent",
                extra={"path": ".".join(map(str, error.path)), "reason": original.message},
            )
            return _with(error, original.message, {"code": "INTERNAL_SERVER_ERROR"})
        translated = translate_error(original)
        if translated.path is None and error.path is not None:
            return _with(error, translated.message, dict(translated.extensions or {}))
        return translated
    extensions: dict[str, Any]
    if isinstance(original, UpstreamError):
        extensions = {"code": original.kind.value, "upstream": original.upstream}
        if original.upstream_code is not None:
            # The upstream's own code, of a code's form (never its text): what a caller
            # may quote to the upstream's support.
            extensions["upstreamCode"] = original.upstream_code
        if original.retry_after is not None:
            extensions["retryAfter"] = round(original.retry_after, 3)
        message = original.message
    elif isinstance(original, InvalidRequest):
        extensions = {"code": "BAD_USER_INPUT"}
        if original.upstream:
            extensions["upstream"] = original.upstream
        message = original.message
    elif original is None:
        # Parse, validation and variable errors: already safe to show.
        code = (error.extensions or {}).get("code")
        if code is None:
            # By the error's kind, not its text: a validation message quotes the
            # document's values, which may read "Syntax Error".
            code = (
                "GRAPHQL_PARSE_FAILED"
                if isinstance(error, GraphQLSyntaxError)
                else "GRAPHQL_VALIDATION_FAILED"
            )
        return _with(error, error.message, {**(error.extensions or {}), "code": code})
    elif error.path is None:
        # A variable or argument that failed to coerce (e.g. a DateTime that is no time).
        return _with(error, error.message, {"code": "BAD_USER_INPUT"})
    else:
        logger.error(
            "unexpected error in a resolver",
            exc_info=(type(original), original, original.__traceback__),
            extra={"path": ".".join(str(p) for p in error.path)},
        )
        return _with(error, INTERNAL_ERROR_MESSAGE, {"code": "INTERNAL_SERVER_ERROR"})
    return _with(error, message, extensions)


def _with(error: GraphQLError, message: str, extensions: dict[str, Any]) -> GraphQLError:
    return GraphQLError(
        message=message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions=extensions,
    )


class ErrorTranslation(SchemaExtension):
    """Translates every error once, and tells the request's context which operation ran
    and which error codes it answered with (for logs and metrics)."""

    def on_operation(self) -> Iterator[None]:
        yield
        execution = self.execution_context
        result = execution.result
        context = execution.context
        if hasattr(context, "operation_name"):
            context.operation_name = execution.operation_name
        if isinstance(result, GraphQLExecutionResult | StrawberryExecutionResult) and result.errors:
            result.errors = [translate_error(error) for error in result.errors]
            if hasattr(context, "error_codes"):
                context.error_codes.extend(
                    str((error.extensions or {}).get("code", "UNKNOWN")) for error in result.errors
                )

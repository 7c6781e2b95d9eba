"""The schema, assembled with the extensions its profile needs."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import strawberry
from graphql import ASTValidationRule
from graphql.error import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as max_aliases_rule
from strawberry.extensions.query_depth_limiter import create_validator as max_depth_rule
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from gateway.config import LimitSettings
from schema.errors import ErrorTranslation
from schema.execution.executor import GatewayExecutor
from schema.limits import CostLimit, max_directives_rule, max_root_fields_rule
from schema.query import Query
from schema.scalars import SCALAR_MAP

SCHEMA_FILE = Path(__file__).with_name("schema.graphql")
DOCUMENT_CACHE_SIZE = 256


class GatewaySchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Errors are logged once, where they are translated (schema.errors): an
        # upstream refusal is an answer, not a stack trace in the logs.
        return


class DocumentCache(ParserCache):
    """Strawberry's ParserCache, except that a document that does not parse is left to
    Strawberry to parse again and report. Raised from within the parse hook, the error
    left the other extensions' hooks unfinished: no error code, no operation logged."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        with contextlib.suppress(GraphQLError):
            context.graphql_document = self.cached_parse_document(
                context.query, **context.parse_options
            )
        yield


def build_schema(
    limits: LimitSettings | None = None, *, production: bool = True, tracing: bool = False
) -> GatewaySchema:
    limits = limits or LimitSettings()
    # The rule classes are made once, here: QueryDepthLimiter and MaxAliasesLimiter
    # would make new ones for every request, and ValidationCache, keyed on the rules,
    # would then never hit.
    validation_rules: list[type[ASTValidationRule]] = [
        max_depth_rule(limits.max_depth, None, None),
        max_aliases_rule(limits.max_aliases),
        max_directives_rule(limits.max_directives_per_field),
        max_root_fields_rule(limits.max_root_fields),
    ]
    extensions: list[Callable[[], SchemaExtension]] = [
        functools.partial(MaxTokensLimiter, max_token_count=limits.max_tokens),
        # Frontends send the same few documents again and again: parse and validate each
        # once (Strawberry keeps these LRU caches at module level, bounded).
        functools.partial(DocumentCache, maxsize=DOCUMENT_CACHE_SIZE),
        functools.partial(AddValidationRules, validation_rules),
        functools.partial(ValidationCache, maxsize=DOCUMENT_CACHE_SIZE),
        functools.partial(CostLimit, max_cost=limits.max_cost),
    ]
    if production:
        extensions.append(DisableIntrospection)
    if tracing:
        extensions.append(opentelemetry_extension())
    # Translation runs last on the way out, so it sees every error the others made.
    extensions.insert(0, ErrorTranslation)
    batching: Any = {"max_operations": limits.max_batch_size} if limits.allow_batching else None
    return GatewaySchema(
        query=Query,
        extensions=extensions,
        execution_context_class=GatewayExecutor,
        config=StrawberryConfig(
            scalar_map=SCALAR_MAP,
            disable_field_suggestions=production,
            batching_config=batching,
        ),
    )


def opentelemetry_extension() -> Callable[[], SchemaExtension]:
    """Spans per operation and resolver, into whatever OpenTelemetry SDK the process set up
    (for instance by running under ``opentelemetry-instrument``). Needs the ``otel`` extra."""
    try:
        from strawberry.extensions.tracing import OpenTelemetryExtension
    except ImportError as exc:  # pragma: no cover - depends on the installed extra
        raise RuntimeError(
            "GATEWAY_OTEL_ENABLED needs OpenTelemetry: pip install 'oma-cbc-gateway[otel]'"
        ) from exc
    return OpenTelemetryExtension


def print_sdl(schema: strawberry.Schema | None = None) -> str:
    """The SDL as checked in: with an explicit ``schema { query: Query }`` block, so tools
    reading the file never take a type for a root type."""
    text = (schema or build_schema()).as_str().strip()
    if not text.startswith("schema {"):
        text = "schema {\n  query: Query\n}\n\n" + text
    return text + "\n"

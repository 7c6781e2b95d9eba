"""The schema, assembled with the extensions its profile needs."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import strawberry
from graphql import (
    ASTValidationRule,
    DocumentNode,
    GraphQLSchema,
    OperationDefinitionNode,
    validate,
)
from graphql.error import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule
from strawberry.types import ExecutionContext
from strawberry.types.graphql import OperationType

from gateway.config import LimitSettings
from schema.delivery import IncrementalDelivery
from schema.errors import INTERNAL_ERROR_MESSAGE, ErrorTranslation, logger
from schema.execution.executor import GatewayExecutor
from schema.limits import CostLimit
from schema.query import Query
from schema.scalars import SCALAR_MAP
from schema.validation import validation_rules

SCHEMA_FILE = Path(__file__).with_name("schema.graphql")
DOCUMENT_CACHE_SIZE = 256


class OperationNotChosen(RuntimeError):
    """A document of several operations and no ``operationName`` to choose one."""


class RequestExecutionContext(ExecutionContext):
    """Strawberry's, except that a document of several operations without ``operationName``
    is a request error, as the GraphQL spec's GetOperation says, not its first operation.
    Strawberry raises ``CannotGetOperationTypeError`` from this (``OperationNotChosen`` as
    its cause), before validation, as it does for an unknown operation name."""

    @property
    def operation_type(self) -> OperationType:
        document = self.graphql_document
        if document is not None and self._provided_operation_name is None:
            operations = 0
            for definition in document.definitions:
                if isinstance(definition, OperationDefinitionNode):
                    operations += 1
                    if operations > 1:
                        raise OperationNotChosen(
                            "Must provide operation name if query contains multiple operations."
                        )
        return super().operation_type


class GatewaySchema(strawberry.Schema):
    def __init__(self, *args: Any, hide_suggestions: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hide_suggestions = hide_suggestions

    def _create_execution_context(
        self,
        query: str | None,
        allowed_operation_types: Iterable[OperationType],
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionContext:
        # Strawberry's own hook (not public API; test_app's operation-name tests fail if it
        # is no longer called): the context whose operation follows GetOperation.
        return RequestExecutionContext(
            query=query,
            schema=self,
            allowed_operations=allowed_operation_types,
            context=context_value,
            root_value=root_value,
            variables=variable_values,
            provided_operation_name=operation_name,
            operation_extensions=operation_extensions,
        )

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Errors are logged once, where they are translated (schema.errors): an
        # upstream refusal is an answer, not a stack trace in the logs.
        return

    def _get_custom_context_kwargs(
        self, operation_extensions: dict[str, Any] | None = None, *, sync: bool = False
    ) -> dict[str, Any]:
        # Strawberry passes these on to graphql-core's execute (a hook of its own, not
        # public API; test_build's variable cases fail if it stops): with
        # hide_suggestions, coercing the variables answers no "Did you mean" (an enum
        # value, an input field), as DocumentValidation does for the document.
        kwargs = super()._get_custom_context_kwargs(operation_extensions, sync=sync)
        kwargs["hide_suggestions"] = self.hide_suggestions
        return kwargs


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


@functools.lru_cache(maxsize=DOCUMENT_CACHE_SIZE)
def validate_document(
    schema: GraphQLSchema,
    document: DocumentNode,
    rules: tuple[type[ASTValidationRule], ...],
    hide_suggestions: bool,
) -> list[GraphQLError]:
    """graphql-core's validation with the given rules and Strawberry's own two (what
    Strawberry's validation adds), cached: frontends send the same few documents again
    and again. Strawberry's ``ValidationCache`` cannot hide suggestions."""
    return validate(
        schema,
        document,
        (*rules, MaybeNullValidationRule, OneOfInputValidationRule),
        hide_suggestions=hide_suggestions,
    )


class DocumentValidation(SchemaExtension):
    """Validates the document, once per document, with or without suggestions ("Did you
    mean 'first'?" for a field, argument, type, enum value or input field)."""

    def __init__(self, *, hide_suggestions: bool) -> None:
        self.hide_suggestions = hide_suggestions

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        assert context.graphql_document is not None  # parsed before validation
        try:
            context.pre_execution_errors = validate_document(
                context.schema._schema,
                context.graphql_document,
                context.validation_rules,
                self.hide_suggestions,
            )
        except Exception as exc:
            # A rule that raises is a bug of the rule. Let out of this hook, the
            # exception would unwind every extension's operation hook, error
            # translation's included: an answer with no code, and no log.
            logger.error("a validation rule failed", exc_info=exc)
            context.pre_execution_errors = [
                GraphQLError(INTERNAL_ERROR_MESSAGE, extensions={"code": "INTERNAL_SERVER_ERROR"})
            ]
        yield


def build_schema(
    limits: LimitSettings | None = None, *, production: bool = True, tracing: bool = False
) -> GatewaySchema:
    limits = limits or LimitSettings()
    # Made once, here: the validation cache is keyed on the rule classes.
    rules = list(validation_rules(limits))
    extensions: list[Callable[[], SchemaExtension]] = [
        functools.partial(MaxTokensLimiter, max_token_count=limits.max_tokens),
        # Frontends send the same few documents again and again: parse and validate each
        # once (in LRU caches at module level, bounded).
        functools.partial(DocumentCache, maxsize=DOCUMENT_CACHE_SIZE),
        functools.partial(AddValidationRules, rules),
        functools.partial(DocumentValidation, hide_suggestions=production),
        IncrementalDelivery,
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
        hide_suggestions=production,
        config=StrawberryConfig(
            scalar_map=SCALAR_MAP,
            disable_field_suggestions=production,
            batching_config=batching,
            # @defer and @stream (graphql-core 3.3's incremental delivery).
            enable_experimental_incremental_execution=True,
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

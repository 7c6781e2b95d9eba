"""The internals of other projects the gateway relies on, each checked where it is used.

``pyproject.toml`` bounds Strawberry, graphql-core, aiocache and uvicorn to the versions
tested; a new version within the bounds (or a bound raised) that moves one of these
fails here, naming what moved and which module of the gateway reads it, instead of
failing somewhere in a request.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
from collections.abc import Callable
from typing import Any

import pytest
import strawberry
from graphql import GraphQLScalarType, GraphQLSchema
from graphql import validate as graphql_validate
from graphql.execution import collect_fields as graphql_collect_fields
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.arguments import convert_arguments
from strawberry.types.field import StrawberryField


def version(package: str) -> str:
    return f"{package} {importlib.metadata.version(package)}"


def parameters(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)


def moved(package: str, what: str, where: str) -> str:
    return f"{version(package)} moved {what}, which {where} relies on"


@strawberry.type
class Probe:
    plain: int

    @strawberry.field
    def resolved(self) -> int:
        return 1


@strawberry.type
class ProbeQuery:
    probe: Probe


PROBE = strawberry.Schema(query=ProbeQuery)


def test_strawberry_keeps_what_the_shortcut_reads_of_its_fields() -> None:
    where = "schema/execution/strawberry_fields.py"
    backref = getattr(GraphQLCoreConverter, "DEFINITION_BACKREF", None)
    assert isinstance(backref, str), moved("strawberry-graphql", "DEFINITION_BACKREF", where)
    graphql_schema = getattr(PROBE, "_schema", None)
    assert isinstance(graphql_schema, GraphQLSchema), moved(
        "strawberry-graphql", "Schema._schema", "schema/limits.py and schema/build.py"
    )
    fields = graphql_schema.type_map["Probe"].fields  # type: ignore[attr-defined]
    plain, resolved = fields["plain"], fields["resolved"]
    assert isinstance(plain.extensions.get(backref), StrawberryField), moved(
        "strawberry-graphql", "the field's back reference in its extensions", where
    )
    assert getattr(plain.resolve, "_is_default", None) is True, moved(
        "strawberry-graphql", "the _is_default mark of the default resolver", where
    )
    assert not getattr(resolved.resolve, "_is_default", False), moved(
        "strawberry-graphql", "the _is_default mark (a resolver's field has it)", where
    )
    definition = plain.extensions[backref]
    for attribute in (
        "permission_classes",
        "extensions",
        "directives",
        "base_resolver",
        "default_resolver",
        "python_name",
        "metadata",
        "arguments",
    ):
        assert hasattr(definition, attribute), moved(
            "strawberry-graphql", f"StrawberryField.{attribute}", where
        )
    assert resolved.extensions[backref].base_resolver.wrapped_func is not None, moved(
        "strawberry-graphql", "StrawberryResolver.wrapped_func", "schema/links.py"
    )
    assert parameters(convert_arguments)[:4] == [
        "value",
        "arguments",
        "scalar_registry",
        "config",
    ], moved("strawberry-graphql", "convert_arguments' parameters", where)


def test_strawberry_keeps_the_executor_the_gateway_extends() -> None:
    where = "schema/execution/executor.py"
    overridden = {
        "execute_fields": [
            "self",
            "parent_type",
            "source_value",
            "path",
            "grouped_field_set",
            "position_context",
        ],
        "complete_object_value": [
            "self",
            "return_type",
            "field_details_list",
            "info",
            "path",
            "result",
            "position_context",
        ],
        "complete_iterable_value": [
            "self",
            "item_type",
            "field_details_list",
            "info",
            "path",
            "items",
            "position_context",
        ],
    }
    for name, expected in overridden.items():
        method = getattr(StrawberryGraphQLCoreExecutionContext, name, None)
        assert method is not None, moved("graphql-core", f"ExecutionContext.{name}", where)
        assert parameters(method) == expected, moved(
            "graphql-core", f"the parameters of ExecutionContext.{name}", where
        )
    seen: dict[str, bool] = {}

    class Looking(StrawberryGraphQLCoreExecutionContext):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            for name in (
                "collect_subfields",
                "is_awaitable",
                "middleware_manager",
                "variable_values",
                "context_value",
                "schema",
            ):
                seen[name] = hasattr(self, name)
            seen["_strawberry_schema"] = hasattr(self.schema, "_strawberry_schema")

    looking = strawberry.Schema(query=ProbeQuery, execution_context_class=Looking)
    looking.execute_sync("{ __typename }")
    missing = [name for name, there in seen.items() if not there]
    assert seen and not missing, moved("strawberry-graphql", f"the executor's {missing}", where)
    assert hasattr(strawberry.Schema, "_get_custom_context_kwargs"), moved(
        "strawberry-graphql", "Schema._get_custom_context_kwargs", "schema/build.py"
    )


def test_graphql_core_keeps_field_collection_and_validation_as_used() -> None:
    for name in ("collect_fields", "collect_subfields", "FragmentDetails", "FieldDetails"):
        assert hasattr(graphql_collect_fields, name), moved(
            "graphql-core", f"graphql.execution.collect_fields.{name}", "schema/limits.py"
        )
    details = getattr(graphql_collect_fields.FieldDetails, "_fields", ())  # a NamedTuple
    assert {"node", "defer_usage"} <= set(details), moved(
        "graphql-core", "FieldDetails.node/defer_usage", "schema/execution/executor.py"
    )
    assert "hide_suggestions" in parameters(graphql_validate), moved(
        "graphql-core", "validate(hide_suggestions=)", "schema/build.py"
    )
    scalar = GraphQLScalarType("Probe", coerce_output_value=str)
    assert scalar.coerce_output_value is str, moved(
        "graphql-core", "GraphQLScalarType.coerce_output_value", "schema/execution/coercion.py"
    )


def test_graphql_core_keeps_the_incremental_executor_the_gateway_extends() -> None:
    """@defer and @stream: the executor's runs and their defer usages
    (schema/execution/deferral.py, executor.py, prefetch.py)."""
    from graphql.execution.incremental import IncrementalExecutor

    build_execution_plan = importlib.import_module(
        "graphql.execution.incremental.build_execution_plan"
    )

    where = "schema/execution/executor.py"
    assert issubclass(StrawberryGraphQLCoreExecutionContext, IncrementalExecutor), moved(
        "strawberry-graphql", "its executor's base (graphql-core's IncrementalExecutor)", where
    )
    for name, expected in {
        "execute_execution_group": [
            "self",
            "delivery_groups",
            "parent_type",
            "source_value",
            "path",
            "grouped_field_set",
            "delivery_group_map",
        ],
        "complete_stream_item": [
            "self",
            "item_path",
            "item",
            "field_details_list",
            "info",
            "item_type",
        ],
    }.items():
        method = getattr(IncrementalExecutor, name, None)
        assert method is not None, moved("graphql-core", f"IncrementalExecutor.{name}", where)
        assert parameters(method) == expected, moved(
            "graphql-core", f"the parameters of IncrementalExecutor.{name}", where
        )
    assert "defer_usage_set" in IncrementalExecutor.__annotations__, moved(
        "graphql-core", "IncrementalExecutor.defer_usage_set", where
    )
    for name in ("DeferUsageSet", "get_filtered_defer_usage_set"):
        assert hasattr(build_execution_plan, name), moved(
            "graphql-core", f"build_execution_plan.{name}", "schema/execution/deferral.py"
        )
    details = getattr(graphql_collect_fields.FieldDetails, "_fields", ())
    assert "fragment_variable_values" in details, moved(
        "graphql-core", "FieldDetails.fragment_variable_values", where
    )


def test_strawberry_keeps_the_http_view_steps_the_gateway_overrides() -> None:
    from strawberry.asgi import GraphQL
    from strawberry.http.async_base_view import AsyncBaseHTTPView

    where = "gateway/server/app.py"
    step = getattr(AsyncBaseHTTPView, "_process_stream_result", None)
    assert step is not None, moved("strawberry-graphql", "_process_stream_result", where)
    assert parameters(step) == ["self", "request", "value", "all_pending"], moved(
        "strawberry-graphql", "the parameters of _process_stream_result", where
    )
    assert "subscription_protocols" in parameters(GraphQL.__init__), moved(
        "strawberry-graphql", "GraphQL(subscription_protocols=)", where
    )
    assert hasattr(strawberry.Schema, "_create_execution_context"), moved(
        "strawberry-graphql", "Schema._create_execution_context", "schema/build.py"
    )
    context = PROBE._create_execution_context(  # type: ignore[attr-defined]
        query="{ __typename }", allowed_operation_types=()
    )
    assert hasattr(context, "_provided_operation_name"), moved(
        "strawberry-graphql", "ExecutionContext._provided_operation_name", "schema/build.py"
    )


def test_aiocache_keeps_the_memory_cache_the_bounded_one_extends() -> None:
    from aiocache import SimpleMemoryCache

    where = "gateway/cache/pages.py (_LruMemoryCache)"
    for name in ("_get", "_set", "_delete", "_close"):
        assert callable(getattr(SimpleMemoryCache, name, None)), moved(
            "aiocache", f"SimpleMemoryCache.{name}", where
        )
    cache = SimpleMemoryCache()
    assert isinstance(getattr(cache, "_cache", None), dict), moved(
        "aiocache", "SimpleMemoryCache._cache", where
    )
    assert isinstance(getattr(cache, "_handlers", None), dict), moved(
        "aiocache", "SimpleMemoryCache._handlers", where
    )


@pytest.mark.parametrize(
    "name",
    [
        "connection_made",
        "connection_lost",
        "data_received",
        "on_message_begin",
        "on_headers_complete",
        "on_message_complete",
        "on_response_complete",
        "send_400_response",
        "_unset_keepalive_if_required",
        "_should_upgrade",
        "handle_websocket_upgrade",
        "_unsupported_upgrade_warning",
    ],
)
def test_uvicorn_keeps_the_protocol_the_connection_limits_extend(name: str) -> None:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    assert callable(getattr(HttpToolsProtocol, name, None)), moved(
        "uvicorn", f"HttpToolsProtocol.{name}", "gateway/server/connections.py"
    )

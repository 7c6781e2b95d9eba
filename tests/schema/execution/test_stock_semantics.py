"""The gateway's executor answers what stock Strawberry answers, whatever Strawberry feature a
field uses: permission classes, field extensions, resolvers, schema and query directives,
interfaces, and schema extensions that watch every field (tracing). For one object and for a
hundred, data and errors alike."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import strawberry
from graphql import DirectiveLocation
from strawberry.extensions import FieldExtension, SchemaExtension
from strawberry.permission import BasePermission
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema_directive import Location
from strawberry.types import Info

from schema.execution.executor import GatewayExecutor


class Deny(BasePermission):
    message = "not for you"

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return False


class Upper(FieldExtension):
    def resolve(self, next_: Callable[..., Any], source: Any, info: Info, **kwargs: Any) -> Any:
        return str(next_(source, info, **kwargs)).upper()


@strawberry.schema_directive(locations=[Location.FIELD_DEFINITION])
class Sensitive:
    reason: str


@strawberry.directive(locations=[DirectiveLocation.FIELD], description="Shout the value.")
def shout(value: str) -> str:
    return value.upper() + "!"


@strawberry.interface
class Named:
    name: str


@strawberry.type
class Item:
    name: str
    id: strawberry.ID
    label: str
    secret: str = strawberry.field(permission_classes=[Deny])
    maybe_secret: str | None = strawberry.field(permission_classes=[Deny])
    loud: str = strawberry.field(extensions=[Upper()])
    tagged: str = strawberry.field(directives=[Sensitive(reason="PII")])

    @strawberry.field
    def computed(self) -> str:
        return f"computed {self.label}"


@strawberry.type
class Person(Named):
    id: strawberry.ID
    secret: str | None = strawberry.field(permission_classes=[Deny])
    loud: str = strawberry.field(extensions=[Upper()])


@strawberry.type
class Other(Named):
    code: int


def item(index: int) -> Item:
    return Item(
        name=f"name {index}",
        id=strawberry.ID(str(index)),
        label=f"item {index}",
        secret=f"secret {index}",
        maybe_secret=f"secret {index}",
        loud=f"loud {index}",
        tagged=f"tagged {index}",
    )


def query_type(count: int) -> type:
    @strawberry.type
    class Query:
        @strawberry.field
        def items(self) -> list[Item]:
            return [item(i) for i in range(count)]

        @strawberry.field
        def first(self) -> Item | None:
            return item(0)

        @strawberry.field
        def named(self) -> list[Named]:
            return [
                Person(name=f"person {i}", id=strawberry.ID(str(i)), secret="s", loud=f"loud {i}")
                if i % 2
                else Other(name=f"other {i}", code=i)
                for i in range(count)
            ]

    return Query


class Watcher(SchemaExtension):
    """Sees every field resolved, as tracing does."""

    resolved: list[str] = []

    def resolve(
        self, _next: Callable[..., Any], root: Any, info: Info, *args: Any, **kwargs: Any
    ) -> Any:
        Watcher.resolved.append(".".join(str(key) for key in info.path.as_list()))
        return _next(root, info, *args, **kwargs)


def schemas(
    count: int, *, watched: bool = False, directives: bool = False
) -> tuple[strawberry.Schema, strawberry.Schema]:
    """The stock schema and the gateway's. Query directives (Strawberry runs them as a
    resolve hook over every field, as it runs tracing) and a watching extension are
    optional: either turns the gateway's shortcut off for the whole request."""
    made = []
    for executor in (StrawberryGraphQLCoreExecutionContext, GatewayExecutor):
        made.append(
            strawberry.Schema(
                query=query_type(count),
                types=[Person, Other],
                directives=[shout] if directives else [],
                extensions=[Watcher] if watched else [],
                execution_context_class=executor,
            )
        )
    return made[0], made[1]


OPERATIONS = [
    "{ items { id secret } }",
    "{ items { id label maybeSecret } }",
    "{ items { id loud label } }",
    "{ first { id loud maybeSecret } }",
    "{ items { id computed } }",
    "{ items { id tagged } }",
    "{ named { name ... on Person { id secret loud } ... on Other { code } } }",
    "{ items { __typename id label } }",
]
DIRECTED = [
    "{ items { id label @shout } }",
    "{ items { id label } first { label @shout loud } }",
]


def answer(schema: strawberry.Schema, operation: str) -> dict[str, Any]:
    result = schema.execute_sync(operation)
    return {
        "data": json.dumps(result.data),  # as text: the order of keys counts
        "errors": [error.formatted for error in result.errors or []],
    }


@pytest.mark.parametrize("count", [1, 100])
@pytest.mark.parametrize(
    ("operation", "directives"),
    [*((operation, False) for operation in OPERATIONS), *((op, True) for op in DIRECTED)],
)
@pytest.mark.parametrize("watched", [False, True], ids=["plain", "watched"])
def test_each_strawberry_feature_answers_as_stock(
    operation: str, directives: bool, count: int, watched: bool
) -> None:
    stock, gateway = schemas(count, watched=watched, directives=directives)
    Watcher.resolved = []
    expected = answer(stock, operation)
    stock_resolved = sorted(Watcher.resolved)
    Watcher.resolved = []
    assert answer(gateway, operation) == expected
    if watched:
        # A schema extension that watches every field sees every field, as in stock.
        assert sorted(Watcher.resolved) == stock_resolved


def test_a_denied_field_is_null_with_its_error_not_its_value() -> None:
    _, gateway = schemas(100)
    result = gateway.execute_sync("{ items { id maybeSecret } }")
    assert result.data is not None
    assert {row["maybeSecret"] for row in result.data["items"]} == {None}
    assert len(result.errors or []) == 100
    assert {error.message for error in result.errors or []} == {"not for you"}


def test_a_field_extension_runs_for_every_object() -> None:
    _, gateway = schemas(100)
    result = gateway.execute_sync("{ items { loud } }")
    assert result.errors is None and result.data is not None
    assert result.data["items"][99] == {"loud": "LOUD 99"}

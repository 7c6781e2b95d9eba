"""The shape limits of ``schema.validation``: what they count (as Strawberry's limiters
count depth and aliases, on generated documents), where they refuse (at the limit and
one over), and that a document spreading fragments into 2^60 paths is refused at once."""

from __future__ import annotations

import gc
import itertools
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import pytest
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLObjectType,
    InlineFragmentNode,
    NoUnusedFragmentsRule,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
    parse,
    specified_rules,
    validate,
)
from hypothesis import given
from hypothesis import strategies as st
from strawberry.extensions.max_aliases import count_fields_with_alias
from strawberry.extensions.max_aliases import create_validator as strawberry_aliases_rule
from strawberry.extensions.query_depth_limiter import create_validator as strawberry_depth_rule

from gateway.config import LimitSettings
from gateway.simulator import Simulator
from schema import validation
from schema.build import build_schema
from schema.validation import DocumentShape, operation_label, shape_rule, validation_rules
from tests.support import hostile_documents
from tests.support.helpers import GraphQLClient

SCHEMA = build_schema()
GRAPHQL_SCHEMA = SCHEMA._schema
UNLIMITED = 10**30

# -- generated documents over the real schema ---------------------------------------

REQUIRED_ARGUMENTS = {
    ("Query", "resource"): '(resourceId: "x")',
    ("Query", "resourcesByIds"): '(resourceIds: ["x"])',
}
# Introspection fields count at their own level; what is below them does not add depth.
INTROSPECTION = '__type(name: "Query") { name fields { name type { name } } }'


def object_type(name: str) -> GraphQLObjectType:
    named = GRAPHQL_SCHEMA.get_type(name)
    assert isinstance(named, GraphQLObjectType)
    return named


class DocumentDraw:
    """Draws one document: fragments, each spreading only those defined before it (so
    no cycle), and operations selecting fields, aliased or not, inline fragments and
    spreads of fragments on the type at hand."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw
        self.aliases = itertools.count()  # unique aliases: no field conflicts
        self.fragments: list[tuple[str, str]] = []  # (name, type condition)

    def selection_set(self, type_name: str, budget: int) -> str:
        draw = self.draw
        parts = []
        for _ in range(draw(st.integers(1, 3))):
            kind = draw(st.sampled_from(["field", "field", "field", "inline", "spread", "meta"]))
            spreadable = [name for name, on in self.fragments if on == type_name]
            if kind == "spread" and spreadable:
                parts.append("..." + draw(st.sampled_from(spreadable)))
            elif kind == "inline" and budget > 0:
                condition = draw(st.sampled_from(["", f"on {type_name} "]))
                parts.append(f"... {condition}{self.selection_set(type_name, budget - 1)}")
            elif kind == "meta":
                meta = "__typename"
                if type_name == "Query" and draw(st.booleans()):
                    meta = INTROSPECTION
                parts.append(self.alias() + meta)
            else:
                parts.append(self.field(type_name, budget))
        return "{ " + " ".join(parts) + " }"

    def alias(self) -> str:
        return f"a{next(self.aliases)}: " if self.draw(st.booleans()) else ""

    def field(self, type_name: str, budget: int) -> str:
        fields = object_type(type_name).fields
        names = sorted(
            name
            for name, field in fields.items()
            if budget > 0 or not isinstance(get_named_type(field.type), GraphQLObjectType)
        )
        if not names:  # Query's fields are all objects
            return self.alias() + "__typename"
        name = self.draw(st.sampled_from(names))
        text = self.alias() + name + REQUIRED_ARGUMENTS.get((type_name, name), "")
        inner = get_named_type(fields[name].type)
        if isinstance(inner, GraphQLObjectType):
            text += " " + self.selection_set(inner.name, budget - 1)
        return text


OBJECT_TYPES = ["Query", "SoftwareSubscription", "CloudResource", "SoftwareSubscriptionConnection"]


@st.composite
def documents(draw: st.DrawFn) -> str:
    document = DocumentDraw(draw)
    definitions = []
    for index in range(draw(st.integers(0, 4))):
        on = draw(st.sampled_from(OBJECT_TYPES))
        body = document.selection_set(on, draw(st.integers(0, 3)))
        definitions.append(f"fragment F{index} on {on} {body}")
        document.fragments.append((f"F{index}", on))
    operations = draw(st.integers(1, 2))
    for index in range(operations):
        name = "" if operations == 1 and draw(st.booleans()) else f"Q{index}"
        definitions.append(f"query {name} {document.selection_set('Query', 4)}")
    return "\n".join(draw(st.permutations(definitions)))


def strawberry_depths(document: str) -> dict[str, int]:
    depths: dict[str, int] = {}
    rule = strawberry_depth_rule(UNLIMITED, None, depths.update)
    assert validate(GRAPHQL_SCHEMA, parse(document), [rule]) == []
    return depths


def strawberry_aliases(document: str) -> int:
    ast = parse(document)
    fragments = {d.name.value: d for d in ast.definitions if isinstance(d, FragmentDefinitionNode)}
    return sum(
        count_fields_with_alias(d, fragments)
        for d in ast.definitions
        if isinstance(d, OperationDefinitionNode)
    )


def root_fields_by_every_path(
    selection_set: SelectionSetNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    seen: frozenset[str] = frozenset(),
) -> int:
    """The root-field count as the gateway counted it before: every path walked."""
    count = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            count += 1
        elif isinstance(selection, InlineFragmentNode):
            count += root_fields_by_every_path(selection.selection_set, fragments, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in fragments and name not in seen:
                fragment = fragments[name]
                count += root_fields_by_every_path(fragment.selection_set, fragments, seen | {name})
    return count


@given(documents())
def test_generated_documents_are_valid_over_the_schema(document: str) -> None:
    rules = [rule for rule in specified_rules if rule is not NoUnusedFragmentsRule]
    assert validate(GRAPHQL_SCHEMA, parse(document), rules) == []


@given(documents())
def test_depth_and_aliases_are_counted_as_strawberry_counts_them(document: str) -> None:
    ast = parse(document)
    shape = DocumentShape(ast)
    depths = {operation_label(operation): measure.depth for operation, measure in shape.operations}
    assert depths == strawberry_depths(document)
    assert shape.aliases == strawberry_aliases(document)
    fragments = {d.name.value: d for d in ast.definitions if isinstance(d, FragmentDefinitionNode)}
    roots = [root_fields_by_every_path(op.selection_set, fragments) for op, _ in shape.operations]
    assert [measure.top_fields for _, measure in shape.operations] == roots


@given(documents(), st.integers(0, 6), st.integers(0, 6))
def test_depth_and_alias_verdicts_are_strawberrys(
    document: str, max_depth: int, max_aliases: int
) -> None:
    ast = parse(document)
    ours = validate(GRAPHQL_SCHEMA, ast, [shape_rule(max_depth, UNLIMITED, UNLIMITED)])
    theirs = validate(GRAPHQL_SCHEMA, ast, [strawberry_depth_rule(max_depth, None, None)])
    assert bool(ours) == bool(theirs)
    ours = validate(GRAPHQL_SCHEMA, ast, [shape_rule(UNLIMITED, max_aliases, UNLIMITED)])
    theirs = validate(GRAPHQL_SCHEMA, ast, [strawberry_aliases_rule(max_aliases)])
    assert [e.message for e in ours] == [e.message for e in theirs]


# -- the counts, as a client sees them ----------------------------------------------


def errors_of(document: str, limits: LimitSettings | None = None) -> list[str]:
    """The messages of graphql-core's rules and the gateway's (with ``limits``)."""
    rules = (*specified_rules, *validation_rules(limits or LimitSettings()))
    return [error.message for error in validate(GRAPHQL_SCHEMA, parse(document), rules)]


TEN_ALIASES = " ".join(f"a{i}: id" for i in range(10))


@pytest.mark.parametrize(("spreads", "refused"), [(3, False), (4, True)])
def test_aliases_are_counted_through_spreads_by_multiplication(spreads: int, refused: bool) -> None:
    """A fragment of 10 aliases spread 4 times counts 40 (the limit is 30)."""
    document = (
        "{ subscriptions(first: 1) { nodes { "
        + " ".join("... on SoftwareSubscription { ...Ten }" for _ in range(spreads))
        + " } } } fragment Ten on SoftwareSubscription { "
        + TEN_ALIASES
        + " }"
    )
    errors = errors_of(document)
    assert errors == (["40 aliases found. Allowed: 30"] if refused else [])


def parents(count: int, leaf: str = "id") -> str:
    return "parent { " * count + leaf + " }" * count


def nested(depth: int, leaf: str = "id") -> str:
    """An operation whose deepest field is ``depth`` deep (a top-level leaf is 0)."""
    return '{ resource(resourceId: "x") { ' + parents(depth - 1, leaf) + " } }"


DEEP_INTROSPECTION = (
    '{ __type(name: "Query") { fields { type { ' + "ofType { " * 9 + "name" + " }" * 12 + " }"
)


@pytest.mark.parametrize(
    ("document", "refused"),
    [
        (nested(10), False),
        (nested(11), True),
        (nested(11, "__typename"), True),
        # Through a fragment and an inline fragment, in the second operation.
        (
            'query A { __typename } query B { resource(resourceId: "x") { ...P } } '
            "fragment P on CloudResource { ... { " + parents(10) + " } }",
            True,
        ),
        # Below an introspection field nothing counts.
        (DEEP_INTROSPECTION, False),
    ],
)
def test_the_depth_limit_refuses_one_over_it(document: str, refused: bool) -> None:
    errors = errors_of(document)
    if refused:
        (message,) = errors
        assert message.endswith("exceeds maximum operation depth of 10")
    else:
        assert errors == []


@pytest.mark.parametrize(("aliases", "refused"), [(30, False), (31, True)])
def test_the_alias_limit_refuses_one_over_it(aliases: int, refused: bool) -> None:
    document = "{ " + " ".join(f"a{i}: __typename" for i in range(aliases)) + " }"
    errors = errors_of(document, LimitSettings(max_root_fields=UNLIMITED))
    assert errors == (["31 aliases found. Allowed: 30"] if refused else [])


@pytest.mark.parametrize(("fields", "refused"), [(10, False), (11, True)])
def test_the_root_field_limit_refuses_one_over_it(fields: int, refused: bool) -> None:
    # Half through a fragment spread twice, the rest through an inline fragment.
    document = (
        "{ ...Two ...Two ... { "
        + " ".join(f"t{i}: __typename" for i in range(fields - 4))
        + " } } fragment Two on Query { __typename a: __typename }"
    )
    errors = errors_of(document)
    expected = "the operation selects 11 root fields; at most 10 are allowed."
    assert errors == ([expected] if refused else [])


@pytest.mark.parametrize(
    ("directives", "limit", "refused"),
    [("@skip(if: false)", 1, False), ("@skip(if: false) @include(if: true)", 1, True)],
)
def test_the_directive_limit_refuses_one_over_it(
    directives: str, limit: int, refused: bool
) -> None:
    # @skip and @include are the only directives a field can take once each: the
    # default limit of 5 is reached only with directives validation refuses anyway.
    document = f"{{ __typename {directives} }}"
    errors = errors_of(document, LimitSettings(max_directives_per_field=limit))
    expected = "'__typename' has 2 directives; at most 1 are allowed per field."
    assert errors == ([expected] if refused else [])


def test_no_directive_is_allowed_at_a_limit_of_zero() -> None:
    limits = LimitSettings(max_directives_per_field=0)
    assert errors_of("{ __typename }", limits) == []
    assert errors_of("{ __typename @include(if: true) }", limits) == [
        "'__typename' has 1 directives; at most 0 are allowed per field."
    ]


@pytest.mark.parametrize(
    ("document", "limits", "line", "column"),
    [
        ("\n  query Deep " + nested(2), LimitSettings(max_depth=1), 2, 3),
        ("\n\n  { a: __typename b: __typename }", LimitSettings(max_root_fields=1), 3, 3),
        ("{\n __typename @skip(if: false) }", LimitSettings(max_directives_per_field=0), 2, 2),
    ],
    ids=["depth at the operation", "root fields at the operation", "directives at the field"],
)
def test_a_limit_is_reported_where_it_is_exceeded(
    document: str, limits: LimitSettings, line: int, column: int
) -> None:
    rules = validation_rules(limits)
    (error,) = validate(GRAPHQL_SCHEMA, parse(document), rules)
    assert [(location.line, location.column) for location in error.locations or ()] == [
        (line, column)
    ]


# -- fragments that are missing or make cycles ----------------------------------------


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{ ...Nope }", "Unknown fragment 'Nope'."),
        (
            "{ subscriptions { nodes { ...S } } } fragment S on SoftwareSubscription { ...Nope }",
            "Unknown fragment 'Nope'.",
        ),
        (
            "{ ...A } fragment A on Query { ...B ...B } fragment B on Query { ...A __typename }",
            "Cannot spread fragment 'A' within itself via 'B'.",
        ),
        ("{ ...A } fragment A on Query { ...A }", "Cannot spread fragment 'A' within itself."),
    ],
)
async def test_an_unknown_or_cyclic_fragment_is_a_validation_failure(
    graphql: GraphQLClient, simulator: Simulator, document: str, message: str
) -> None:
    simulator.reset()
    body = await graphql.post(document)
    assert body["data"] is None
    assert {error["extensions"]["code"] for error in body["errors"]} == {
        "GRAPHQL_VALIDATION_FAILED"
    }
    assert message in [error["message"] for error in body["errors"]]
    assert simulator.counts() == {}


def test_measuring_ends_on_cycles_and_unknown_fragments() -> None:
    ast = parse(
        "query { ...A ...Nope x: __typename } "
        "fragment A on Query { ...B y: __typename } "
        "fragment B on Query { ...A ...B ...C z: __typename } "
        "fragment C on Query { ...Nope w: __typename }"
    )
    ((_, measure),) = DocumentShape(ast).operations
    # x; A's y; B's z (its spreads of A and B close cycles); C's w.
    assert (measure.aliases, measure.top_fields) == (4, 4)


async def test_a_rule_that_raises_answers_a_coded_error_and_is_logged(
    graphql: GraphQLClient,
    simulator: Simulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(document: Any) -> None:
        raise KeyError("Nope")

    monkeypatch.setattr(validation, "DocumentShape", broken)
    simulator.reset()
    # A document no other test sends: validation is cached per document.
    body = await graphql.post("{ subscriptions(first: 1) { nodes { id } } r: __typename }")
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}
    assert "Nope" not in error["message"]
    assert body["data"] is None
    assert simulator.counts() == {}
    (record,) = [r for r in caplog.records if r.message == "a validation rule failed"]
    assert record.levelno == logging.ERROR and record.exc_info is not None


# -- documents that spread fragments into 2^20 and 2^60 paths -------------------------

BOMBS: list[tuple[Callable[[int, int], str], str]] = [
    (hostile_documents.fragment_bomb, "root fields; at most 10 are allowed."),
    (hostile_documents.alias_bomb, "aliases found. Allowed: 30"),
    (hostile_documents.deep_bomb, "exceeds maximum operation depth of 10"),
]
PATHS = [pytest.param(20, 2, id="2^20"), pytest.param(20, 8, id="2^60")]
unique = itertools.count()


def fresh(document: str) -> str:
    """The document with trailing spaces no other run sent: no cache answers for it."""
    return document + " " * next(unique)


async def cpu_time(document: str) -> tuple[float, Any]:
    """The least CPU time of three runs of the document (each uncached), and the last
    result. The garbage collector is held meanwhile: a collection of the test process's
    heap is no cost of the document's."""
    await SCHEMA.execute("{ __typename }")  # the first execution's one-off set-up
    gc.collect()
    gc.disable()
    try:
        times = []
        for _ in range(3):
            text = fresh(document)
            started = time.process_time()
            result = await SCHEMA.execute(text)
            times.append(time.process_time() - started)
    finally:
        gc.enable()
    return min(times), result


@pytest.mark.parametrize(("bomb", "message"), BOMBS)
@pytest.mark.parametrize(("levels", "spreads"), PATHS)
async def test_a_fragment_bomb_is_refused_in_under_50_ms_of_cpu(
    bomb: Callable[[int, int], str], message: str, levels: int, spreads: int
) -> None:
    elapsed, result = await cpu_time(bomb(levels, spreads))
    assert result.data is None
    (error,) = result.errors or ()
    assert message in error.message
    assert error.extensions == {"code": "GRAPHQL_VALIDATION_FAILED"}
    assert elapsed < 0.05, f"{elapsed * 1000:.1f} ms of CPU"


def test_the_bombs_make_the_paths_they_say() -> None:
    assert len(hostile_documents.fragment_bomb(20)) < 1024
    assert len(hostile_documents.fragment_bomb(20, 8)) < 1100
    for levels, spreads in [(3, 2), (2, 3)]:
        ast = parse(hostile_documents.fragment_bomb(levels, spreads))
        fragments = {
            d.name.value: d for d in ast.definitions if isinstance(d, FragmentDefinitionNode)
        }
        (operation, measure), *_ = DocumentShape(ast).operations
        paths = root_fields_by_every_path(operation.selection_set, fragments)
        assert measure.top_fields == paths == spreads**levels
    assert strawberry_aliases(hostile_documents.alias_bomb(4, 3)) == 3**4
    assert strawberry_depths(hostile_documents.deep_bomb(4)) == {"anonymous": 5}


async def test_a_bomb_within_every_limit_answers_with_one_call(
    client: httpx.AsyncClient, simulator: Simulator
) -> None:
    """2^60 paths to one field: graphql-core merges them, and so does the estimate."""
    simulator.reset()
    document = fresh(hostile_documents.merged_bomb(20, 8))
    started = time.process_time()
    body = await GraphQLClient(client).post(document)
    elapsed = time.process_time() - started
    assert "errors" not in body
    assert len(body["data"]["subscriptions"]["nodes"]) == 20
    assert simulator.counts() == {"oma.queryresource": 1}
    assert elapsed < 0.25, f"{elapsed * 1000:.1f} ms of CPU"

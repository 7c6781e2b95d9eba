"""The executor's shortcut for plain-leaf objects answers exactly what graphql-core would.

Each case runs one operation twice, through Strawberry's stock executor and through
``GatewayExecutor``, over the same objects, and compares data and errors (messages,
locations and paths). Hypothesis draws the objects, wrong values included: nulls in
non-null fields, integers out of range, values a scalar or enum refuses.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, NamedTuple, NewType

import pytest
import strawberry
from graphql.execution.executor import Executor
from hypothesis import given, settings
from hypothesis import strategies as st
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from gateway.times import from_epoch_ms
from schema.build import build_schema
from schema.execution.executor import GatewayExecutor
from schema.execution.objects import record_maker
from schema.execution.views import ObjectsByRecord
from schema.scalars import SCALAR_MAP


@strawberry.enum
class Kind(enum.Enum):
    PRIMARY = 1
    ATTACHED = 2


# A scalar whose serializer may answer None, which graphql-core reports as an error.
Level = NewType("Level", int)
LEVEL = strawberry.scalar(
    name="Level", serialize=lambda value: None if value == 0 else value * 10, parse_value=int
)


@strawberry.type
class Item:
    id: strawberry.ID
    label: str
    name: str | None
    count: int | None
    flag: bool | None
    ratio: float | None
    kind: Kind | None
    when: datetime | None

    @strawberry.field
    def shout(self) -> str | None:
        return self.name.upper() if isinstance(self.name, str) else None

    @strawberry.field
    async def later(self) -> int | None:
        return self.count if isinstance(self.count, int) else None


@strawberry.type
class Query:
    items: list[Item]
    maybe_items: list[Item | None]
    first: Item | None


def make_schema(
    executor: type[StrawberryGraphQLCoreExecutionContext], query: type = Query
) -> strawberry.Schema:
    return strawberry.Schema(
        query=query,
        execution_context_class=executor,
        config=StrawberryConfig(scalar_map={**SCALAR_MAP, Level: LEVEL}),
    )


STOCK = make_schema(StrawberryGraphQLCoreExecutionContext)
SHORTCUT = make_schema(GatewayExecutor)

ALL = "id label name count flag ratio kind when"
OPERATIONS = [
    f"{{ items {{ {ALL} }} }}",
    f"{{ items {{ __typename a: id b: id {ALL} }} first {{ {ALL} }} }}",
    f"{{ maybeItems {{ {ALL} }} }}",
    "{ items { id ...F name @include(if: false) count @skip(if: false) } } fragment F on Item { label kind }",
    "{ items { ... on Item { id when } ... on Item { id flag } } }",
    f"{{ items {{ {ALL} shout }} }}",
    f"{{ items {{ {ALL} later }} maybeItems {{ id later }} }}",
    "{ items { shout id later label kind } first { later __typename id shout } }",
    "{ items { label } maybeItems { label } first { label } }",
]

# What upstreams hold (whole milliseconds at UTC), which a long list formats a column
# at a time.
UPSTREAM_TIME = st.builds(from_epoch_ms, st.integers(-62_135_596_800_000, 253_402_300_799_999))

ITEMS = st.builds(
    Item,
    id=st.one_of(st.text(max_size=4), st.integers(-5, 5), st.none(), st.just(1.5)),
    label=st.one_of(st.text(max_size=3), st.none(), st.booleans(), st.integers(-3, 3)),
    name=st.one_of(st.none(), st.text(max_size=3), st.just(object())),
    count=st.one_of(
        st.none(), st.integers(-(2**33), 2**33), st.booleans(), st.just(2.5), st.just("7")
    ),
    flag=st.one_of(st.none(), st.booleans(), st.integers(-1, 1), st.just("yes")),
    ratio=st.one_of(st.none(), st.floats(allow_nan=True), st.integers(-3, 3)),
    kind=st.one_of(st.none(), st.sampled_from(Kind), st.just("PRIMARY"), st.just(7)),
    when=st.one_of(
        st.none(),
        st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-3, minutes=-30))])),
        UPSTREAM_TIME,
        st.just("2024-01-01T00:00:00Z"),
    ),
)


async def both(operation: str, root: Query) -> tuple[dict[str, Any], dict[str, Any]]:
    answers = []
    for schema in (STOCK, SHORTCUT):
        result = await schema.execute(operation, root_value=root)
        answers.append(
            {
                # As text, so the order of keys counts too.
                "data": json.dumps(result.data),
                "errors": [error.formatted for error in result.errors or []],
            }
        )
    return answers[0], answers[1]


@pytest.mark.parametrize("operation", OPERATIONS)
@settings(max_examples=60, deadline=None)
@given(
    items=st.lists(ITEMS, max_size=4),
    # An error among the items is that item's error, as a resolver may return it.
    maybe=st.lists(st.one_of(st.none(), ITEMS, st.builds(ValueError, st.just("boom"))), max_size=3),
    first=st.one_of(st.none(), ITEMS),
)
async def test_shortcut_answers_what_graphql_core_answers(
    operation: str,
    items: list[Item],
    maybe: list[Item | None],
    first: Item | None,
) -> None:
    stock, shortcut = await both(operation, Query(items=items, maybe_items=maybe, first=first))
    assert shortcut == stock


def plain_item(index: int) -> Item:
    return Item(
        id=strawberry.ID(str(index)),
        label=f"item {index}",
        name=None,
        count=index,
        flag=index % 2 == 0,
        ratio=index / 3,
        kind=Kind.PRIMARY,
        when=datetime(2024, 1, 1, tzinfo=UTC),
    )


@settings(max_examples=200, deadline=None)
@given(
    whens=st.lists(
        st.one_of(UPSTREAM_TIME, UPSTREAM_TIME, UPSTREAM_TIME, ITEMS.map(lambda item: item.when)),
        min_size=4,
        max_size=12,
    )
)
async def test_a_long_lists_datetimes_are_what_graphql_core_makes_of_them(
    whens: list[Any],
) -> None:
    # Objects otherwise plain, so the list is completed a column at a time whatever
    # its DateTimes hold, and any value the column cannot take sends it back.
    items = [plain_item(index) for index in range(len(whens))]
    for item, when in zip(items, whens, strict=True):
        item.when = when
    stock, shortcut = await both(
        "{ items { id when } }", Query(items=items, maybe_items=[], first=None)
    )
    assert shortcut == stock


async def test_a_null_in_a_non_null_field_is_reported_as_graphql_core_reports_it() -> None:
    items = [plain_item(0), plain_item(1)]
    items[1].label = None  # type: ignore[assignment]
    stock, shortcut = await both(
        "{ items { id label } }", Query(items=items, maybe_items=[], first=None)
    )
    assert shortcut == stock
    assert shortcut["data"] == "null"
    assert shortcut["errors"][0]["message"] == (
        "Cannot return null for non-nullable field Item.label."
    )
    assert shortcut["errors"][0]["path"] == ["items", 1, "label"]


class ExecuteFieldCounter:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        original = Executor.execute_field

        def counting(executor: Executor, *args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return original(executor, *args, **kwargs)

        monkeypatch.setattr(Executor, "execute_field", counting)


async def test_plain_leaves_skip_graphql_cores_per_field_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A hundred objects of eight plain leaves: graphql-core resolves only the root field."""
    counter = ExecuteFieldCounter(monkeypatch)
    root = Query(items=[plain_item(i) for i in range(100)], maybe_items=[], first=None)
    result = await SHORTCUT.execute(f"{{ items {{ {ALL} }} }}", root_value=root)
    assert result.errors is None
    assert result.data is not None
    assert len(result.data["items"]) == 100
    assert result.data["items"][3]["when"] == "2024-01-01T00:00:00Z"
    assert result.data["items"][3]["kind"] == "PRIMARY"
    assert counter.calls == 1

    counter.calls = 0
    await STOCK.execute(f"{{ items {{ {ALL} }} }}", root_value=root)
    assert counter.calls == 1 + 100 * 8


async def test_only_fields_with_resolvers_go_through_graphql_core(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counter = ExecuteFieldCounter(monkeypatch)
    root = Query(items=[plain_item(i) for i in range(10)], maybe_items=[], first=None)
    result = await SHORTCUT.execute("{ items { later id shout label } }", root_value=root)
    assert result.errors is None
    assert result.data is not None
    assert list(result.data["items"][2]) == ["later", "id", "shout", "label"]
    assert result.data["items"][2] == {"later": 2, "id": "2", "shout": None, "label": "item 2"}
    assert counter.calls == 1 + 10 * 2


def test_the_gateway_schema_uses_the_shortcut() -> None:
    assert build_schema().execution_context_class is GatewayExecutor


async def test_a_list_with_null_items_takes_the_shortcut_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counter = ExecuteFieldCounter(monkeypatch)
    root = Query(items=[], maybe_items=[plain_item(0), None, plain_item(2)], first=None)
    result = await SHORTCUT.execute("{ maybeItems { id label } }", root_value=root)
    assert result.errors is None
    assert result.data == {
        "maybeItems": [{"id": "0", "label": "item 0"}, None, {"id": "2", "label": "item 2"}]
    }
    assert counter.calls == 1


# Objects made from records, as the gateway's are: a connection's nodes are a lazy list
# (``RecordObjects``) that the shortcut completes from the records without making them.
class Row(NamedTuple):
    id: Any
    label: Any
    count: Any
    kind: Any
    when: Any
    flag: Any = None
    ratio: Any = None
    tone: Any = None
    level: Any = None


@strawberry.type
class Made:
    id: strawberry.ID
    label: str
    count: int | None
    kind: Kind | None
    when: datetime | None
    flag: bool | None
    ratio: float | None
    tone: Kind | None  # held by the record as it is, unlike kind
    level: Level | None
    twice: int | None

    @strawberry.field
    def shout(self) -> str | None:
        return self.label.upper() if isinstance(self.label, str) else None


def kind_of(code: Any) -> Kind | None:
    return {1: Kind.PRIMARY, 2: Kind.ATTACHED}.get(code) if isinstance(code, int) else None


def twice(row: Row) -> int | None:
    return row.count * 2 if type(row.count) is int else None


made_from_row = record_maker(
    Made, Row._fields, converted={"kind": kind_of}, derived={"twice": twice}
)


@strawberry.type
class RowQuery:
    made: Sequence[Made]


ROWS_STOCK = make_schema(StrawberryGraphQLCoreExecutionContext, RowQuery)
ROWS_SHORTCUT = make_schema(GatewayExecutor, RowQuery)
# Each field's values: what records usually hold, and an odd value (wrong type, null in
# a non-null field, out of range, unknown code, a zone orjson gets wrong). A list holds
# at most one odd value, so that a list is all plain but for that one.
ROW_FIELDS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "id": (st.text(max_size=3), st.one_of(st.none(), st.integers(-3, 3))),
    "label": (st.text(max_size=3), st.one_of(st.none(), st.integers(0, 2), st.booleans())),
    "count": (
        st.one_of(st.none(), st.integers(-5, 5)),
        st.one_of(
            st.sampled_from([2**31 - 1, -(2**31), 2**31, -(2**31) - 1]),
            st.integers(-(2**40), 2**40),
            st.just("7"),
            st.booleans(),
            st.just(2.0),
        ),
    ),
    "kind": (st.one_of(st.none(), st.sampled_from([1, 2])), st.sampled_from([7, "1"])),
    "when": (st.one_of(st.none(), UPSTREAM_TIME), ITEMS.map(lambda item: item.when)),
    "flag": (st.one_of(st.none(), st.booleans()), st.one_of(st.integers(0, 1), st.just("yes"))),
    "ratio": (
        st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
        st.one_of(st.floats(), st.integers(-3, 3), st.just("1.5")),
    ),
    "tone": (st.one_of(st.none(), st.sampled_from(Kind)), st.sampled_from(["PRIMARY", 1])),
    "level": (st.one_of(st.none(), st.integers(1, 9)), st.sampled_from([0, "1", 1.5])),
}


@st.composite
def row_lists(draw: st.DrawFn) -> list[Row]:
    count = draw(st.integers(0, 6))
    odd_one = draw(st.sampled_from([None, *ROW_FIELDS]))
    columns = {}
    for name, (usual, odd) in ROW_FIELDS.items():
        values = draw(st.lists(usual, min_size=count, max_size=count))
        if count and name == odd_one:
            values[draw(st.integers(0, count - 1))] = draw(odd)
        columns[name] = values
    return [Row(**{name: columns[name][i] for name in columns}) for i in range(count)]


ROW_OPERATIONS = [
    "{ made { id label count kind when flag ratio tone level twice } }",
    "{ made { __typename a: id b: when when count } }",
    "{ made { id shout kind } }",
    "{ made { when } }",
]


@pytest.mark.parametrize("operation", ROW_OPERATIONS)
@settings(max_examples=80, deadline=None)
@given(rows=row_lists())
async def test_a_lazy_list_of_records_answers_what_its_objects_answer(
    operation: str, rows: list[Row]
) -> None:
    await assert_lazy_answers_as_objects(operation, rows)


# Each odd value once, in an otherwise plain list long enough to go by column.
ODD_VALUES = [
    ("id", None),
    ("id", 3),
    ("label", None),
    ("label", True),
    ("count", 2**31),
    ("count", -(2**31) - 1),
    ("count", 2**31 - 1),
    ("count", True),
    ("count", "7"),
    ("count", 2.0),
    ("kind", 7),
    ("tone", "PRIMARY"),
    ("tone", 1),
    ("when", "2024-01-01T00:00:00Z"),
    ("when", datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=-3, minutes=-30)))),
    ("when", datetime(2024, 1, 1, 0, 0, 0, 500, tzinfo=UTC)),
    ("flag", 1),
    ("flag", "yes"),
    ("ratio", float("nan")),
    ("ratio", 2),
    ("ratio", "1.5"),
    ("level", 0),
    ("level", "1"),
]


@pytest.mark.parametrize(("field", "odd"), ODD_VALUES)
async def test_one_odd_value_in_a_list_of_records_is_answered_as_its_objects_answer(
    field: str, odd: Any
) -> None:
    rows = [
        Row(str(i), f"r{i}", i, 1 + i % 2, from_epoch_ms(i), i % 3 == 0, i / 4, Kind.ATTACHED, i)
        for i in range(1, 11)
    ]
    rows[6] = rows[6]._replace(**{field: odd})
    await assert_lazy_answers_as_objects(ROW_OPERATIONS[0], rows)


async def assert_lazy_answers_as_objects(operation: str, rows: list[Row]) -> None:
    """The operation over the rows' objects by graphql-core, and over the rows as a lazy
    list by the shortcut, answer the same."""
    stock = await ROWS_STOCK.execute(
        operation, root_value=RowQuery(made=[made_from_row(row) for row in rows])
    )
    lazy = ObjectsByRecord(made_from_row).lazy(rows)
    shortcut = await ROWS_SHORTCUT.execute(operation, root_value=RowQuery(made=lazy))
    assert json.dumps(shortcut.data) == json.dumps(stock.data)
    assert [e.formatted for e in shortcut.errors or []] == [e.formatted for e in stock.errors or []]


async def test_a_long_lazy_list_of_plain_fields_makes_no_object() -> None:
    made: list[Row] = []

    def counted(row: Row) -> Made:
        made.append(row)
        return made_from_row(row)

    objects: ObjectsByRecord[Row, Made] = ObjectsByRecord(made_from_row)
    rows = [Row(str(i), f"r{i}", i, 1, from_epoch_ms(i)) for i in range(64)]
    lazy = objects.lazy(rows)
    lazy._object_of = counted  # type: ignore[assignment]  # count what gets made
    result = await ROWS_SHORTCUT.execute(
        "{ made { id kind twice when } }", root_value=RowQuery(made=lazy)
    )
    assert result.errors is None and result.data is not None
    assert result.data["made"][3] == {
        "id": "3",
        "kind": "PRIMARY",
        "twice": 6,
        "when": "1970-01-01T00:00:00.003Z",
    }
    assert made == []
    # A field with a resolver needs the objects: made then, once each.
    result = await ROWS_SHORTCUT.execute("{ made { shout } }", root_value=RowQuery(made=lazy))
    assert result.errors is None and len(made) == 64

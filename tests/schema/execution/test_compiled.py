"""Generated completion (``schema.compiled``): used where it pays, shared by shape,
and never built from what a client sends. That it answers exactly what the plan's
loop and graphql-core answer is checked in ``test_execution`` and ``test_links``,
which run every case both ways."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from gateway import times
from gateway.times import from_epoch_ms
from schema.execution import compiled
from schema.execution import executor as execution
from schema.execution.compiled import COMPILE_AFTER, CompileBudget, StepKinds, compile_steps
from schema.execution.executor import LeafPlan
from schema.scalars import serialize_datetime
from tests.schema.execution.test_executor import ALL, SHORTCUT, Query, plain_item

PLAIN = frozenset({int, float, str, bool})
NOT_A_LINK: Callable[[Any], bool] = lambda value: False  # noqa: E731
NOT_INT: Callable[[Any], bool] = lambda coerce: False  # noqa: E731


@dataclass
class Row:
    label: str | None
    size: int | None


@pytest.fixture(autouse=True)
def full_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with the whole burst, whatever the tests before it compiled."""
    monkeypatch.setattr(compiled, "budget", CompileBudget(500.0, 2000.0, lambda: 0.0))


def text_step(name: str, attribute: str = "label") -> tuple[Any, ...]:
    return (name, attribute, False, str, None, str)


def build(steps: list[tuple[Any, ...]]) -> Any:
    kinds = StepKinds(is_link=NOT_A_LINK, is_int=NOT_INT, plain=PLAIN, fallback=None)
    return compile_steps(steps, kinds)


class StepCounter:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        by_steps = LeafPlan.by_steps

        def counting(plan: LeafPlan, source: Any) -> Any:
            self.calls += 1
            return by_steps(plan, source)

        monkeypatch.setattr(LeafPlan, "by_steps", counting)


async def test_a_long_list_is_completed_by_generated_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counter = StepCounter(monkeypatch)
    many = Query(items=[plain_item(i) for i in range(COMPILE_AFTER)], maybe_items=[], first=None)
    result = await SHORTCUT.execute(f"{{ items {{ {ALL} }} }}", root_value=many)
    assert result.errors is None and result.data is not None
    assert result.data["items"][5] == {
        "id": "5",
        "label": "item 5",
        "name": None,
        "count": 5,
        "flag": False,
        "ratio": 5 / 3,
        "kind": "PRIMARY",
        "when": "2024-01-01T00:00:00Z",
    }
    assert counter.calls == 0

    few = Query(items=[plain_item(i) for i in range(5)], maybe_items=[], first=None)
    result = await SHORTCUT.execute(f"{{ items {{ {ALL} }} }}", root_value=few)
    assert result.errors is None
    assert counter.calls == 5  # too few to be worth compiling


async def test_a_long_lists_datetimes_take_one_call_a_column(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    per_value: list[Any] = []
    columns: list[int] = []
    monkeypatch.setattr(execution, "format_iso", lambda value: per_value.append(value))
    real_many = times.format_iso_many

    def many(values: list[Any]) -> list[str | None]:
        columns.append(len(values))
        return real_many(values)

    kinds = dataclasses.replace(execution._KINDS, columns={serialize_datetime: many})
    monkeypatch.setattr(execution, "_KINDS", kinds)
    items = [plain_item(i) for i in range(COMPILE_AFTER)]
    for index, item in enumerate(items):
        item.when = from_epoch_ms(1_700_000_000_000 + index)
    result = await SHORTCUT.execute(
        "{ items { id when at: when } }",
        root_value=Query(items=items, maybe_items=[], first=None),
    )
    assert result.errors is None and result.data is not None
    assert result.data["items"][7] == {
        "id": "7",
        "when": "2023-11-14T22:13:20.007Z",
        "at": "2023-11-14T22:13:20.007Z",
    }
    assert columns == [COMPILE_AFTER, COMPILE_AFTER]  # one call for each DateTime column
    assert per_value == []


def test_plans_of_one_shape_share_one_generated_factory() -> None:
    compiled._factories.clear()
    first = build([text_step("a"), ("n", "size", False, None, None, int)])
    second = build([text_step("b"), ("m", "size", False, None, None, int)])
    assert len(compiled._factories) == 1
    assert first(Row("x", 3)) == {"a": "x", "n": 3}
    assert second(Row("y", None)) == {"b": "y", "m": None}


def test_response_names_are_values_never_source() -> None:
    name = '"}; import os; os.exit(1); {"'
    complete = build([text_step(name), text_step("__class__")])
    assert complete(Row("x", 1)) == {name: "x", "__class__": "x"}


def test_an_attribute_that_is_not_an_identifier_keeps_the_loop() -> None:
    assert build([text_step("a", "label; import os")]) is None
    assert build([text_step("a", "class")]) is None


def test_a_refused_value_hands_the_object_back() -> None:
    def refuse(value: Any) -> Any:
        raise TypeError("no")

    complete = build([("a", "size", True, None, None, refuse)])
    assert complete(Row("x", None)) is None  # null in a non-null field
    assert complete(Row("x", 5)) is None  # the coercion refuses


def test_the_shape_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compiled, "_MAX_SHAPES", 3)
    compiled._factories.clear()
    for count in range(1, 6):
        build([text_step(f"k{index}") for index in range(count)])
    assert len(compiled._factories) == 3


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_compile_budget_refills_with_time_up_to_its_burst() -> None:
    clock = Clock()
    budget = CompileBudget(rate=10.0, burst=30.0, clock=clock)
    assert budget.spend(20)
    assert not budget.spend(20)  # 10 left
    clock.now += 1.0  # +10
    assert budget.spend(20)
    clock.now += 1000.0  # refilled to the burst, not beyond
    assert budget.spend(30)
    assert not budget.spend(1)


def test_past_the_budget_new_shapes_keep_the_loop_and_known_ones_are_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compiled._factories.clear()
    known = build([text_step("a")])
    assert known is not None
    monkeypatch.setattr(compiled, "budget", CompileBudget(0.0, 0.0, lambda: 0.0))
    assert build([text_step("a"), text_step("b")]) is None  # a new shape: not compiled
    again = build([text_step("c")])  # the known shape, under another response name
    assert again is not None
    assert again(Row("x", 1)) == {"c": "x"}
    assert len(compiled._factories) == 1

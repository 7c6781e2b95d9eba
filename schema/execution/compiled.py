"""A plan's completion as straight-line code, generated once per shape of selection.

``LeafPlan.by_steps`` loops over its steps: for each field a tuple to unpack, a
``getattr`` call and the branches every kind of step may need, about 0.3 µs a field,
most of a large list's completion. For a plan that completes many objects, this
module writes the same steps out as one Python function, as ``dataclasses`` does for
``__init__``: an attribute read, only the checks its kind of field needs, and one
dict display. ``tests/schema/test_execution.py`` and ``test_links.py`` run every case
both ways and compare the answers.

Nothing a client sends becomes source: response names, enum names, coercions and
links are the function's parameters, and attribute names come from the schema (and
must be identifiers). The generated factory is cached by shape (which attribute,
which kind of check per step) for every request, in a bounded cache, and a plan is
compiled only after ``COMPILE_AFTER`` objects, so a one-off selection costs nothing.

For a long list, ``compile_list`` writes a variant that leaves each DateTime as it
is and then formats the list's DateTimes a column at a time (``format_iso_many``).
(A list of records is completed wholly a column at a time: ``schema.columnar``.)

Compiling costs about 0.1 ms a field, and any subset of a type's fields is a shape of
its own, so a client sending ever new selections could make every request pay it.
New shapes are therefore compiled within a budget of fields per second; past it, a
plan keeps the loop, and only shapes already compiled are used.
"""

from __future__ import annotations

import keyword
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from graphql import Undefined

Completion = Callable[[Any], "dict[str, Any] | None"]
ListCompletion = Callable[[Sequence[Any]], "list[dict[str, Any]] | None"]
ColumnFormat = Callable[[list[Any]], Sequence[Any]]
Coercion = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class StepKinds:
    """What a completion needs to know of the executor's steps (``schema.execution``)."""

    is_link: Callable[[Any], bool]
    """Whether a step's passthrough slot holds a link (``LinkStep``)."""
    is_int: Callable[[Coercion], bool]
    """Whether a coercion is Int's."""
    plain: frozenset[type]
    """Types whose values need no check before their coercion."""
    fallback: Any
    """What a link's completion answers where graphql-core must decide."""
    direct: Mapping[Coercion, tuple[type, Coercion]] = field(default_factory=dict)
    """A coercion to a type and a function that gives what the coercion gives for values
    of exactly that type, and never None (DateTime's serializer: ``format_iso`` for a
    ``datetime``)."""
    columns: Mapping[Coercion, ColumnFormat] = field(default_factory=dict)
    """A coercion (in ``direct``) to a function that gives, for a list of values of its
    direct type or None, what the direct function gives for each (``format_iso_many``)."""


# A plan compiles once it has completed this many objects in a request: a shape is
# usually sent again, and its factory serves every later request.
COMPILE_AFTER = 64
_MAX_SHAPES = 256
# New shapes compiled: at most this many fields a second on average (about 5 % of a
# core), in bursts of at most _BURST_FIELDS (a restart compiling its usual shapes).
_FIELDS_PER_SECOND = 500.0
_BURST_FIELDS = 2000.0


class CompileBudget:
    """Fields that may still be compiled: refilled with time, spent on new shapes."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._fields = burst
        self._at = clock()

    def spend(self, fields: int) -> bool:
        now = self._clock()
        self._fields = min(self.burst, self._fields + (now - self._at) * self.rate)
        self._at = now
        if self._fields < fields:
            return False
        self._fields -= fields
        return True


budget = CompileBudget(_FIELDS_PER_SECOND, _BURST_FIELDS, time.monotonic)


class Fail:
    """The marker of a value the coercion refused: the plan hands the object back."""


FAIL: Any = Fail()


def convert(value: Any, coerce: Callable[[Any], Any], plain: frozenset[type]) -> Any:
    """A value that is neither null nor already its output, as ``LeafPlan.by_steps``
    converts it, or ``FAIL``."""
    if type(value) not in plain and (
        isinstance(value, Exception) or hasattr(value, "__await__") or value is Undefined
    ):
        return FAIL
    coerced = coerce(value)
    if coerced is None or coerced is Undefined:
        return FAIL
    return coerced


# What a step needs, by kind: ("const",), ("link",), or ("attr", attribute, non_null, has
# passthrough, has enum names, is Int, has direct, left for its column's format).
Shape = tuple[tuple[Any, ...], ...]
Factory = Callable[..., Completion]
_factories: OrderedDict[Shape, Factory] = OrderedDict()


def _attribute_lines(index: int, shape: tuple[Any, ...]) -> list[str]:
    _, attribute, non_null, has_passthrough, has_names, is_int, has_direct, deferred = shape
    v = f"v{index}"
    lines = [f"{v} = s.{attribute}"]
    # The usual case first: a value already of its output type is one test, not two.
    if has_passthrough:
        lines += [f"if type({v}) is P{index}:", "    pass", f"elif {v} is None:"]
    elif deferred:
        # Left as it is: the list's completion formats the whole column at once.
        lines += [f"if type({v}) is T{index}:", "    pass", f"elif {v} is None:"]
    else:
        lines.append(f"if {v} is None:")
    lines.append("    return None" if non_null else "    pass")
    if has_names:
        lines += [f"elif (t := N{index}.get(id({v}))) is not None:", f"    {v} = t"]
    if is_int:
        # Int's own coercion keeps a 32-bit int as it is.
        lines += [f"elif type({v}) is int and -2147483648 <= {v} <= 2147483647:", "    pass"]
    if has_direct and not deferred:
        # A value of the exact type the coercion's own work is one call for.
        lines += [f"elif type({v}) is T{index}:", f"    {v} = D{index}({v})"]
    lines += [
        "else:",
        f"    {v} = convert({v}, C{index}, plain)",
        f"    if {v} is FAIL:",
        "        return None",
    ]
    return lines


def _factory(shape: Shape) -> Factory:
    """``make(K0, P0, N0, C0, L0, ..., convert, plain, FAIL, FALLBACK)``, which returns
    the completion for one plan of this shape."""
    parameters: list[str] = []
    body: list[str] = []
    for index, step in enumerate(shape):
        parameters.append(f"K{index}")
        if step[0] == "const":
            parameters.append(f"P{index}")
            body.append(f"v{index} = P{index}")
        elif step[0] == "link":
            parameters.append(f"L{index}")
            body += [
                f"v{index} = L{index}.complete(s)",
                f"if v{index} is FALLBACK:",
                "    return None",
            ]
        else:
            parameters += [f"P{index}", f"N{index}", f"C{index}", f"T{index}", f"D{index}"]
            body += _attribute_lines(index, step)
    result = ", ".join(f"K{index}: v{index}" for index in range(len(shape)))
    source = "\n".join(
        [
            f"def make({', '.join(parameters)}, convert, plain, FAIL, FALLBACK):",
            "    def complete(s):",
            "        try:",
            *(f"            {line}" for line in body),
            f"            return {{{result}}}",
            "        except Exception:",
            "            return None",
            "    return complete",
        ]
    )
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<leaf plan of {len(shape)} fields>", "exec"), namespace)  # noqa: S102
    factory: Factory = namespace["make"]
    return factory


def _cached_factory(shape: Shape) -> Factory | None:
    """The factory of a shape: cached, or compiled now if the budget allows, else None."""
    factory = _factories.get(shape)
    if factory is not None:
        _factories.move_to_end(shape)
        return factory
    if not budget.spend(len(shape)):
        return None
    factory = _factory(shape)
    _factories[shape] = factory
    if len(_factories) > _MAX_SHAPES:
        _factories.popitem(last=False)
    return factory


def _shape(
    steps: Sequence[tuple[Any, ...]], kinds: StepKinds, columns: Mapping[Coercion, ColumnFormat]
) -> tuple[Shape, list[Any]] | None:
    """A plan's shape and the generated function's arguments, or None when an attribute
    name cannot be written as source. A step whose coercion is in ``columns`` (and in
    ``direct``) leaves a value of the direct type as it is, for its column's format."""
    shape: list[tuple[Any, ...]] = []
    arguments: list[Any] = []
    for name, attribute, non_null, passthrough, names, coerce in steps:
        arguments.append(name)
        if attribute is None:
            if kinds.is_link(passthrough):
                shape.append(("link",))
            else:
                shape.append(("const",))
            arguments.append(passthrough)
            continue
        if not attribute.isidentifier() or keyword.iskeyword(attribute):
            return None
        exact, function = kinds.direct.get(coerce, (None, None))
        shape.append(
            (
                "attr",
                attribute,
                bool(non_null),
                passthrough is not None,
                names is not None,
                kinds.is_int(coerce),
                exact is not None,
                exact is not None and coerce in columns,
            )
        )
        arguments += [passthrough, names, coerce, exact, function]
    return tuple(shape), arguments


def compile_steps(steps: Sequence[tuple[Any, ...]], kinds: StepKinds) -> Completion | None:
    """The completion for a plan's steps (``schema.execution.LeafStep``), or None when an
    attribute name cannot be written as source or a new shape is over budget."""
    made = _completion(steps, kinds, {})
    return None if made is None else made[1]


def _completion(
    steps: Sequence[tuple[Any, ...]], kinds: StepKinds, columns: Mapping[Coercion, ColumnFormat]
) -> tuple[Shape, Completion] | None:
    """The shape of ``steps`` and the generated completion of one item, or None."""
    shaped = _shape(steps, kinds, columns)
    if shaped is None:
        return None
    factory = _cached_factory(shaped[0])
    if factory is None:
        return None
    return shaped[0], factory(*shaped[1], convert, kinds.plain, FAIL, kinds.fallback)


def compile_list(steps: Sequence[tuple[Any, ...]], kinds: StepKinds) -> ListCompletion | None:
    """The completion of a list of objects (none of them None) whose fields of a
    ``kinds.columns`` coercion are formatted a column at a time, after the objects; None
    when no step has such a coercion, or as ``compile_steps``."""
    made = _completion(steps, kinds, kinds.columns)
    if made is None:
        return None
    shape, complete = made
    formats = [
        (step[0], kinds.columns[step[5]])
        for step, kind in zip(steps, shape, strict=True)
        if kind[0] == "attr" and kind[7]
    ]
    if not formats:
        return None  # the objects' own completion, one by one, does as well

    def complete_list(items: Sequence[Any]) -> list[dict[str, Any]] | None:
        completed = list(map(complete, items))
        if None in completed:
            return None
        rows = cast("list[dict[str, Any]]", completed)
        try:
            for key, format_column in formats:
                for row, text in zip(rows, format_column([row[key] for row in rows]), strict=True):
                    row[key] = text
        except Exception:
            # What the column's function refuses, graphql-core reports value by value.
            return None
        return rows

    return complete_list


__all__ = [
    "COMPILE_AFTER",
    "CompileBudget",
    "StepKinds",
    "budget",
    "compile_list",
    "compile_steps",
]

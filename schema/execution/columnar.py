"""A list of records' results made a column at a time.

A connection's nodes arrive as records (``schema.views.RecordObjects``), all of one
kind, and a selection of plain fields reads the same item of every record. Completed
record by record, each field is a few bytecodes and a test. Turned into columns (one
``zip`` in C), a String, ID, Boolean, Int or enum column is checked by a pass or two
in C (the set of its values' types, then a range or a lookup), a DateTime column is
written by its column format, and only other scalars take their coercion value by
value; the rows are then built by one generated dict display each.

A column whose values are not all of the kind its field outputs as they are (a null in
a non-null field, an Int out of range, a member no enum name is known for, any type
the column does not expect) makes the whole list ``None``: the objects are made and
completed the usual way, which reports exactly what graphql-core would.

The set of a column's types compares types by equality, which is identity unless a
metaclass redefines it; by identity outright (``id`` of each type) the checks cost
three times as much, 0.7 ms on a thousand subscriptions. Records hold values of
exactly their declared types (``gateway.fields``' readers test types by identity,
``gateway.codec`` checks what the shared cache gives back), so no such class reaches
a column.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from itertools import repeat
from operator import is_not
from typing import Any

from graphql import Undefined

from schema.execution.compiled import ColumnFormat, ListCompletion, StepKinds
from schema.execution.objects import Access

# A column of a list's values from its records and their columns (``zip(*records)``).
ColumnRead = Callable[[Sequence[Any], list[tuple[Any, ...]]], Sequence[Any]]
# A column's results from its values, or None where the column is not the plain case.
ColumnCheck = Callable[[Sequence[Any]], "Sequence[Any] | None"]

_NONE = type(None)
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_UNNAMED: Any = object()
_present = partial(filter, partial(is_not, None))


def _read_column(access: Access) -> ColumnRead:
    kind, position, function = access
    if kind == "item":
        index = int(position)  # type: ignore[arg-type]
        return lambda records, columns: columns[index]
    if kind == "converted" and function is not None:
        index, convert = int(position), function  # type: ignore[arg-type]
        return lambda records, columns: list(map(convert, columns[index]))
    if kind == "derived" and function is not None:
        derive = function
        return lambda records, columns: list(map(derive, records))
    raise ValueError(f"unknown access {kind!r}")


def _as_they_are(output_type: type, non_null: bool) -> ColumnCheck:
    """String, ID, Boolean: values of exactly the output type are their own results."""
    allowed = {output_type} if non_null else {output_type, _NONE}

    def check(values: Sequence[Any]) -> Sequence[Any] | None:
        return values if set(map(type, values)) <= allowed else None

    return check


def _named(names: Mapping[int, str], non_null: bool) -> ColumnCheck:
    """An enum: each member by identity (as ``schema.execution`` keys them) to its name."""
    lookup: dict[int, str | None] = {**names, id(None): None}

    def check(values: Sequence[Any]) -> Sequence[Any] | None:
        named = list(map(lookup.get, map(id, values), repeat(_UNNAMED)))
        if _UNNAMED in named or (non_null and None in named):
            return None
        return named

    return check


def _ints(non_null: bool) -> ColumnCheck:
    """Int: plain ints in 32 bits as they are (a bool is not one: graphql-core's case)."""
    allowed = {int} if non_null else {int, _NONE}

    def check(values: Sequence[Any]) -> Sequence[Any] | None:
        kinds = set(map(type, values))
        if not kinds <= allowed:
            return None
        present = list(_present(values)) if _NONE in kinds else values
        if present and (min(present) < _INT_MIN or max(present) > _INT_MAX):
            return None
        return values

    return check


def _formatted(exact: type, format_column: ColumnFormat, non_null: bool) -> ColumnCheck:
    """DateTime: a column of ``datetime`` written by its column's format."""
    allowed = {exact} if non_null else {exact, _NONE}

    def check(values: Sequence[Any]) -> Sequence[Any] | None:
        if not set(map(type, values)) <= allowed:
            return None
        return format_column(list(values))

    return check


def _coerced(coerce: Callable[[Any], Any], plain: frozenset[type], non_null: bool) -> ColumnCheck:
    """Any other scalar or enum: its own coercion for each value but null."""
    allowed = plain if non_null else plain | {_NONE}

    def check(values: Sequence[Any]) -> Sequence[Any] | None:
        if not set(map(type, values)) <= allowed:
            return None
        results: list[Any] = []
        for value in values:
            if value is None:
                results.append(None)
                continue
            result = coerce(value)
            if result is None or result is Undefined:
                return None
            results.append(result)
        return results

    return check


_row_makers: dict[int, Callable[..., Callable[..., dict[str, Any]]]] = {}


def _row_maker(keys: Sequence[str]) -> Callable[..., dict[str, Any]]:
    """``row(v0, v1, ...)``: the dict of ``keys`` to the values, as one dict display (a
    third cheaper than ``dict(zip(keys, values))``). Keys are arguments, never source."""
    factory = _row_makers.get(len(keys))
    if factory is None:
        count = range(len(keys))
        source = (
            f"def make({''.join(f'K{i}, ' for i in count)}):\n"
            f"    return lambda {''.join(f'v{i}, ' for i in count)}: "
            f"{{{''.join(f'K{i}: v{i}, ' for i in count)}}}"
        )
        namespace: dict[str, Any] = {}
        exec(compile(source, f"<row of {len(keys)} fields>", "exec"), namespace)  # noqa: S102
        factory = _row_makers[len(keys)] = namespace["make"]
    return factory(*keys)


def compile_columns(
    steps: Sequence[tuple[Any, ...]], layout: Mapping[str, Access], kinds: StepKinds
) -> ListCompletion | None:
    """The completion of a list of records whose objects a plan's steps
    (``schema.execution.LeafStep``) are for, each field read where ``layout`` says; None
    when the layout lacks an attribute or a step is a link (a link reads the object).
    Of ``kinds.direct`` only a coercion's exact type is used, with the format of a column
    of it from ``kinds.columns`` (DateTime: ``datetime``, ``format_iso_many``)."""
    # Per step: a constant (__typename) or how to read its column and check it.
    plan: list[tuple[Any, ColumnRead, ColumnCheck] | tuple[Any, None, None]] = []
    for _, attribute, non_null, passthrough, names, coerce in steps:
        if attribute is None:
            if kinds.is_link(passthrough):
                return None
            plan.append((passthrough, None, None))
            continue
        if attribute not in layout:
            return None
        exact = kinds.direct.get(coerce, (None, None))[0]
        if passthrough is not None:
            check = _as_they_are(passthrough, non_null)
        elif names is not None:
            check = _named(names, non_null)
        elif kinds.is_int(coerce):
            check = _ints(non_null)
        elif exact is not None and coerce in kinds.columns:
            check = _formatted(exact, kinds.columns[coerce], non_null)
        else:
            check = _coerced(coerce, kinds.plain, non_null)
        plan.append((None, _read_column(layout[attribute]), check))
    row = _row_maker([step[0] for step in steps])

    def complete_columns(records: Sequence[Any]) -> list[dict[str, Any]] | None:
        if not records:
            return []
        try:
            record_columns = list(zip(*records, strict=True))
            results: list[Any] = []
            for constant, read, check in plan:
                if read is None or check is None:
                    results.append(repeat(constant, len(records)))
                    continue
                column = check(read(records, record_columns))
                if column is None:
                    return None
                results.append(column)
        except Exception:
            # What a column refuses, the objects' own completion reports value by value.
            return None
        return list(map(row, *results))

    return complete_columns


__all__ = ["compile_columns"]

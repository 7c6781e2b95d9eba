"""How a column of leaf values becomes its output: the one place the shortcut coerces.

graphql-core coerces each leaf value by its type's ``coerce_output_value`` and reports what the
type refuses. The shortcut (``schema.execution.plans``) coerces a column of values (one
field of every object in a list) at once, by C passes where it can: the set of the
values' types, then an Int range or an enum lookup. Whenever a column is not the plain
case (a type it does not expect, a null in a non-null field, an Int out of range, a
member no name is known for, a scalar answering None) the answer is None, and the whole
list goes to graphql-core, which says exactly what it always says.

Types are compared by equality, which is identity unless a metaclass redefines it:
records hold values of exactly their declared types (``gateway.upstreams.fields``'
readers test types by identity, ``gateway.cache.codec`` checks what the shared cache
gives back).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from enum import Enum
from itertools import repeat
from typing import Any, Protocol

from graphql import (
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLID,
    GraphQLInt,
    GraphQLScalarType,
    GraphQLString,
    Undefined,
)

from gateway.times import format_iso_many
from schema.scalars import serialize_datetime

_NONE = type(None)
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
"""GraphQL's Int: 32 bits, signed."""
_UNNAMED: Any = object()
# Types whose values a scalar's own coercion may be given without a check first (it may
# still refuse them): never an error, an awaitable or Undefined, which are graphql-core's.
_PLAIN_TYPES = frozenset({int, float, str, bool, datetime})


class Output(Protocol):
    def column(self, values: Sequence[Any], non_null: bool) -> Sequence[Any] | None:
        """The outputs of ``values``, or None where graphql-core must decide."""
        ...


class AsTheyAre:
    """String, ID, Boolean: values of exactly the output type are their own output."""

    def __init__(self, output_type: type) -> None:
        self._exact = frozenset({output_type})
        self._nullable = frozenset({output_type, _NONE})

    def column(self, values: Sequence[Any], non_null: bool) -> Sequence[Any] | None:
        allowed = self._exact if non_null else self._nullable
        return values if set(map(type, values)) <= allowed else None


class Ints:
    """Int: plain ints in 32 bits as they are (a bool is not one: graphql-core's case)."""

    def column(self, values: Sequence[Any], non_null: bool) -> Sequence[Any] | None:
        kinds = set(map(type, values))
        if not kinds <= ({int} if non_null else {int, _NONE}):
            return None
        present = [value for value in values if value is not None] if _NONE in kinds else values
        if present and (min(present) < INT_MIN or max(present) > INT_MAX):
            return None
        return values


class Named:
    """An enum: each member by identity to its GraphQL name. By identity: members live as
    long as their class, so no other value shares an id with one, and an Enum's own hash
    is Python code, dearer than the lookup."""

    def __init__(self, names: Mapping[int, str]) -> None:
        self._names: dict[int, str | None] = {**names, id(None): None}

    def column(self, values: Sequence[Any], non_null: bool) -> Sequence[Any] | None:
        named = list(map(self._names.get, map(id, values), repeat(_UNNAMED)))
        if _UNNAMED in named or (non_null and None in named):
            return None
        return named


class DateTimes:
    """DateTime: a column of ``datetime`` written in one pass (``format_iso_many``)."""

    def column(self, values: Sequence[Any], non_null: bool) -> Sequence[Any] | None:
        if not set(map(type, values)) <= ({datetime} if non_null else {datetime, _NONE}):
            return None
        return format_iso_many(list(values))


class Coerced:
    """Any other scalar: its own coercion for each value but null."""

    def __init__(self, coerce: Callable[[Any], Any]) -> None:
        self._coerce = coerce

    def column(self, values: Sequence[Any], non_null: bool) -> Sequence[Any] | None:
        if not set(map(type, values)) <= (_PLAIN_TYPES if non_null else _PLAIN_TYPES | {_NONE}):
            return None
        outputs: list[Any] = []
        for value in values:
            if value is None:
                outputs.append(None)
                continue
            output = self._coerce(value)
            if output is None or output is Undefined:
                return None
            outputs.append(output)
        return outputs


_AS_THEY_ARE: Mapping[GraphQLScalarType, Output] = {
    GraphQLString: AsTheyAre(str),
    GraphQLID: AsTheyAre(str),
    GraphQLBoolean: AsTheyAre(bool),
    GraphQLInt: Ints(),
}


def output_of(leaf: GraphQLScalarType | GraphQLEnumType) -> Output:
    """How a column of ``leaf``'s values is output."""
    if isinstance(leaf, GraphQLEnumType):
        names = enum_names(leaf)
        return Coerced(leaf.coerce_output_value) if names is None else Named(names)
    known = _AS_THEY_ARE.get(leaf)
    if known is not None:
        return known
    if leaf.coerce_output_value is serialize_datetime:
        return DateTimes()
    return Coerced(leaf.coerce_output_value)


def enum_names(enum_type: GraphQLEnumType) -> Mapping[int, str] | None:
    """Each member of the Python enum behind a Strawberry enum, by identity, with its
    GraphQL name as the type's own coercion names it; None when that cannot be relied on."""
    wrapped = getattr(enum_type, "wrapped_cls", None)
    if not (isinstance(wrapped, type) and issubclass(wrapped, Enum)):
        return None
    if issubclass(wrapped, int | str):
        # IntEnum and StrEnum members equal plain values (and other enums' members):
        # a lookup by equality could name a value the type's own coercion would not.
        return None
    names: dict[int, str] = {}
    for member in wrapped:
        try:
            names[id(member)] = enum_type.coerce_output_value(member)
        except Exception:  # noqa: S112 - a member it refuses stays graphql-core's
            continue
    return names


__all__ = ["INT_MAX", "INT_MIN", "Output", "enum_names", "output_of"]

"""Strawberry objects made from upstream records, a thousand per large answer.

A Strawberry type is a dataclass. Its ``__init__`` parses keyword arguments and an
instance keeps its fields in a dict: building that dict from a record (a NamedTuple)
was 1.6 µs for a subscription's 29 fields. The quickest form CPython has is an
instance whose fields are slots, filled by unpacking the record in one statement:
0.37 µs. So each type made from records has a subclass with its fields as slots,
and nothing else: no field, no method, no other behaviour. To Strawberry, graphql-core
and ``isinstance`` it is the type.

The statement is generated, as ``dataclasses`` generates ``__init__``, from the
type's own field names (which must be identifiers); nothing a client or an upstream
sends becomes source.
"""

from __future__ import annotations

import dataclasses
import keyword
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple, TypeVar

T = TypeVar("T")


def record_maker(
    cls: type[T],
    record_fields: Sequence[str],
    *,
    converted: Mapping[str, Callable[[Any], Any]] | None = None,
    derived: Mapping[str, Callable[[Any], Any]] | None = None,
) -> Callable[[Sequence[Any]], T]:
    """A function making a ``cls`` from a record whose fields are ``record_fields``.

    Each record field goes to the attribute of its name, through its function in
    ``converted`` if it has one (a code to its enum); each attribute in ``derived`` is
    its function of the whole record. Together they must set every field of ``cls``.
    """
    converted = dict(converted or {})
    derived = dict(derived or {})
    fields = {field.name for field in dataclasses.fields(cls) if field.init}  # type: ignore[arg-type]
    names = [*record_fields, *derived]
    if set(names) != fields or len(names) != len(fields):
        raise TypeError(f"{cls.__name__}'s fields are not the record's and the derived ones")
    if not set(converted) <= set(record_fields):
        raise TypeError(f"converted fields that the record does not have: {sorted(converted)}")
    if any(not name.isidentifier() or keyword.iskeyword(name) for name in names):
        raise TypeError(f"{cls.__name__} has a field that is not an identifier")

    view = type(cls.__name__, (cls,), {"__slots__": tuple(names), "__module__": cls.__module__})
    lines = [
        "def make(record):",
        "    made = new(view)",
        f"    ({''.join(f'made.{name}, ' for name in record_fields)}) = record",
        *(f"    made.{name} = converted_{name}(made.{name})" for name in converted),
        *(f"    made.{name} = derived_{name}(record)" for name in derived),
        "    return made",
    ]
    namespace: dict[str, Any] = {
        "new": object.__new__,
        "view": view,
        **{f"converted_{name}": function for name, function in converted.items()},
        **{f"derived_{name}": function for name, function in derived.items()},
    }
    exec(compile("\n".join(lines), f"<{cls.__name__} from a record>", "exec"), namespace)  # noqa: S102
    make: Callable[[Sequence[Any]], T] = namespace["make"]
    layout: dict[str, Access] = {}
    for index, name in enumerate(record_fields):
        function = converted.get(name)
        layout[name] = (
            Access("item", index, _same)
            if function is None
            else Access("converted", index, function)
        )
    for name, function in derived.items():
        layout[name] = Access("derived", -1, function)
    _layouts[make] = layout
    return make


class Access(NamedTuple):
    """Where an attribute of an object made from a record comes from: ``item``, the record's
    value at ``position``; ``converted``, ``function`` of it; ``derived``, ``function`` of the
    whole record."""

    kind: Literal["item", "converted", "derived"]
    position: int
    function: Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


_layouts: dict[Callable[..., Any], Mapping[str, Access]] = {}


def record_layout(make: Callable[..., Any]) -> Mapping[str, Access] | None:
    """Each attribute's ``Access`` for the objects ``make`` (from ``record_maker``) makes,
    so that what an object would say can be read from its record without making it."""
    return _layouts.get(make)


__all__ = ["Access", "record_layout", "record_maker"]

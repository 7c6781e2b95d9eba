"""How the shortcut completes objects of one type under one selection: a ``Plan``.

Most of what this gateway answers is lists of records whose selected fields are plain
attributes (no resolver, no argument, a scalar or enum type) and links whose values are
loaded already. graphql-core spends several microseconds on each such field (a path, a
resolve info, the resolver call, value completion). A plan completes a list of such
objects a column at a time: each field's values read at once (``attrgetter`` over the
objects, or, for records not yet made into objects, the record's own column), checked
and coerced by one pass in C where it can (``schema.execution.coercion``), then the rows
assembled. One object is a list of one.

A plan never decides an outcome of its own: whenever a column is not the plain case (a
null in a non-null field, a value the scalar would refuse, an error, anything awaitable,
a link not loaded) the plan answers None, and graphql-core completes the whole list,
reporting exactly what it always would. Reading an attribute has no side effects, so
reading it twice is harmless.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import repeat
from operator import attrgetter
from typing import Any, NamedTuple

from graphql import GraphQLList, GraphQLNonNull, GraphQLOutputType, Undefined
from graphql.execution.collect_fields import GroupedFieldSet

from schema.execution.coercion import Output
from schema.execution.objects import Access
from schema.execution.views import RecordObjects
from schema.links import NOT_READY, Link

# The items of a list that are not objects to complete.
_NOT_OBJECTS = frozenset({type(None), type(Undefined)})


class Leaf(NamedTuple):
    """A plain attribute of a scalar or enum type."""

    name: str
    """Its response name."""
    attribute: str
    non_null: bool
    output: Output
    read: attrgetter[Any]


class Typename(NamedTuple):
    name: str
    value: str


class Linked(NamedTuple):
    """A field answered from a loader (``schema.links``)."""

    name: str
    step: LinkStep


PlannedField = Leaf | Typename | Linked


def leaf(name: str, attribute: str, non_null: bool, output: Output) -> Leaf:
    return Leaf(name, attribute, non_null, output, attrgetter(attribute))


class Plan:
    """The fields of one object type under one selection the plan completes, and the
    others (fields with resolvers or selections of their own) left to graphql-core."""

    __slots__ = ("_by_layout", "fields", "has_links", "keys", "order", "others", "others_last")

    def __init__(
        self, fields: Sequence[PlannedField], others: GroupedFieldSet | None, order: list[str]
    ) -> None:
        self.fields = tuple(fields)
        self.keys = tuple(field.name for field in self.fields)
        self.others = others
        self.order = order
        self.has_links = any(type(field) is Linked for field in self.fields)
        # Usually the leaves come first in a selection, and a plain update keeps the order.
        self.others_last = all(
            name not in self.keys for name in order[len(order) - len(others or ()) :]
        )
        # A record layout, and how each field's column is read from records laid out so.
        self._by_layout: tuple[Mapping[str, Access], list[Access | None] | None] | None = None

    def complete(self, items: Sequence[Any]) -> list[dict[str, Any]] | None:
        """The results of ``items`` (objects, none of them None), or None where graphql-core
        must decide."""
        count = len(items)
        columns: list[Any] = []
        column: Any
        try:
            for field in self.fields:
                if isinstance(field, Leaf):
                    column = field.output.column(list(map(field.read, items)), field.non_null)
                elif isinstance(field, Typename):
                    column = repeat(field.value, count)
                else:
                    column = field.step.complete_many(items)
                if column is None:
                    return None
                columns.append(column)
        except Exception:
            return None
        return [dict(zip(self.keys, row, strict=True)) for row in zip(*columns, strict=True)]

    def complete_records(
        self, records: Sequence[Sequence[Any]], layout: Mapping[str, Access]
    ) -> list[dict[str, Any]] | None:
        """The results of the objects ``records`` would make (``schema.execution.views``),
        read from the records where ``layout`` says each attribute is, no object made; None
        where the objects must be made (a link reads them; an attribute not in the layout)
        or graphql-core must decide."""
        reads = self._record_reads(layout)
        if reads is None:
            return None
        count = len(records)
        columns: list[Any] = []
        values: Sequence[Any]
        try:
            record_columns = list(zip(*records, strict=True))
            for field, access in zip(self.fields, reads, strict=True):
                if access is None or not isinstance(field, Leaf):
                    columns.append(repeat(field.value, count))  # type: ignore[union-attr]
                    continue
                if access.kind == "item":
                    values = record_columns[access.position]
                elif access.kind == "converted":
                    values = list(map(access.function, record_columns[access.position]))
                else:
                    values = list(map(access.function, records))
                column = field.output.column(values, field.non_null)
                if column is None:
                    return None
                columns.append(column)
        except Exception:
            return None
        return [dict(zip(self.keys, row, strict=True)) for row in zip(*columns, strict=True)]

    def _record_reads(self, layout: Mapping[str, Access]) -> list[Access | None] | None:
        """Where each field's value lies in records of ``layout`` (None for ``__typename``),
        worked out once per layout; None when a field is not there, or is a link."""
        known = self._by_layout
        if known is not None and known[0] is layout:
            return known[1]
        reads: list[Access | None] | None = []
        for field in self.fields:
            if isinstance(field, Typename):
                reads.append(None)  # type: ignore[union-attr]
            elif isinstance(field, Leaf) and field.attribute in layout:
                reads.append(layout[field.attribute])  # type: ignore[union-attr]
            else:
                reads = None
                break
        self._by_layout = (layout, reads)
        return reads

    def merge(self, leaves: dict[str, Any], others: dict[str, Any]) -> dict[str, Any]:
        """Both halves of an object's result, in the order the selection asked for."""
        if self.others_last:
            leaves.update(others)
            return leaves
        merged = {}
        for name in self.order:
            if name in leaves:
                merged[name] = leaves[name]
            elif name in others:
                merged[name] = others[name]
        return merged


def complete_list(plan: Plan, items: Sequence[Any], nullable: bool) -> list[Any] | None:
    """The results of a list of objects that may hold nulls, or None where graphql-core
    must decide (an error among the items, a null in a list of non-null items)."""
    kinds = set(map(type, items))
    if not kinds & _NOT_OBJECTS:
        if any(issubclass(kind, Exception) for kind in kinds):
            return None
        return plan.complete(items)
    if not nullable:
        return None
    present = [item for item in items if item is not None and item is not Undefined]
    if any(isinstance(item, Exception) for item in present):
        return None
    done = plan.complete(present)
    if done is None:
        return None
    results = iter(done)
    return [None if item is None or item is Undefined else next(results) for item in items]


class LinkStep:
    """A field answered from a loader, completed without its resolver when the loader has
    the value (the value is what the link's resolver would return), by a plan of its own
    with nothing left for graphql-core."""

    __slots__ = ("arguments", "context", "item_non_null", "link", "list_of", "non_null", "plan")

    def __init__(
        self,
        link: Link[Any, Any, Any, Any],
        context: Any,
        arguments: dict[str, Any],
        return_type: GraphQLOutputType,
        plan: Plan,
    ) -> None:
        self.link = link
        self.context = context
        self.arguments = arguments
        self.plan = plan
        self.non_null = isinstance(return_type, GraphQLNonNull)
        inner = return_type.of_type if isinstance(return_type, GraphQLNonNull) else return_type
        self.list_of = isinstance(inner, GraphQLList)
        item = inner.of_type if isinstance(inner, GraphQLList) else inner
        self.item_non_null = isinstance(item, GraphQLNonNull)

    def complete_many(self, sources: Sequence[Any]) -> list[Any] | None:
        """The field's results for each of ``sources``, or None where graphql-core must
        decide. Completed a level at a time: the values of every source by one plan's pass
        (the lists' items all together), not a pass per source."""
        values = [self.link.ready(self.context, source, self.arguments) for source in sources]
        if any(value is NOT_READY for value in values):
            return None
        if self.non_null and None in values:
            return None
        present = [value for value in values if value is not None]
        done = self._lists(present) if self.list_of else self.plan.complete(present)
        if done is None:
            return None
        if len(present) == len(values):
            return done
        results = iter(done)
        return [None if value is None else next(results) for value in values]

    def _lists(self, lists: Sequence[Any]) -> list[Any] | None:
        """The results of each list of ``lists``: all their items completed in one pass,
        then cut back into their lists. Lists of records not made into objects yet (all of
        one layout, or empty) are completed from the records."""
        if not all(type(each) is RecordObjects or isinstance(each, list | tuple) for each in lists):
            return None
        lengths = [len(each) for each in lists]
        layout = None
        records: list[Any] = []
        for each in lists:
            if not each:
                continue
            if (
                type(each) is not RecordObjects
                or each.made
                or each.layout is None
                or (layout is not None and each.layout is not layout)
            ):
                layout = None
                break
            layout = each.layout
            records.extend(each.records)
        if layout is not None:
            done = self.plan.complete_records(records, layout)
            if done is not None:
                return _cut(done, lengths)
        items = [
            item
            for each in lists
            for item in (each.objects() if type(each) is RecordObjects else each)
        ]
        done = complete_list(self.plan, items, not self.item_non_null)
        return None if done is None else _cut(done, lengths)


def _cut(items: list[Any], lengths: Sequence[int]) -> list[list[Any]]:
    """``items`` cut into consecutive lists of ``lengths``."""
    cut: list[list[Any]] = []
    start = 0
    for length in lengths:
        cut.append(items[start : start + length])
        start += length
    return cut


__all__ = ["Leaf", "LinkStep", "Linked", "Plan", "Typename", "complete_list", "leaf"]

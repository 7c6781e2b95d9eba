"""graphql-core's executor, with a lookahead and a shortcut for plain objects.

Most of what this gateway answers is lists of records whose selected fields are
plain attributes: no resolver, no arguments, a scalar or enum type. graphql-core
spends several microseconds on each such field (a path, a resolve info, the
resolver call, value completion), which on ``subscriptions(first: 1000)`` is
most of the request. For such an object the executor below builds the result
dict in one pass from a plan made once per selection.

Fields answered from a loader (``schema.links``) join the plan too: before an
object or a list is completed, the lookahead (``schema.prefetch``) loads what its
selection needs, level by level, and such a field's value is then read from the
loader without its resolver, and completed by its own plan.

A plan that completes many objects does it by generated code (``schema.compiled``):
the same steps, written out once per shape of selection. A connection's nodes come as
``RecordObjects``: when their selection is plain fields only, they are completed from
the records where ``schema.objects.record_layout`` says, and no object is made.

The shortcut never decides an outcome of its own: whenever a value is not the
plain case (null in a non-null field, a value the scalar would refuse, anything
awaitable) it hands the whole object, or the whole list, back to graphql-core,
which recomputes it and reports exactly what it always would. Reading an
attribute has no side effects, so computing it twice is harmless.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Any, cast

from graphql import (
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLID,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLScalarType,
    GraphQLString,
    Undefined,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from gateway.times import format_iso, format_iso_many
from schema.execution.columnar import compile_columns
from schema.execution.compiled import (
    COMPILE_AFTER,
    ColumnFormat,
    Completion,
    ListCompletion,
    StepKinds,
    compile_list,
    compile_steps,
)
from schema.execution.objects import Access
from schema.execution.prefetch import Lookahead, field_arguments, field_link, plain_attribute
from schema.execution.views import RecordObjects
from schema.links import NOT_READY, Link
from schema.scalars import serialize_datetime

# Values of these exact types are already what their scalar outputs (graphql-core's
# own coercion returns them unchanged).
_PASSTHROUGH: dict[GraphQLScalarType, type] = {
    GraphQLString: str,
    GraphQLID: str,
    GraphQLBoolean: bool,
}

# One selected leaf: (response name, attribute, non-null, passthrough type,
# id of an enum member -> its name, coercion). An attribute of None means the passthrough slot
# holds the value: __typename's name, or a LinkStep that computes it.
LeafStep = tuple[str, str | None, bool, Any, Mapping[int, str] | None, Callable[[Any], Any]]

_FALLBACK: Any = object()
_NOT_YET: Any = object()
# The items of a list that are not objects to complete (besides errors).
_NOT_OBJECTS = frozenset({type(None), type(Undefined)})


class LinkStep:
    """A field answered from a loader (``schema.links``), completed without its resolver
    when the lookahead has loaded it: the value is what the resolver would return, and
    its selection has a plan of its own with nothing left for graphql-core."""

    __slots__ = ("arguments", "context", "item_non_null", "link", "list_of", "non_null", "plan")

    def __init__(
        self,
        link: Link[Any, Any, Any, Any],
        context: Any,
        arguments: dict[str, Any],
        return_type: GraphQLOutputType,
        plan: LeafPlan,
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

    def complete(self, source: Any) -> Any:
        """The field's result, or ``_FALLBACK`` where graphql-core must decide."""
        value = self.link.ready(self.context, source, self.arguments)
        if value is NOT_READY:
            return _FALLBACK
        if value is None:
            return _FALLBACK if self.non_null else None
        if not self.list_of:
            result = self.plan.complete(value)
            return _FALLBACK if result is None else result
        if not isinstance(value, list | tuple):
            return _FALLBACK
        self.plan.expect(len(value))
        complete = self.plan.complete
        results: list[Any] = []
        for item in value:
            if item is None:
                if self.item_non_null:
                    return _FALLBACK
                results.append(None)
                continue
            result = complete(item)
            if result is None:
                return _FALLBACK
            results.append(result)
        return results


class LeafPlan:
    """How to complete one object type under one selection: its plain leaves by the
    steps, and the rest (``others``: fields with resolvers or selections, or None
    when there are none) by graphql-core."""

    __slots__ = (
        "_by_column",
        "_by_record",
        "_compiled",
        "_uses",
        "complete",
        "order",
        "others",
        "others_last",
        "steps",
    )

    def __init__(
        self, steps: list[LeafStep], others: GroupedFieldSet | None, order: list[str]
    ) -> None:
        self.steps = steps
        self.others = others
        self.order = order
        # The object's result, or None where graphql-core must decide: by the steps at
        # first, by generated code (``schema.compiled``) once the plan has done many.
        self.complete: Completion = self._counted
        # A list's objects by generated code that formats a field a column at a time
        # (DateTime): made for the first long list once the plan is compiled (``_NOT_YET``
        # until then), None when it cannot be (no such field, or over the budget).
        self._by_column: ListCompletion | None = _NOT_YET
        # Records' results read where their layout says (``complete_records``): the
        # layout it was made for, and the completion, None when it cannot be made.
        self._by_record: tuple[Mapping[str, Access], ListCompletion | None] | None = None
        self._compiled = False
        self._uses = 0
        plain = {step[0] for step in steps}
        # Usually the leaves come first in a selection, and a plain update keeps the order.
        self.others_last = all(
            name not in plain for name in order[len(order) - len(others or ()) :]
        )

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

    def expect(self, count: int) -> None:
        """``count`` more objects to complete: the plan compiles once they make enough."""
        if self._uses < COMPILE_AFTER:
            self._uses += count
            if self._uses >= COMPILE_AFTER:
                compiled = compile_steps(self.steps, _KINDS)
                self.complete = compiled if compiled is not None else self.by_steps
                self._compiled = compiled is not None

    def complete_all(self, items: Sequence[Any]) -> list[dict[str, Any]] | None:
        """The results of a list of objects (no None among them), or None where
        graphql-core must decide. Call ``expect`` first."""
        if len(items) >= _COLUMNS_FROM and self._compiled:
            if self._by_column is _NOT_YET:
                self._by_column = self._compile_list()
            if self._by_column is not None:
                return self._by_column(items)
        completed = list(map(self.complete, items))
        return None if None in completed else cast("list[dict[str, Any]]", completed)

    def complete_records(
        self, records: Sequence[Any], layout: Mapping[str, Access]
    ) -> list[dict[str, Any]] | None:
        """The results of the objects of ``records`` (``schema.views.RecordObjects``),
        read from the records a column at a time where ``layout`` says
        (``schema.columnar``), without making the objects; None where the objects must
        be made (a short list, a link) or graphql-core must decide."""
        if len(records) < _RECORDS_BY_COLUMN_FROM:
            return None
        by_record = self._by_record
        if by_record is None or by_record[0] is not layout:
            by_record = self._by_record = (layout, compile_columns(self.steps, layout, _KINDS))
        complete = by_record[1]
        return None if complete is None else complete(records)

    def _compile_list(self) -> ListCompletion | None:
        if not any(step[5] in _KINDS.columns for step in self.steps):
            return None  # no field to format a column at a time
        return compile_list(self.steps, _KINDS)

    def _counted(self, source: Any) -> dict[str, Any] | None:
        self.expect(1)
        return self.by_steps(source)

    def by_steps(self, source: Any) -> dict[str, Any] | None:
        """The object's result by looping over the steps."""
        result: dict[str, Any] = {}
        try:
            for name, attribute, non_null, passthrough, names, coerce in self.steps:
                if attribute is None:
                    if type(passthrough) is LinkStep:
                        linked = passthrough.complete(source)
                        if linked is _FALLBACK:
                            return None
                        result[name] = linked
                    else:
                        result[name] = passthrough
                    continue
                value = getattr(source, attribute)
                if value is None:
                    if non_null:
                        return None
                    result[name] = None
                elif type(value) is passthrough:
                    result[name] = value
                elif names is not None and (text := names.get(id(value))) is not None:
                    result[name] = text
                elif type(value) not in _PLAIN_TYPES and not _is_plain(value):
                    return None
                else:
                    coerced = coerce(value)
                    if coerced is None or coerced is Undefined:
                        return None
                    result[name] = coerced
        except Exception:
            return None
        return result


_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


def _coerce_int(value: Any) -> Any:
    """GraphQL's Int output: a plain int in 32 bits as it is, anything else as graphql-core
    decides (which also refuses what does not fit)."""
    if type(value) is int and _INT_MIN <= value <= _INT_MAX:
        return value
    return GraphQLInt.coerce_output_value(value)


def _is_link_step(value: Any) -> bool:
    return type(value) is LinkStep


def _is_int_coercion(coerce: Callable[[Any], Any]) -> bool:
    return coerce is _coerce_int


# Coercions whose work, for a value of exactly one type, is one call: generated code
# makes that call itself (``schema.compiled``).
_DIRECT: Mapping[Callable[[Any], Any], tuple[type, Callable[[Any], Any]]] = {
    serialize_datetime: (datetime, format_iso),
}

# Coercions whose direct work has a form for a whole column of a list's objects, and
# the length from which a column at a time is cheaper than a value at a time (four
# DateTimes, measured: one orjson call and a split against four ``format_iso``).
_COLUMNS: Mapping[Callable[[Any], Any], ColumnFormat] = {serialize_datetime: format_iso_many}
_COLUMNS_FROM = 4
# A list of records is completed a column at a time from this many (``schema.columnar``):
# below it, making the objects and completing them one by one is cheaper.
_RECORDS_BY_COLUMN_FROM = 8

# Types whose values need no check before coercion (the scalar may still refuse them).
_PLAIN_TYPES = frozenset({int, float, str, bool, datetime})

_KINDS = StepKinds(_is_link_step, _is_int_coercion, _PLAIN_TYPES, _FALLBACK, _DIRECT, _COLUMNS)


def _is_plain(value: Any) -> bool:
    """Not an error, an awaitable or Undefined: those are graphql-core's to handle."""
    return not (isinstance(value, Exception) or hasattr(value, "__await__") or value is Undefined)


def _enum_names(enum_type: GraphQLEnumType) -> Mapping[int, str] | None:
    """Each member of the Python enum behind a Strawberry enum, by identity, with its
    GraphQL name as the type's own coercion names it. By identity: members live as long
    as their class, so no other value shares an id with one, and Enum's own hash is
    Python code, dearer than the rest of the step."""
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
        except Exception:  # noqa: S112 - a member it refuses stays on the general path
            continue
    return names


def _leaf_step(
    parent_type: GraphQLObjectType, response_name: str, field_details_list: FieldDetailsList
) -> LeafStep | None:
    nodes = [details.node for details in field_details_list]
    field_name = nodes[0].name.value
    if field_name == "__typename":
        return (response_name, None, True, parent_type.name, None, str)
    field_def = parent_type.fields.get(field_name)
    if field_def is None or field_def.args or any(node.arguments for node in nodes):
        return None
    if any(node.selection_set for node in nodes):
        return None
    definition = plain_attribute(field_def)
    if definition is None:
        return None
    return_type: GraphQLOutputType = field_def.type
    non_null = isinstance(return_type, GraphQLNonNull)
    leaf = return_type.of_type if isinstance(return_type, GraphQLNonNull) else return_type
    if isinstance(leaf, GraphQLScalarType):
        coerce = _coerce_int if leaf is GraphQLInt else leaf.coerce_output_value
        return (
            response_name,
            definition.python_name,
            non_null,
            _PASSTHROUGH.get(leaf),
            None,
            coerce,
        )
    if isinstance(leaf, GraphQLEnumType):
        return (
            response_name,
            definition.python_name,
            non_null,
            None,
            _enum_names(leaf),
            leaf.coerce_output_value,
        )
    return None


LinkSteps = Callable[[GraphQLObjectType, str, FieldDetailsList], LinkStep | None]


def build_leaf_plan(
    parent_type: GraphQLObjectType,
    grouped_field_set: GroupedFieldSet,
    link_step: LinkSteps | None = None,
) -> LeafPlan | None:
    """The plan for one selection, or None when it has no plain leaf (or uses @defer).
    ``link_step`` makes the steps of fields answered from loaders, where it can."""
    if parent_type.is_type_of is not None:
        return None
    steps = []
    others: GroupedFieldSet = {}
    for response_name, field_details_list in grouped_field_set.items():
        if any(details.defer_usage is not None for details in field_details_list):
            return None
        step = _leaf_step(parent_type, response_name, field_details_list)
        if step is None and link_step is not None:
            linked = link_step(parent_type, response_name, field_details_list)
            if linked is not None:
                step = (response_name, None, False, linked, None, _unused)
        if step is None:
            others[response_name] = field_details_list
        else:
            steps.append(step)
    if not steps:
        return None
    return LeafPlan(steps, others or None, list(grouped_field_set))


def _unused(value: Any) -> Any:  # the coercion slot of a step that has none
    return value


def _streamed(field_details_list: FieldDetailsList) -> bool:
    """A list under @stream is delivered in parts: graphql-core's business."""
    return any(
        directive.name.value == "stream"
        for details in field_details_list
        for directive in details.node.directives or ()
    )


class GatewayExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, completing plain-leaf objects and lists of them in one pass."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # id(grouped field set) -> (the set, kept alive so its id stays unique; plan).
        self._leaf_plans: dict[int, tuple[GroupedFieldSet, LeafPlan | None]] = {}
        manager = self.middleware_manager
        # Middleware (tracing, for one) must see every field: no shortcut then.
        self._shortcut = manager is None or not manager.middlewares
        self._strawberry_schema = getattr(self.schema, "_strawberry_schema", None)
        self._lookahead = Lookahead(
            self.collect_subfields,
            self.variable_values,
            self.context_value,
            self._strawberry_schema,
        )

    def _plan(
        self, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet
    ) -> LeafPlan | None:
        cached = self._leaf_plans.get(id(grouped_field_set))
        if cached is not None:
            return cached[1]
        plan = build_leaf_plan(parent_type, grouped_field_set, self._link_step)
        self._leaf_plans[id(grouped_field_set)] = (grouped_field_set, plan)
        return plan

    def _link_step(
        self, parent_type: GraphQLObjectType, response_name: str, details: FieldDetailsList
    ) -> LinkStep | None:
        """A step for a field answered from a loader whose whole selection has a plan,
        or None to leave the field to its resolver."""
        node = details[0].node
        field_def = parent_type.fields.get(node.name.value)
        if field_def is None:
            return None
        link = field_link(field_def)
        if link is None:
            return None
        inner = (
            field_def.type.of_type if isinstance(field_def.type, GraphQLNonNull) else field_def.type
        )
        if isinstance(inner, GraphQLList):
            if _streamed(details):
                return None
            inner = inner.of_type
            inner = inner.of_type if isinstance(inner, GraphQLNonNull) else inner
        if not isinstance(inner, GraphQLObjectType):
            return None
        grouped_field_set, new_defer_usages, _ = self.collect_subfields(inner, details)
        if new_defer_usages:
            return None
        plan = self._plan(inner, grouped_field_set)
        if plan is None or plan.others is not None:
            return None
        try:
            arguments = field_arguments(
                field_def, node, self.variable_values, self._strawberry_schema
            )
        except Exception:  # bad arguments: the resolver path reports them
            return None
        return LinkStep(link, self.context_value, arguments, field_def.type, plan)

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> Any:
        if self._shortcut and position_context is None:
            plan = self._plan(parent_type, grouped_field_set)
            if plan is not None:
                leaves = plan.complete(source_value)
                if leaves is not None:
                    if plan.others is None:
                        return leaves
                    return self._with_others(
                        plan, leaves, parent_type, source_value, path, position_context
                    )
        return super().execute_fields(
            parent_type, source_value, path, grouped_field_set, position_context
        )

    def _with_others(
        self,
        plan: LeafPlan,
        leaves: dict[str, Any],
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        position_context: Any,
    ) -> Any:
        """The fields that are not plain leaves, by graphql-core, joined to the leaves."""
        assert plan.others is not None
        others = super().execute_fields(
            parent_type, source_value, path, plan.others, position_context
        )
        if not self.is_awaitable(others):
            return plan.merge(leaves, cast("dict[str, Any]", others))

        async def merged(pending: Awaitable[dict[str, Any]]) -> dict[str, Any]:
            return plan.merge(leaves, await pending)

        return merged(others)

    def complete_object_value(
        self,
        return_type: GraphQLObjectType,
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        complete = super().complete_object_value
        priming = self._lookahead.prime(return_type, field_details_list, (result,))
        if priming is None:
            return complete(return_type, field_details_list, info, path, result, position_context)
        return self._after_priming(
            priming,
            lambda: complete(return_type, field_details_list, info, path, result, position_context),
        )

    def complete_iterable_value(
        self,
        item_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        items: Iterable[Any],
        position_context: Any,
    ) -> Any:
        completed = self._complete_leaf_list(item_type, field_details_list, items, position_context)
        if completed is not None:
            return completed
        if type(items) is RecordObjects:
            items = items.objects()  # for graphql-core and the lookahead
        complete = super().complete_iterable_value
        object_type = item_type.of_type if isinstance(item_type, GraphQLNonNull) else item_type
        if isinstance(object_type, GraphQLObjectType) and isinstance(items, list | tuple):
            priming = self._lookahead.prime(object_type, field_details_list, items)
            if priming is not None:
                return self._after_priming(
                    priming,
                    lambda: complete(
                        item_type, field_details_list, info, path, items, position_context
                    ),
                )
        return complete(item_type, field_details_list, info, path, items, position_context)

    async def _after_priming(self, priming: Awaitable[None], complete: Callable[[], Any]) -> Any:
        """Completion once the lookahead has loaded what the selection needs: what is
        left is then mostly synchronous."""
        await priming
        completed = complete()
        if self.is_awaitable(completed):
            return await completed
        return completed

    def _complete_leaf_list(
        self,
        item_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        items: Iterable[Any],
        position_context: Any,
    ) -> list[Any] | None:
        """A list of plain-leaf objects in one pass, or None for graphql-core."""
        nullable = not isinstance(item_type, GraphQLNonNull)
        object_type = item_type.of_type if isinstance(item_type, GraphQLNonNull) else item_type
        lazy: RecordObjects[Any, Any] | None = None
        layout = None
        if type(items) is RecordObjects:
            # Objects not made yet: maybe they need not be (below); else they are now.
            layout = None if items.made else items.layout
            if layout is None:
                items = items.objects()
            else:
                lazy = items
        elif not isinstance(items, list | tuple):
            return None
        if not (
            self._shortcut
            and position_context is None
            and isinstance(object_type, GraphQLObjectType)
        ):
            return None
        if _streamed(field_details_list):
            return None
        grouped_field_set, new_defer_usages, _ = self.collect_subfields(
            object_type, field_details_list
        )
        if new_defer_usages:
            return None
        plan = self._plan(object_type, grouped_field_set)
        if plan is None or plan.others is not None:
            return None
        if lazy is not None and layout is not None:
            completed = plan.complete_records(lazy.records, layout)
            if completed is not None:
                return completed
            items = lazy.objects()
        plan.expect(len(items))
        complete = plan.complete
        kinds = set(map(type, items))
        if not kinds & _NOT_OBJECTS and not any(issubclass(kind, Exception) for kind in kinds):
            # Objects only (the usual list): all at once, without a check per item.
            return plan.complete_all(items)
        results: list[dict[str, Any] | None] = []
        for item in items:
            if item is None or item is Undefined:
                if not nullable:
                    return None
                results.append(None)
                continue
            result = None if isinstance(item, Exception) else complete(item)
            if result is None:
                return None
            results.append(result)
        return results


__all__ = ["GatewayExecutor", "LeafPlan", "build_leaf_plan"]

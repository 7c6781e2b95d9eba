"""Lookahead: load what a whole selection will need, one level at a time, before
graphql-core walks it.

A field whose value comes from a loader (``resources``, ``parent``,
``attachedResources``) names its ``schema.links.Link`` in its Strawberry
metadata. Given every parent object at the field's place in the query and the
field's arguments, the link asks the loader for all their keys at once and gives
back the child objects. When an
object or a list of objects is about to be completed, the executor walks its
selection: plain attribute fields are followed, prefetching fields are primed,
and the children are walked in turn, so each level's upstream calls go out as
soon as the level above has answered.

graphql-core then finds every value already loaded and completes the subtree
without a coroutine or a task per field (the resolvers answer at once from the
loader; see ``schema.links``). The walk never changes an outcome: it
asks the loaders for exactly the keys the resolvers will ask for, errors stay in
the loaders for the resolvers to report, and anything it does not follow (an
abstract type, a resolver it does not know) is resolved the usual way, and a field
under @defer is loaded in the run that delivers it (``schema.execution.deferral``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from graphql import GraphQLList, GraphQLNonNull, GraphQLObjectType, GraphQLOutputType
from graphql.execution import VariableValues
from graphql.execution.collect_fields import CollectedFields, FieldDetailsList
from graphql.execution.incremental.build_execution_plan import DeferUsageSet

from schema.execution.deferral import runs_in, streamed
from schema.execution.strawberry_fields import field_arguments, field_link, plain_attribute
from schema.execution.views import RecordObjects


class Lookahead:
    """The walk for one request. ``collect_subfields`` is the executor's own (memoized,
    with the request's variables, so @skip and @include count as they will)."""

    __slots__ = ("_collect_subfields", "_context", "_schema", "_variables", "_walked")

    def __init__(
        self,
        collect_subfields: Callable[[GraphQLObjectType, FieldDetailsList], CollectedFields],
        variable_values: VariableValues,
        context: Any,
        strawberry_schema: Any,
    ) -> None:
        self._collect_subfields = collect_subfields
        self._variables = variable_values
        self._context = context
        self._schema = strawberry_schema
        # id(field details) -> the details: each place in the query is walked once, with
        # every object at that place. The list is kept so its id stays unique.
        self._walked: dict[int, FieldDetailsList] = {}

    def prime(
        self,
        object_type: GraphQLObjectType,
        field_details_list: FieldDetailsList,
        sources: Sequence[Any],
        defer_usage_set: DeferUsageSet | None,
    ) -> Awaitable[None] | None:
        """Prime the loaders for the selection of ``field_details_list`` on ``sources``,
        the fields of the run delivering ``defer_usage_set`` (None: the initial
        payload); an awaitable while something is loading, None when all is loaded
        already."""
        key = id(field_details_list)
        if key in self._walked:
            return None
        self._walked[key] = field_details_list
        try:
            grouped_field_set, _, _ = self._collect_subfields(object_type, field_details_list)
        except Exception:
            return None
        pending: list[Awaitable[None]] = []
        for details in grouped_field_set.values():
            if not runs_in(details, defer_usage_set) or streamed(details):
                continue  # loaded in its own run, at its own priority
            step = self._step(object_type, details, sources, defer_usage_set)
            if step is not None:
                pending.append(step)
        if not pending:
            return None
        if len(pending) == 1:
            return pending[0]
        return _all(pending)

    def _step(
        self,
        object_type: GraphQLObjectType,
        details: FieldDetailsList,
        sources: Sequence[Any],
        defer_usage_set: DeferUsageSet | None,
    ) -> Awaitable[None] | None:
        node = details[0].node
        field_def = object_type.fields.get(node.name.value)
        if field_def is None:
            return None
        child_type = _object_type(field_def.type)
        if child_type is None:
            return None
        link = field_link(field_def)
        children: Sequence[Any] | Awaitable[Sequence[Any]]
        try:
            if link is not None:
                arguments = field_arguments(field_def, node, self._variables, self._schema)
                children = link.prefetch(self._context, sources, arguments)
            elif (attribute := plain_attribute(field_def)) is not None:
                if not self._selects_objects(child_type, details):
                    return None  # leaves only below: nothing to load, no objects to gather
                children = _attribute_values(sources, attribute.python_name)
            else:
                return None
        except Exception:
            # Bad arguments and the like: the resolver will meet them and say so.
            return None
        if isinstance(children, Sequence):
            if not children:
                return None
            return self.prime(child_type, details, children, defer_usage_set)
        return self._after(children, child_type, details, defer_usage_set)

    def _selects_objects(self, object_type: GraphQLObjectType, details: FieldDetailsList) -> bool:
        """Whether the selection on ``object_type`` has a field of an object type."""
        grouped_field_set, _, _ = self._collect_subfields(object_type, details)
        for field_details in grouped_field_set.values():
            field_def = object_type.fields.get(field_details[0].node.name.value)
            if field_def is not None and _object_type(field_def.type) is not None:
                return True
        return False

    async def _after(
        self,
        children: Awaitable[Sequence[Any]],
        child_type: GraphQLObjectType,
        details: FieldDetailsList,
        defer_usage_set: DeferUsageSet | None,
    ) -> None:
        try:
            loaded = await children
        except Exception:
            # A prefetch keeps its errors in the loader, for the resolvers to report;
            # should one escape anyway, the fields are simply resolved the usual way.
            return
        if loaded:
            deeper = self.prime(child_type, details, loaded, defer_usage_set)
            if deeper is not None:
                await deeper


async def _all(pending: list[Awaitable[None]]) -> None:
    await asyncio.gather(*pending)


def _object_type(output_type: GraphQLOutputType) -> GraphQLObjectType | None:
    """The object type under any list and non-null wrappers, or None for leaves and
    abstract types (which the walk does not follow)."""
    while isinstance(output_type, GraphQLNonNull | GraphQLList):
        output_type = output_type.of_type
    return output_type if isinstance(output_type, GraphQLObjectType) else None


def _attribute_values(sources: Sequence[Any], attribute: str) -> list[Any]:
    """The objects a plain attribute field holds, over all sources, lists flattened."""
    values: list[Any] = []
    for source in sources:
        value = getattr(source, attribute, None)
        if type(value) is RecordObjects:
            value = value.objects()
        if isinstance(value, list | tuple):
            values.extend(item for item in value if _is_object(item))
        elif _is_object(value):
            values.append(value)
    return values


def _is_object(value: Any) -> bool:
    return value is not None and not isinstance(value, Exception)


__all__ = ["Lookahead"]

"""graphql-core's executor, with a lookahead and a shortcut for objects of plain fields.

Two additions to Strawberry's executor, neither with an outcome of its own:

- the lookahead (``schema.execution.prefetch``): before an object or a list is
  completed, what its selection needs from the loaders is loaded, level by level, so
  each level's upstream calls go out as soon as the level above has answered;
- the shortcut: an object or a list of objects whose selected fields are plain
  attributes and loaded links is completed by its ``Plan`` (``schema.execution.plans``),
  a column at a time, instead of field by field. Whatever the plan cannot vouch for
  (an odd value, an error, a link not loaded) it hands back to graphql-core, which
  completes it as it always would.

What the shortcut may answer at all is decided field by field
(``schema.execution.strawberry_fields``): anything with a resolver of its own, a
permission class, a field extension or a directive is Strawberry's. Schema extensions
that watch every field (tracing, directives: Strawberry's resolve hooks, which it runs as
graphql-core middleware) turn the shortcut off for the whole request.

Under @defer and @stream both take only the fields graphql-core runs in the current run
(the initial payload, or one deferred fragment: ``schema.execution.deferral``); deferred
fragments and streamed items run at the deferred priority.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, cast

from graphql import (
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLScalarType,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.execution.incremental.build_execution_plan import DeferUsageSet
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from schema.execution.coercion import output_of
from schema.execution.deferral import deferred, runs_in, streamed
from schema.execution.plans import (
    Linked,
    LinkStep,
    Plan,
    PlannedField,
    Typename,
    complete_list,
    leaf,
)
from schema.execution.prefetch import Lookahead
from schema.execution.strawberry_fields import field_arguments, field_link, plain_attribute
from schema.execution.views import RecordObjects

# The directives graphql-core applies while collecting fields: a field that carries any
# other is Strawberry's to answer.
_COLLECTION_DIRECTIVES = frozenset({"skip", "include"})


def _unwrapped(output_type: GraphQLOutputType) -> tuple[bool, GraphQLOutputType]:
    if isinstance(output_type, GraphQLNonNull):
        return True, output_type.of_type
    return False, output_type


def _plain_leaf(
    parent_type: GraphQLObjectType, response_name: str, field_details_list: FieldDetailsList
) -> PlannedField | None:
    nodes = [details.node for details in field_details_list]
    field_name = nodes[0].name.value
    if field_name == "__typename":
        return Typename(response_name, parent_type.name)
    field_def = parent_type.fields.get(field_name)
    if field_def is None or any(node.arguments or node.selection_set for node in nodes):
        return None
    definition = plain_attribute(field_def)
    if definition is None:
        return None
    non_null, leaf_type = _unwrapped(field_def.type)
    if not isinstance(leaf_type, GraphQLScalarType | GraphQLEnumType):
        return None
    return leaf(response_name, definition.python_name, non_null, output_of(leaf_type))


LinkSteps = Callable[[GraphQLObjectType, str, FieldDetailsList], LinkStep | None]


def build_plan(
    parent_type: GraphQLObjectType,
    grouped_field_set: GroupedFieldSet,
    link_step: LinkSteps | None = None,
) -> Plan | None:
    """The plan for one selection, all of whose fields run now, or None when it plans
    nothing (no plain leaf, a type that checks its objects' types). ``link_step`` makes
    the steps of fields answered from loaders, where it can."""
    if parent_type.is_type_of is not None:
        return None
    planned: list[PlannedField] = []
    others: GroupedFieldSet = {}
    for response_name, field_details_list in grouped_field_set.items():
        field: PlannedField | None = None
        if not any(
            directive.name.value not in _COLLECTION_DIRECTIVES
            for details in field_details_list
            for directive in details.node.directives or ()
        ):
            field = _plain_leaf(parent_type, response_name, field_details_list)
            if field is None and link_step is not None:
                step = link_step(parent_type, response_name, field_details_list)
                if step is not None:
                    field = Linked(response_name, step)
        if field is None:
            others[response_name] = field_details_list
        else:
            planned.append(field)
    if not planned:
        return None
    return Plan(planned, others or None, list(grouped_field_set))


class GatewayExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, completing objects of plain fields, and lists of them, by
    their plans."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # (id(grouped field set), id(defer usage set)) -> (both, kept alive so their ids
        # stay unique; the plan). Shared with the sub-executors of deferred parts.
        self._plans: dict[
            tuple[int, int], tuple[GroupedFieldSet, DeferUsageSet | None, Plan | None]
        ] = {}
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
    ) -> Plan | None:
        defer_usage_set = self.defer_usage_set
        key = (id(grouped_field_set), id(defer_usage_set))
        cached = self._plans.get(key)
        if cached is not None:
            return cached[2]
        plan = build_plan(parent_type, grouped_field_set, self._link_step)
        self._plans[key] = (grouped_field_set, defer_usage_set, plan)
        return plan

    def _runs_now(self, grouped_field_set: GroupedFieldSet) -> bool:
        """Whether every field of the set runs in this run (none in a deferred one)."""
        defer_usage_set = self.defer_usage_set
        return all(runs_in(details, defer_usage_set) for details in grouped_field_set.values())

    def _link_step(
        self, parent_type: GraphQLObjectType, response_name: str, details: FieldDetailsList
    ) -> LinkStep | None:
        """A step for a field answered from a loader whose whole selection has a plan,
        or None to leave the field to its resolver."""
        node = details[0].node
        field_def = parent_type.fields.get(node.name.value)
        if field_def is None or any(field.fragment_variable_values for field in details):
            return None
        link = field_link(field_def)
        if link is None:
            return None
        _, inner = _unwrapped(field_def.type)
        if isinstance(inner, GraphQLList):
            if streamed(details):
                return None
            _, inner = _unwrapped(inner.of_type)
        if not isinstance(inner, GraphQLObjectType):
            return None
        grouped_field_set, new_defer_usages, _ = self.collect_subfields(inner, details)
        if new_defer_usages or not self._runs_now(grouped_field_set):
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
        # graphql-core gives only the fields of this run: the plan may take them all.
        if self._shortcut:
            plan = self._plan(parent_type, grouped_field_set)
            if plan is not None:
                completed = plan.complete((source_value,))
                if completed is not None:
                    if plan.others is None:
                        return completed[0]
                    return self._with_others(
                        plan, completed[0], parent_type, source_value, path, position_context
                    )
        return super().execute_fields(
            parent_type, source_value, path, grouped_field_set, position_context
        )

    def _with_others(
        self,
        plan: Plan,
        leaves: dict[str, Any],
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        position_context: Any,
    ) -> Any:
        """The fields the plan left, by graphql-core, joined to the plan's."""
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
        priming = self._lookahead.prime(
            return_type, field_details_list, (result,), self.defer_usage_set
        )
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
        completed = self._complete_planned_list(
            item_type, field_details_list, items, position_context
        )
        if completed is not None:
            return completed
        if type(items) is RecordObjects:
            items = items.objects()  # for graphql-core and the lookahead
        complete = super().complete_iterable_value
        _, object_type = _unwrapped(item_type)
        if (
            isinstance(object_type, GraphQLObjectType)
            and isinstance(items, list | tuple)
            and not streamed(field_details_list)  # its items come one by one, as loaded
        ):
            priming = self._lookahead.prime(
                object_type, field_details_list, items, self.defer_usage_set
            )
            if priming is not None:
                return self._after_priming(
                    priming,
                    lambda: complete(
                        item_type, field_details_list, info, path, items, position_context
                    ),
                )
        return complete(item_type, field_details_list, info, path, items, position_context)

    def execute_execution_group(self, *args: Any) -> Any:
        """A deferred fragment, its calls after those of the initial payloads."""
        return deferred(super().execute_execution_group, *args)

    def complete_stream_item(self, *args: Any) -> Any:
        """A streamed item, its calls after those of the initial payloads."""
        return deferred(super().complete_stream_item, *args)

    async def _after_priming(self, priming: Awaitable[None], complete: Callable[[], Any]) -> Any:
        """Completion once the lookahead has loaded what the selection needs: what is
        left is then mostly synchronous."""
        await priming
        completed = complete()
        if self.is_awaitable(completed):
            return await completed
        return completed

    def _complete_planned_list(
        self,
        item_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        items: Iterable[Any],
        position_context: Any,
    ) -> list[Any] | None:
        """A list of objects by its plan, or None for graphql-core."""
        if not self._shortcut:
            return None
        non_null, object_type = _unwrapped(item_type)
        if not isinstance(object_type, GraphQLObjectType) or streamed(field_details_list):
            return None
        if not (type(items) is RecordObjects or isinstance(items, list | tuple)):
            return None
        grouped_field_set, new_defer_usages, _ = self.collect_subfields(
            object_type, field_details_list
        )
        if new_defer_usages or not self._runs_now(grouped_field_set):
            return None
        plan = self._plan(object_type, grouped_field_set)
        if plan is None or plan.others is not None:
            return None
        if type(items) is RecordObjects:
            if not items.made and items.layout is not None:
                # Records whose objects are not made yet: maybe they need not be.
                completed = plan.complete_records(items.records, items.layout)
                if completed is not None:
                    return completed
            items = items.objects()
        return complete_list(plan, cast("list[Any]", items), not non_null)


__all__ = ["GatewayExecutor", "build_plan"]

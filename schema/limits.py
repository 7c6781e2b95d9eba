"""The cost limit: an estimate of the upstream calls an operation would make, and its
refusal, before any upstream call, when that is over budget.

The estimate walks the field tree execution will run: graphql-core's own field
collection merges the fields of one response key and expands a fragment at most
once per selection set, so ``{ ...F ...F }`` costs what ``F`` costs once, and a
document spreading fragments into 2^60 paths is collected in time linear in its
size. A merged field met again with the same field nodes and the same number of
parents (a fragment spread under several fields) is estimated once.

The budget is per request. A batch (``GATEWAY_ALLOW_BATCHING``) is run by
Strawberry as separate, concurrent executions sharing the request's
``GatewayContext``, which keeps the estimates of the operations let through: an
operation that would take the request past the budget is refused, and those before
it run (an earlier one may already be calling upstreams when a later one is
estimated, so a batch is never refused as a whole).

The shape limits (depth, aliases, root fields, directives) are validation rules, in
``schema.validation``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLField,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLStreamDirective,
    OperationDefinitionNode,
    get_argument_values,
    get_directive_values,
    get_named_type,
    get_operation_ast,
    get_variable_values,
)
from graphql.execution import VariableValues
from graphql.execution.collect_fields import (
    FieldDetailsList,
    FragmentDetails,
    GroupedFieldSet,
    collect_fields,
    collect_subfields,
)
from strawberry.extensions import SchemaExtension

from gateway.upstreams.cbc import QUERYABLE_STATUSES
from schema.context import GatewayContext
from schema.enums import RESOURCE_STATUS_CODES, ResourceStatus
from schema.execution.deferral import runs_in
from schema.execution.strawberry_fields import strawberry_field
from schema.links import COST, LINK, NO_CALLS, FanOut, Link, UpstreamCalls


def fan_out_of(field_def: GraphQLField) -> FanOut | None:
    """The calls a field fans out to, as it declares them: a link's in its ``Link``, a root
    field's in its metadata (``schema.costs``). A field that declares none makes no call
    and passes its objects on (a connection's nodes, an edge's node)."""
    definition = strawberry_field(field_def)
    if definition is None:
        return None
    link = definition.metadata.get(LINK)
    if isinstance(link, Link):
        return link.fan_out
    declared = definition.metadata.get(COST)
    return declared if callable(declared) else None


@dataclass(frozen=True, slots=True)
class CallPlan:
    """An operation's upstream calls: those its initial payload waits for, and those of
    its deferred fragments and streamed items, which follow it."""

    initial: UpstreamCalls = NO_CALLS
    deferred: UpstreamCalls = NO_CALLS

    @property
    def calls(self) -> UpstreamCalls:
        return self.initial + self.deferred

    @property
    def total(self) -> int:
        return self.calls.total

    def __add__(self, other: CallPlan) -> CallPlan:
        return CallPlan(self.initial + other.initial, self.deferred + other.deferred)

    def put(self, calls: UpstreamCalls, *, deferred: bool) -> CallPlan:
        if deferred:
            return CallPlan(self.initial, self.deferred + calls)
        return CallPlan(self.initial + calls, self.deferred)


NO_PLAN = CallPlan()


class CostEstimate:
    """Upstream calls an operation may cause, from its arguments as execution will see
    them: coerced by graphql-core, with the variables' and the fields' defaults. A field
    under @defer, and the items of a list under @stream past its ``initialCount``, count
    as deferred, with everything below them."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: VariableValues,
    ) -> None:
        self._schema = schema
        self._fragments = {name: FragmentDetails(d) for name, d in fragments.items()}
        self._variables = variables
        self._operation: OperationDefinitionNode | None = None
        # (type, the merged field's nodes, parents, deferred) -> the calls of its selection
        self._seen: dict[tuple[str, tuple[int, ...], int, bool], CallPlan] = {}

    def operation(self, operation: OperationDefinitionNode) -> CallPlan:
        """The estimate; ``GraphQLError`` (BAD_USER_INPUT) for an argument the upstream
        would refuse on every call, so it is refused once instead."""
        root = self._schema.get_root_type(operation.operation)
        if root is None:
            return NO_PLAN
        self._operation = operation  # for collect_subfields, which reads none of it
        try:
            fields = collect_fields(
                self._schema, self._fragments, self._variables, root, operation
            ).grouped_field_set
        except GraphQLError:
            return NO_PLAN  # execution refuses the operation before any resolver
        # One root object; no root field's calls depend on it.
        return self._fields(root, fields, 1, deferred=False)

    def _fields(
        self,
        parent_type: GraphQLObjectType,
        fields: GroupedFieldSet,
        parents: int,
        *,
        deferred: bool,
    ) -> CallPlan:
        total = NO_PLAN
        for details in fields.values():
            node = details[0].node
            if node.selection_set is None:
                continue  # a leaf, or __typename: only a field of objects calls an upstream
            field_def = parent_type.fields.get(node.name.value)
            if field_def is None:
                continue  # introspection: no upstream call
            arguments: dict[str, Any] = {}  # what fan-outs of fields without arguments ignore
            if field_def.args:
                try:
                    arguments = get_argument_values(field_def, node, self._variables)
                except GraphQLError:
                    continue  # execution fails this field the same way, before its resolver
                _check_statuses(node, arguments)
            later = deferred or not runs_in(details, None)
            children = parents
            # One list per object a fan-out is selected on; a field without one (a
            # connection's nodes or edges) is one list: connections are root fields.
            lists = 1
            fan_out = fan_out_of(field_def)
            if fan_out is not None:
                calls, children = fan_out(arguments, parents)
                total = total.put(calls, deferred=later)
                lists = parents
            child_type = get_named_type(field_def.type)
            if not isinstance(child_type, GraphQLObjectType):
                continue
            first_items = self._first_items(details)
            if later or first_items is None or children <= first_items * lists:
                total += self._below(child_type, details, children, deferred=later)
            else:
                # The first items of each list come with the initial payload, the rest
                # streamed after it.
                now = first_items * lists
                total += self._below(child_type, details, now, deferred=False)
                total += self._below(child_type, details, children - now, deferred=True)
        return total

    def _first_items(self, details: FieldDetailsList) -> int | None:
        """A streamed list's ``initialCount``, or None when it is not streamed."""
        for detail in details:
            try:
                stream = get_directive_values(GraphQLStreamDirective, detail.node, self._variables)
            except GraphQLError:
                continue  # execution refuses it the same way
            if stream is not None and stream.get("if", True):
                return max(0, int(stream.get("initialCount", 0)))
        return None

    def _below(
        self,
        field_type: GraphQLObjectType,
        details: FieldDetailsList,
        parents: int,
        *,
        deferred: bool,
    ) -> CallPlan:
        key = (field_type.name, tuple(id(detail.node) for detail in details), parents, deferred)
        known = self._seen.get(key)
        if known is not None:
            return known
        try:
            fields = collect_subfields(
                self._schema,
                self._fragments,
                self._variables,
                self._operation,  # type: ignore[arg-type]  # unread by graphql-core 3.3
                field_type,
                details,
            ).grouped_field_set
        except GraphQLError:
            calls = NO_PLAN  # execution fails this field, after its own calls
        else:
            calls = self._fields(field_type, fields, parents, deferred=deferred)
        self._seen[key] = calls
        return calls


def _check_statuses(field: FieldNode, arguments: Mapping[str, Any]) -> None:
    """Refuses a status CBC's ``status_list`` does not take (CLOSED): otherwise the
    refusal comes after the calls above it, once per subscription."""
    resource_filter = arguments.get("filter")
    statuses = arguments.get("statuses") or (
        resource_filter.get("statuses") if isinstance(resource_filter, Mapping) else None
    )
    refused = [s for s in statuses or () if RESOURCE_STATUS_CODES[s] not in QUERYABLE_STATUSES]
    if refused:
        allowed = ", ".join(
            s.name for s in ResourceStatus if RESOURCE_STATUS_CODES[s] in QUERYABLE_STATUSES
        )
        raise GraphQLError(
            f"`statuses` cannot include {refused[0].name}: CBC lists resources by {allowed} only.",
            field,
            extensions={"code": "BAD_USER_INPUT"},
        )


class CostLimit(SchemaExtension):
    """Refuses an operation whose estimated upstream calls exceed the budget."""

    def __init__(self, max_cost: int) -> None:
        self.max_cost = max_cost

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        if context.result is None:
            context.result = self._refusal()
        yield

    def _refusal(self) -> ExecutionResult | None:
        context = self.execution_context
        document = context.graphql_document
        if document is None:
            return None
        operation = get_operation_ast(document, context.operation_name)
        if operation is None:
            return None  # execution refuses it: no operation to run
        schema = context.schema._schema
        # Coerced as execution will coerce them: defaults applied, 1000.0 read as 1000.
        variables = get_variable_values(
            schema, operation.variable_definitions or (), context.variables or {}
        )
        if isinstance(variables, list):
            return None  # execution refuses them, before any resolver
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        try:
            cost = CostEstimate(schema, fragments, variables).operation(operation).total
        except GraphQLError as error:
            return ExecutionResult(data=None, errors=[error])
        request = context.context
        spent = request.estimated_calls if isinstance(request, GatewayContext) else 0
        if spent + cost <= self.max_cost:
            if isinstance(request, GatewayContext):
                request.estimated_calls = spent + cost
            return None
        if spent:
            message = (
                f"with the batch's operations before it, the request would make about "
                f"{spent + cost} upstream calls; the limit is {self.max_cost}."
            )
        else:
            message = (
                f"the operation would make about {cost} upstream calls; "
                f"the limit is {self.max_cost}. Ask for fewer items."
            )
        return ExecutionResult(
            data=None,
            errors=[
                GraphQLError(
                    message, operation, extensions={"code": "QUERY_TOO_COSTLY", "cost": cost}
                )
            ],
        )

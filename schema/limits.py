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

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    get_argument_values,
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

from gateway.upstreams.cbc import MAX_PAGE_SIZE as CBC_PAGE_SIZE
from gateway.upstreams.cbc import (
    MAX_RESOURCE_IDS,
    QUERYABLE_STATUSES,
    RESOURCES_QUERY,
    ResourceQuery,
)
from gateway.upstreams.oma import MAX_PAGE_SIZE as OMA_PAGE_SIZE
from gateway.upstreams.oma import QUERY_RESOURCE, SubscriptionQuery
from schema.context import GatewayContext
from schema.enums import RESOURCE_STATUS_CODES, ResourceStatus


@dataclass(frozen=True, slots=True)
class UpstreamCalls:
    """Calls to each upstream."""

    oma: int = 0
    cbc: int = 0

    @property
    def total(self) -> int:
        return self.oma + self.cbc

    def __add__(self, other: UpstreamCalls) -> UpstreamCalls:
        return UpstreamCalls(self.oma + other.oma, self.cbc + other.cbc)


NO_CALLS = UpstreamCalls()


# The fan-out rules: for each field that calls an upstream, the calls it makes for
# ``parents`` objects and how many objects its selection then sees. Every other
# field makes no call and passes its parents on (a connection's nodes, an edge's
# node).

# Expected fan-out where the schema cannot know it: resources per order and
# attached resources per primary. Generous, so the estimate errs towards refusing.
RESOURCES_PER_ORDER = 4
ATTACHED_PER_RESOURCE = 3
DEFAULT_FIRST = 20

FanOut = Callable[[Mapping[str, Any], int], tuple[UpstreamCalls, int]]


def _no_modification_in_window(arguments: Mapping[str, Any]) -> bool:
    """Whether ``subscriptions``' window holds no millisecond OMA stores."""
    window = arguments.get("window")
    if not isinstance(window, Mapping):
        return False
    # known_answer reads the window only: the limit is any valid one.
    query = SubscriptionQuery(limit=1, start=window.get("from"), end=window.get("to"))
    return QUERY_RESOURCE.known_answer(query) is not None


def _no_expiry_in_window(arguments: Mapping[str, Any]) -> bool:
    """Whether ``resources``' expiry window holds no second CBC stores."""
    resource_filter = arguments.get("filter")
    window = resource_filter.get("expiring") if isinstance(resource_filter, Mapping) else None
    if not isinstance(window, Mapping):
        return False
    expiring = ResourceQuery(expire_from=window.get("from"), expire_to=window.get("to"))
    return RESOURCES_QUERY.known_answer(expiring) is not None


def _pages(first: int | None, page_size: int) -> tuple[int, int]:
    """A root list's calls (the pages ``first`` spans, one at least for the total) and
    the objects its selection sees."""
    first = DEFAULT_FIRST if first is None else max(first, 0)
    return max(1, math.ceil(first / page_size)), first


def _subscriptions(arguments: Mapping[str, Any], parents: int) -> tuple[UpstreamCalls, int]:
    if _no_modification_in_window(arguments):
        return NO_CALLS, 0  # answered empty without a call
    calls, children = _pages(arguments.get("first"), OMA_PAGE_SIZE)
    return UpstreamCalls(oma=calls), children


def _resources(arguments: Mapping[str, Any], parents: int) -> tuple[UpstreamCalls, int]:
    if _no_expiry_in_window(arguments):
        return NO_CALLS, 0  # answered empty without a call
    calls, children = _pages(arguments.get("first"), CBC_PAGE_SIZE)
    return UpstreamCalls(cbc=calls), children


def _order_resources(arguments: Mapping[str, Any], parents: int) -> tuple[UpstreamCalls, int]:
    return UpstreamCalls(cbc=parents), parents * RESOURCES_PER_ORDER


def _resource(arguments: Mapping[str, Any], parents: int) -> tuple[UpstreamCalls, int]:
    return UpstreamCalls(cbc=1), 1


def _resources_by_ids(arguments: Mapping[str, Any], parents: int) -> tuple[UpstreamCalls, int]:
    count = len(arguments["resourceIds"])
    return UpstreamCalls(cbc=math.ceil(count / MAX_RESOURCE_IDS)), count


def _parent(arguments: Mapping[str, Any], parents: int) -> tuple[UpstreamCalls, int]:
    return UpstreamCalls(cbc=math.ceil(parents / MAX_RESOURCE_IDS)), parents


def _attached_resources(arguments: Mapping[str, Any], parents: int) -> tuple[UpstreamCalls, int]:
    calls = math.ceil(parents / MAX_RESOURCE_IDS)
    return UpstreamCalls(cbc=calls), parents * ATTACHED_PER_RESOURCE


FAN_OUT: Mapping[tuple[str, str], FanOut] = {
    ("Query", "subscriptions"): _subscriptions,
    ("Query", "resources"): _resources,
    ("Query", "resource"): _resource,
    ("Query", "resourcesByIds"): _resources_by_ids,
    ("SoftwareSubscription", "resources"): _order_resources,  # one call per order
    ("CloudResource", "parent"): _parent,
    ("CloudResource", "attachedResources"): _attached_resources,
}


class CostEstimate:
    """Upstream calls an operation may cause, from its arguments as execution will see
    them: coerced by graphql-core, with the variables' and the fields' defaults."""

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
        # (type, the merged field's nodes, parents) -> the calls of its selection
        self._seen: dict[tuple[str, tuple[int, ...], int], UpstreamCalls] = {}

    def operation(self, operation: OperationDefinitionNode) -> UpstreamCalls:
        """The estimate; ``GraphQLError`` (BAD_USER_INPUT) for an argument the upstream
        would refuse on every call, so it is refused once instead."""
        root = self._schema.get_root_type(operation.operation)
        if root is None:
            return NO_CALLS
        self._operation = operation  # for collect_subfields, which reads none of it
        try:
            fields = collect_fields(
                self._schema, self._fragments, self._variables, root, operation
            ).grouped_field_set
        except GraphQLError:
            return NO_CALLS  # execution refuses the operation before any resolver
        # One root object; no root field's calls depend on it.
        return self._fields(root, fields, 1)

    def _fields(
        self,
        parent_type: GraphQLObjectType,
        fields: GroupedFieldSet,
        parents: int,
    ) -> UpstreamCalls:
        total = NO_CALLS
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
            children = parents
            fan_out = FAN_OUT.get((parent_type.name, node.name.value))
            if fan_out is not None:
                calls, children = fan_out(arguments, parents)
                total += calls
            child_type = get_named_type(field_def.type)
            if isinstance(child_type, GraphQLObjectType):
                total += self._below(child_type, details, children)
        return total

    def _below(
        self,
        field_type: GraphQLObjectType,
        details: FieldDetailsList,
        parents: int,
    ) -> UpstreamCalls:
        key = (field_type.name, tuple(id(detail.node) for detail in details), parents)
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
            calls = NO_CALLS  # execution fails this field, after its own calls
        else:
            calls = self._fields(field_type, fields, parents)
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

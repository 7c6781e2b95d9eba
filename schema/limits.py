"""Safety limits on operations, checked before any resolver runs.

Depth, aliases and tokens use Strawberry's own limiters; this module adds what
Strawberry lacks: directives per field, root fields, and a cost limit that
estimates the upstream calls an operation would make and refuses it, before
any upstream call, when it is over budget.

The budget is per request. A batch (``GATEWAY_ALLOW_BATCHING``) is run by
Strawberry as separate, concurrent executions sharing the request's
``GatewayContext``, which keeps the estimates of the operations let through: an
operation that would take the request past the budget is refused, and those before
it run (an earlier one may already be calling upstreams when a later one is
estimated, so a batch is never refused as a whole).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLIncludeDirective,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSkipDirective,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
    get_argument_values,
    get_named_type,
    get_operation_ast,
    get_variable_values,
)
from graphql.execution import VariableValues
from graphql.execution.values import get_directive_values
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

# Expected fan-out where the schema cannot know it: resources per order and
# attached resources per primary. Generous, so the estimate errs towards refusing.
RESOURCES_PER_ORDER = 4
ATTACHED_PER_RESOURCE = 3
DEFAULT_FIRST = 20


def max_directives_rule(limit: int) -> type[ValidationRule]:
    class MaxDirectivesPerField(ValidationRule):
        def enter_field(self, node: FieldNode, *_: Any) -> None:
            if len(node.directives or ()) > limit:
                self.report_error(
                    GraphQLError(
                        f"'{node.name.value}' has {len(node.directives or ())} directives; "
                        f"at most {limit} are allowed per field.",
                        node,
                    )
                )

    return MaxDirectivesPerField


def max_root_fields_rule(limit: int) -> type[ValidationRule]:
    class MaxRootFields(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            fragments = _fragments(self.context)
            count = sum(1 for _ in _fields(node.selection_set, fragments, set()))
            if count > limit:
                self.report_error(
                    GraphQLError(
                        f"the operation selects {count} root fields; at most {limit} are allowed.",
                        node,
                    )
                )

    return MaxRootFields


def _fragments(context: ValidationContext) -> dict[str, FragmentDefinitionNode]:
    return {
        d.name.value: d
        for d in context.document.definitions
        if isinstance(d, FragmentDefinitionNode)
    }


def _fields(
    selection_set: SelectionSetNode | None,
    fragments: Mapping[str, FragmentDefinitionNode],
    seen: set[str],
    variables: VariableValues | None = None,
) -> Iterator[FieldNode]:
    """The fields of one selection set, through fragments, each fragment once per path
    (a cycle of fragments is refused by validation; here it just stops). With the
    operation's ``variables``, only what ``@skip`` and ``@include`` let execution run."""
    if selection_set is None:
        return
    for selection in selection_set.selections:
        if variables is not None and not _included(selection, variables):
            continue
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from _fields(selection.selection_set, fragments, seen, variables)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in seen:
                yield from _fields(fragment.selection_set, fragments, seen | {name}, variables)


def _included(selection: SelectionNode, variables: VariableValues) -> bool:
    """What execution decides for ``@skip``/``@include``: a skipped field makes no call."""
    try:
        skip = get_directive_values(GraphQLSkipDirective, selection, variables)
        include = get_directive_values(GraphQLIncludeDirective, selection, variables)
    except GraphQLError:
        return True  # execution refuses it anyway; counted, the estimate stays high
    return not (skip and skip.get("if") is True) and not (include and include.get("if") is False)


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
        self._fragments = fragments
        self._variables = variables

    def operation(self, operation: OperationDefinitionNode) -> int:
        """The estimate; ``GraphQLError`` (BAD_USER_INPUT) for an argument the upstream
        would refuse on every call, so it is refused once instead."""
        root = self._schema.get_root_type(operation.operation)
        if root is None:
            return 0
        return self._selection(operation.selection_set, root, 1, set(), root=True)

    def _selection(
        self,
        selection_set: SelectionSetNode | None,
        parent_type: GraphQLObjectType,
        parents: int,
        seen: set[str],
        *,
        root: bool,
    ) -> int:
        total = 0
        # The schema has object types only: a fragment's type is its parent's.
        for field in _fields(selection_set, self._fragments, seen, self._variables):
            field_def = parent_type.fields.get(field.name.value)
            if field_def is None:
                continue  # __typename or introspection: no upstream call
            arguments: dict[str, Any] = {}
            if field_def.args:
                try:
                    arguments = get_argument_values(field_def, field, self._variables)
                except GraphQLError:
                    continue  # execution fails this field the same way, before its resolver
                _check_statuses(field, arguments)
            calls, children = self._field(field.name.value, arguments, parents, root=root)
            total += calls
            child_type = get_named_type(field_def.type) if field.selection_set else None
            if isinstance(child_type, GraphQLObjectType):
                total += self._selection(
                    field.selection_set, child_type, children, seen, root=False
                )
        return total

    @staticmethod
    def _field(
        name: str, arguments: Mapping[str, Any], parents: int, *, root: bool
    ) -> tuple[int, int]:
        """(calls for this field across ``parents`` objects, objects its children see)."""
        if root and name in ("subscriptions", "resources"):
            if _holds_nothing(name, arguments):
                return 0, 0  # answered empty without a call (Endpoint.known_answer)
            first = arguments.get("first")
            first = DEFAULT_FIRST if first is None else max(first, 0)
            page = OMA_PAGE_SIZE if name == "subscriptions" else CBC_PAGE_SIZE
            return max(1, math.ceil(first / page)), first
        if name == "resources":  # SoftwareSubscription.resources: one call per order
            return parents, parents * RESOURCES_PER_ORDER
        if name == "resource":
            return 1, 1
        if name == "resourcesByIds":
            count = len(arguments["resourceIds"])
            return math.ceil(count / MAX_RESOURCE_IDS), count
        if name == "parent":
            return math.ceil(parents / MAX_RESOURCE_IDS), parents
        if name == "attachedResources":
            return math.ceil(parents / MAX_RESOURCE_IDS), parents * ATTACHED_PER_RESOURCE
        return 0, parents


def _holds_nothing(name: str, arguments: Mapping[str, Any]) -> bool:
    """Whether a root list's time window holds no instant its upstream stores: the
    upstream module answers it empty without a call, so it costs nothing."""
    if name == "subscriptions":
        window = arguments.get("window")
        if not isinstance(window, Mapping):
            return False
        query = SubscriptionQuery(limit=1, start=window.get("from"), end=window.get("to"))
        return QUERY_RESOURCE.known_answer(query) is not None
    resource_filter = arguments.get("filter")
    window = resource_filter.get("expiring") if isinstance(resource_filter, Mapping) else None
    if not isinstance(window, Mapping):
        return False
    expiring = ResourceQuery(expire_from=window.get("from"), expire_to=window.get("to"))
    return RESOURCES_QUERY.known_answer(expiring) is not None


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
            cost = CostEstimate(schema, fragments, variables).operation(operation)
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

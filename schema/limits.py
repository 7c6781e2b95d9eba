"""Safety limits on operations, checked before any resolver runs.

Depth, aliases and tokens use Strawberry's own limiters; this module adds what
Strawberry lacks: directives per field, root fields, and a cost limit that
estimates the upstream calls an operation would make and refuses it, before
any upstream call, when it is over budget.
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
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
    ValueNode,
    value_from_ast_untyped,
)
from strawberry.extensions import SchemaExtension

from gateway.cbc import MAX_PAGE_SIZE as CBC_PAGE_SIZE
from gateway.cbc import MAX_RESOURCE_IDS
from gateway.oma import MAX_PAGE_SIZE as OMA_PAGE_SIZE

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
) -> Iterator[FieldNode]:
    """The fields of one selection set, through fragments, each fragment once per path
    (a cycle of fragments is refused by validation; here it just stops)."""
    if selection_set is None:
        return
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from _fields(selection.selection_set, fragments, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in seen:
                yield from _fields(fragment.selection_set, fragments, seen | {name})


class CostEstimate:
    """Upstream calls an operation may cause, from its arguments and variables."""

    def __init__(
        self, fragments: Mapping[str, FragmentDefinitionNode], variables: Mapping[str, Any]
    ) -> None:
        self._fragments = fragments
        self._variables = variables

    def operation(self, operation: OperationDefinitionNode) -> int:
        return self._selection(operation.selection_set, 1, set(), root=True)

    def _argument(self, field: FieldNode, name: str) -> Any:
        for argument in field.arguments or ():
            if argument.name.value == name:
                value: ValueNode = argument.value
                return value_from_ast_untyped(value, dict(self._variables))
        return None

    def _selection(
        self, selection_set: SelectionSetNode | None, parents: int, seen: set[str], *, root: bool
    ) -> int:
        total = 0
        for field in _fields(selection_set, self._fragments, seen):
            calls, children = self._field(field, parents, root=root)
            total += calls + self._selection(field.selection_set, children, seen, root=False)
        return total

    def _field(self, field: FieldNode, parents: int, *, root: bool) -> tuple[int, int]:
        """(calls for this field across ``parents`` objects, objects its children see)."""
        name = field.name.value
        if root and name in ("subscriptions", "resources"):
            first = self._argument(field, "first")
            first = DEFAULT_FIRST if not isinstance(first, int) else max(first, 0)
            page = OMA_PAGE_SIZE if name == "subscriptions" else CBC_PAGE_SIZE
            return max(1, math.ceil(first / page)), first
        if name == "resources":  # SoftwareSubscription.resources: one call per order
            return parents, parents * RESOURCES_PER_ORDER
        if name == "resource":
            return 1, 1
        if name == "resourcesByIds":
            ids = self._argument(field, "resourceIds")
            count = len(ids) if isinstance(ids, list) else 1
            return math.ceil(count / MAX_RESOURCE_IDS), count
        if name == "parent":
            return math.ceil(parents / MAX_RESOURCE_IDS), parents
        if name == "attachedResources":
            return math.ceil(parents / MAX_RESOURCE_IDS), parents * ATTACHED_PER_RESOURCE
        return 0, parents


class CostLimit(SchemaExtension):
    """Refuses an operation whose estimated upstream calls exceed the budget."""

    def __init__(self, max_cost: int) -> None:
        self.max_cost = max_cost

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and context.result is None:
            fragments = {
                d.name.value: d
                for d in document.definitions
                if isinstance(d, FragmentDefinitionNode)
            }
            estimate = CostEstimate(fragments, context.variables or {})
            for definition in document.definitions:
                if not isinstance(definition, OperationDefinitionNode):
                    continue
                if context.operation_name and (
                    definition.name is None or definition.name.value != context.operation_name
                ):
                    continue
                cost = estimate.operation(definition)
                if cost > self.max_cost:
                    context.result = ExecutionResult(
                        data=None,
                        errors=[
                            GraphQLError(
                                f"the operation would make about {cost} upstream calls; "
                                f"the limit is {self.max_cost}. Ask for fewer items.",
                                definition,
                                extensions={"code": "QUERY_TOO_COSTLY", "cost": cost},
                            )
                        ],
                    )
                    break
        yield

"""Validation rules that bound a document's shape: depth, aliases, root fields and
directives per field.

A document can spread fragments into far more paths than it has bytes: 1 KB that
spreads each of 20 fragments eight times makes 2^60 paths. These rules therefore
measure each fragment once per document, and a spread counts what its fragment
counts, multiplied by how often it is spread, instead of walking every path.

Depth and aliases mean what Strawberry's ``QueryDepthLimiter`` and
``MaxAliasesLimiter`` count (the tests compare the two on generated documents):
depth is the nesting of the deepest field (a top-level leaf is 0; an introspection
field counts, what is below it does not), aliases are counted in every operation
through every spread. Root fields are the fields an operation selects at its top,
through fragments, each spread counted. A cycle of fragments, or a spread of a
fragment the document lacks, is refused by graphql-core's own rules
(``NoFragmentCyclesRule``, ``KnownFragmentNamesRule``); here it adds nothing, so
measuring always ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    SKIP,
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationRule,
    VisitorAction,
)

from gateway.config import LimitSettings


@dataclass(frozen=True, slots=True)
class Measure:
    """What one operation or fragment counts, through the fragments it spreads."""

    depth: int
    aliases: int
    top_fields: int


@dataclass(frozen=True, slots=True)
class Spread:
    """A fragment spread as its definition holds it."""

    name: str
    level: int
    """Fields around it within its definition (0: at the definition's top)."""
    adds_depth: bool
    """False below an introspection field, whose selections depth does not count."""


@dataclass(frozen=True, slots=True)
class Outline:
    """One definition's own counts, its spreads not followed."""

    depth: int
    aliases: int
    top_fields: int
    spreads: tuple[Spread, ...]


def outline(selection_set: SelectionSetNode) -> Outline:
    """One pass over a definition's own selections, without recursion."""
    depth = aliases = top_fields = 0
    spreads: list[Spread] = []
    # (selection set, fields around it, whether depth counts there)
    stack = [(selection_set, 0, True)]
    while stack:
        selections, level, counted = stack.pop()
        for selection in selections.selections:
            if isinstance(selection, FragmentSpreadNode):
                spreads.append(Spread(selection.name.value, level, counted))
            elif isinstance(selection, InlineFragmentNode):
                stack.append((selection.selection_set, level, counted))
            elif isinstance(selection, FieldNode):
                if level == 0:
                    top_fields += 1
                if selection.alias is not None:
                    aliases += 1
                if counted:
                    depth = max(depth, level)
                if selection.selection_set is not None:
                    below = counted and not selection.name.value.startswith("__")
                    stack.append((selection.selection_set, level + 1, below))
    return Outline(depth, aliases, top_fields, tuple(spreads))


class DocumentShape:
    """The measures of a document's operations, each fragment outlined and measured
    once however often it is spread."""

    def __init__(self, document: DocumentNode) -> None:
        self._fragments: dict[str, FragmentDefinitionNode] = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.operations: list[tuple[OperationDefinitionNode, Measure]] = []
        self._measures: dict[str, Measure] = {}
        self._entered: set[str] = set()  # every fragment measured, or on the path
        for definition in document.definitions:
            if isinstance(definition, OperationDefinitionNode):
                own = outline(definition.selection_set)
                for spread in own.spreads:
                    self._measure_fragment(spread.name)
                self.operations.append((definition, self._combine(own)))

    @property
    def aliases(self) -> int:
        """The document's aliases: every operation's, as Strawberry counts them."""
        return sum(measure.aliases for _, measure in self.operations)

    def _measure_fragment(self, root: str) -> None:
        """Measures ``root`` and what it spreads, depth first without recursion. A
        fragment entered but not yet measured is on the path: met again, it closes a
        cycle, and that spread is left unmeasured (it counts nothing)."""
        entered = self._entered
        if root in entered or root not in self._fragments:
            return
        entered.add(root)
        own = outline(self._fragments[root].selection_set)
        path = [(root, own, iter(own.spreads))]
        while path:
            name, own, spreads = path[-1]
            for spread in spreads:
                child = spread.name
                if child in self._fragments and child not in entered:
                    entered.add(child)
                    inner = outline(self._fragments[child].selection_set)
                    path.append((child, inner, iter(inner.spreads)))
                    break
            else:
                path.pop()
                self._measures[name] = self._combine(own)

    def _combine(self, own: Outline) -> Measure:
        depth, aliases, top_fields = own.depth, own.aliases, own.top_fields
        for spread in own.spreads:
            measure = self._measures.get(spread.name)
            if measure is None:
                continue  # unknown, or closing a cycle
            aliases += measure.aliases
            if spread.adds_depth:
                depth = max(depth, spread.level + measure.depth)
            if spread.level == 0:
                top_fields += measure.top_fields
        return Measure(depth, aliases, top_fields)


def operation_label(operation: OperationDefinitionNode) -> str:
    return operation.name.value if operation.name else "anonymous"


def shape_rule(max_depth: int, max_aliases: int, max_root_fields: int) -> type[ValidationRule]:
    """Refuses an operation deeper than ``max_depth`` or selecting more than
    ``max_root_fields`` fields at its top, and a document of more than ``max_aliases``
    aliases."""

    class DocumentShapeLimits(ValidationRule):
        def enter_document(self, node: DocumentNode, *_: Any) -> VisitorAction:
            shape = DocumentShape(node)
            for operation, measure in shape.operations:
                if measure.depth > max_depth:
                    self.report_error(
                        GraphQLError(
                            f"'{operation_label(operation)}' exceeds maximum operation "
                            f"depth of {max_depth}",
                            operation,
                        )
                    )
                if measure.top_fields > max_root_fields:
                    self.report_error(
                        GraphQLError(
                            f"the operation selects {measure.top_fields} root fields; "
                            f"at most {max_root_fields} are allowed.",
                            operation,
                        )
                    )
            if shape.aliases > max_aliases:
                self.report_error(
                    GraphQLError(f"{shape.aliases} aliases found. Allowed: {max_aliases}")
                )
            return SKIP  # measured: nothing in the document is left to visit

    return DocumentShapeLimits


def max_directives_rule(limit: int) -> type[ValidationRule]:
    """Refuses a field with more than ``limit`` directives (each field node is visited
    once: the visitor does not follow spreads)."""

    class MaxDirectivesPerField(ValidationRule):
        def enter_field(self, node: FieldNode, *_: Any) -> None:
            count = len(node.directives or ())
            if count > limit:
                self.report_error(
                    GraphQLError(
                        f"'{node.name.value}' has {count} directives; "
                        f"at most {limit} are allowed per field.",
                        node,
                    )
                )

    return MaxDirectivesPerField


def validation_rules(limits: LimitSettings) -> tuple[type[ASTValidationRule], ...]:
    """The gateway's rules, made once per schema: the validation cache is keyed on the
    rule classes, so new classes per request would never hit it."""
    return (
        shape_rule(limits.max_depth, limits.max_aliases, limits.max_root_fields),
        max_directives_rule(limits.max_directives_per_field),
    )

"""An answer in parts only where the transport can carry parts.

@defer and @stream make an answer of several payloads, which HTTP carries as
``multipart/mixed`` or ``text/event-stream``. A client that accepts neither (plain JSON:
curl, a fetch without a multipart reader), or one operation of a batch, cannot read
them: such an operation is refused before any upstream call, saying what to send,
instead of being answered in a form the client cannot parse (as Apollo Router does).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import (
    DirectiveNode,
    ExecutionResult,
    FragmentDefinitionNode,
    GraphQLDeferDirective,
    GraphQLError,
    GraphQLStreamDirective,
    Visitor,
    get_argument_values,
    get_operation_ast,
    get_variable_values,
    visit,
)
from strawberry.extensions import SchemaExtension

from schema.context import GatewayContext

INCREMENTAL_DELIVERY_NOT_ACCEPTED = "INCREMENTAL_DELIVERY_NOT_ACCEPTED"

_DIRECTIVES = {"defer": GraphQLDeferDirective, "stream": GraphQLStreamDirective}


class IncrementalDelivery(SchemaExtension):
    """Refuses an operation that would be answered in parts (an @defer or @stream whose
    ``if`` is not false) where the request's transport cannot deliver them."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        request = context.context
        if (
            context.result is None
            and isinstance(request, GatewayContext)
            and not request.incremental_delivery
        ):
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
        variables = get_variable_values(
            context.schema._schema, operation.variable_definitions or (), context.variables or {}
        )
        if isinstance(variables, list):
            return None  # execution refuses them
        found = _InParts(variables)
        # The operation and the fragments (validation refuses those it does not use).
        for definition in document.definitions:
            if definition is operation or isinstance(definition, FragmentDefinitionNode):
                visit(definition, found)
            if found.directive is not None:
                break
        else:
            return None
        assert found.directive is not None
        name = found.directive.name.value
        return ExecutionResult(
            data=None,
            errors=[
                GraphQLError(
                    f"@{name} answers in parts, which this request cannot receive: send "
                    "`Accept: multipart/mixed` (Apollo Client, urql) or "
                    "`Accept: text/event-stream` (graphql-sse), and not in a batch; or "
                    f"leave out @{name}.",
                    found.directive,
                    extensions={"code": INCREMENTAL_DELIVERY_NOT_ACCEPTED},
                )
            ],
        )


class _InParts(Visitor):
    """Finds the first @defer or @stream that would split the answer."""

    def __init__(self, variables: Any) -> None:
        super().__init__()
        self.variables = variables
        self.directive: DirectiveNode | None = None

    def enter_directive(self, node: DirectiveNode, *_: Any) -> Any:
        definition = _DIRECTIVES.get(node.name.value)
        if definition is None:
            return None
        try:
            values = get_argument_values(definition, node, self.variables)
        except GraphQLError:
            return None  # execution refuses the directive's arguments itself
        if values.get("if", True):
            self.directive = node
            return Visitor.BREAK
        return None


__all__ = ["INCREMENTAL_DELIVERY_NOT_ACCEPTED", "IncrementalDelivery"]

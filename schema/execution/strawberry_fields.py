"""What the executor's shortcut may do with a field: read it as a plain attribute, answer it
from its ``Link``, or leave it to Strawberry.

The shortcut may answer a field itself only where that is what Strawberry would answer:
a field with a permission class, a field extension, a directive of its own or a resolver
the shortcut does not know runs through Strawberry as stock. This module is the one place
the executor reads Strawberry's own field definitions (``GraphQLCoreConverter``'s back
reference, the ``_is_default`` mark of its default resolver, ``convert_arguments``):
``tests/schema/execution/test_strawberry_internals.py`` fails, saying which, when a new
Strawberry moves one of them.
"""

from __future__ import annotations

from typing import Any

from graphql import FieldNode, GraphQLField, get_argument_values
from graphql.execution import VariableValues
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.arguments import convert_arguments
from strawberry.types.field import StrawberryField

from schema.links import LINK, Link

DEFINITION_BACKREF = GraphQLCoreConverter.DEFINITION_BACKREF


def strawberry_field(field_def: GraphQLField) -> StrawberryField | None:
    """The Strawberry field behind a graphql-core field, if there is one."""
    definition = field_def.extensions.get(DEFINITION_BACKREF)
    return definition if isinstance(definition, StrawberryField) else None


def runs_around(definition: StrawberryField) -> bool:
    """Whether something runs around the field's value in Strawberry: a permission class, a
    field extension, a schema directive. Such a field is Strawberry's to answer."""
    return bool(definition.permission_classes or definition.extensions or definition.directives)


def plain_attribute(field_def: GraphQLField) -> StrawberryField | None:
    """The Strawberry field behind a field read as a plain attribute (no arguments, no
    resolver, nothing around it: Strawberry marks its default resolver ``_is_default``),
    else None."""
    definition = strawberry_field(field_def)
    if (
        definition is None
        or field_def.args
        or definition.base_resolver is not None
        or not getattr(field_def.resolve, "_is_default", False)
        or definition.default_resolver is not getattr
        or runs_around(definition)
    ):
        return None
    return definition


def field_link(field_def: GraphQLField) -> Link[Any, Any, Any, Any] | None:
    """The link of a field answered from a loader by the link's own resolver, with nothing
    around it; else None (the field's resolver decides, as Strawberry runs it)."""
    definition = strawberry_field(field_def)
    if definition is None or runs_around(definition):
        return None
    link = definition.metadata.get(LINK)
    resolver = definition.base_resolver
    if not isinstance(link, Link) or not link.answers(getattr(resolver, "wrapped_func", None)):
        return None
    return link


def field_arguments(
    field_def: GraphQLField, node: FieldNode, variables: VariableValues, strawberry_schema: Any
) -> dict[str, Any]:
    """A field's arguments by Python name, converted as Strawberry converts them for the
    resolver (enums as members, inputs as their classes)."""
    definition = strawberry_field(field_def)
    if definition is None:
        raise TypeError(f"{node.name.value} is not a Strawberry field")
    return convert_arguments(
        get_argument_values(field_def, node, variables),
        definition.arguments,
        scalar_registry=strawberry_schema.schema_converter.scalar_registry,
        config=strawberry_schema.config,
    )


__all__ = ["field_arguments", "field_link", "plain_attribute", "runs_around", "strawberry_field"]

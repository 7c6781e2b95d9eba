"""Hypothesis strategies for operations over the real schema: leaves, links with their
arguments, nested objects, aliases, __typename, inline fragments, @include/@skip and,
when asked, @defer on fragments and @stream on lists."""

from __future__ import annotations

from collections.abc import Sequence

from graphql import GraphQLList, GraphQLNonNull, GraphQLObjectType, GraphQLOutputType
from hypothesis import strategies as st

from schema.build import build_schema

SCHEMA = build_schema(production=False)._schema
STATUSES = ["PROVISIONED", "FROZEN", "EXPIRED"]


def object_type(output_type: GraphQLOutputType) -> GraphQLObjectType | None:
    while isinstance(output_type, GraphQLNonNull | GraphQLList):
        output_type = output_type.of_type
    return output_type if isinstance(output_type, GraphQLObjectType) else None


def is_list(output_type: GraphQLOutputType) -> bool:
    if isinstance(output_type, GraphQLNonNull):
        output_type = output_type.of_type
    return isinstance(output_type, GraphQLList)


@st.composite
def selection(draw: st.DrawFn, type_name: str, depth: int, incremental: bool = False) -> str:
    """Some fields of a type, to ``depth`` levels of objects."""
    parent = SCHEMA.type_map[type_name]
    assert isinstance(parent, GraphQLObjectType)
    names = sorted(parent.fields)
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=6, unique=True))
    parts: list[str] = []
    for name in chosen:
        field = parent.fields[name]
        child = object_type(field.type)
        text = name
        if draw(st.integers(0, 5)) == 0:
            text = f"{draw(st.sampled_from(['a', 'b', 'c']))}{name}: {name}"
        if name == "resources" and type_name == "SoftwareSubscription":
            arguments = []
            main = draw(st.sampled_from([None, True, False]))
            if main is not None:
                arguments.append(f"onlyMainResources: {str(main).lower()}")
            statuses = draw(st.lists(st.sampled_from(STATUSES), max_size=2, unique=True))
            if statuses:
                arguments.append(f"statuses: [{', '.join(statuses)}]")
            if arguments:
                text += f"({', '.join(arguments)})"
        if incremental and child is not None and is_list(field.type) and draw(st.booleans()):
            text += f" @stream(initialCount: {draw(st.sampled_from([0, 1, 2]))})"
        text += draw(st.sampled_from(["", "", "", " @include(if: false)", " @skip(if: false)"]))
        if child is not None:
            if depth == 0:
                continue
            text += " { " + draw(selection(child.name, depth - 1, incremental)) + " }"
        parts.append(text)
    if draw(st.booleans()):
        parts.append("__typename")
    if not parts:
        parts.append("__typename")
    if incremental and len(parts) > 1 and draw(st.booleans()):
        # Some of the fields deferred, perhaps also asked for outside the fragment.
        cut = draw(st.integers(0, len(parts) - 1))
        deferred = parts[cut:]
        # (A streamed field twice is refused: its streams would overlap.)
        twice = [part for part in deferred if "@stream" not in part]
        kept = parts[:cut] + (draw(st.lists(st.sampled_from(twice), max_size=1)) if twice else [])
        parts = [*kept, f"... @defer {{ {' '.join(deferred)} }}"]
    body = " ".join(parts)
    if draw(st.integers(0, 4)) == 0:
        return f"... on {type_name} {{ {body} }}"
    return body


@st.composite
def operation(draw: st.DrawFn, ids: Sequence[str], incremental: bool = False) -> str:
    """An operation on one root field; ``ids`` are resource ids to ask for by id."""
    root = draw(st.sampled_from(["subscriptions", "resources", "resourcesByIds", "resource"]))
    depth = draw(st.integers(1, 4))
    if root == "subscriptions":
        first = draw(st.sampled_from([0, 1, 3, 12]))
        inner = draw(selection("SoftwareSubscriptionConnection", depth, incremental))
        return f"{{ subscriptions(first: {first}) {{ {inner} }} }}"
    if root == "resources":
        first = draw(st.sampled_from([1, 5, 30]))
        inner = draw(selection("CloudResourceConnection", depth, incremental))
        return f"{{ resources(first: {first}) {{ {inner} }} }}"
    chosen = ", ".join(f'"{rid}"' for rid in draw(st.lists(st.sampled_from(ids), max_size=5)))
    inner = draw(selection("CloudResource", depth - 1, incremental))
    if root == "resourcesByIds":
        return f"{{ resourcesByIds(resourceIds: [{chosen}]) {{ {inner} }} }}"
    return f'{{ resource(resourceId: "{ids[0]}") {{ {inner} }} }}'


__all__ = ["SCHEMA", "is_list", "object_type", "operation", "selection"]

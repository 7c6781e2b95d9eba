"""The checked-in contract: schema/schema.graphql must be what the code prints."""

from __future__ import annotations

import re

from gateway.config import LimitSettings
from schema.build import SCHEMA_FILE, build_schema, print_sdl


def test_checked_in_schema_matches_the_code() -> None:
    assert SCHEMA_FILE.read_text() == print_sdl(), (
        "schema/schema.graphql is out of date: run `.venv/bin/python -m schema` and commit the diff"
    )


def test_schema_block_names_the_query_root_explicitly() -> None:
    assert SCHEMA_FILE.read_text().startswith("schema {\n  query: Query\n}\n")


def test_no_type_takes_a_root_or_generic_name() -> None:
    names = set(re.findall(r"^(?:type|input|enum|scalar) (\w+)", SCHEMA_FILE.read_text(), re.M))
    assert not names & {"Subscription", "Mutation", "Resource"}
    assert {
        "SoftwareSubscription",
        "CloudResource",
        "DateTime",
        "TimeWindow",
        "ResourceFilter",
    } <= names


def test_every_type_and_field_is_described() -> None:
    schema = build_schema(LimitSettings(), production=False)
    graphql_schema = schema._schema
    for name, graphql_type in graphql_schema.type_map.items():
        if name.startswith("__") or name in ("String", "Int", "Boolean", "ID", "Float"):
            continue
        assert graphql_type.description, f"type {name} has no description"
        for field_name, field in getattr(graphql_type, "fields", {}).items():
            assert field.description, f"{name}.{field_name} has no description"

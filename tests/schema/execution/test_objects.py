"""Strawberry objects made from records: every field set, and nothing else."""

from __future__ import annotations

from typing import NamedTuple

import pytest
import strawberry

from schema.execution.objects import record_maker


class Row(NamedTuple):
    name: str
    code: int


@strawberry.type
class Thing:
    name: str
    code: str
    doubled: int

    @strawberry.field
    def shout(self) -> str:
        return self.name.upper()


def test_the_object_is_the_type_with_the_records_fields() -> None:
    make = record_maker(Thing, Row._fields, converted={"code": str}, derived={"doubled": double})
    made = make(Row("a", 7))
    assert isinstance(made, Thing)
    assert (made.name, made.code, made.doubled, made.shout()) == ("a", "7", 14, "A")
    # A slot per field, nothing more: no dict to build.
    assert type(made).__slots__ == ("name", "code", "doubled")
    schema = strawberry.Schema(query=Query)
    result = schema.execute_sync("{ thing { name code doubled shout } }", root_value=made)
    assert result.data == {"thing": {"name": "a", "code": "7", "doubled": 14, "shout": "A"}}


def double(row: Row) -> int:
    return row.code * 2


@strawberry.type
class Query:
    @strawberry.field
    def thing(self) -> Thing:
        return self  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("fields", "converted", "derived"),
    [
        (("name",), {}, {"doubled": double}),  # code is never set
        (("name", "code", "extra"), {}, {"doubled": double}),  # not a field of Thing
        (("name", "code"), {"other": str}, {"doubled": double}),  # converts no field
        (("name", "code", "code"), {}, {"doubled": double}),  # twice
    ],
)
def test_fields_that_would_be_left_unset_or_unknown_are_refused(
    fields: tuple[str, ...], converted: dict[str, object], derived: dict[str, object]
) -> None:
    with pytest.raises(TypeError):
        record_maker(Thing, fields, converted=converted, derived=derived)  # type: ignore[arg-type]

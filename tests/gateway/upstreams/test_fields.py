from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.times import FLOAT_EXACT_MS, from_epoch_ms, parse_cbc_time
from gateway.upstreams.fields import (
    INT,
    TEXT,
    RecordFields,
    RecordValues,
    json_objects,
    read_int,
    read_text,
    time_kind,
)
from gateway.upstreams.oma import EPOCH_MS
from tests.support.helpers import with_warnings
from tests.support.json_answers import json_values

CBC_TIME = time_kind(parse_cbc_time, {str: parse_cbc_time})
FIELDS = [("a", TEXT), ("b", INT), ("c", EPOCH_MS), ("d", CBC_TIME), ("e", INT)]

# Where OMA's numeric times stop being read the quick way (gateway.fields.Scaled).
time_bounds = st.sampled_from([FLOAT_EXACT_MS, -FLOAT_EXACT_MS]).flatmap(
    lambda bound: st.integers(bound - 2, bound + 2)
)
records = st.dictionaries(
    st.sampled_from(["a", "b", "c", "d", "e", "z"]), st.one_of(json_values, time_bounds)
)


def typed(values: list[Any]) -> list[tuple[type, Any]]:
    # With their types: True == 1, and a reader never answers True for an INT.
    return [(type(value), value) for value in values]


def one_by_one(record: dict[str, Any]) -> list[tuple[type, Any]]:
    return typed([kind.read(record, name) for name, kind in FIELDS])


@given(st.lists(records, min_size=1, max_size=6))
def test_reading_a_record_at_once_gives_what_each_reader_gives(batch: list[dict[str, Any]]) -> None:
    """The same values, of the same types, with the same warnings."""
    fields = RecordFields(FIELDS)
    for record in batch:
        at_once, warned = with_warnings(fields.read, record)
        one_at_a_time, warned_one_at_a_time = with_warnings(one_by_one, record)
        assert typed(at_once) == one_at_a_time
        assert warned == warned_one_at_a_time


def test_a_field_the_quick_way_cannot_read_warns_as_its_reader_does(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fields = RecordFields([("amount", INT), ("at", EPOCH_MS)])
    with caplog.at_level(logging.WARNING, logger="gateway.upstream"):
        assert fields.read({"amount": "12", "at": 1679558854000}) == [
            12,
            from_epoch_ms(1679558854000),
        ]
        assert not caplog.records
        assert fields.read({"amount": "twelve", "at": 10**20}) == [None, None]
    assert [record.getMessage() for record in caplog.records] == [
        "field is not an integer",
        "unparseable time",
    ]


def test_every_combination_of_types_is_read_by_the_one_function() -> None:
    fields = RecordFields([(str(index), TEXT) for index in range(8)])
    read = fields.read
    # 2**8 combinations of str and int: nothing is kept per combination.
    for mask in range(256):
        record = {str(index): (index if mask >> index & 1 else str(index)) for index in range(8)}
        assert fields.read(record) == [str(index) for index in range(8)]
    assert fields.read is read


def test_field_names_are_values_never_source() -> None:
    name = '"); import os; os._exit(1); ("'
    fields = RecordFields([(name, TEXT), ("class", INT), ("", TEXT)])
    assert fields.read({name: "x", "class": "3", "": 4}) == ["x", 3, "4"]


def test_the_readers_still_read_one_field() -> None:
    assert read_text({"a": 5.0}, "a") == "5"
    assert read_int({"a": " 7 "}, "a") == 7


def test_json_objects_skips_what_is_not_an_object() -> None:
    only_objects = [{"a": 1}, {"b": 2}]
    assert json_objects(only_objects) is only_objects  # nothing to skip: no copy
    assert json_objects([{"a": 1}, 3, None, ["x"], "y", {"b": 2}]) == only_objects
    assert json_objects([]) == []


@given(st.lists(records, min_size=1, max_size=6))
def test_reading_the_values_in_order_gives_what_reading_the_record_gives(
    batch: list[dict[str, Any]],
) -> None:
    fields = RecordFields(FIELDS)
    for record in batch:
        by_name, warned = with_warnings(fields.read, record)
        values = [record.get(name) for name in fields.names]
        in_order, warned_in_order = with_warnings(fields.read_values, values)
        assert typed(in_order) == typed(by_name)
        assert warned_in_order == warned


PAGE = RecordFields(FIELDS).page_decoder("items", ("total", "code"))


def test_a_plain_page_is_decoded_straight_into_values() -> None:
    body = b'{"code": "0", "total": 2, "items": [{"a": "x", "c": 1679558854000}, {}]}'
    decoded = PAGE(body)
    assert decoded == {
        "code": "0",
        "total": 2,
        "items": [("x", None, 1679558854000, None, None), (None,) * 5],
    }
    assert decoded is not None and type(decoded["items"]) is RecordValues
    assert decoded["items"].typed  # its text field held text or null: read without a test
    assert PAGE(b'{"items": []}') == {"items": []}  # a key that is missing stays missing


def test_a_page_with_a_number_in_a_text_field_is_decoded_the_loose_way() -> None:
    decoded = PAGE(b'{"items": [{"a": 5, "b": "7"}, {"a": "x"}]}')
    assert decoded is not None and not decoded["items"].typed
    fields = RecordFields(FIELDS)
    assert [typed(values) for values in fields.read_all(decoded["items"])] == [
        typed(["5", 7, None, None, None]),
        typed(["x", None, None, None, None]),
    ]


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'{"total": 1}',
        b'{"items": null}',
        b'{"items": [{"a": "x"}, 5]}',
        b'{"items": [{"a": [1]}]}',
        b'{"items": [{"a": {"b": 1}}]}',
        b'{"items": [{"a": 9223372036854775808}]}',
        b'{"items": [{"a": -9223372036854775809}]}',
        b'{"items": [], "code": [1]}',
        b'{"items": [{"a": NaN}]}',
        b'{"items": [{"a": "x", "z": 1}]}',  # a key not declared: its value is not checked
        b'{"items": [], "z": 1}',
        b'{"items": []} x',
        b"",
    ],
)
def test_anything_but_a_plain_page_is_left_to_the_general_decoding(body: bytes) -> None:
    assert PAGE(body) is None

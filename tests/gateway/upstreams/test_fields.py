from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from typing import Annotated, Any, NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.times import FLOAT_EXACT_MS, from_epoch_ms, parse_cbc_time
from gateway.upstreams.cbc import ResourceRecord
from gateway.upstreams.fields import (
    INT,
    TEXT,
    FieldKind,
    RecordFields,
    RecordValues,
    Scaled,
    Upstream,
    declared_fields,
    json_objects,
    read_int,
    read_text,
    read_time,
    record_version,
    time_kind,
)
from gateway.upstreams.oma import EPOCH_MS, SubscriptionRecord
from tests.support.helpers import with_warnings
from tests.support.json_answers import json_values

CBC_TIME = time_kind("cbc_time", parse_cbc_time, {str: parse_cbc_time})
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


def test_the_readers_turn_what_arrived_into_the_documented_type() -> None:
    assert [read_text({"a": value}, "a") for value in (True, False, 7, 5.5, "x", None)] == [
        "true",
        "false",
        "7",
        "5.5",
        "x",
        None,
    ]
    assert [read_int({"a": value}, "a") for value in (True, 7, 7.0, "-3", "", None)] == [
        1,
        7,
        7,
        -3,
        None,
        None,
    ]
    assert read_time({"a": "2023-03-23T08:07:34Z"}, "a", parse_cbc_time) == datetime(
        2023, 3, 23, 8, 7, 34, tzinfo=UTC
    )


def test_an_odd_field_is_logged_with_its_name_and_what_it_held(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What the log shows of a field no reader could read: the field, and the value's
    type or its first 40 characters. An empty value is missing, not odd."""
    with caplog.at_level(logging.WARNING, logger="gateway.upstream"):
        assert read_text({"remark": [1]}, "remark") is None
        assert read_int({"amount": "x" * 60}, "amount") is None
        assert read_time({"at": "y" * 60}, "at", parse_cbc_time) is None
        assert read_int({"amount": ""}, "amount") is None
        assert read_time({"at": ""}, "at", parse_cbc_time) is None
    assert [(r.name, r.getMessage(), r.__dict__["field"]) for r in caplog.records] == [
        ("gateway.upstream", "unexpected field type", "remark"),
        ("gateway.upstream", "field is not an integer", "amount"),
        ("gateway.upstream", "unparseable time", "at"),
    ]
    assert caplog.records[0].__dict__["type"] == "list"
    assert caplog.records[1].__dict__["value"] == repr("x" * 60)[:40]
    assert caplog.records[2].__dict__["value"] == repr("y" * 60)[:40]
    assert len(caplog.records[2].__dict__["value"]) == 40


def test_a_time_kind_reads_its_field_by_its_parser(caplog: pytest.LogCaptureFixture) -> None:
    kind = time_kind("cbc_time", parse_cbc_time, {str: parse_cbc_time})
    assert kind.name == "cbc_time"
    fields = RecordFields([("at", kind)])
    with caplog.at_level(logging.WARNING, logger="gateway.upstream"):
        assert fields.read({"at": "2023-03-23T08:07:34Z"}) == [
            datetime(2023, 3, 23, 8, 7, 34, tzinfo=UTC)
        ]
        assert fields.read({}) == [None]
        assert fields.read({"at": 5}) == [None]  # no quick way for a number: the reader
        assert kind.read({"at": "bad"}, "at") is None
    assert [(r.getMessage(), r.__dict__["field"]) for r in caplog.records] == [
        ("unparseable time", "at"),
        ("unparseable time", "at"),
    ]


def by_reader(record: dict[str, Any], name: str) -> tuple[str, Any]:
    return ("read", record.get(name))


def by_quick(value: Any) -> tuple[str, Any]:
    return ("quick", value)


def by_scaled(value: float, argument: Any) -> tuple[str, float, Any]:
    return ("scaled", value, argument)


def refuse(value: Any) -> Any:
    raise ValueError(value)


# Kinds whose ways of reading are told apart (a real kind's give the same value).
WAYS = FieldKind(
    "ways",
    by_reader,
    frozenset({str, type(None)}),
    {int: by_quick, float: Scaled(by_scaled, 4, "arg", 100)},
)
REFUSING_QUICK = FieldKind("refusing", by_reader, frozenset({type(None)}), {int: refuse})
NONE_NOT_KEPT = FieldKind("none_not_kept", by_reader, frozenset({str}), {})
NOTHING_KEPT = FieldKind("nothing_kept", by_reader, frozenset(), {})


@pytest.mark.parametrize(
    ("kind", "value", "read"),
    [
        (WAYS, "x", "x"),
        (WAYS, None, None),
        (WAYS, 3, ("quick", 3)),
        (WAYS, 8.0, ("scaled", 2.0, "arg")),
        (WAYS, 99.0, ("scaled", 24.75, "arg")),
        (WAYS, -99.0, ("scaled", -24.75, "arg")),
        (WAYS, 100.0, ("read", 100.0)),  # beyond the bound: the reader
        (WAYS, -100.0, ("read", -100.0)),
        (WAYS, True, ("read", True)),  # a bool is not an int here
        (WAYS, [1], ("read", [1])),
        (REFUSING_QUICK, 3, ("read", 3)),  # a quick way that raises: the reader decides
        (REFUSING_QUICK, None, None),
        (NONE_NOT_KEPT, "x", "x"),
        (NONE_NOT_KEPT, None, ("read", None)),
        (NOTHING_KEPT, "x", ("read", "x")),
        (NOTHING_KEPT, None, ("read", None)),
    ],
)
def test_each_value_takes_the_way_its_type_has(kind: FieldKind, value: Any, read: Any) -> None:
    """Kept as it is, converted the quick way, or read by the reader: a call only where a
    conversion or the reader is needed, by name or from the values in order."""
    fields = RecordFields([("a", kind), ("b", TEXT)])
    record = {"b": "y"} if value is None else {"a": value, "b": "y"}
    assert fields.read(record) == [read, "y"]
    assert fields.read_values([value, "y"]) == [read, "y"]
    # As the page decoder gives them; typed only when the text fields hold text or null.
    typed = value is None or type(value) is str
    decoded = RecordValues([(value, "y")], typed=typed)
    assert list(fields.read_all(decoded)) == [[read, "y"]]


def test_reading_a_json_list_reads_its_objects_and_skips_the_rest() -> None:
    fields = RecordFields([("a", TEXT), ("b", INT)])
    records = [{"a": "x", "b": "2"}, 3, None, ["x"], {"b": 4}]
    assert list(fields.read_all(records)) == [["x", 2], [None, 4]]


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


def decode_page(body: bytes) -> dict[str, Any] | None:
    # Made in the test, not at import: a mutant (bench.mutation) is active only in what
    # runs during a test.
    return RecordFields(FIELDS).page_decoder("items", ("total", "code"))(body)


def test_a_plain_page_is_decoded_straight_into_values() -> None:
    body = b'{"code": "0", "total": 2, "items": [{"a": "x", "c": 1679558854000}, {}]}'
    decoded = decode_page(body)
    assert decoded == {
        "code": "0",
        "total": 2,
        "items": [("x", None, 1679558854000, None, None), (None,) * 5],
    }
    assert decoded is not None and type(decoded["items"]) is RecordValues
    assert decoded["items"].typed  # its text field held text or null: read without a test
    assert decode_page(b'{"items": []}') == {"items": []}  # a key that is missing stays missing


def test_a_page_with_a_number_in_a_text_field_is_decoded_the_loose_way() -> None:
    decoded = decode_page(b'{"items": [{"a": 5, "b": "7"}, {"a": "x"}]}')
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
    assert decode_page(body) is None


# Records declared once: each attribute's annotation names its upstream field and kind.


class Order(NamedTuple):
    order_id: Annotated[str, Upstream("orderId", TEXT)]
    amount: Annotated[int | None, Upstream("amount", INT)]
    created_at: Annotated[datetime | None, Upstream("createTime", EPOCH_MS)]


def test_a_record_is_read_from_the_fields_its_attributes_name() -> None:
    fields = RecordFields.declared_by(Order)
    assert fields.names == ("orderId", "amount", "createTime")
    assert [kind for _, kind in fields.fields] == [TEXT, INT, EPOCH_MS]
    values = fields.read({"createTime": 1679558854000, "amount": "3", "orderId": 25})
    assert Order._make(values) == Order("25", 3, from_epoch_ms(1679558854000))
    body = b'{"items": [{"amount": 3, "createTime": "1679558854000", "orderId": "x"}]}'
    decoded = fields.page_decoder("items", ())(body)
    assert decoded is not None
    assert [Order._make(values) for values in fields.read_all(decoded["items"])] == [
        Order("x", 3, from_epoch_ms(1679558854000))
    ]
    assert [(field.attribute, field.upstream.name) for field in declared_fields(Order)] == [
        ("order_id", "orderId"),
        ("amount", "amount"),
        ("created_at", "createTime"),
    ]


class WithoutUpstream(NamedTuple):
    order_id: Annotated[str, Upstream("orderId", TEXT)]
    amount: int | None


class WithAnotherAnnotation(NamedTuple):
    amount: Annotated[int | None, "amount"]


class ReadTwice(NamedTuple):
    amount: Annotated[int | None, Upstream("amount", INT), Upstream("quantity", INT)]


class OneFieldForTwo(NamedTuple):
    order_id: Annotated[str, Upstream("orderId", TEXT)]
    amount: Annotated[int | None, Upstream("amount", INT)]
    quantity: Annotated[int | None, Upstream("amount", INT)]


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (
            WithoutUpstream,
            re.escape(
                "WithoutUpstream.amount declares 0 upstream fields, not one: annotate it "
                "Annotated[its type, Upstream(upstream field name, kind)]"
            ),
        ),
        (WithAnotherAnnotation, "WithAnotherAnnotation.amount declares 0 upstream fields"),
        (ReadTwice, "ReadTwice.amount declares 2 upstream fields, not one"),
        (OneFieldForTwo, "OneFieldForTwo.quantity reads 'amount', as amount does"),
    ],
)
def test_a_declaration_that_would_misplace_a_value_is_refused(
    record: type[tuple[Any, ...]], message: str
) -> None:
    """An attribute without its upstream field cannot shift the others' values: its
    record is refused where it is declared (at import, for the upstreams' records)."""
    with pytest.raises(TypeError, match=message):
        RecordFields.declared_by(record)
    with pytest.raises(TypeError, match=message):
        record_version(record)


class SameAsOrder(NamedTuple):
    order_id: Annotated[str, Upstream("orderId", TEXT)]
    amount: Annotated[int | None, Upstream("amount", INT)]
    created_at: Annotated[datetime | None, Upstream("createTime", EPOCH_MS)]


class FieldAdded(NamedTuple):
    order_id: Annotated[str, Upstream("orderId", TEXT)]
    amount: Annotated[int | None, Upstream("amount", INT)]
    created_at: Annotated[datetime | None, Upstream("createTime", EPOCH_MS)]
    remark: Annotated[str | None, Upstream("remark", TEXT)]


class FieldRemoved(NamedTuple):
    order_id: Annotated[str, Upstream("orderId", TEXT)]
    amount: Annotated[int | None, Upstream("amount", INT)]


class AttributeRenamed(NamedTuple):
    order_id: Annotated[str, Upstream("orderId", TEXT)]
    quantity: Annotated[int | None, Upstream("amount", INT)]
    created_at: Annotated[datetime | None, Upstream("createTime", EPOCH_MS)]


class UpstreamFieldRenamed(NamedTuple):
    order_id: Annotated[str, Upstream("orderId", TEXT)]
    amount: Annotated[int | None, Upstream("quantity", INT)]
    created_at: Annotated[datetime | None, Upstream("createTime", EPOCH_MS)]


class Reordered(NamedTuple):
    amount: Annotated[int | None, Upstream("amount", INT)]
    order_id: Annotated[str, Upstream("orderId", TEXT)]
    created_at: Annotated[datetime | None, Upstream("createTime", EPOCH_MS)]


class Retyped(NamedTuple):
    order_id: Annotated[str, Upstream("orderId", TEXT)]
    amount: Annotated[int, Upstream("amount", INT)]
    created_at: Annotated[datetime | None, Upstream("createTime", EPOCH_MS)]


class ReadAsAnotherKind(NamedTuple):
    order_id: Annotated[str, Upstream("orderId", TEXT)]
    amount: Annotated[int | None, Upstream("amount", INT)]
    created_at: Annotated[datetime | None, Upstream("createTime", CBC_TIME)]


def test_a_record_declared_otherwise_has_another_version() -> None:
    """Pages cached under one version are never read as records of another."""
    changed = [
        FieldAdded,
        FieldRemoved,
        AttributeRenamed,
        UpstreamFieldRenamed,
        Reordered,
        Retyped,
        ReadAsAnotherKind,
    ]
    versions = [record_version(record) for record in [Order, *changed]]
    assert len(set(versions)) == len(versions)
    assert record_version(SameAsOrder) == record_version(Order)  # the class's name is not in it
    assert len(record_version(Order)) == 16 and int(record_version(Order), 16) >= 0


def test_a_records_version_is_the_same_in_every_process() -> None:
    """No id() or hash() in it: replicas, and the next start, share the cached pages."""
    script = (
        "from gateway.upstreams.cbc import ResourceRecord\n"
        "from gateway.upstreams.oma import SubscriptionRecord\n"
        "from gateway.upstreams.fields import record_version\n"
        "print(record_version(SubscriptionRecord), record_version(ResourceRecord))\n"
    )
    here = f"{record_version(SubscriptionRecord)} {record_version(ResourceRecord)}"
    for seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        )
        assert done.stdout.strip() == here

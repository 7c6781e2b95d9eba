"""A record's GraphQL object is made again only while the record is new (schema.views)."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest

from schema import enums
from schema.execution.views import ObjectsByRecord
from tests.support.helpers import GraphQLClient


class Record(list[Any]):
    """A record that can be watched for when it dies (a tuple cannot be)."""


class Made:
    def __init__(self, record: Record) -> None:
        self.fields = list(record)


class Counted:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, record: Record) -> Made:
        self.calls += 1
        return Made(record)


def test_a_record_seen_again_keeps_its_object() -> None:
    make = Counted()
    objects = ObjectsByRecord(make)
    record = Record(["id-1", 7])
    first = objects.object_of(record)
    second = objects.object_of(record)
    assert make.calls == 2 and len(objects) == 1
    # From now on the kept object answers, made no more.
    assert objects.object_of(record) is second and objects.object_of(record) is second
    assert make.calls == 2
    assert first is not second and first.fields == second.fields == ["id-1", 7]


def test_a_record_seen_once_dies_with_its_answer() -> None:
    objects = ObjectsByRecord(Counted())
    record = Record(["id-1", 7])
    watched = weakref.ref(record)
    assert objects.object_of(record).fields == ["id-1", 7]
    del record
    gc.collect()
    assert watched() is None
    assert len(objects) == 0


def at_address(address: int, firsts: list[str]) -> Record:
    """A new record at ``address``: CPython gives a freed block to the next object of its
    size. The first fields exist already, so that only records are made here."""
    for first in firsts:
        record = Record([first, "new"])
        if id(record) == address:
            return record
        del record
    pytest.fail("no new record took the freed address")


def test_a_new_record_at_a_dead_records_address_is_its_own() -> None:
    make = Counted()
    objects = ObjectsByRecord(make)
    firsts = [str(10**20 + n) for n in range(1, 1000)]
    old = Record([str(10**20), "old"])  # a first field built at run time, not a constant
    address = id(old)
    objects.object_of(old)
    del old
    new = at_address(address, firsts)
    made = objects.object_of(new)
    assert made.fields == list(new) and made.fields[1] == "new"
    assert len(objects) == 0  # a first sighting, not a second
    assert objects.object_of(new).fields == made.fields


def test_both_tables_are_bounded() -> None:
    objects = ObjectsByRecord(Counted(), max_objects=3)
    records = [Record([f"id-{n}", n]) for n in range(10)]
    for _ in range(3):
        for record in records:
            assert objects.object_of(record).fields == list(record)
            assert len(objects) <= 3


QUERY = "{ subscriptions(first: 30) { nodes { id status resources { resourceId status } } } }"


async def test_a_warm_request_makes_no_object_for_records_made_twice_before(
    graphql: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = {"subscriptions": 0, "resources": 0}
    lookup = enums._lookup
    tables = {
        id(enums._SUBSCRIPTION_STATUSES): "subscriptions",
        id(enums._RESOURCE_STATUSES): "resources",
    }

    # Making either object reads its status once: count those reads.
    def counting_lookup(table: Any, value: Any, what: str) -> Any:
        if id(table) in tables:
            made[tables[id(table)]] += 1
        return lookup(table, value, what)

    monkeypatch.setattr(enums, "_lookup", counting_lookup)
    answers = []
    counts = []
    for _ in range(4):
        answers.append(await graphql.post(QUERY))
        counts.append(dict(made))
        made.update(subscriptions=0, resources=0)
    assert all(answer == answers[0] for answer in answers) and "errors" not in answers[0]
    resources = sum(len(node["resources"]) for node in answers[0]["data"]["subscriptions"]["nodes"])
    # Cold, then warm from the cache: made on the first two sightings, kept after.
    assert counts[0] == counts[1] == {"subscriptions": 30, "resources": resources}
    assert counts[2] == counts[3] == {"subscriptions": 0, "resources": 0}


def test_objects_of_a_lazy_list_are_made_once_when_first_read() -> None:
    make = Counted()
    lazy = ObjectsByRecord(make).lazy([Record(["a", 1]), Record(["b", 2])])
    assert len(lazy) == 2 and not lazy.made and make.calls == 0
    first = list(lazy)
    assert lazy.made and make.calls == 2
    assert [made.fields for made in first] == [["a", 1], ["b", 2]]
    # Read again, in any way: the same objects, none made again.
    assert lazy[0] is first[0] and lazy[-1:] == first[1:] and list(lazy) == first
    assert lazy == first and make.calls == 2
    assert lazy.layout is None  # Counted is not from record_maker: nothing to read by

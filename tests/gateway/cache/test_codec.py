from datetime import UTC, datetime

import orjson
import pytest

from gateway.upstreams.cbc import RESOURCES_QUERY, ResourcePage, ResourceRecord, parse_resource
from gateway.upstreams.oma import (
    QUERY_RESOURCE,
    SubscriptionPage,
    SubscriptionRecord,
    parse_subscription,
)
from tests.support.helpers import load_fixture


def test_subscription_pages_round_trip_through_bytes() -> None:
    record = parse_subscription(load_fixture("oma_example_response.json")["result"][0])
    page = SubscriptionPage(records=(record, record), total=7)
    data = QUERY_RESOURCE.codec.encode(page)
    assert b"1638814724192780290" in data
    decoded = QUERY_RESOURCE.codec.decode(data)
    assert decoded == page
    assert all(type(r) is SubscriptionRecord for r in decoded.records)


def test_resource_pages_round_trip_with_aware_datetimes() -> None:
    record = parse_resource(load_fixture("cbc_example_response.json")["data"][0])
    page = ResourcePage(records=(record,), total=1)
    decoded = RESOURCES_QUERY.codec.decode(RESOURCES_QUERY.codec.encode(page))
    assert decoded == page
    assert type(decoded.records[0]) is ResourceRecord
    assert decoded.records[0].expires_at == datetime(2020, 6, 3, 9, 11, 10, tzinfo=UTC)
    assert decoded.records[0].expires_at.tzinfo is UTC


def test_an_entry_that_breaks_the_records_types_is_refused() -> None:
    # What a tampered shared cache could hold: the schema reads records as the upstream
    # readers make them (a status is an int or null), and must never meet a list there.
    record = parse_subscription(load_fixture("oma_example_response.json")["result"][0])
    good = QUERY_RESOURCE.codec.encode(SubscriptionPage(records=(record,), total=1))
    status = SubscriptionRecord._fields.index("status")
    for value in ([1], "2", True, 2.0):
        raw = orjson.loads(good)
        raw[0][0][status] = value
        with pytest.raises(ValueError, match="where int belongs"):
            QUERY_RESOURCE.codec.decode(orjson.dumps(raw))
    raw = orjson.loads(good)
    raw[1] = "1"  # the page's total
    with pytest.raises(ValueError, match="a cached str where int belongs"):
        QUERY_RESOURCE.codec.decode(orjson.dumps(raw))

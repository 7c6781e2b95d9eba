"""The schema's object types are built from typed records with every field set."""

from __future__ import annotations

import dataclasses

from gateway.upstreams.cbc import parse_resource
from gateway.upstreams.oma import parse_subscription
from schema.enums import ResourceStatus, SubscriptionStatus, subscription_status
from schema.types import (
    CloudResource,
    SoftwareSubscription,
    resource_from_record,
    subscription_from_record,
)
from tests.support.helpers import load_fixture


def fields_of(made: object) -> dict[str, object]:
    """Every dataclass field's value: reading one that was never set raises."""
    return {f.name: getattr(made, f.name) for f in dataclasses.fields(made) if f.init}  # type: ignore[arg-type]


def test_a_subscription_from_its_record_has_every_field() -> None:
    raw = load_fixture("oma_example_response.json")["result"][0]
    record = parse_subscription(raw)
    made = subscription_from_record(record)
    assert isinstance(made, SoftwareSubscription)
    # Every field is read from the record, the status as its enum.
    expected = {**record._asdict(), "status": subscription_status(record.status)}
    assert fields_of(made) == expected
    assert made.id == raw["id"] and made.order_id == raw["orderId"]
    assert made.status is None or isinstance(made.status, SubscriptionStatus)


def test_a_resource_from_its_record_has_every_field() -> None:
    for raw in load_fixture("cbc_example_response.json")["data"]:
        record = parse_resource(raw)
        made = resource_from_record(record)
        assert isinstance(made, CloudResource)
        assert set(fields_of(made)) == set(record._fields) | {"auto_renew"}
        assert made.resource_id == raw["resource_id"]
        assert made.status is None or isinstance(made.status, ResourceStatus)
        assert made.auto_renew is (raw.get("expire_policy") == 3)

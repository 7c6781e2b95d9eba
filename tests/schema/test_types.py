"""The schema's object types are built from typed records with every field set."""

from __future__ import annotations

import dataclasses

from gateway.cbc import parse_resource
from gateway.oma import parse_subscription
from schema.enums import ResourceStatus, SubscriptionStatus
from schema.types import CloudResource, SoftwareSubscription
from tests.support.helpers import load_fixture


def test_a_subscription_from_its_record_has_every_field() -> None:
    raw = load_fixture("oma_example_response.json")["result"][0]
    made = SoftwareSubscription.from_record(parse_subscription(raw))
    # Built without __init__: a field the type gains must be filled here too.
    assert set(vars(made)) == {f.name for f in dataclasses.fields(SoftwareSubscription) if f.init}
    assert made.id == raw["id"] and made.order_id == raw["orderId"]
    assert made.status is None or isinstance(made.status, SubscriptionStatus)


def test_a_resource_from_its_record_has_every_field() -> None:
    for raw in load_fixture("cbc_example_response.json")["data"]:
        made = CloudResource.from_record(parse_resource(raw))
        assert set(vars(made)) == {f.name for f in dataclasses.fields(CloudResource) if f.init}
        assert made.resource_id == raw["resource_id"]
        assert made.status is None or isinstance(made.status, ResourceStatus)
        assert made.auto_renew is (raw.get("expire_policy") == 3)

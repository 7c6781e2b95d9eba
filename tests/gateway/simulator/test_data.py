"""The data set: deterministic per (seed, token), attributable, coherent, with the seeds' quirks."""

from __future__ import annotations

import datetime
import re
import time
from collections import Counter
from typing import Any

import pytest

from gateway.simulator import Simulator, SimulatorConfig
from gateway.simulator.data import SEED_ORDER_ID, Tenant, build_tenant, tenant_tag
from tests.gateway.simulator.conftest import OTHER_TOKEN, SEED, SUBSCRIPTIONS, TOKEN
from tests.support.helpers import load_fixture

DOCUMENTED_FIELDS = {
    "orderId", "opType", "remark", "skuName", "modifyTime", "orderAmount", "procutName",
    "vdnId", "customerId", "company", "id", "manualStatus", "cecTenantId", "amount",
    "periodNumber", "productId", "autoStatus", "customerName", "cecExpireTime",
    "cecTenantName", "createSource", "periodType", "expireTime", "createTime", "skuCode",
    "cecFeatureType", "trialFlag", "retryTimes", "status",
}  # fmt: skip
OPTIONAL_FIELDS = {"cecFeatureType", "trialFlag", "retryTimes", "status", "manualStatus"}
TIME_FIELDS = ("modifyTime", "createTime", "expireTime", "cecExpireTime")
CBC_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
# primary resource type -> the types that may be attached to it
ATTACHABLE = {
    "hws.resource.type.vm": {"hws.resource.type.volume"},
    "hws.resource.type.bandwidth": {"hws.resource.type.ip"},
    "hws.resource.type.ip": {"hws.resource.type.bandwidth"},
    "hws.resource.type.rds.vm": {"hws.resource.type.rds.volume"},
    "hws.resource.type.dcs": set(),
}


def seed_subscription() -> dict[str, Any]:
    record: dict[str, Any] = load_fixture("oma_example_response.json")["result"][0]
    return record


def seed_resource() -> dict[str, Any]:
    record: dict[str, Any] = load_fixture("cbc_example_response.json")["data"][0]
    return record


def generated(tenant: Tenant) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The tenant's records without the two seed examples."""
    subscriptions = [s for s in tenant.subscriptions if s["orderId"] != SEED_ORDER_ID]
    resources = [r for r in tenant.resources if r != seed_resource()]
    return subscriptions, resources


@pytest.fixture
def tenant(sim: Simulator) -> Tenant:
    return sim.dataset(TOKEN)


def test_same_seed_and_token_give_the_same_data_in_another_instance(tenant: Tenant) -> None:
    again = Simulator(SimulatorConfig(seed=SEED, subscriptions=SUBSCRIPTIONS)).dataset(TOKEN)
    assert again.subscriptions == tenant.subscriptions
    assert again.resources == tenant.resources
    other_seed = Simulator(SimulatorConfig(seed=SEED + 1, subscriptions=SUBSCRIPTIONS))
    assert other_seed.dataset(TOKEN).subscriptions != tenant.subscriptions


def test_every_generated_id_carries_the_tag_of_its_token(sim: Simulator) -> None:
    alice, bob = sim.dataset(TOKEN), sim.dataset(OTHER_TOKEN)
    assert alice.tag == tenant_tag(SEED, TOKEN) != bob.tag == tenant_tag(SEED, OTHER_TOKEN)
    for tenant in (alice, bob):
        subscriptions, resources = generated(tenant)
        assert len(subscriptions) == SUBSCRIPTIONS
        for s in subscriptions:
            assert tenant.tag in s["id"] and tenant.tag in s["orderId"], s
            assert tenant.tag in s["customerId"] and tenant.tag in s["cecTenantId"]
        for r in resources:
            assert r["resource_id"].startswith(tenant.tag) and r["id"].startswith(tenant.tag[:5])
    alice_ids = {s["id"] for s in alice.subscriptions} | set(alice.by_id)
    bob_ids = {s["id"] for s in bob.subscriptions} | set(bob.by_id)
    # Only the seed pages' examples are shared: they are part of every tenant.
    assert alice_ids & bob_ids == {seed_subscription()["id"], seed_resource()["resource_id"]}


def test_the_seed_examples_are_in_every_tenant_exactly(sim: Simulator) -> None:
    for token in (TOKEN, OTHER_TOKEN, "x" * 300):
        tenant = sim.dataset(token)
        assert [s for s in tenant.subscriptions if s["orderId"] == SEED_ORDER_ID] == [
            seed_subscription()
        ]
        assert tenant.by_order[SEED_ORDER_ID] == [seed_resource()]
        assert tenant.order_of[seed_resource()["resource_id"]] == SEED_ORDER_ID


def test_subscriptions_have_every_documented_field_and_the_seed_quirks(tenant: Tenant) -> None:
    subscriptions, _ = generated(tenant)
    assert set().union(*subscriptions) == DOCUMENTED_FIELDS
    for field in OPTIONAL_FIELDS:
        assert any(field not in s for s in subscriptions), field
        assert any(field in s for s in subscriptions), field
    for s in subscriptions:
        assert set(s) >= DOCUMENTED_FIELDS - OPTIONAL_FIELDS
        assert isinstance(s["amount"], str) and isinstance(s["periodNumber"], str)
        assert isinstance(s.get("trialFlag", 0), int)
        assert {type(s[name]) for name in TIME_FIELDS} in ({int}, {str})
        assert int(s["createTime"]) <= int(s["modifyTime"])
        assert int(s["createTime"]) < int(s["expireTime"]) <= int(s["cecExpireTime"])
        assert (s["procutName"], s["periodType"]) in {("monthly", "month"), ("yearly", "year")}
    assert any(isinstance(s["createTime"], str) for s in subscriptions)
    assert any(isinstance(s["createTime"], int) for s in subscriptions)
    assert any(s["remark"] is None for s in subscriptions)
    assert any(isinstance(s["remark"], str) for s in subscriptions)
    assert {s["procutName"] for s in subscriptions} == {"monthly", "yearly"}
    assert {s["status"] for s in subscriptions if "status" in s} == {"2", "8", "9"}


def test_subscriptions_are_newest_first_then_by_id(tenant: Tenant) -> None:
    keys = [(-int(s["createTime"]), s["id"]) for s in tenant.subscriptions]
    assert keys == sorted(keys)
    assert len({s["id"] for s in tenant.subscriptions}) == SUBSCRIPTIONS + 1


def test_a_few_orders_are_shared_by_a_subscription_and_its_renewal() -> None:
    tenant = Simulator(SimulatorConfig(seed=SEED, subscriptions=1000)).dataset(TOKEN)
    per_order = Counter(s["orderId"] for s in tenant.subscriptions)
    shared = [order for order, n in per_order.items() if n == 2]
    assert set(per_order.values()) == {1, 2}
    assert 0.02 <= len(shared) / len(per_order) <= 0.08
    for order in shared:
        newer, older = [s for s in tenant.subscriptions if s["orderId"] == order]
        assert newer["opType"] == "renew" and older["opType"] != "renew"
        assert older.get("status", "9") == "9"  # the renewed period is history
        assert int(newer["createTime"]) <= int(older["expireTime"])


def test_orders_hold_primaries_each_with_their_attached_resources(tenant: Tenant) -> None:
    _, resources = generated(tenant)
    orders = {s["orderId"] for s in tenant.subscriptions}
    assert set(tenant.by_order) <= orders
    assert len(orders - set(tenant.by_order)) > 0  # some orders bought nothing in CBC
    primaries_per_order: Counter[str] = Counter()
    for r in resources:
        order = tenant.order_of[r["resource_id"]]
        if r["is_main_resource"] == 1:
            assert r["parent_resource_id"] is None
            primaries_per_order[order] += 1
            continue
        parent = tenant.by_id[r["parent_resource_id"]]
        assert parent["is_main_resource"] == 1
        assert tenant.order_of[parent["resource_id"]] == order
        assert r["resource_type_code"] in ATTACHABLE[parent["resource_type_code"]]
        assert (r["region_code"], r["project_id"]) == (parent["region_code"], parent["project_id"])
    assert set(primaries_per_order.values()) == {1, 2, 3}
    attached_per_primary = Counter(
        len(tenant.children.get(r["resource_id"], []))
        for r in resources
        if r["is_main_resource"] == 1
    )
    assert set(attached_per_primary) == {0, 1, 2, 3}


def test_resources_spread_over_statuses_policies_regions_and_types(tenant: Tenant) -> None:
    _, resources = generated(tenant)
    assert {r["status"] for r in resources} == {2, 3, 4, 5}
    assert {r["expire_policy"] for r in resources} == set(range(6))
    assert len({r["region_code"] for r in resources}) >= 3
    assert {r["resource_type_code"] for r in resources} >= set(ATTACHABLE)
    for r in resources:
        assert CBC_TIME.match(r["effective_time"]) and CBC_TIME.match(r["expire_time"])
        assert r["effective_time"] < r["expire_time"]
    assert len({r["id"] for r in tenant.resources}) == len(tenant.resources)


def test_tenants_are_kept_least_recently_used_first_out() -> None:
    sim = Simulator(SimulatorConfig(seed=SEED, subscriptions=10, max_tenants=2))
    a, b = sim.dataset("a"), sim.dataset("b")
    assert sim.dataset("a") is a  # a is now the most recently used
    sim.dataset("c")
    assert len(sim.tenants) == 2
    assert sim.dataset("a") is a
    regenerated = sim.dataset("b")
    assert regenerated is not b
    assert regenerated.subscriptions == b.subscriptions and regenerated.resources == b.resources


@pytest.mark.parametrize("changes", [{"subscriptions": -1}, {"max_tenants": 0}, {"max_calls": 0}])
def test_a_config_out_of_range_is_refused(changes: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        SimulatorConfig(**changes)


DAY_MS = 86_400_000
DAYS = [datetime.date(2025, 6, 1), datetime.date(2026, 12, 8), datetime.date(2031, 2, 28)]


def on(day: datetime.date, subscriptions: int = SUBSCRIPTIONS) -> Tenant:
    return build_tenant(SimulatorConfig(seed=SEED, subscriptions=subscriptions, today=day), TOKEN)


def epoch_ms(day: datetime.date) -> int:
    return (
        int(datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC).timestamp()) * 1000
    )


def cbc_time(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))


def test_by_default_the_data_ends_on_the_real_day() -> None:
    before = datetime.datetime.now(datetime.UTC).date()
    today = SimulatorConfig().today
    assert before <= today <= datetime.datetime.now(datetime.UTC).date()


@pytest.mark.parametrize("day", DAYS, ids=str)
def test_the_data_ends_on_its_day_and_is_coherent_with_it(day: datetime.date) -> None:
    now = epoch_ms(day)
    subscriptions, resources = generated(on(day))
    modified = [int(s["modifyTime"]) for s in subscriptions]
    created = [int(s["createTime"]) for s in subscriptions]
    assert max(modified) < now and max(created) < now
    # The last month has data (what the README's query with $since asks), a few years too.
    assert sum(now - 30 * DAY_MS <= m for m in modified) >= 3
    assert min(created) >= now - 900 * DAY_MS
    for s in subscriptions:
        if "status" in s and s["status"] != "9":  # 9: a period a renewal replaced
            assert (s["status"] == "2") == (int(s["expireTime"]) > now), s
    today = cbc_time(now)
    live = [r for r in resources if r["expire_time"] > today]
    ended = [r for r in resources if r["expire_time"] <= today]
    assert live and ended
    # A resource of an order that ended is not provisioned, unless detached on its own.
    primaries_ended = [r for r in ended if r["is_main_resource"] == 1]
    assert primaries_ended and all(r["status"] in (3, 4, 5) for r in primaries_ended)


def test_another_day_is_the_same_data_moved_by_the_days_between() -> None:
    first, later = on(DAYS[0]), on(DAYS[1])
    shift = epoch_ms(DAYS[1]) - epoch_ms(DAYS[0])

    def moved(record: dict[str, Any]) -> dict[str, Any]:
        record = dict(record)
        for name in TIME_FIELDS:
            if name in record:
                value = int(record[name]) + shift
                record[name] = str(value) if isinstance(record[name], str) else value
        return record

    assert [moved(s) for s in generated(first)[0]] == generated(later)[0]
    expected = [
        {
            **r,
            "effective_time": cbc_time(epoch_ms_of(r["effective_time"]) + shift),
            "expire_time": cbc_time(epoch_ms_of(r["expire_time"]) + shift),
        }
        for r in generated(first)[1]
    ]
    assert expected == generated(later)[1]
    # The seed pages' examples keep the dates their pages give them.
    for tenant in (first, later):
        assert [s for s in tenant.subscriptions if s["orderId"] == SEED_ORDER_ID] == [
            seed_subscription()
        ]
        assert tenant.by_order[SEED_ORDER_ID] == [seed_resource()]


def epoch_ms_of(cbc: str) -> int:
    parsed = datetime.datetime.strptime(cbc, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    return int(parsed.timestamp()) * 1000


def test_a_day_and_a_seed_give_the_same_data_in_every_instance() -> None:
    assert on(DAYS[1]).subscriptions == on(DAYS[1]).subscriptions
    assert on(DAYS[1]).resources == on(DAYS[1]).resources

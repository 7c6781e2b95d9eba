"""CBC resources/query: the seed example, the order link, id lookups, filters, paging, errors."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.simulator import Simulator, Tenant
from gateway.simulator.data import SEED_ORDER_ID
from tests.gateway.simulator.conftest import OTHER_TOKEN, TOKEN, Upstreams
from tests.support.helpers import load_fixture

SEED_RESOURCE: dict[str, Any] = load_fixture("cbc_example_response.json")["data"][0]


def visible(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["status"] != 3]


def primary_with_attached(tenant: Tenant) -> dict[str, Any]:
    """A served primary with at least two served attached resources and a hidden one nowhere."""
    return next(
        r
        for r in visible(tenant.resources)
        if r["is_main_resource"] == 1
        and len(visible(tenant.children.get(r["resource_id"], []))) >= 2
    )


@pytest.fixture
def tenant(sim: Simulator) -> Tenant:
    return sim.dataset(TOKEN)


async def test_the_seed_resource_is_served_for_its_id_and_its_order(upstreams: Upstreams) -> None:
    for body in (
        {"resource_ids": [SEED_RESOURCE["resource_id"]]},
        {"resource_ids": [SEED_RESOURCE["resource_id"]], "only_main_resource": 1},
        {"order_id": SEED_ORDER_ID},
    ):
        response = await upstreams.cbc(body)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json;charset=UTF-8"
        assert response.json() == load_fixture("cbc_example_response.json")


async def test_an_oma_order_id_finds_its_resources_in_cbc(
    tenant: Tenant, upstreams: Upstreams
) -> None:
    subscriptions = (await upstreams.oma({"limit": 40, "offset": 0})).json()["result"]
    found = 0
    for subscription in subscriptions:
        order_id = subscription["orderId"]
        answer = (await upstreams.cbc({"order_id": order_id, "limit": 500})).json()
        assert answer["data"] == visible(tenant.by_order.get(order_id, []))
        assert answer["total_count"] == len(answer["data"])
        assert all(tenant.order_of[r["resource_id"]] == order_id for r in answer["data"])
        found += len(answer["data"])
    assert found > 40
    assert (await upstreams.cbc({"order_id": "no-such-order"})).json() == {
        "data": [],
        "total_count": 0,
    }


async def test_named_primaries_bring_their_attached_resources_unless_only_main(
    tenant: Tenant, upstreams: Upstreams
) -> None:
    primary = primary_with_attached(tenant)
    attached = visible(tenant.children[primary["resource_id"]])
    both = (await upstreams.cbc({"resource_ids": [primary["resource_id"]]})).json()
    assert both["data"] == [primary, *attached] and both["total_count"] == 1 + len(attached)
    explicit = {"resource_ids": [primary["resource_id"]], "only_main_resource": 0}
    assert (await upstreams.cbc(explicit)).json() == both
    only_main = {"resource_ids": [primary["resource_id"]], "only_main_resource": 1}
    assert (await upstreams.cbc(only_main)).json()["data"] == [primary]


@pytest.mark.parametrize("only_main_resource", [0, 1])
async def test_a_named_attached_resource_is_served_itself(
    tenant: Tenant, upstreams: Upstreams, only_main_resource: int
) -> None:
    child = visible(tenant.children[primary_with_attached(tenant)["resource_id"]])[0]
    body = {"resource_ids": [child["resource_id"]], "only_main_resource": only_main_resource}
    assert (await upstreams.cbc(body)).json() == {"data": [child], "total_count": 1}


async def test_ids_are_looked_up_in_the_callers_tenant_only(
    sim: Simulator, tenant: Tenant, upstreams: Upstreams
) -> None:
    mine = [r["resource_id"] for r in visible(tenant.resources) if r["is_main_resource"] == 1][:3]
    theirs = [r["resource_id"] for r in visible(sim.dataset(OTHER_TOKEN).resources)][:3]
    answer = (
        await upstreams.cbc(
            {"resource_ids": [*theirs, mine[2], mine[0], mine[0]], "only_main_resource": 1}
        )
    ).json()
    # Duplicates count once; the answer is in CBC's own order, not the request's.
    assert [r["resource_id"] for r in answer["data"]] == [mine[0], mine[2]]
    assert (await upstreams.cbc({"resource_ids": theirs})).json()["total_count"] == 0


async def test_a_url_encoded_order_id_finds_the_same_resources(
    tenant: Tenant, upstreams: Upstreams
) -> None:
    order_id = next(order for order, records in tenant.by_order.items() if visible(records))
    encoded = "".join(f"%{byte:02X}" for byte in order_id.encode())
    raw = (await upstreams.cbc({"order_id": order_id, "limit": 500})).json()
    assert raw["data"]
    assert (await upstreams.cbc({"order_id": encoded, "limit": 500})).json() == raw


async def test_ids_and_order_id_together_must_both_match(
    tenant: Tenant, upstreams: Upstreams
) -> None:
    primary = primary_with_attached(tenant)
    order_id = tenant.order_of[primary["resource_id"]]
    body = {"resource_ids": [primary["resource_id"]], "order_id": order_id, "only_main_resource": 1}
    assert (await upstreams.cbc(body)).json()["data"] == [primary]
    body["order_id"] = SEED_ORDER_ID
    assert (await upstreams.cbc(body)).json()["total_count"] == 0


async def test_only_main_resource_without_ids_serves_primaries_only(
    tenant: Tenant, upstreams: Upstreams
) -> None:
    primaries = await upstreams.all_resources({"only_main_resource": 1})
    assert primaries == [r for r in visible(tenant.resources) if r["is_main_resource"] == 1]


async def test_closed_resources_are_never_served_and_statuses_filter(
    tenant: Tenant, upstreams: Upstreams
) -> None:
    everything = await upstreams.all_resources({})
    assert everything == tenant.visible_resources == visible(tenant.resources)
    assert any(r["status"] == 3 for r in tenant.resources)
    for statuses in ([2], [4, 5], [5, 5, 2]):
        served = await upstreams.all_resources({"status_list": statuses})
        assert served == [r for r in tenant.resources if r["status"] in statuses]
        assert served
    closed = next(r for r in tenant.resources if r["status"] == 3)
    assert (await upstreams.cbc({"resource_ids": [closed["resource_id"]]})).json()["data"] == []


async def test_the_expiry_window_is_inclusive_at_both_ends(
    tenant: Tenant, upstreams: Upstreams
) -> None:
    times = sorted({r["expire_time"] for r in visible(tenant.resources)})
    begin, end = times[5], times[30]
    window = await upstreams.all_resources({"expire_time_begin": begin, "expire_time_end": end})
    assert window == [r for r in visible(tenant.resources) if begin <= r["expire_time"] <= end]
    assert {r["expire_time"] for r in window} == set(times[5:31])
    exactly = await upstreams.all_resources({"expire_time_begin": begin, "expire_time_end": begin})
    assert exactly and {r["expire_time"] for r in exactly} == {begin}
    since = await upstreams.all_resources({"expire_time_begin": end})
    assert since == [r for r in visible(tenant.resources) if r["expire_time"] >= end]
    until = await upstreams.all_resources({"expire_time_end": begin})
    assert until == [r for r in visible(tenant.resources) if r["expire_time"] <= begin]


async def test_paging_by_offset_and_limit(tenant: Tenant, upstreams: Upstreams) -> None:
    served = visible(tenant.resources)
    default = (await upstreams.cbc({})).json()
    assert default == {"data": served[:10], "total_count": len(served)}
    pages = [(await upstreams.cbc({"offset": o, "limit": 100})).json() for o in range(0, 1000, 100)]
    assert all(p["total_count"] == len(served) for p in pages)
    assert [r for p in pages for r in p["data"]] == served
    last = max(i for i, p in enumerate(pages) if p["data"])
    assert 0 < len(pages[last]["data"]) < 100 and pages[last + 1]["data"] == []
    one = (await upstreams.cbc({"offset": 17, "limit": 1})).json()["data"]
    assert one == served[17:18]


async def test_null_fields_count_as_absent(tenant: Tenant, upstreams: Upstreams) -> None:
    body = dict.fromkeys(
        [
            "resource_ids", "order_id", "only_main_resource", "status_list", "offset",
            "limit", "expire_time_begin", "expire_time_end",
        ]
    )  # fmt: skip
    answer = (await upstreams.cbc(body)).json()
    assert answer == (await upstreams.cbc({})).json()
    assert answer["total_count"] == len(visible(tenant.resources))


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"resource_ids": "0A063A11905F42BC8548E65D0089A905"}, "resource_ids"),
        ({"resource_ids": [1]}, "resource_ids"),
        ({"resource_ids": [""]}, "resource_ids"),
        ({"resource_ids": [f"r{i}" for i in range(51)]}, "resource_ids"),
        ({"order_id": 251679538126441114}, "order_id"),
        ({"order_id": "x" * 65}, "order_id"),
        ({"only_main_resource": 2}, "only_main_resource"),
        ({"only_main_resource": "1"}, "only_main_resource"),
        ({"only_main_resource": True}, "only_main_resource"),
        ({"status_list": [3]}, "status_list"),
        ({"status_list": [2] * 11}, "status_list"),
        ({"status_list": 2}, "status_list"),
        ({"status_list": ["2"]}, "status_list"),
        ({"status_list": [True]}, "status_list"),
        ({"offset": -1}, "offset"),
        ({"offset": "0"}, "offset"),
        ({"offset": 1.5}, "offset"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"limit": "10"}, "limit"),
        ({"expire_time_begin": "2021-09-01 08:05:01"}, "expire_time_begin"),
        ({"expire_time_begin": "2021-13-01T08:05:01Z"}, "expire_time_begin"),
        ({"expire_time_end": "2021-09-01T08:05:01"}, "expire_time_end"),
        ({"expire_time_end": 1630483501000}, "expire_time_end"),
        ([], "object"),
        (b"{", "JSON"),
    ],
)
async def test_bad_parameters_are_cbc_0100(upstreams: Upstreams, body: Any, named: str) -> None:
    response = await upstreams.cbc(body)
    assert response.status_code == 400
    answer = response.json()
    assert answer["error_code"] == "CBC.0100" and named in answer["error_msg"]
    assert set(answer) == {"error_code", "error_msg"}


async def test_the_limits_themselves_are_allowed(upstreams: Upstreams) -> None:
    edge = {
        "resource_ids": [f"r{i}" for i in range(50)],
        "order_id": "x" * 64,
        "status_list": [2, 4, 5, 2, 4, 5, 2, 4, 5, 2],
        "limit": 500,
        "offset": 0,
    }
    assert (await upstreams.cbc(edge)).json() == {"data": [], "total_count": 0}
    assert (await upstreams.cbc({"limit": 1})).status_code == 200


@pytest.mark.parametrize("token", [None, "", "invalid-token"])
async def test_a_missing_or_invalid_token_is_apigw_0301(
    upstreams: Upstreams, token: str | None
) -> None:
    response = await upstreams.cbc({}, token)
    assert response.status_code == 401
    assert response.json() == {
        "error_code": "APIGW.0301",
        "error_msg": "Incorrect IAM authentication information",
    }


async def test_a_forbidden_token_is_cbc_0151(upstreams: Upstreams) -> None:
    response = await upstreams.cbc({}, "forbidden-token")
    assert response.status_code == 403
    assert response.json()["error_code"] == "CBC.0151"


async def test_cbc_does_not_take_omas_header_spelling(upstreams: Upstreams) -> None:
    response = await upstreams.http.post(
        "/v2/orders/suscriptions/resources/query", json={}, headers={"X-Auth_Token": TOKEN}
    )
    assert response.status_code == 401

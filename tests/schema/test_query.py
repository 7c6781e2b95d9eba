"""The schema end to end against the simulator: data, linking, and upstream call counts."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import httpx
import orjson
import pytest

from gateway.server.app import create_app
from gateway.simulator import Simulator
from gateway.times import format_iso, parse_cbc_time, parse_epoch_ms
from tests.conftest import GatewayFactory
from tests.support.helpers import (
    OTHER_TOKEN,
    TOKEN,
    GraphQLClient,
    post_json_text,
    settings_for_tests,
)

OMA = "oma.queryresource"
CBC = "cbc.resources_query"

SCALARS = """
  id orderId status createdAt modifiedAt expiresAt cecExpiresAt skuName skuCode chargingMode
  productId orderAmount quantity periodNumber periodType operationType remark customerId
  customerName company vdnId cecTenantId cecTenantName cecFeatureType createSource manualStatus
  autoStatus trial retryTimes
"""
RESOURCE = (
    "id resourceId name status isMainResource parentResourceId expiresAt expirePolicy autoRenew"
)


async def upstream(sim: Simulator, path: str, body: dict[str, Any], token: str = TOKEN) -> Any:
    """Ask the simulator directly, as ground truth (and take those calls off its counters)."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sim.app), base_url="http://sim"
    ) as http:
        response = await http.post(path, json=body, headers={"X-Auth-Token": token})
    assert response.status_code == 200, response.text
    return response.json()


async def all_subscriptions(sim: Simulator, token: str = TOKEN) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    while True:
        page = await upstream(
            sim,
            "/rest/oma/softwareconsole/tenant/queryresource",
            {"limit": 99, "offset": len(records)},
            token,
        )
        records.extend(page["result"])
        if not page["result"] or len(records) >= int(page["count"]):
            return records


async def order_resources(
    sim: Simulator, order_id: str, token: str = TOKEN
) -> list[dict[str, Any]]:
    page = await upstream(
        sim, "/v2/orders/suscriptions/resources/query", {"order_id": order_id, "limit": 500}, token
    )
    data: list[dict[str, Any]] = page["data"]
    return data


def counts(sim: Simulator) -> dict[str, int]:
    raw = sim.counts()
    return {OMA: raw.get(OMA, 0), CBC: raw.get(CBC, 0)}


async def test_first_250_subscriptions_cost_three_oma_calls(
    graphql: GraphQLClient, simulator: Simulator
) -> None:
    expected = await all_subscriptions(simulator)
    simulator.reset()
    body = await graphql.post(
        f"{{ subscriptions(first: 250) {{ totalCount pageInfo {{ hasNextPage hasPreviousPage endCursor }} nodes {{ {SCALARS} }} }} }}"
    )
    assert "errors" not in body, body
    connection = body["data"]["subscriptions"]
    assert counts(simulator) == {OMA: 3, CBC: 0}
    assert [n["id"] for n in connection["nodes"]] == [r["id"] for r in expected[:250]]
    assert connection["totalCount"] == len(expected)
    assert connection["pageInfo"]["hasNextPage"] is (len(expected) > 250)
    assert connection["pageInfo"]["hasPreviousPage"] is False
    first = connection["nodes"][0]
    raw = expected[0]
    assert first["orderId"] == raw["orderId"]
    assert first["createdAt"] == format_iso(parse_epoch_ms(raw["createTime"]))
    assert first["chargingMode"] == raw["procutName"]


async def test_cursor_pagination_walks_every_subscription_once(
    graphql: GraphQLClient, simulator: Simulator
) -> None:
    expected = [r["id"] for r in await all_subscriptions(simulator)]
    seen: list[str] = []
    after = None
    while True:
        body = await graphql.post(
            "query($after: String) { subscriptions(first: 120, after: $after) { pageInfo { hasNextPage endCursor } nodes { id } } }",
            {"after": after},
        )
        connection = body["data"]["subscriptions"]
        seen.extend(n["id"] for n in connection["nodes"])
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert seen == expected


DEPTH_3 = f"""
query Linked {{
  subscriptions(first: 100) {{
    nodes {{
      id orderId
      resources {{
        {RESOURCE}
        parent {{ {RESOURCE} }}
        attachedResources {{ {RESOURCE} }}
      }}
    }}
  }}
}}
"""


async def test_linked_depth_three_query_batches_every_level(
    graphql: GraphQLClient, simulator: Simulator
) -> None:
    subscriptions = (await all_subscriptions(simulator))[:100]
    orders = list(dict.fromkeys(s["orderId"] for s in subscriptions))
    by_order = {order: await order_resources(simulator, order) for order in orders}
    resources = [r for rs in by_order.values() for r in rs]
    # Level 3 asks one loader for every primary's attachments and every attached one's parent.
    level3_ids = {r["resource_id"] for r in resources if r["is_main_resource"] == 1} | {
        r["parent_resource_id"]
        for r in resources
        if r["is_main_resource"] == 0 and r.get("parent_resource_id")
    }
    simulator.reset()

    body = await graphql.post(DEPTH_3)
    assert "errors" not in body, body
    nodes = body["data"]["subscriptions"]["nodes"]
    assert counts(simulator) == {OMA: 2, CBC: len(orders) + math.ceil(len(level3_ids) / 50)}

    assert [n["id"] for n in nodes] == [s["id"] for s in subscriptions]
    for node in nodes:
        expected = by_order[node["orderId"]]
        assert [r["resourceId"] for r in node["resources"]] == [r["resource_id"] for r in expected]
        by_id = {r["resource_id"]: r for r in resources}
        for resource in node["resources"]:
            raw = by_id[resource["resourceId"]]
            assert resource["expiresAt"] == format_iso(parse_cbc_time(raw["expire_time"]))
            assert resource["autoRenew"] is (raw["expire_policy"] == 3)
            if resource["isMainResource"]:
                assert resource["parent"] is None
                attached = [
                    r["resource_id"]
                    for r in resources
                    if r.get("parent_resource_id") == resource["resourceId"]
                    and r["is_main_resource"] == 0
                ]
                assert sorted(a["resourceId"] for a in resource["attachedResources"]) == sorted(
                    attached
                )
            else:
                assert resource["attachedResources"] == []
                # A closed primary is invisible to customers: its attached ones have no parent.
                if raw["parent_resource_id"] in by_id:
                    assert resource["parent"]["resourceId"] == raw["parent_resource_id"]
                else:
                    assert resource["parent"] is None


async def test_the_linked_query_is_answered_whole_within_the_rate_limit(
    make_gateway: GatewayFactory, simulator: Simulator
) -> None:
    # The defaults' shape at twice the pace: the burst half the limit, a call may queue a
    # second's share under the deadline (at 10 in any second: 10 s of 11), and about 100 CBC
    # calls go out at once.
    base = settings_for_tests()
    paced = {"rate_limit": 20.0, "rate_burst": 10, "rate_limit_max_wait": 5.0, "deadline": 5.5}
    settings = base.replace(
        oma=dataclasses.replace(base.oma, **paced), cbc=dataclasses.replace(base.cbc, **paced)
    )
    app = create_app(make_gateway(settings))
    simulator.reset()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway", timeout=30
    ) as http:
        body = await GraphQLClient(http).post(DEPTH_3)
    assert "errors" not in body, body["errors"][:2]
    assert counts(simulator)[CBC] > 2 * 20  # more than the burst and a second's pace


async def test_duplicate_lookups_in_one_query_cost_nothing_more(
    graphql: GraphQLClient, simulator: Simulator
) -> None:
    resources = (
        await upstream(simulator, "/v2/orders/suscriptions/resources/query", {"limit": 3})
    )["data"]
    ids = [r["resource_id"] for r in resources]
    simulator.reset()
    body = await graphql.post(
        """query($a: ID!, $ids: [ID!]!) {
             one: resource(resourceId: $a) { resourceId name }
             again: resource(resourceId: $a) { resourceId }
             many: resourcesByIds(resourceIds: $ids) { resourceId name }
           }""",
        {"a": ids[0], "ids": [*ids, ids[0], "no-such-resource"]},
    )
    assert "errors" not in body, body
    assert body["data"]["one"]["resourceId"] == ids[0]
    assert [r and r["resourceId"] for r in body["data"]["many"]] == [*ids, ids[0], None]
    assert counts(simulator) == {OMA: 0, CBC: 1}


async def test_resources_by_200_ids_cost_four_calls(
    graphql: GraphQLClient, simulator: Simulator
) -> None:
    page = await upstream(simulator, "/v2/orders/suscriptions/resources/query", {"limit": 200})
    ids = [r["resource_id"] for r in page["data"]]
    assert len(ids) == 200
    simulator.reset()
    body = await graphql.post(
        "query($ids: [ID!]!) { resourcesByIds(resourceIds: $ids) { resourceId } }", {"ids": ids}
    )
    assert [r["resourceId"] for r in body["data"]["resourcesByIds"]] == ids
    assert counts(simulator) == {OMA: 0, CBC: 4}


async def test_two_tokens_each_get_their_own_data(
    graphql: GraphQLClient, simulator: Simulator
) -> None:
    alice = await graphql.post("{ subscriptions(first: 5) { nodes { id } } }", token=TOKEN)
    bob = await graphql.post("{ subscriptions(first: 5) { nodes { id } } }", token=OTHER_TOKEN)
    alice_ids = {n["id"] for n in alice["data"]["subscriptions"]["nodes"]}
    bob_ids = {n["id"] for n in bob["data"]["subscriptions"]["nodes"]}
    assert alice_ids == {r["id"] for r in (await all_subscriptions(simulator, TOKEN))[:5]}
    assert bob_ids == {r["id"] for r in (await all_subscriptions(simulator, OTHER_TOKEN))[:5]}
    assert alice_ids != bob_ids
    tokens = [call["token"] for call in simulator.calls if call["endpoint"] == OMA]
    assert tokens[:2] == [TOKEN, OTHER_TOKEN]


async def test_resources_filter_pages_and_translates_the_expiry_window(
    graphql: GraphQLClient, simulator: Simulator
) -> None:
    simulator.reset()
    body = await graphql.post(
        """{ resources(first: 600, filter: {statuses: [PROVISIONED, FROZEN], onlyMainResources: true,
               expiring: {from: 1577836800000, to: "2030-01-01T08:00:00+08:00"}}) {
               totalCount nodes { resourceId status isMainResource expiresAt } } }"""
    )
    assert "errors" not in body, body
    connection = body["data"]["resources"]
    assert all(
        n["isMainResource"] and n["status"] in ("PROVISIONED", "FROZEN")
        for n in connection["nodes"]
    )
    bodies = [call["body"] for call in simulator.calls if call["endpoint"] == CBC]
    assert bodies[0]["expire_time_begin"] == "2020-01-01T00:00:00Z"
    assert bodies[0]["expire_time_end"] == "2030-01-01T00:00:00Z"
    assert bodies[0]["status_list"] == [2, 4] and bodies[0]["only_main_resource"] == 1
    # The pages a range spans are all asked at once, before the total is known.
    assert len(bodies) == 2


async def test_an_empty_list_of_resource_ids_matches_none_without_a_call(
    graphql: GraphQLClient, simulator: Simulator
) -> None:
    simulator.reset()
    query = """query($ids: [ID!]) { resources(filter: {resourceIds: $ids}) {
                 totalCount pageInfo { hasNextPage } nodes { resourceId } } }"""
    body = await graphql.post(query, {"ids": []})
    assert body == {
        "data": {"resources": {"totalCount": 0, "pageInfo": {"hasNextPage": False}, "nodes": []}}
    }
    assert counts(simulator) == {OMA: 0, CBC: 0}
    # Without a token it is still refused, as every CBC field is.
    body = await graphql.post(query, {"ids": []}, token=None)
    assert body["data"] == {"resources": None}
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_window_from_before_1970_answers_as_from_epoch_zero(
    graphql: GraphQLClient, simulator: Simulator
) -> None:
    query = "query($w: TimeWindow) { subscriptions(first: 5, window: $w) { totalCount } }"
    before = await graphql.post(query, {"w": {"from": "1960-01-01T00:00:00Z"}})
    assert "errors" not in before, before
    assert before == await graphql.post(query, {"w": {"from": 0}})
    assert before["data"]["subscriptions"]["totalCount"] > 0


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        (
            "query($o: String) { resources(filter: {orderId: $o}) { totalCount } }",
            '{"o": "ab\\ud800"}',
        ),
        (
            "query($ids: [ID!]) { resources(filter: {resourceIds: $ids}) { totalCount } }",
            '{"ids": ["\\udfff"]}',
        ),
        (
            "query($ids: [ID!]!) { resourcesByIds(resourceIds: $ids) { id } }",
            '{"ids": ["\\ud800"]}',
        ),
        ("query($id: ID!) { resource(resourceId: $id) { id } }", '{"id": "x\\udfff"}'),
    ],
)
async def test_an_id_that_is_no_unicode_text_is_refused_with_no_call(
    client: httpx.AsyncClient, simulator: Simulator, query: str, variables: str
) -> None:
    # JSON's \\ud800 escape lets a client send a lone surrogate, which has no UTF-8 form.
    simulator.reset()
    # The variables as the client's own JSON text: a Python str would not encode.
    body = orjson.dumps({"query": query})[:-1] + b', "variables": ' + variables.encode() + b"}"
    response = await post_json_text(client, body)
    # Refused with the body: no answer or upstream request could carry it.
    assert response.status_code == 400
    assert "surrogate" in response.text
    assert counts(simulator) == {OMA: 0, CBC: 0}


@pytest.mark.parametrize(
    "window",
    [
        {"from": 1679558854000, "to": 1679558854001},
        {"from": "1679558854000", "to": "1679558854001"},
        {"from": "2023-03-23T08:07:34Z", "to": "2023-03-23T08:07:34.001Z"},
        {"from": "2023-03-23T16:07:34+08:00", "to": "2023-03-23T16:07:34.001+08:00"},
    ],
)
async def test_every_datetime_input_form_reaches_oma_as_epoch_ms(
    graphql: GraphQLClient, simulator: Simulator, window: dict[str, Any]
) -> None:
    simulator.reset()
    body = await graphql.post(
        "query($w: TimeWindow) { subscriptions(window: $w) { totalCount nodes { id modifiedAt createdAt } } }",
        {"w": window},
    )
    assert "errors" not in body, body
    (node,) = body["data"]["subscriptions"]["nodes"]
    assert node == {
        "id": "1638814724192780290",
        "modifiedAt": "2023-03-23T08:07:34Z",
        "createdAt": "2023-03-23T08:07:33Z",
    }
    (call,) = [c for c in simulator.calls if c["endpoint"] == OMA]
    assert call["body"]["startDate"] == 1679558854000 and call["body"]["endDate"] == 1679558854001


async def test_a_window_holds_exactly_the_milliseconds_between_its_ends(
    graphql: GraphQLClient, simulator: Simulator
) -> None:
    """The seed subscription was modified at 34.000 s: a window from 33.9995 s holds it,
    one from 34.0005 s does not, and one within a millisecond is answered without OMA."""
    query = "query($w: TimeWindow) { subscriptions(window: $w) { totalCount } }"
    holding = await graphql.post(
        query, {"w": {"from": "2023-03-23T08:07:33.9995Z", "to": "2023-03-23T08:07:34.0009Z"}}
    )
    assert holding["data"]["subscriptions"]["totalCount"] == 1
    after = await graphql.post(
        query, {"w": {"from": "2023-03-23T08:07:34.0005Z", "to": "2023-03-23T08:07:35Z"}}
    )
    assert after["data"]["subscriptions"]["totalCount"] == 0
    simulator.reset()
    within = await graphql.post(
        query, {"w": {"from": "2023-03-23T08:07:34.0002Z", "to": "2023-03-23T08:07:34.0008Z"}}
    )
    assert within == {"data": {"subscriptions": {"totalCount": 0}}}
    assert counts(simulator) == {OMA: 0, CBC: 0}


async def test_datetime_literals_in_the_document(graphql: GraphQLClient) -> None:
    body = await graphql.post(
        '{ subscriptions(window: {from: 1679558854000, to: "2023-03-23T08:07:34.001Z"}) { totalCount } }'
    )
    assert body["data"]["subscriptions"]["totalCount"] == 1


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        (
            "query($w: TimeWindow) { subscriptions(window: $w) { totalCount } }",
            {"w": {"from": "2024-01-02T00:00:00Z", "to": "2024-01-01T00:00:00Z"}},
        ),
        (
            "query($w: TimeWindow) { subscriptions(window: $w) { totalCount } }",
            {"w": {"from": "next thursday"}},
        ),
        (
            "query($w: TimeWindow) { subscriptions(window: $w) { totalCount } }",
            {"w": {"from": "2024-01-02T00:00:00"}},
        ),
        ('{ subscriptions(window: {from: "soon"}) { totalCount } }', None),
        ("{ subscriptions(first: 1001) { totalCount } }", None),
        ("{ subscriptions(first: -1) { totalCount } }", None),
        ('{ subscriptions(after: "bm90LWEtY3Vyc29y") { totalCount } }', None),
        ('{ resources(filter: {orderId: "' + "x" * 65 + '"}) { totalCount } }', None),
        (
            "query($ids: [ID!]) { resources(filter: {resourceIds: $ids}) { totalCount } }",
            {"ids": [f"r{i}" for i in range(51)]},
        ),
        ("{ resources(filter: {statuses: [CLOSED]}) { totalCount } }", None),
    ],
)
async def test_bad_input_is_a_clear_error_and_no_upstream_call(
    graphql: GraphQLClient, simulator: Simulator, query: str, variables: dict[str, Any] | None
) -> None:
    simulator.reset()
    body = await graphql.post(query, variables)
    assert body.get("data") is None or all(v is None for v in body["data"].values())
    (error,) = body["errors"]
    assert error["extensions"]["code"] in ("BAD_USER_INPUT", "GRAPHQL_VALIDATION_FAILED")
    assert counts(simulator) == {OMA: 0, CBC: 0}

"""The simulator answers as the seed pages document, quirks included."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway.simulator import Simulator, SimulatorConfig
from gateway.simulator.__main__ import build_parser, simulator_from_args
from gateway.simulator.app import CBC_PATH, OMA_PATH
from tests.support.helpers import load_fixture


@pytest.fixture
async def sim() -> AsyncIterator[tuple[Simulator, httpx.AsyncClient]]:
    simulator = Simulator(SimulatorConfig(seed=3, subscriptions=120))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=simulator.app), base_url="http://sim"
    ) as http:
        yield simulator, http


async def post(
    http: httpx.AsyncClient,
    path: str,
    body: Any,
    token: str | None = "alice",
    header: str = "X-Auth-Token",
) -> httpx.Response:
    headers = {header: token} if token else {}
    return await http.post(path, json=body, headers=headers)


async def test_oma_seed_example_request_returns_the_seed_example(
    sim: tuple[Simulator, httpx.AsyncClient],
) -> None:
    _, http = sim
    response = await post(
        http, OMA_PATH, load_fixture("oma_example_request.json"), header="X-Auth_Token"
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json;charset=UTF-8"
    assert response.json() == load_fixture("oma_example_response.json")


async def test_cbc_seed_resource_is_served_for_its_id_and_its_order(
    sim: tuple[Simulator, httpx.AsyncClient],
) -> None:
    _, http = sim
    expected = load_fixture("cbc_example_response.json")["data"][0]
    by_id = await post(http, CBC_PATH, {"resource_ids": [expected["resource_id"]]})
    assert by_id.json() == {"data": [expected], "total_count": 1}
    by_order = await post(http, CBC_PATH, {"order_id": "251679538126441114"})
    assert expected in by_order.json()["data"]


@pytest.mark.parametrize(
    "body",
    [
        {"offset": 0},
        {"limit": 100, "offset": 0},
        {"limit": 0, "offset": 0},
        {"limit": "ten", "offset": 0},
        {"limit": 10, "offset": -1},
        {"limit": 10},
        {"limit": 10, "offset": 0, "startDate": "yesterday"},
        [1, 2],
    ],
)
async def test_oma_refuses_bad_parameters_with_a_return_code(
    sim: tuple[Simulator, httpx.AsyncClient], body: Any
) -> None:
    _, http = sim
    response = await post(http, OMA_PATH, body)
    assert response.status_code == 200
    assert response.json()["returnCode"] != "0" and response.json()["result"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"limit": 0},
        {"limit": 501},
        {"offset": -1},
        {"resource_ids": [f"r{i}" for i in range(51)]},
        {"order_id": "x" * 65},
        {"only_main_resource": 2},
        {"status_list": [3]},
        {"status_list": [2] * 11},
        {"expire_time_begin": "2021-09-01 08:05:01"},
        {"limit": "10"},
        [],
    ],
)
async def test_cbc_refuses_bad_parameters_with_cbc_0100(
    sim: tuple[Simulator, httpx.AsyncClient], body: Any
) -> None:
    _, http = sim
    response = await post(http, CBC_PATH, body)
    assert response.status_code == 400
    assert response.json()["error_code"] == "CBC.0100"


async def test_auth_errors(sim: tuple[Simulator, httpx.AsyncClient]) -> None:
    _, http = sim
    for token in (None, "invalid-x"):
        oma = await post(http, OMA_PATH, {"limit": 1, "offset": 0}, token)
        assert oma.status_code == 401 and oma.json()["schema"].startswith("Unauthorized")
        cbc = await post(http, CBC_PATH, {}, token)
        assert cbc.status_code == 401
    forbidden = await post(http, CBC_PATH, {}, "forbidden-x")
    assert forbidden.status_code == 403 and forbidden.json()["error_code"] == "CBC.0151"


async def test_tokens_are_tenants_and_data_is_deterministic(
    sim: tuple[Simulator, httpx.AsyncClient],
) -> None:
    _, http = sim
    alice = (await post(http, OMA_PATH, {"limit": 5, "offset": 0}, "alice")).json()["result"]
    bob = (await post(http, OMA_PATH, {"limit": 5, "offset": 0}, "bob")).json()["result"]
    assert {r["id"] for r in alice}.isdisjoint({r["id"] for r in bob} - {"1638814724192780290"})
    again = Simulator(SimulatorConfig(seed=3, subscriptions=120)).dataset("alice").subscriptions[:5]
    assert again == alice


async def test_paging_is_stable_and_totals_are_right(
    sim: tuple[Simulator, httpx.AsyncClient],
) -> None:
    _, http = sim
    pages = [
        (await post(http, OMA_PATH, {"limit": 50, "offset": o, "extra": 1})).json()
        for o in (0, 50, 100)
    ]
    ids = [r["id"] for p in pages for r in p["result"]]
    assert len(ids) == len(set(ids)) == 121  # 120 generated and the seed example
    assert all(p["count"] == 121 for p in pages)
    assert len(pages[-1]["result"]) == 21


async def test_quirks_of_the_seed_example_are_served(
    sim: tuple[Simulator, httpx.AsyncClient],
) -> None:
    simulator, _ = sim
    records = simulator.dataset("alice").subscriptions
    assert any("status" not in r for r in records)
    assert any(isinstance(r["createTime"], str) for r in records)
    assert any(r["remark"] is None for r in records)
    assert all("procutName" in r for r in records)


async def test_resource_ids_with_only_main_0_bring_the_attached_ones(
    sim: tuple[Simulator, httpx.AsyncClient],
) -> None:
    simulator, http = sim
    tenant = simulator.dataset("alice")
    primary = next(
        r
        for r in tenant.resources
        if r["is_main_resource"] == 1
        and r["status"] != 3
        and any(
            c.get("parent_resource_id") == r["resource_id"] and c["status"] != 3
            for c in tenant.resources
        )
    )
    both = (
        await post(http, CBC_PATH, {"resource_ids": [primary["resource_id"]], "limit": 500})
    ).json()
    attached = [r for r in both["data"] if r["is_main_resource"] == 0]
    assert attached and all(r["parent_resource_id"] == primary["resource_id"] for r in attached)
    only = (
        await post(
            http, CBC_PATH, {"resource_ids": [primary["resource_id"]], "only_main_resource": 1}
        )
    ).json()
    assert [r["resource_id"] for r in only["data"]] == [primary["resource_id"]]


async def test_expiry_window_and_closed_resources(sim: tuple[Simulator, httpx.AsyncClient]) -> None:
    _, http = sim
    body = {
        "expire_time_begin": "2024-01-01T00:00:00Z",
        "expire_time_end": "2024-12-31T23:59:59Z",
        "limit": 500,
    }
    data = (await post(http, CBC_PATH, body)).json()["data"]
    assert data and all(
        "2024-01-01T00:00:00Z" <= r["expire_time"] <= "2024-12-31T23:59:59Z" for r in data
    )
    everything = (await post(http, CBC_PATH, {"limit": 500})).json()
    assert all(r["status"] in (2, 4, 5) for r in everything["data"])


async def test_knobs_latency_errors_throttling_and_faults(
    sim: tuple[Simulator, httpx.AsyncClient],
) -> None:
    simulator, http = sim
    simulator.knobs.oma.latency = 0.05
    started = time.monotonic()
    await post(http, OMA_PATH, {"limit": 1, "offset": 0})
    assert time.monotonic() - started >= 0.05
    simulator.knobs.oma.latency = 0
    simulator.knobs.oma.error_rate = 1.0
    assert (await post(http, OMA_PATH, {"limit": 1, "offset": 0})).status_code == 502
    simulator.knobs.cbc.error_rate = 1.0
    failed = await post(http, CBC_PATH, {})
    assert failed.status_code == 500 and failed.json()["error_code"] == "CBC.0999"
    simulator.knobs.cbc.error_rate = 0
    simulator.knobs.cbc.throttle_next = 1
    throttled = await post(http, CBC_PATH, {})
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "1"
    assert throttled.json()["error_code"] == "APIG.0308"
    assert (await post(http, CBC_PATH, {})).status_code == 200
    for fault, check in (
        ("non_json", lambda r: r.status_code == 200 and r.text.startswith("<html>")),
        ("wrong_shape", lambda r: "data" not in r.json()),
        ("redirect", lambda r: r.status_code == 307),
    ):
        simulator.knobs.cbc.fault = fault
        assert check(await post(http, CBC_PATH, {}))
    simulator.knobs.cbc.fault = None


async def test_counters_calls_and_the_control_api(sim: tuple[Simulator, httpx.AsyncClient]) -> None:
    simulator, http = sim
    await post(http, OMA_PATH, {"limit": 1, "offset": 0})
    await post(http, CBC_PATH, {"limit": 1})
    assert (await http.get("/_sim/stats")).json() == {
        "oma.queryresource": 1,
        "cbc.resources_query": 1,
    }
    calls = (await http.get("/_sim/calls")).json()
    assert [c["token"] for c in calls] == ["alice", "alice"]
    patched = await http.post("/_sim/knobs", json={"oma": {"latency": 0.01}})
    assert patched.json()["oma"]["latency"] == 0.01
    assert (await http.post("/_sim/knobs", json={"oma": {"nope": 1}})).status_code == 400
    await http.post("/_sim/reset")
    assert simulator.counts() == {} and list(simulator.calls) == []


def test_command_line_flags() -> None:
    args = build_parser().parse_args(
        ["--port", "9999", "--seed", "5", "--subscriptions", "10", "--oma-latency", "0.02"]
    )
    simulator = simulator_from_args(args)
    assert args.port == 9999
    assert simulator.config.seed == 5 and simulator.knobs.oma.latency == 0.02
    assert len(simulator.dataset("t").subscriptions) == 11

"""Counters, the call log and the HTTP control endpoints under /_sim/."""

from __future__ import annotations

import time

import httpx

from gateway.simulator import Simulator, SimulatorConfig
from tests.gateway.simulator.conftest import OTHER_TOKEN, TOKEN, Upstreams


async def test_calls_are_counted_per_endpoint_and_reset(
    sim: Simulator, upstreams: Upstreams
) -> None:
    assert sim.counts() == {}
    await upstreams.oma({"limit": 1, "offset": 0})
    assert sim.counts() == {"oma.queryresource": 1}
    await upstreams.oma({"limit": 1, "offset": 0}, token=None)  # refused calls count too
    await upstreams.cbc({"limit": 1})
    assert sim.counts() == {"oma.queryresource": 2, "cbc.resources_query": 1}
    sim.knobs.oma.latency = 0.01
    sim.reset()
    assert sim.counts() == {} and list(sim.calls) == []
    assert sim.knobs.oma.latency == 0.01  # a reset keeps the knobs


async def test_the_call_log_has_endpoint_token_body_and_time(
    sim: Simulator, upstreams: Upstreams
) -> None:
    before = time.time()
    await upstreams.oma({"limit": "3", "offset": 0}, header="X-Auth_Token")
    await upstreams.cbc({"order_id": "o-1", "extra": [1]}, OTHER_TOKEN)
    await upstreams.cbc(b"{not json")
    await upstreams.cbc({}, token=None)
    calls = list(sim.calls)
    assert [(c["endpoint"], c["token"], c["body"]) for c in calls] == [
        ("oma.queryresource", TOKEN, {"limit": "3", "offset": 0}),
        ("cbc.resources_query", OTHER_TOKEN, {"order_id": "o-1", "extra": [1]}),
        ("cbc.resources_query", TOKEN, None),
        ("cbc.resources_query", None, {}),
    ]
    assert all(before <= c["at"] <= time.time() for c in calls)


async def test_the_call_log_keeps_the_newest_calls_only() -> None:
    sim = Simulator(SimulatorConfig(subscriptions=5, max_calls=3))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sim.app), base_url="http://sim"
    ) as http:
        upstreams = Upstreams(http)
        for offset in range(5):
            await upstreams.oma({"limit": 1, "offset": offset})
    assert [c["body"]["offset"] for c in sim.calls] == [2, 3, 4]
    assert sim.counts() == {"oma.queryresource": 5}


async def test_the_http_control_endpoints(
    sim: Simulator, http: httpx.AsyncClient, upstreams: Upstreams
) -> None:
    assert (await http.get("/_sim/healthz")).json() == {"status": "ok", "tenants": 0}
    await upstreams.oma({"limit": 1, "offset": 0})
    await upstreams.cbc({"limit": 1}, OTHER_TOKEN)
    assert (await http.get("/_sim/stats")).json() == {
        "oma.queryresource": 1,
        "cbc.resources_query": 1,
    }
    calls = (await http.get("/_sim/calls")).json()
    assert [(c["endpoint"], c["token"]) for c in calls] == [
        ("oma.queryresource", TOKEN),
        ("cbc.resources_query", OTHER_TOKEN),
    ]
    assert (await http.get("/_sim/healthz")).json()["tenants"] == 2
    assert (await http.post("/_sim/reset")).status_code == 200
    assert (await http.get("/_sim/stats")).json() == {}
    assert (await http.get("/_sim/calls")).json() == []
    assert sim.counts() == {}  # control calls are not upstream calls


async def test_knobs_over_http(sim: Simulator, http: httpx.AsyncClient) -> None:
    defaults = (await http.get("/_sim/knobs")).json()
    assert defaults["oma"] == {
        "latency": 0.0,
        "error_rate": 0.0,
        "throttle_rate": 0.0,
        "throttle_next": 0,
        "retry_after": 1,
        "fault": None,
        "failing_tokens": None,
        "error_text": None,
    }
    patched = await http.post("/_sim/knobs", json={"cbc": {"fault": "redirect", "latency": 0.01}})
    assert patched.status_code == 200
    assert patched.json()["cbc"]["fault"] == "redirect" and patched.json()["cbc"]["latency"] == 0.01
    assert sim.knobs.cbc.fault == "redirect"
    bad_patches: list[dict[str, object]] = [
        {"cbc": {"fault": None}, "oma": {"nope": 1}},
        {"oma": {"error_rate": 2}},
        {"elsewhere": {}},
    ]
    for bad in bad_patches:
        refused = await http.post("/_sim/knobs", json=bad)
        assert refused.status_code == 400 and refused.json()["error"]
    malformed = await http.post("/_sim/knobs", content=b"{")
    assert malformed.status_code == 400
    assert sim.knobs.cbc.fault == "redirect"  # nothing of a refused patch was applied
    await http.post("/_sim/knobs", json={"cbc": {"fault": None}})
    assert sim.knobs.cbc.fault is None

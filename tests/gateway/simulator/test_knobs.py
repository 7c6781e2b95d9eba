"""Knobs: latency, error rates, throttling and fault modes, per upstream, checked on every change."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson
import pytest

from gateway.simulator import Simulator, SimulatorConfig, UpstreamKnobs
from gateway.simulator.app import REDIRECT_TARGET
from tests.gateway.simulator.conftest import SEED, Upstreams

OMA_BODY = {"limit": 5, "offset": 0}


async def ask(upstreams: Upstreams, upstream: str) -> httpx.Response:
    if upstream == "oma":
        return await upstreams.oma(OMA_BODY)
    return await upstreams.cbc({})


def knobs_of(sim: Simulator, upstream: str) -> UpstreamKnobs:
    return sim.knobs.oma if upstream == "oma" else sim.knobs.cbc


async def test_latency_is_added_to_its_upstream_only(sim: Simulator, upstreams: Upstreams) -> None:
    sim.knobs.oma.latency = 0.3
    started = time.monotonic()
    assert (await upstreams.oma(OMA_BODY)).status_code == 200
    assert 0.3 <= time.monotonic() - started < 3
    started = time.monotonic()
    assert (await upstreams.cbc({})).status_code == 200
    assert time.monotonic() - started < 0.3


async def test_an_error_rate_of_one_fails_every_call_with_the_upstreams_5xx(
    sim: Simulator, upstreams: Upstreams
) -> None:
    sim.knobs.oma.error_rate = 1.0
    sim.knobs.cbc.error_rate = 1.0
    for _ in range(3):
        oma = await upstreams.oma(OMA_BODY)
        assert oma.status_code == 502 and oma.json() == {"schema": "Business failure"}
        cbc = await upstreams.cbc({})
        assert cbc.status_code == 500 and cbc.json()["error_code"] == "CBC.0999"
    sim.knobs.oma.error_rate = 0.0
    assert (await upstreams.oma(OMA_BODY)).status_code == 200
    assert sim.counts() == {"oma.queryresource": 4, "cbc.resources_query": 3}


async def test_a_fractional_error_rate_is_drawn_from_the_seed() -> None:
    async def statuses(with_oma_traffic: bool) -> list[int]:
        sim = Simulator(SimulatorConfig(seed=SEED, subscriptions=5))
        sim.knobs.cbc.error_rate = 0.3
        sim.knobs.oma.error_rate = 0.5
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=sim.app), base_url="http://sim"
        ) as http:
            other = Upstreams(http)
            answers = []
            for _ in range(100):
                answers.append((await other.cbc({})).status_code)
                if with_oma_traffic:
                    await other.oma(OMA_BODY)
            return answers

    # The same seed draws the same failures, and OMA's traffic shifts nothing in CBC's draws.
    first, second = await statuses(True), await statuses(False)
    assert first == second
    assert set(first) == {200, 500}
    assert 15 <= first.count(500) <= 45


@pytest.mark.parametrize("upstream", ["oma", "cbc"])
async def test_the_next_n_calls_are_throttled_with_retry_after(
    sim: Simulator, upstreams: Upstreams, upstream: str
) -> None:
    knobs = knobs_of(sim, upstream)
    knobs.throttle_next = 2
    knobs.retry_after = 7
    for _ in range(2):
        throttled = await ask(upstreams, upstream)
        assert throttled.status_code == 429
        assert throttled.headers["retry-after"] == "7"
        assert throttled.json() == {
            "error_code": "APIG.0308",
            "error_msg": "The request is throttled",
        }
    assert knobs.throttle_next == 0
    assert (await ask(upstreams, upstream)).status_code == 200


async def test_a_throttle_rate_throttles_that_fraction(
    sim: Simulator, upstreams: Upstreams
) -> None:
    sim.knobs.cbc.throttle_rate = 1.0
    assert [(await upstreams.cbc({})).status_code for _ in range(5)] == [429] * 5
    assert (await upstreams.oma(OMA_BODY)).status_code == 200
    sim.knobs.cbc.throttle_rate = 0.5
    codes = [(await upstreams.cbc({})).status_code for _ in range(60)]
    assert 15 <= codes.count(429) <= 45 and codes.count(200) == 60 - codes.count(429)


def check_non_json(response: httpx.Response, upstream: str) -> None:
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(response.content)


def check_wrong_shape(response: httpx.Response, upstream: str) -> None:
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body, dict)
    missing = {"result", "count"} if upstream == "oma" else {"data", "total_count"}
    assert not missing & set(body)


def check_redirect(response: httpx.Response, upstream: str) -> None:
    assert response.status_code == 307
    assert response.headers["location"] == REDIRECT_TARGET == "http://127.0.0.2:9/elsewhere"


@pytest.mark.parametrize("upstream", ["oma", "cbc"])
@pytest.mark.parametrize(
    ("fault", "check"),
    [
        ("non_json", check_non_json),
        ("wrong_shape", check_wrong_shape),
        ("redirect", check_redirect),
    ],
)
async def test_fault_modes_answer_every_call_until_cleared(
    sim: Simulator, upstreams: Upstreams, upstream: str, fault: Any, check: Any
) -> None:
    knobs_of(sim, upstream).fault = fault
    for _ in range(2):
        check(await ask(upstreams, upstream), upstream)
    other = "cbc" if upstream == "oma" else "oma"
    assert (await ask(upstreams, other)).status_code == 200
    knobs_of(sim, upstream).fault = None
    assert (await ask(upstreams, upstream)).status_code == 200


@pytest.mark.parametrize("upstream", ["oma", "cbc"])
async def test_hang_outlasts_any_deadline(
    sim: Simulator, upstreams: Upstreams, upstream: str
) -> None:
    knobs_of(sim, upstream).fault = "hang"
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ask(upstreams, upstream), timeout=0.2)
    assert sim.counts() == {
        f"{upstream}.{'queryresource' if upstream == 'oma' else 'resources_query'}": 1
    }


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("latency", -0.1),
        ("latency", float("nan")),
        ("latency", "0.1"),
        ("error_rate", 1.5),
        ("throttle_rate", -0.5),
        ("error_rate", True),
        ("throttle_next", -1),
        ("throttle_next", 1.0),
        ("retry_after", "1"),
        ("fault", "explode"),
        ("typo", 1),
    ],
)
def test_a_bad_knob_value_is_refused_and_changes_nothing(
    sim: Simulator, name: str, value: object
) -> None:
    before = sim.knobs.as_dict()
    with pytest.raises(ValueError, match=name):
        setattr(sim.knobs.oma, name, value)
    with pytest.raises(ValueError, match=name):
        sim.knobs.patch({"cbc": {"latency": 0.5}, "oma": {name: value}})
    assert sim.knobs.as_dict() == before


def test_a_patch_sets_every_named_knob(sim: Simulator) -> None:
    sim.knobs.patch(
        {"oma": {"latency": 1, "fault": "hang"}, "cbc": {"throttle_next": 3, "error_rate": 0.25}}
    )
    assert sim.knobs.oma.latency == 1.0 and sim.knobs.oma.fault == "hang"
    assert sim.knobs.cbc.throttle_next == 3 and sim.knobs.cbc.error_rate == 0.25
    assert sim.knobs.cbc.latency == 0.0 and sim.knobs.oma.error_rate == 0.0
    bad_patches: list[object] = [{"redis": {"latency": 1}}, {"oma": 1}, [("oma", {})]]
    for bad in bad_patches:
        with pytest.raises(ValueError):
            sim.knobs.patch(bad)


async def test_error_text_replaces_what_a_5xx_answer_says(
    sim: Simulator, upstreams: Upstreams
) -> None:
    sim.knobs.oma.error_rate = 1.0
    sim.knobs.cbc.error_rate = 1.0
    sim.knobs.oma.error_text = sim.knobs.cbc.error_text = "db01.internal.corp:5432 refused"
    oma = await upstreams.oma(OMA_BODY)
    cbc = await upstreams.cbc({})
    assert (oma.status_code, oma.json()) == (502, {"schema": "db01.internal.corp:5432 refused"})
    assert cbc.status_code == 500
    assert cbc.json() == {"error_code": "CBC.0999", "error_msg": "db01.internal.corp:5432 refused"}
    with pytest.raises(ValueError):
        sim.knobs.cbc.error_text = 5  # type: ignore[assignment]


async def test_headers_over_16_kb_are_refused_as_the_api_gateway_does(
    upstreams: Upstreams,
) -> None:
    for answer in (
        await upstreams.cbc({}, token="t" * (16 * 1024 + 1)),
        await upstreams.oma(OMA_BODY, token="t" * (16 * 1024 + 1)),
    ):
        assert answer.status_code == 431
        assert answer.json()["error_code"] == "APIG.0201"
    assert (await upstreams.cbc({}, token="t" * 12_000)).status_code == 200


async def test_failing_tokens_fail_only_the_calls_that_carry_them(
    sim: Simulator, upstreams: Upstreams
) -> None:
    sim.knobs.cbc.failing_tokens = "boom-"
    assert (await upstreams.cbc({}, token="boom-1")).status_code == 500
    assert (await upstreams.cbc({}, token="alice")).status_code == 200
    assert (await upstreams.oma(OMA_BODY, token="boom-1")).status_code == 200  # CBC's knob
    with pytest.raises(ValueError):
        sim.knobs.cbc.failing_tokens = ""

"""OMA queryresource: the seed example, validation, auth, paging and the modifyTime window."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.simulator import Simulator, SimulatorConfig
from gateway.simulator.app import OMA_UNAUTHORIZED
from tests.gateway.simulator.conftest import (
    OTHER_TOKEN,
    SEED,
    SUBSCRIPTIONS,
    TOKEN,
    Upstreams,
)
from tests.support.helpers import load_fixture

TOTAL = SUBSCRIPTIONS + 1  # the seed example comes on top


@pytest.mark.parametrize("header", ["X-Auth_Token", "X-Auth-Token"])
async def test_the_seed_example_request_returns_the_seed_example_response(
    upstreams: Upstreams, header: str
) -> None:
    response = await upstreams.oma(load_fixture("oma_example_request.json"), header=header)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json;charset=UTF-8"
    assert response.json() == load_fixture("oma_example_response.json")


async def test_numbers_and_numeric_strings_ask_the_same(upstreams: Upstreams) -> None:
    as_numbers = await upstreams.oma({"limit": 7, "offset": 3})
    as_strings = await upstreams.oma({"limit": "7", "offset": "3"})
    assert as_numbers.json() == as_strings.json()
    assert len(as_numbers.json()["result"]) == 7


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"offset": 0}, "limit"),
        ({"limit": None, "offset": 0}, "limit"),
        ({"limit": 100, "offset": 0}, "limit"),
        ({"limit": "100", "offset": 0}, "limit"),
        ({"limit": 0, "offset": 0}, "limit"),
        ({"limit": -5, "offset": 0}, "limit"),
        ({"limit": "ten", "offset": 0}, "limit"),
        ({"limit": True, "offset": 0}, "limit"),
        ({"limit": 10.5, "offset": 0}, "limit"),
        ({"limit": [10], "offset": 0}, "limit"),
        ({"limit": 10}, "offset"),
        ({"limit": 10, "offset": -1}, "offset"),
        ({"limit": 10, "offset": "-1"}, "offset"),
        ({"limit": 10, "offset": "0x10"}, "offset"),
        ({"limit": 10, "offset": 0, "startDate": "yesterday"}, "startDate"),
        ({"limit": 10, "offset": 0, "startDate": -1}, "startDate"),
        ({"limit": 10, "offset": 0, "endDate": {"ms": 1}}, "endDate"),
        ([{"limit": 10, "offset": 0}], "object"),
        (b'{"limit": 10, "offset": 0', "JSON"),
        (b"", "JSON"),
    ],
)
async def test_bad_parameters_answer_200_with_a_failing_return_code(
    upstreams: Upstreams, body: Any, named: str
) -> None:
    response = await upstreams.oma(body)
    assert response.status_code == 200
    answer = response.json()
    assert (answer["returnCode"], answer["result"], answer["count"]) == ("1", [], 0)
    assert named in answer["description"]


@pytest.mark.parametrize("token", [None, "", "   ", "invalid-token", "forbidden-token"])
async def test_a_missing_or_bad_token_is_unauthorized(upstreams: Upstreams, token: str) -> None:
    response = await upstreams.oma({"limit": 10, "offset": 0}, token)
    assert response.status_code == 401
    assert response.json() == {"schema": OMA_UNAUTHORIZED}
    assert OMA_UNAUTHORIZED.startswith("Unauthorized operation. 1. Check whether")


async def test_pages_cover_every_record_once_in_a_stable_order(
    sim: Simulator, upstreams: Upstreams
) -> None:
    pages = [(await upstreams.oma({"limit": 50, "offset": o})).json() for o in (0, 50, 100, 150)]
    assert [p["count"] for p in pages] == [TOTAL] * 4
    assert [len(p["result"]) for p in pages] == [50, 50, TOTAL - 100, 0]
    served = [r for p in pages for r in p["result"]]
    assert served == sim.dataset(TOKEN).subscriptions
    assert len({r["id"] for r in served}) == TOTAL
    again = (await upstreams.oma({"limit": 10, "offset": 45})).json()["result"]
    assert again == served[45:55]
    overlapping = (await upstreams.oma({"limit": 99, "offset": 99})).json()["result"]
    assert overlapping == served[99:]


async def test_the_window_filters_on_modify_time_inclusive_at_both_ends(
    sim: Simulator, upstreams: Upstreams
) -> None:
    records = sim.dataset(TOKEN).subscriptions
    times = sorted({int(r["modifyTime"]) for r in records})
    start, end = times[10], times[40]

    def expected(low: int | None, high: int | None) -> list[dict[str, Any]]:
        return [
            r
            for r in records
            if (low is None or low <= int(r["modifyTime"]))
            and (high is None or int(r["modifyTime"]) <= high)
        ]

    both = await upstreams.all_subscriptions(startDate=start, endDate=end)
    assert both == expected(start, end) and len(both) == 31
    assert await upstreams.all_subscriptions(startDate=start) == expected(start, None)
    assert await upstreams.all_subscriptions(endDate=end) == expected(None, end)
    exactly = (
        await upstreams.oma(
            {"limit": 99, "offset": 0, "startDate": str(start), "endDate": str(start)}
        )
    ).json()
    assert exactly["result"] == expected(start, start) and exactly["count"] == 1
    just_after = {"limit": 99, "offset": 0, "startDate": start + 1, "endDate": times[11] - 1}
    assert (await upstreams.oma(just_after)).json()["count"] == 0
    backwards = {"limit": 99, "offset": 0, "startDate": end, "endDate": start}
    assert (await upstreams.oma(backwards)).json() == {
        "result": [],
        "count": 0,
        "returnCode": "0",
        "description": "success",
    }


async def test_each_token_sees_its_own_data_and_the_same_data_every_time(
    upstreams: Upstreams,
) -> None:
    alice = await upstreams.all_subscriptions(TOKEN)
    bob = await upstreams.all_subscriptions(OTHER_TOKEN)
    assert {r["id"] for r in alice} & {r["id"] for r in bob} == {"1638814724192780290"}
    another = Simulator(SimulatorConfig(seed=SEED, subscriptions=SUBSCRIPTIONS))
    assert another.dataset(TOKEN).subscriptions == alice
    assert await upstreams.all_subscriptions(TOKEN) == alice

"""bench.instructions replays a scenario from recorded answers, and reads valgrind's count."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from bench.instructions import Replaying, collected, record, run_gateway


def test_a_replay_answers_every_call_the_scenario_makes_from_the_recording() -> None:
    answers = record("s1")
    assert len(answers) == 2  # 100 subscriptions: two pages of at most 99
    replaying = Replaying(answers)
    # Three requests, each checked against the first answer, with no simulator at all.
    assert asyncio.run(run_gateway(replaying, "s1", 2)) > 0


def test_a_call_that_was_not_recorded_fails_the_replay() -> None:
    answers = record("s1")
    key = next(iter(answers))
    replaying = Replaying({key: answers[key]})
    with pytest.raises(RuntimeError, match="the scenario failed"):
        asyncio.run(run_gateway(replaying, "s1", 1))


async def test_the_replaying_transport_refuses_an_unknown_request() -> None:
    replaying = Replaying({})
    with pytest.raises(LookupError, match="no recorded answer"):
        await replaying.handle_async_request(httpx.Request("POST", "http://x/q", content=b"{}"))


def test_the_count_is_read_from_callgrinds_report() -> None:
    report = "==1962== Events    : Ir\n==1962== Collected : 3193351899\n==1962==\n"
    assert collected(report) == 3193351899
    with pytest.raises(RuntimeError, match="no instruction count"):
        collected("valgrind: command not found")

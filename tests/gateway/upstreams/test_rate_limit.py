"""The in-process rate limit: slots at the limit's pace, reserved before sleeping."""

from __future__ import annotations

import asyncio

import pytest

from gateway.config import UpstreamSettings
from gateway.errors import ErrorKind, UpstreamError
from gateway.upstreams.rate_limit import TokenBucket
from tests.gateway.upstreams.test_resilience import START, FakeTime


async def test_rate_zero_is_unlimited() -> None:
    async def no_sleep(seconds: float) -> None:
        raise AssertionError("an unlimited bucket never sleeps")

    bucket = TokenBucket("oma", rate=0, max_wait=0, sleep=no_sleep)
    assert [await bucket.acquire() for _ in range(100)] == [0.0] * 100


async def test_burst_goes_through_then_the_steady_rate_applies() -> None:
    fake = FakeTime()
    bucket = TokenBucket("oma", rate=10, burst=3, max_wait=5, clock=fake.clock, sleep=fake.sleep)
    waits = [await bucket.acquire() for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.0, 0.0, 0.1, 0.1])
    fake.now += 10  # idle: the burst is back
    assert [await bucket.acquire() for _ in range(3)] == [0.0] * 3


def test_burst_defaults_to_the_rate_and_at_least_one() -> None:
    assert TokenBucket("oma", rate=10, max_wait=1).burst == 10
    assert TokenBucket("oma", rate=0.5, max_wait=1).burst == 1


async def test_concurrent_callers_get_consecutive_slots() -> None:
    fake = FakeTime()
    woken_at: list[float] = []

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(0)  # let the other callers run meanwhile
        woken_at.append(fake.now + seconds)

    bucket = TokenBucket("oma", rate=10, burst=1, max_wait=5, clock=fake.clock, sleep=sleep)
    waits = await asyncio.gather(*(bucket.acquire() for _ in range(5)))
    # First come, first served, each 1/rate after the one before: no herd on one token.
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert sorted(woken_at) == pytest.approx([START + w for w in (0.1, 0.2, 0.3, 0.4)])


async def test_the_defaults_serve_a_linked_querys_99_calls_whole_within_the_deadline() -> None:
    # 100 subscriptions with their resources: 99 order calls to CBC at once.
    defaults = UpstreamSettings(name="cbc", base_url="http://cbc")
    fake = FakeTime()

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(0)

    bucket = TokenBucket(
        "cbc",
        rate=defaults.rate_limit,
        max_wait=defaults.rate_limit_max_wait,
        clock=fake.clock,
        sleep=sleep,
    )
    waits = await asyncio.gather(*(bucket.acquire() for _ in range(99)))
    assert max(waits) == pytest.approx(8.9) and max(waits) < defaults.deadline


async def test_throttled_at_once_when_the_wait_would_exceed_max_wait() -> None:
    fake = FakeTime()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)  # time stands still: the queue only grows

    bucket = TokenBucket("cbc", rate=1, burst=1, max_wait=1.5, clock=fake.clock, sleep=sleep)
    assert await bucket.acquire() == 0.0
    assert await bucket.acquire() == 1.0
    with pytest.raises(UpstreamError) as caught:
        await bucket.acquire()
    assert caught.value.kind is ErrorKind.THROTTLED and caught.value.upstream == "cbc"
    assert caught.value.retry_after == pytest.approx(0.5)  # when the wait is short enough
    assert slept == [1.0]
    fake.now += 0.5  # a refusal reserved nothing
    assert await bucket.acquire() == pytest.approx(1.5)


async def test_a_cancelled_waiter_gives_its_slot_back() -> None:
    fake = FakeTime()
    forever = asyncio.Event()

    async def sleep(seconds: float) -> None:
        await forever.wait()

    bucket = TokenBucket("oma", rate=10, burst=1, max_wait=5, clock=fake.clock, sleep=sleep)
    await bucket.acquire()
    waiter = asyncio.create_task(bucket.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    bucket._sleep = fake.sleep
    assert await bucket.acquire() == pytest.approx(0.1)  # not 0.2

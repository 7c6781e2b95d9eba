"""Retries, deadline, circuit breaker, rate limit and concurrency cap, with a controlled clock."""

from __future__ import annotations

import asyncio

import pytest

from gateway.config import UpstreamSettings
from gateway.errors import CircuitOpen, ErrorKind, UpstreamError
from gateway.resilience import CircuitBreaker, TokenBucket, UpstreamGuard


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def settings(**changes: object) -> UpstreamSettings:
    values: dict[str, object] = {
        "name": "oma",
        "base_url": "http://upstream",
        "max_retries": 2,
        "retry_backoff": 0.1,
        "deadline": 10.0,
        "rate_limit": 0.0,
        "breaker_threshold": 3,
        "breaker_cooldown": 5.0,
    }
    values.update(changes)
    return UpstreamSettings(**values)  # type: ignore[arg-type]


def failing(*kinds: ErrorKind, retry_after: float | None = None):  # type: ignore[no-untyped-def]
    """An attempt that fails with ``kinds`` in turn, then succeeds."""
    calls: list[float] = []

    async def attempt(remaining: float) -> str:
        calls.append(remaining)
        if len(calls) <= len(kinds):
            raise UpstreamError(kinds[len(calls) - 1], "oma", "no", retry_after=retry_after)
        return "ok"

    return attempt, calls


def guard(fake: FakeTime, **changes: object) -> UpstreamGuard:
    return UpstreamGuard(
        settings(**changes), clock=fake.clock, sleep=fake.sleep, jitter=lambda: 0.5
    )


async def test_success_first_try() -> None:
    fake = FakeTime()
    attempt, calls = failing()
    assert await guard(fake).run(attempt) == "ok"
    assert len(calls) == 1 and fake.sleeps == []


async def test_transient_errors_are_retried_with_growing_backoff() -> None:
    fake = FakeTime()
    attempt, calls = failing(ErrorKind.UNAVAILABLE, ErrorKind.TIMEOUT)
    assert await guard(fake).run(attempt) == "ok"
    assert len(calls) == 3
    assert fake.sleeps == pytest.approx([0.1, 0.2])  # jitter 0.5 -> factor 1.0


def test_jitter_stays_within_half_to_one_and_a_half() -> None:
    for jitter in (0.0, 0.999):
        fake = FakeTime()
        attempt, _ = failing(ErrorKind.UNAVAILABLE)
        upstream_guard = UpstreamGuard(
            settings(), clock=fake.clock, sleep=fake.sleep, jitter=lambda j=jitter: j
        )
        asyncio.run(upstream_guard.run(attempt))
        assert 0.05 <= fake.sleeps[0] <= 0.15


@pytest.mark.parametrize(
    "kind",
    [ErrorKind.UNAUTHENTICATED, ErrorKind.FORBIDDEN, ErrorKind.BAD_REQUEST, ErrorKind.BAD_RESPONSE],
)
async def test_caller_and_shape_errors_are_not_retried(kind: ErrorKind) -> None:
    fake = FakeTime()
    attempt, calls = failing(kind)
    with pytest.raises(UpstreamError):
        await guard(fake).run(attempt)
    assert len(calls) == 1


async def test_retries_are_bounded() -> None:
    fake = FakeTime()
    attempt, calls = failing(*[ErrorKind.UNAVAILABLE] * 5)
    with pytest.raises(UpstreamError):
        await guard(fake, breaker_threshold=100).run(attempt)
    assert len(calls) == 3  # the first try and two retries


async def test_retry_after_is_honoured() -> None:
    fake = FakeTime()
    attempt, _ = failing(ErrorKind.THROTTLED, retry_after=2.5)
    assert await guard(fake).run(attempt) == "ok"
    assert fake.sleeps == [2.5]


async def test_gives_up_when_the_backoff_would_pass_the_deadline() -> None:
    fake = FakeTime()
    attempt, calls = failing(ErrorKind.THROTTLED, retry_after=30)
    with pytest.raises(UpstreamError) as caught:
        await guard(fake).run(attempt)
    assert caught.value.kind is ErrorKind.THROTTLED
    assert len(calls) == 1 and fake.sleeps == []


async def test_a_hanging_upstream_times_out_within_the_deadline() -> None:
    upstream_guard = UpstreamGuard(settings(deadline=0.05, max_retries=0))

    async def hang(remaining: float) -> str:
        await asyncio.sleep(10)
        return "never"

    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(UpstreamError) as caught:
        await upstream_guard.run(hang)
    assert caught.value.kind is ErrorKind.TIMEOUT
    assert loop.time() - started < 0.5


async def test_breaker_opens_fails_fast_and_lets_one_probe_through() -> None:
    fake = FakeTime()
    upstream_guard = guard(fake, max_retries=0)
    for _ in range(3):
        attempt, _ = failing(ErrorKind.UNAVAILABLE)
        with pytest.raises(UpstreamError):
            await upstream_guard.run(attempt)
    assert upstream_guard.breaker.state == "open"
    attempt, calls = failing()
    with pytest.raises(CircuitOpen):
        await upstream_guard.run(attempt)
    assert calls == []  # no upstream traffic while open

    fake.now += 5.0  # the cool-down passes
    probe_started = asyncio.Event()
    release = asyncio.Event()

    async def slow_probe(remaining: float) -> str:
        probe_started.set()
        await release.wait()
        return "ok"

    probe = asyncio.create_task(upstream_guard.run(slow_probe))
    await probe_started.wait()
    attempt, calls = failing()
    with pytest.raises(CircuitOpen):  # only one probe at a time
        await upstream_guard.run(attempt)
    release.set()
    assert await probe == "ok"
    assert upstream_guard.breaker.state == "closed"


async def test_a_failed_probe_reopens_the_breaker() -> None:
    fake = FakeTime()
    breaker = CircuitBreaker("oma", threshold=1, cooldown=5, clock=fake.clock)
    breaker.record_failure()
    fake.now += 5
    breaker.acquire()
    breaker.record_failure()
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen):
        breaker.acquire()


async def test_caller_errors_do_not_open_the_breaker() -> None:
    fake = FakeTime()
    upstream_guard = guard(fake)
    for _ in range(10):
        attempt, _ = failing(ErrorKind.UNAUTHENTICATED)
        with pytest.raises(UpstreamError):
            await upstream_guard.run(attempt)
    assert upstream_guard.breaker.state == "closed"


async def test_token_bucket_spaces_concurrent_callers() -> None:
    fake = FakeTime()
    bucket = TokenBucket("oma", rate=10, burst=1, max_wait=5, clock=fake.clock, sleep=fake.sleep)
    waits = [await bucket.acquire() for _ in range(4)]
    # Reservations are made up front: each caller gets the next slot 0.1 s after the last.
    assert waits[0] == 0
    assert all(w >= 0 for w in waits)
    assert fake.now - 1000.0 == pytest.approx(0.3)


async def test_token_bucket_reserves_consecutive_slots_for_simultaneous_callers() -> None:
    fake = FakeTime()
    fake_sleep_calls: list[float] = []

    async def record(seconds: float) -> None:
        fake_sleep_calls.append(seconds)

    bucket = TokenBucket("oma", rate=10, burst=1, max_wait=5, clock=fake.clock, sleep=record)
    waits = await asyncio.gather(*(bucket.acquire() for _ in range(5)))
    assert sorted(waits) == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


async def test_token_bucket_refuses_waits_over_the_maximum() -> None:
    fake = FakeTime()
    bucket = TokenBucket("oma", rate=1, burst=1, max_wait=1.5, clock=fake.clock, sleep=fake.sleep)

    async def nosleep(seconds: float) -> None:
        return None

    bucket._sleep = nosleep  # reserve without moving time
    await bucket.acquire()
    await bucket.acquire()
    with pytest.raises(UpstreamError) as caught:
        await bucket.acquire()
    assert caught.value.kind is ErrorKind.THROTTLED


async def test_rate_zero_is_unlimited() -> None:
    bucket = TokenBucket("oma", rate=0, max_wait=0)
    assert [await bucket.acquire() for _ in range(100)] == [0.0] * 100


async def test_concurrency_cap() -> None:
    upstream_guard = UpstreamGuard(settings(max_concurrency=2))
    in_flight = 0
    peak = 0

    async def attempt(remaining: float) -> str:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return "ok"

    await asyncio.gather(*(upstream_guard.run(attempt) for _ in range(10)))
    assert peak == 2

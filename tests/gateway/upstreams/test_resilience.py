"""Retries, deadline, circuit breaker, rate limit and concurrency cap.

Most tests run on a fake clock whose sleep moves time forward at once; the few
that need asyncio's own timeouts use deadlines of a few hundredths of a second.
"""

from __future__ import annotations

import asyncio

import pytest

from gateway.config import UpstreamSettings
from gateway.errors import CircuitOpen, ErrorKind, UpstreamError
from gateway.metrics import REGISTRY
from gateway.upstreams.rate_limit import TokenBucket
from gateway.upstreams.resilience import CircuitBreaker, Requester, UpstreamGuard

START = 1000.0


class FakeTime:
    """A clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = START
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Script:
    """An attempt that fails with ``kinds`` in turn, then answers "ok"."""

    def __init__(self, *kinds: ErrorKind, retry_after: float | None = None) -> None:
        self.kinds = kinds
        self.retry_after = retry_after
        self.calls: list[float] = []  # the seconds remaining each try was given
        self.raised: list[UpstreamError] = []

    async def __call__(self, remaining: float) -> str:
        self.calls.append(remaining)
        if len(self.calls) <= len(self.kinds):
            error = UpstreamError(
                self.kinds[len(self.calls) - 1], "oma", "no", retry_after=self.retry_after
            )
            self.raised.append(error)
            raise error
        return "ok"


def settings(**changes: object) -> UpstreamSettings:
    values: dict[str, object] = {
        "name": "oma",
        "base_url": "http://upstream",
        "deadline": 10.0,
        "max_retries": 2,
        "retry_backoff": 0.1,
        "rate_limit": 0.0,
        "breaker_threshold": 3,
        "breaker_cooldown": 5.0,
        # The breaker's mechanics on their own; the tests of whose failures count set more.
        "breaker_min_callers": 1,
    }
    values.update(changes)
    return UpstreamSettings(**values)  # type: ignore[arg-type]


def guard(fake: FakeTime, *, jitter: float = 0.5, **changes: object) -> UpstreamGuard:
    """A guard on the fake clock; jitter 0.5 makes the backoff factor exactly 1."""
    return UpstreamGuard(
        settings(**changes), clock=fake.clock, sleep=fake.sleep, jitter=lambda: jitter
    )


def metric(name: str, upstream: str) -> float:
    return REGISTRY.get_sample_value(name, {"upstream": upstream}) or 0.0


async def started_within_a_second(event: asyncio.Event) -> None:
    """Wait for an attempt to start; fail instead of hanging when it never does."""
    async with asyncio.timeout(1):
        await event.wait()


async def open_breaker(upstream_guard: UpstreamGuard) -> None:
    for _ in range(upstream_guard.settings.breaker_threshold):
        with pytest.raises(UpstreamError):
            await upstream_guard.run(Script(*[ErrorKind.UNAVAILABLE] * 10))
    assert upstream_guard.breaker.state == "open"


# --- retries and the deadline ---------------------------------------------------------


async def test_success_first_try_gets_the_whole_deadline() -> None:
    fake = FakeTime()
    attempt = Script()
    assert await guard(fake).run(attempt) == "ok"
    assert attempt.calls == [10.0]
    assert fake.sleeps == []


async def test_unavailable_is_retried_then_succeeds() -> None:
    fake = FakeTime()
    retries_before = metric("gateway_upstream_retries_total", "retry-ok")
    attempt = Script(ErrorKind.UNAVAILABLE)
    assert await guard(fake, name="retry-ok").run(attempt) == "ok"
    assert len(attempt.calls) == 2
    assert attempt.calls[1] == pytest.approx(10.0 - 0.1)  # the backoff came off the deadline
    assert metric("gateway_upstream_retries_total", "retry-ok") == retries_before + 1


@pytest.mark.parametrize(
    "kind",
    [ErrorKind.UNAUTHENTICATED, ErrorKind.FORBIDDEN, ErrorKind.BAD_REQUEST, ErrorKind.BAD_RESPONSE],
)
async def test_caller_and_shape_errors_are_not_retried(kind: ErrorKind) -> None:
    fake = FakeTime()
    attempt = Script(kind)
    with pytest.raises(UpstreamError) as caught:
        await guard(fake).run(attempt)
    assert caught.value is attempt.raised[0]
    assert len(attempt.calls) == 1 and fake.sleeps == []


@pytest.mark.parametrize("max_retries", [0, 1, 3])
async def test_retries_are_bounded(max_retries: int) -> None:
    fake = FakeTime()
    attempt = Script(*[ErrorKind.TIMEOUT] * 10)
    with pytest.raises(UpstreamError) as caught:
        await guard(fake, max_retries=max_retries, breaker_threshold=100).run(attempt)
    assert caught.value is attempt.raised[-1]
    assert len(attempt.calls) == 1 + max_retries


async def test_backoff_doubles_each_retry() -> None:
    fake = FakeTime()
    attempt = Script(*[ErrorKind.UNAVAILABLE] * 3)
    assert await guard(fake, max_retries=3, breaker_threshold=100).run(attempt) == "ok"
    assert fake.sleeps == pytest.approx([0.1, 0.2, 0.4])


@pytest.mark.parametrize("jitter", [0.0, 0.25, 0.999])
async def test_backoff_jitter_stays_between_half_and_one_and_a_half(jitter: float) -> None:
    fake = FakeTime()
    attempt = Script(*[ErrorKind.UNAVAILABLE] * 3)
    await guard(fake, jitter=jitter, max_retries=3, breaker_threshold=100).run(attempt)
    assert fake.sleeps == pytest.approx([0.1 * 2**n * (0.5 + jitter) for n in range(3)])
    for n, slept in enumerate(fake.sleeps):
        assert 0.5 * 0.1 * 2**n <= slept < 1.5 * 0.1 * 2**n


async def test_default_jitter_spreads_the_backoff() -> None:
    first_sleeps = set()
    for _ in range(20):
        fake = FakeTime()
        upstream_guard = UpstreamGuard(settings(), clock=fake.clock, sleep=fake.sleep)
        await upstream_guard.run(Script(ErrorKind.UNAVAILABLE))
        first_sleeps.add(fake.sleeps[0])
    assert all(0.05 <= s < 0.15 for s in first_sleeps)
    assert len(first_sleeps) > 1


@pytest.mark.parametrize(
    ("kind", "retry_after"), [(ErrorKind.THROTTLED, 2.5), (ErrorKind.UNAVAILABLE, 0.0)]
)
async def test_retry_after_replaces_the_backoff(kind: ErrorKind, retry_after: float) -> None:
    fake = FakeTime()
    attempt = Script(kind, retry_after=retry_after)
    assert await guard(fake).run(attempt) == "ok"
    assert fake.sleeps == [retry_after]


async def test_gives_up_at_once_when_retry_after_passes_the_deadline() -> None:
    fake = FakeTime()
    attempt = Script(ErrorKind.THROTTLED, retry_after=30)
    with pytest.raises(UpstreamError) as caught:
        await guard(fake).run(attempt)
    assert caught.value.kind is ErrorKind.THROTTLED
    assert len(attempt.calls) == 1 and fake.sleeps == []


async def test_gives_up_when_the_next_backoff_would_pass_the_deadline() -> None:
    fake = FakeTime()
    attempt = Script(*[ErrorKind.UNAVAILABLE] * 10)
    upstream_guard = guard(
        fake, deadline=1.0, retry_backoff=0.4, max_retries=10, breaker_threshold=100
    )
    with pytest.raises(UpstreamError):
        await upstream_guard.run(attempt)
    # Slept 0.4 s; the next backoff (0.8 s) would end at 1.2 s, past the 1 s deadline.
    assert fake.sleeps == pytest.approx([0.4])
    assert len(attempt.calls) == 2
    assert fake.now - START < 1.0


async def test_a_hanging_attempt_times_out_within_the_deadline() -> None:
    upstream_guard = UpstreamGuard(settings(deadline=0.05))  # retries allowed: none fit

    async def hang(remaining: float) -> str:
        assert remaining <= 0.05
        await asyncio.sleep(10)
        return "never"

    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(UpstreamError) as caught:
        await upstream_guard.run(hang)
    elapsed = loop.time() - started
    assert caught.value.kind is ErrorKind.TIMEOUT
    assert 0.04 <= elapsed < 0.5


@pytest.mark.parametrize("exception", [ValueError("bug"), TimeoutError("the attempt's own")])
async def test_other_exceptions_propagate_unchanged(exception: Exception) -> None:
    fake = FakeTime()
    calls = 0

    async def broken(remaining: float) -> str:
        nonlocal calls
        calls += 1
        raise exception

    upstream_guard = guard(fake, breaker_threshold=1)
    with pytest.raises(type(exception)) as caught:
        await upstream_guard.run(broken)
    assert caught.value is exception
    assert calls == 1
    assert upstream_guard.breaker.state == "closed"


# --- circuit breaker --------------------------------------------------------------------


async def test_breaker_opens_after_threshold_consecutive_failures() -> None:
    fake = FakeTime()
    upstream_guard = guard(fake, name="breaker-opens", max_retries=0)
    for kinds in ([ErrorKind.UNAVAILABLE] * 2, [], [ErrorKind.TIMEOUT] * 2):
        for kind in kinds:
            with pytest.raises(UpstreamError):
                await upstream_guard.run(Script(kind))
        if not kinds:
            await upstream_guard.run(Script())  # a success resets the count
    assert upstream_guard.breaker.state == "closed"
    assert metric("gateway_circuit_breaker_open", "breaker-opens") == 0

    with pytest.raises(UpstreamError) as caught:
        await upstream_guard.run(Script(ErrorKind.BAD_RESPONSE))
    assert not isinstance(caught.value, CircuitOpen)  # the failure that opened it is reported
    assert upstream_guard.breaker.state == "open"
    assert metric("gateway_circuit_breaker_open", "breaker-opens") == 1


async def test_open_breaker_fails_fast_without_calling_the_upstream() -> None:
    fake = FakeTime()
    upstream_guard = guard(fake, max_retries=0)
    await open_breaker(upstream_guard)
    fake.now += 2.0
    attempt = Script()
    with pytest.raises(CircuitOpen) as caught:
        await upstream_guard.run(attempt)
    assert attempt.calls == []
    assert caught.value.kind is ErrorKind.UNAVAILABLE
    assert caught.value.retry_after == pytest.approx(3.0)  # what is left of the cool-down


async def test_retries_stop_once_the_calls_own_failures_open_the_breaker() -> None:
    fake = FakeTime()
    attempt = Script(*[ErrorKind.UNAVAILABLE] * 10)
    with pytest.raises(UpstreamError) as caught:
        await guard(fake, breaker_threshold=2, max_retries=5).run(attempt)
    assert not isinstance(caught.value, CircuitOpen)
    assert caught.value is attempt.raised[-1]
    assert len(attempt.calls) == 2 and len(fake.sleeps) == 1  # no sleep before a sure refusal


async def test_after_the_cooldown_exactly_one_probe_goes_through() -> None:
    fake = FakeTime()
    upstream_guard = guard(fake, name="breaker-probe", max_retries=0)
    await open_breaker(upstream_guard)
    fake.now += 5.0
    assert upstream_guard.breaker.state == "half_open"

    probe_started = asyncio.Event()
    release = asyncio.Event()

    async def slow_probe(remaining: float) -> str:
        probe_started.set()
        await release.wait()
        return "ok"

    probe = asyncio.create_task(upstream_guard.run(slow_probe))
    await started_within_a_second(probe_started)
    others = [Script() for _ in range(3)]
    refusals = await asyncio.gather(
        *(upstream_guard.run(attempt) for attempt in others), return_exceptions=True
    )
    assert all(isinstance(refusal, CircuitOpen) for refusal in refusals)
    assert all(attempt.calls == [] for attempt in others)
    assert metric("gateway_circuit_breaker_open", "breaker-probe") == 1

    release.set()
    assert await probe == "ok"
    assert upstream_guard.breaker.state == "closed"
    assert metric("gateway_circuit_breaker_open", "breaker-probe") == 0
    assert await upstream_guard.run(Script()) == "ok"


async def test_a_failed_probe_reopens_for_another_cooldown() -> None:
    fake = FakeTime()
    upstream_guard = guard(fake, max_retries=2)
    await open_breaker(upstream_guard)
    fake.now += 5.0
    probe = Script(ErrorKind.UNAVAILABLE)
    with pytest.raises(UpstreamError) as caught:
        await upstream_guard.run(probe)
    assert not isinstance(caught.value, CircuitOpen)
    assert len(probe.calls) == 1  # a failed probe is not retried
    assert upstream_guard.breaker.state == "open"
    with pytest.raises(CircuitOpen) as refused:
        await upstream_guard.run(Script())
    assert refused.value.retry_after == pytest.approx(5.0)
    fake.now += 5.0
    assert await upstream_guard.run(Script()) == "ok"
    assert upstream_guard.breaker.state == "closed"


async def test_a_probe_without_a_verdict_frees_the_probe_slot() -> None:
    fake = FakeTime()
    upstream_guard = guard(fake, max_retries=0)
    await open_breaker(upstream_guard)
    fake.now += 5.0

    async def broken(remaining: float) -> str:
        raise ValueError("bug")

    with pytest.raises(ValueError, match="bug"):
        await upstream_guard.run(broken)
    assert upstream_guard.breaker.state == "half_open"

    started = asyncio.Event()

    async def hang(remaining: float) -> str:
        started.set()
        await asyncio.sleep(10)
        return "never"

    cancelled = asyncio.create_task(upstream_guard.run(hang))
    await started_within_a_second(started)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert upstream_guard.breaker.state == "half_open"

    assert await upstream_guard.run(Script()) == "ok"  # the next call is the probe
    assert upstream_guard.breaker.state == "closed"


@pytest.mark.parametrize(
    "kind",
    [
        ErrorKind.UNAUTHENTICATED,
        ErrorKind.FORBIDDEN,
        ErrorKind.BAD_REQUEST,
        ErrorKind.THROTTLED,
        ErrorKind.REFUSED,
    ],
)
async def test_refusals_and_throttling_are_no_evidence_either_way(kind: ErrorKind) -> None:
    fake = FakeTime()
    upstream_guard = guard(fake, max_retries=0, breaker_threshold=3)
    for _ in range(2):
        with pytest.raises(UpstreamError):
            await upstream_guard.run(Script(ErrorKind.UNAVAILABLE))
    for _ in range(10):
        with pytest.raises(UpstreamError):
            await upstream_guard.run(Script(kind))
    assert upstream_guard.breaker.state == "closed"  # they did not count...
    with pytest.raises(UpstreamError):
        await upstream_guard.run(Script(ErrorKind.UNAVAILABLE))
    assert upstream_guard.breaker.state == "open"  # ...nor reset the two failures before them


def tenant(name: str, *, verified: bool = True) -> Requester:
    return Requester(name, origin=f"10.0.0.{len(name)}", verified=verified)


async def test_one_caller_failing_again_and_again_cannot_open_the_breaker() -> None:
    fake = FakeTime()
    upstream_guard = guard(fake, max_retries=0, breaker_threshold=5, breaker_min_callers=3)
    mallory = tenant("mallory")
    for _ in range(50):  # an input the upstream answers with a 500, sent fifty times
        with pytest.raises(UpstreamError):
            await upstream_guard.run(Script(ErrorKind.UNAVAILABLE), mallory)
    assert upstream_guard.breaker.state == "closed"
    assert await upstream_guard.run(Script(), tenant("alice")) == "ok"


async def test_failures_from_enough_distinct_callers_open_the_breaker() -> None:
    fake = FakeTime()
    upstream_guard = guard(fake, max_retries=0, breaker_threshold=5, breaker_min_callers=3)
    for name in ("alice", "alice", "alice", "bob"):
        with pytest.raises(UpstreamError):
            await upstream_guard.run(Script(ErrorKind.TIMEOUT), tenant(name))
    assert upstream_guard.breaker.state == "closed"  # four failures, two callers
    with pytest.raises(UpstreamError) as caught:
        await upstream_guard.run(Script(ErrorKind.BAD_RESPONSE), tenant("carol"))
    assert not isinstance(caught.value, CircuitOpen)
    assert upstream_guard.breaker.state == "open"
    with pytest.raises(CircuitOpen):
        await upstream_guard.run(Script(), tenant("dave"))


async def test_failures_of_unverified_credentials_never_count() -> None:
    fake = FakeTime()
    upstream_guard = guard(fake, max_retries=0, breaker_threshold=3, breaker_min_callers=2)
    for index in range(30):  # invented tokens, each a caller of its own
        with pytest.raises(UpstreamError):
            await upstream_guard.run(
                Script(ErrorKind.UNAVAILABLE), tenant(f"invented-{index}", verified=False)
            )
    assert upstream_guard.breaker.state == "closed"


async def test_failures_to_connect_count_whoever_saw_them() -> None:
    fake = FakeTime()
    upstream_guard = guard(fake, max_retries=0, breaker_threshold=3, breaker_min_callers=3)
    stranger = tenant("stranger", verified=False)

    async def unreachable(remaining: float) -> str:
        raise UpstreamError(ErrorKind.UNAVAILABLE, "oma", "could not connect", at_connect=True)

    for _ in range(3):
        with pytest.raises(UpstreamError):
            await upstream_guard.run(unreachable, stranger)
    assert upstream_guard.breaker.state == "open"


async def test_an_unverified_probe_that_fails_leaves_the_breaker_to_the_next_probe() -> None:
    fake = FakeTime()
    upstream_guard = guard(fake, max_retries=0)
    await open_breaker(upstream_guard)
    fake.now += 5.0
    with pytest.raises(UpstreamError) as caught:
        await upstream_guard.run(Script(ErrorKind.UNAVAILABLE), tenant("x", verified=False))
    assert not isinstance(caught.value, CircuitOpen)
    # Its failure says nothing: still half-open, and the next caller probes at once.
    assert upstream_guard.breaker.state == "half_open"
    assert await upstream_guard.run(Script(), tenant("alice")) == "ok"
    assert upstream_guard.breaker.state == "closed"


def test_breaker_on_its_own() -> None:
    fake = FakeTime()
    breaker = CircuitBreaker("breaker-alone", threshold=2, cooldown=5, clock=fake.clock)
    assert metric("gateway_circuit_breaker_open", "breaker-alone") == 0  # closed from the start
    assert breaker.admit() is None
    breaker.record_failure("alice")
    assert breaker.state == "closed"
    breaker.record_failure("alice")
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen) as cooling:
        breaker.admit()
    assert cooling.value.retry_after == pytest.approx(5.0)
    with pytest.raises(CircuitOpen):
        breaker.fail_fast()

    fake.now += 5
    assert breaker.state == "half_open"
    breaker.fail_fast()  # cooled down: nothing to refuse before the probe
    probe = breaker.admit()
    assert probe is not None
    with pytest.raises(CircuitOpen) as during_probe:
        breaker.admit()
    assert during_probe.value.retry_after == pytest.approx(1.0)
    breaker.record_failure(None)  # one failed probe is enough to re-open
    assert breaker.state == "open"

    fake.now += 5
    probe = breaker.admit()
    assert probe is not None
    breaker.release(object())  # another's token frees nothing
    assert breaker.state == "half_open"
    with pytest.raises(CircuitOpen):
        breaker.admit()
    breaker.release(probe)
    assert breaker.admit() is not None  # the slot is free again
    breaker.record_success()
    assert breaker.state == "closed"
    assert metric("gateway_circuit_breaker_open", "breaker-alone") == 0
    breaker.record_failure("alice")
    assert breaker.state == "closed"  # the count started again


def test_a_breaker_needing_several_callers_counts_each_once() -> None:
    fake = FakeTime()
    breaker = CircuitBreaker("oma", threshold=3, cooldown=5, clock=fake.clock, min_callers=2)
    for _ in range(5):
        breaker.record_failure("alice")
    assert breaker.state == "closed"
    breaker.record_failure(None)  # nobody's failure is a source of its own
    assert breaker.state == "open"


# --- the guard with its rate limiter and concurrency cap -----------------------------------


async def test_rate_limit_refusal_is_not_retried_and_not_held_against_the_upstream() -> None:
    fake = FakeTime()
    upstream_guard = guard(fake, rate_limit=1, rate_limit_max_wait=0.5, breaker_threshold=1)
    attempt = Script()
    assert await upstream_guard.run(attempt) == "ok"
    with pytest.raises(UpstreamError) as caught:
        await upstream_guard.run(attempt)
    assert caught.value.kind is ErrorKind.THROTTLED
    assert len(attempt.calls) == 1 and fake.sleeps == []
    assert upstream_guard.breaker.state == "closed"


async def test_rate_limit_wait_is_bounded_by_the_deadline() -> None:
    bucket = TokenBucket("oma", rate=10, burst=1, max_wait=5)
    upstream_guard = UpstreamGuard(
        settings(deadline=0.05, breaker_threshold=1), rate_limiter=bucket
    )
    attempt = Script()
    await upstream_guard.run(attempt)  # takes the only slot for 0.1 s
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(UpstreamError) as caught:
        await upstream_guard.run(attempt)
    assert caught.value.kind is ErrorKind.THROTTLED
    assert loop.time() - started < 0.09  # gave up at the deadline, before the slot
    assert len(attempt.calls) == 1
    assert upstream_guard.breaker.state == "closed"


async def test_a_probe_refused_by_the_rate_limit_leaves_the_breaker_half_open() -> None:
    fake = FakeTime()
    upstream_guard = guard(
        fake,
        max_retries=0,
        breaker_threshold=1,
        breaker_cooldown=5,
        rate_limit=0.1,  # one call per 10 s
        rate_limit_max_wait=1,
    )
    await open_breaker(upstream_guard)
    fake.now += 5
    for _ in range(2):  # each refusal frees the probe slot for the next call
        with pytest.raises(UpstreamError) as caught:
            await upstream_guard.run(Script())
        assert caught.value.kind is ErrorKind.THROTTLED
        assert not isinstance(caught.value, CircuitOpen)
        assert upstream_guard.breaker.state == "half_open"
    fake.now += 5
    assert await upstream_guard.run(Script()) == "ok"
    assert upstream_guard.breaker.state == "closed"


async def test_rate_limit_waits_are_observed_with_any_limiter() -> None:
    fake = FakeTime()

    class SlowLimiter:
        rate = 1.0

        async def acquire(self) -> float:
            await fake.sleep(0.25)
            return 0.25

        def free_slots(self) -> float:
            return 0.0

    name = "rate-metric"
    count = metric("gateway_rate_limit_wait_seconds_count", name)
    total = metric("gateway_rate_limit_wait_seconds_sum", name)
    upstream_guard = UpstreamGuard(
        settings(name=name), rate_limiter=SlowLimiter(), clock=fake.clock, sleep=fake.sleep
    )
    assert isinstance(upstream_guard.rate_limiter, SlowLimiter)
    await upstream_guard.run(Script(ErrorKind.UNAVAILABLE))
    assert metric("gateway_rate_limit_wait_seconds_count", name) == count + 2  # every try
    assert metric("gateway_rate_limit_wait_seconds_sum", name) == pytest.approx(total + 0.5)


async def test_concurrency_cap() -> None:
    upstream_guard = UpstreamGuard(settings(max_concurrency=2))
    in_flight = 0
    peak = 0

    async def attempt(remaining: float) -> str:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.005)
        in_flight -= 1
        return "ok"

    assert await asyncio.gather(*(upstream_guard.run(attempt) for _ in range(10))) == ["ok"] * 10
    assert peak == 2


async def test_waiting_for_a_concurrency_slot_counts_against_the_deadline() -> None:
    upstream_guard = UpstreamGuard(settings(max_concurrency=1, deadline=0.05, max_retries=0))
    held = asyncio.Event()

    async def hold(remaining: float) -> str:
        held.set()
        await asyncio.sleep(10)
        return "never"

    holder = asyncio.create_task(upstream_guard.run(hold))
    await started_within_a_second(held)
    attempt = Script()
    with pytest.raises(UpstreamError) as caught:
        await upstream_guard.run(attempt)
    assert caught.value.kind is ErrorKind.TIMEOUT
    assert attempt.calls == []
    with pytest.raises(UpstreamError):
        await holder


async def test_with_the_rate_limit_off_a_hundred_calls_go_out_without_waiting() -> None:
    fake = FakeTime()
    name = "unlimited"
    waits = metric("gateway_rate_limit_wait_seconds_count", name)
    upstream_guard = guard(fake, name=name, rate_limit=0)
    started: list[float] = []

    async def attempt(remaining: float) -> str:
        started.append(fake.now)
        await asyncio.sleep(0)
        return "ok"

    assert await asyncio.gather(*(upstream_guard.run(attempt) for _ in range(100))) == ["ok"] * 100
    assert started == [START] * 100 and fake.sleeps == []
    assert metric("gateway_rate_limit_wait_seconds_count", name) == waits  # no queue at all


async def test_the_rate_limit_serves_callers_in_turn() -> None:
    fake = FakeTime()

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(0)
        fake.now += seconds

    upstream_guard = UpstreamGuard(
        settings(rate_limit=10, rate_limit_max_wait=60, deadline=120),
        clock=fake.clock,
        sleep=sleep,
    )
    served_at: dict[str, list[float]] = {"mallory": [], "alice": []}

    async def answer(remaining: float) -> str:
        return "ok"

    async def call(owner: str) -> None:
        await upstream_guard.run(answer, tenant(owner))
        served_at[owner].append(fake.now - START)

    # Mallory's linked query sends 50 calls at once; alice's one call comes just after.
    await asyncio.gather(*(call("mallory") for _ in range(50)), call("alice"))
    # Alice's call goes in the first round, not after mallory's fifty (5 s at 10/s).
    assert served_at["alice"] == [0.0]
    # Ten in each window and its margin: the 51st call opens the sixth.
    assert max(served_at["mallory"]) == pytest.approx(5 * 1.05)


async def test_invented_credentials_share_a_slice_of_the_quota_and_tenants_the_rest() -> None:
    fake = FakeTime()

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(0)
        fake.now += seconds

    upstream_guard = UpstreamGuard(
        settings(rate_limit=10, rate_limit_max_wait=60, deadline=120, unverified_share=0.2),
        clock=fake.clock,
        sleep=sleep,
    )
    served_at: dict[str, list[float]] = {"flood": [], "alice": []}

    async def answer(remaining: float) -> str:
        return "ok"

    async def call(who: str, requester: Requester) -> None:
        await upstream_guard.run(answer, requester)
        served_at[who].append(fake.now - START)

    # One client sends forty requests, each with a token of its own invention.
    flood = [
        call("flood", Requester(f"invented-{i}", origin="203.0.113.9", verified=False))
        for i in range(40)
    ]
    alice = [call("alice", tenant("alice")) for _ in range(40)]
    await asyncio.gather(*flood, *alice)
    # The flood gets two calls a second (a fifth of ten), the tenant all the others: eight
    # in each window.
    assert len([at for at in served_at["flood"] if at < 1.0]) == 2
    assert len([at for at in served_at["alice"] if at < 1.0]) == 8
    assert max(served_at["alice"]) < 4.5  # 40 calls in the fifth window, not the sixth


async def test_the_quota_serves_waiting_answers_then_deferred_parts_then_refreshes() -> None:
    fake = FakeTime()

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(0)
        fake.now += seconds

    upstream_guard = UpstreamGuard(
        settings(rate_limit=10, rate_limit_max_wait=60, deadline=120),
        # One slot at a time: the order in which the queue hands them out is the order served.
        rate_limiter=TokenBucket("oma", 10, burst=1, max_wait=60, clock=fake.clock, sleep=sleep),
        clock=fake.clock,
        sleep=sleep,
    )
    served: list[str] = []

    async def answer(remaining: float) -> str:
        return "ok"

    async def call(label: str, requester: Requester) -> None:
        await upstream_guard.run(answer, requester)
        served.append(label)

    # Refreshes and deferred parts are queued first; tenants' answers come after them.
    calls = [call("refresh", Requester("bob", priority="background")) for _ in range(5)]
    calls += [call("bob deferred", Requester("bob", priority="deferred")) for _ in range(5)]
    calls += [call("carol deferred", Requester("carol", priority="deferred")) for _ in range(2)]
    calls += [call("alice", Requester("alice")) for _ in range(2)]
    calls += [call("dave", Requester("dave"))]
    await asyncio.gather(*calls)
    # Every waiting answer first (in turns), then the deferred parts (in turns between bob
    # and carol), then the refreshes, whatever the order they came in.
    assert served == [
        "alice",
        "dave",
        "alice",
        "bob deferred",
        "carol deferred",
        "bob deferred",
        "carol deferred",
        *["bob deferred"] * 3,
        *["refresh"] * 5,
    ]


async def test_a_calls_priority_comes_from_its_context() -> None:
    from gateway.upstreams.resilience import CALL_PRIORITY

    assert CALL_PRIORITY.get() == "interactive"
    seen: list[str] = []

    async def deferred_work() -> None:
        CALL_PRIORITY.set("deferred")
        seen.append(CALL_PRIORITY.get())

    await asyncio.create_task(deferred_work())
    assert seen == ["deferred"] and CALL_PRIORITY.get() == "interactive"  # its own context

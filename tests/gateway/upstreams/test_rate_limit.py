"""The in-process rate limits: the quota's shape (no window over its limit, the burst at
once, then the pace), slots reserved before sleeping, and the pace of a lane's gate."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import UpstreamSettings
from gateway.errors import ErrorKind, UpstreamError
from gateway.upstreams.rate_limit import (
    ARRIVAL_MARGIN,
    Quota,
    SliceOf,
    SlidingWindowLimiter,
    TokenBucket,
)
from tests.gateway.upstreams.test_resilience import START, FakeTime

# The documented quota, 10 calls in any second, as the defaults shape it.
DEFAULTS = UpstreamSettings(name="cbc", base_url="http://cbc")
SPAN = 1.0 + ARRIVAL_MARGIN
STEP = SPAN / 10


def most_in_a_window(times: list[float], window: float) -> int:
    """The most of ``times`` any closed window of ``window`` seconds holds, wherever it
    starts (the worst windows start at one of them)."""
    ordered = sorted(times)
    return max((sum(1 for t in ordered if s <= t <= s + window) for s in ordered), default=0)


def limiter(quota: Quota, fake: FakeTime, max_wait: float = 3600) -> SlidingWindowLimiter:
    return SlidingWindowLimiter("cbc", quota, max_wait=max_wait, clock=fake.clock, sleep=fake.sleep)


# --- the quota's shape ----------------------------------------------------------------------


def test_the_defaults_are_ten_calls_in_any_second_five_at_once() -> None:
    quota = Quota.of(DEFAULTS)
    assert (quota.limit, quota.window, quota.calls, quota.burst) == (10, 1.0, 10, 5)
    assert quota.span == pytest.approx(1.05) and ARRIVAL_MARGIN == 0.05
    assert quota.interval == pytest.approx(0.105)
    assert quota.tolerance == pytest.approx(4 * 0.105)
    assert quota.rate == pytest.approx(10 / 1.05)


def test_a_quota_is_whole_calls_in_a_window() -> None:
    assert Quota(2.5, window=1, burst=5).calls == 2  # 2.5 a second allows no third call
    assert Quota(2.5, window=1, burst=5).burst == 2  # the burst at most the calls
    assert Quota(10, window=1, burst=0).burst == 1  # and at least one
    assert Quota(10, window=1, burst=3.7).burst == 3
    slow = Quota(0.1, window=1, burst=5)  # one call every 10 s
    assert (slow.calls, slow.burst) == (1, 1)
    assert slow.span == pytest.approx(10 + ARRIVAL_MARGIN)
    assert slow.rate == pytest.approx(1 / (10 + ARRIVAL_MARGIN))
    assert Quota(100, window=60, burst=10, margin=0).rate == pytest.approx(100 / 60)


def test_no_limit_is_no_pace() -> None:
    assert Quota(0, window=1, burst=5).rate == 0.0
    assert Quota(-1, window=1, burst=5).rate == 0.0


def test_replicas_share_whole_calls_and_the_burst() -> None:
    quota = Quota(10, window=1, burst=5)
    halves = quota.share(2)
    assert (halves.calls, halves.burst, halves.window) == (5, 2, 1)
    assert halves.span == pytest.approx(SPAN)
    thirds = quota.share(3)  # 3 each: 9 in any second together, never 12
    assert (thirds.calls, thirds.burst) == (3, 1)
    many = quota.share(20)  # more replicas than calls: one call every 2 s each
    assert (many.calls, many.span) == (1, pytest.approx(2 + ARRIVAL_MARGIN))
    assert Quota(10, window=1, burst=5, margin=0.2).share(2).span == pytest.approx(1.2)


# --- the in-process limiter -----------------------------------------------------------------


async def test_no_limit_never_waits() -> None:
    async def no_sleep(seconds: float) -> None:
        raise AssertionError("an unlimited limiter never sleeps")

    unlimited = SlidingWindowLimiter("oma", Quota(0, window=1, burst=5), max_wait=0, sleep=no_sleep)
    assert unlimited.rate == 0.0 and unlimited.free_slots() == math.inf
    assert [await unlimited.acquire() for _ in range(100)] == [0.0] * 100


async def test_after_an_idle_spell_the_burst_goes_then_the_pace_then_the_next_window() -> None:
    fake = FakeTime()
    quota = Quota.of(DEFAULTS)
    limit = limiter(quota, fake, max_wait=DEFAULTS.rate_limit_max_wait)
    assert limit.rate == quota.rate and limit.free_slots() == 5
    waits = [await limit.acquire() for _ in range(12)]
    # Five at once; the other five of the window at the pace; the eleventh a whole window
    # (and the margin) after the first, and the twelfth with it: the burst again.
    assert waits[:5] == [0.0] * 5
    assert waits[5:10] == pytest.approx([STEP] * 5)
    assert sum(waits[:11]) == pytest.approx(SPAN)
    assert waits[11] == 0.0
    fake.now += 10  # idle: the burst is back
    assert limit.free_slots() == 5
    assert [await limit.acquire() for _ in range(5)] == [0.0] * 5
    assert limit.free_slots() == 0


async def test_a_whole_burst_still_keeps_each_window_to_the_limit() -> None:
    fake = FakeTime()
    limit = limiter(Quota(10, window=1, burst=10), fake)
    waits = [await limit.acquire() for _ in range(21)]
    assert waits == pytest.approx([0.0] * 10 + [SPAN] + [0.0] * 9 + [SPAN])


async def test_concurrent_callers_get_consecutive_slots() -> None:
    fake = FakeTime()
    woken_at: list[float] = []

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(0)  # let the other callers run meanwhile
        woken_at.append(fake.now + seconds)

    limit = SlidingWindowLimiter(
        "oma", Quota(10, window=1, burst=1), max_wait=5, clock=fake.clock, sleep=sleep
    )
    waits = await asyncio.gather(*(limit.acquire() for _ in range(5)))
    # First come, first served, each a step after the one before: no herd on one slot.
    assert waits == pytest.approx([0.0, STEP, 2 * STEP, 3 * STEP, 4 * STEP])
    assert sorted(woken_at) == pytest.approx([START + n * STEP for n in (1, 2, 3, 4)])


async def test_the_defaults_serve_a_linked_querys_99_calls_whole_within_the_deadline() -> None:
    # 100 subscriptions with their resources: 99 order calls to CBC at once.
    fake = FakeTime()

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(0)

    limit = SlidingWindowLimiter(
        "cbc",
        Quota.of(DEFAULTS),
        max_wait=DEFAULTS.rate_limit_max_wait,
        clock=fake.clock,
        sleep=sleep,
    )
    waits = await asyncio.gather(*(limit.acquire() for _ in range(99)))
    # Nine whole windows, then the burst and four steps of the tenth.
    assert max(waits) == pytest.approx(9 * SPAN + 4 * STEP)
    assert max(waits) <= DEFAULTS.rate_limit_max_wait
    assert DEFAULTS.deadline - max(waits) >= 1.0  # a second left for the last answer
    assert most_in_a_window([START + w for w in waits], 1.0) == 10


async def test_throttled_at_once_when_the_wait_would_exceed_max_wait() -> None:
    fake = FakeTime()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)  # time stands still: the queue only grows

    limit = SlidingWindowLimiter(
        "cbc", Quota(2, window=1, burst=1), max_wait=0.6, clock=fake.clock, sleep=sleep
    )
    assert await limit.acquire() == 0.0
    assert await limit.acquire() == pytest.approx(SPAN / 2)
    with pytest.raises(UpstreamError) as caught:
        await limit.acquire()  # a window after the first: over max_wait
    assert caught.value.kind is ErrorKind.THROTTLED and caught.value.upstream == "cbc"
    assert caught.value.retry_after == pytest.approx(SPAN - 0.6)  # when it is short enough
    assert caught.value.message == "the gateway's request-rate limit for this upstream is exhausted"
    assert slept == pytest.approx([SPAN / 2])
    fake.now += SPAN - 0.6  # a refusal reserved nothing
    assert await limit.acquire() == pytest.approx(0.6)


async def test_a_quota_under_one_call_a_second_is_still_a_limit() -> None:
    fake = FakeTime()
    slow = limiter(Quota(1, window=1, burst=1), fake)
    assert slow.free_slots() == 1
    assert [await slow.acquire(), await slow.acquire()] == [0.0, pytest.approx(SPAN)]
    bucket = TokenBucket("cbc", rate=1, burst=1, max_wait=5, clock=fake.clock, sleep=fake.sleep)
    assert bucket.free_slots() == 1


async def test_a_wait_of_exactly_max_wait_is_served() -> None:
    fake = FakeTime()
    limit = limiter(Quota(1, window=1, burst=1, margin=0), fake, max_wait=1.0)
    assert [await limit.acquire(), await limit.acquire()] == [0.0, 1.0]


async def test_a_cancelled_waiter_gives_its_slot_back() -> None:
    fake = FakeTime()
    forever = asyncio.Event()

    async def sleep(seconds: float) -> None:
        await forever.wait()

    limit = SlidingWindowLimiter(
        "oma", Quota(2, window=1, burst=1), max_wait=5, clock=fake.clock, sleep=sleep
    )
    await limit.acquire()
    await cancelled(limit.acquire())  # held the second slot, half a window on
    limit._sleep = fake.sleep
    assert await limit.acquire() == pytest.approx(SPAN / 2)  # that slot again, not the third
    assert await limit.acquire() == pytest.approx(SPAN / 2)  # then a window after the first


async def test_a_cancelled_waiter_at_a_full_window_gives_back_the_slot_it_pushed_out() -> None:
    fake = FakeTime()
    forever = asyncio.Event()
    hold = True

    async def sleep(seconds: float) -> None:  # time stands still; the third waiter is held
        if hold:
            await forever.wait()

    limit = SlidingWindowLimiter(
        "oma", Quota(2, window=1, burst=2, margin=0), max_wait=5, clock=fake.clock, sleep=sleep
    )
    assert [await limit.acquire(), await limit.acquire()] == [0.0, 0.0]
    await cancelled(limit.acquire())  # a window after the first two
    hold = False
    # Its slot back, and the window's log and pace as they were: the next two go together a
    # window on, and the one after a window after them.
    assert [await limit.acquire() for _ in range(3)] == [1.0, 1.0, 2.0]


async def test_a_cancelled_waiter_with_callers_behind_it_keeps_their_slots() -> None:
    fake = FakeTime()
    forever = asyncio.Event()

    async def sleep(seconds: float) -> None:
        await forever.wait()

    limit = SlidingWindowLimiter(
        "oma", Quota(10, window=1, burst=1), max_wait=5, clock=fake.clock, sleep=sleep
    )
    await limit.acquire()
    first = asyncio.create_task(limit.acquire())
    second = asyncio.create_task(limit.acquire())
    await cancelled(first)
    # The gap stays (it only slows the pace): the next slot comes after the second's.
    limit._sleep = fake.sleep
    assert await limit.acquire() == pytest.approx(3 * STEP)
    await cancelled(second)


async def cancelled(waiter: Awaitable[float]) -> None:
    """Start ``waiter``, let it reserve its slot, then give up."""
    task = asyncio.ensure_future(waiter)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# --- every arrival pattern, on a fake clock ---------------------------------------------------

shapes = st.tuples(
    st.integers(min_value=1, max_value=12),  # calls in a window
    st.sampled_from([0.1, 0.5, 1.0, 2.0]),  # its seconds
    st.integers(min_value=1, max_value=12),  # burst
)
# Each step: a pause, then a caller arrives (or two at once).
arrivals = st.lists(
    st.tuples(
        st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=3.0)),
        st.booleans(),
    ),
    min_size=1,
    max_size=60,
)


# Each step: a pause, then a caller arrives; and maybe one of those waiting gives up.
patterns = st.lists(
    st.tuples(
        st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=3.0)),
        st.one_of(st.none(), st.integers(min_value=0, max_value=60)),
    ),
    min_size=1,
    max_size=60,
)


@given(shapes, patterns)
async def test_no_window_anywhere_ever_holds_more_than_the_limit(
    shape: tuple[int, float, int], pattern: list[tuple[float, int | None]]
) -> None:
    limit_calls, window, burst = shape
    fake = FakeTime()
    asleep: dict[asyncio.Task[object], tuple[float, asyncio.Event]] = {}

    async def sleep(seconds: float) -> None:
        woken = asyncio.Event()
        task = asyncio.current_task()
        assert task is not None
        asleep[task] = (fake.now + seconds, woken)
        await woken.wait()

    limit = SlidingWindowLimiter(
        "cbc",
        Quota(limit_calls, window=window, burst=burst),
        max_wait=3600,
        clock=fake.clock,
        sleep=sleep,
    )
    went: list[float] = []  # when each call went
    waiting: list[asyncio.Task[float]] = []
    for pause, quitter in pattern:
        fake.now += pause
        for task in [each for each in waiting if asleep[each][0] <= fake.now]:
            went.append(asleep[task][0])
            asleep[task][1].set()
            waiting.remove(task)
        task = asyncio.ensure_future(limit.acquire())
        await asyncio.sleep(0)  # its slot reserved: gone at once, or asleep until it
        if task.done():
            went.append(fake.now)
        else:
            waiting.append(task)
        if quitter is not None and waiting:
            await cancelled(waiting.pop(quitter % len(waiting)))
    for task in waiting:
        went.append(asleep[task][0])
        asleep[task][1].set()
    await asyncio.gather(*waiting)
    assert most_in_a_window(went, window) <= limit_calls


@given(shapes, arrivals)
async def test_every_slot_keeps_to_the_window_the_burst_and_the_promised_pace(
    shape: tuple[int, float, int], pattern: list[tuple[float, bool]]
) -> None:
    limit_calls, window, burst = shape
    quota = Quota(limit_calls, window=window, burst=burst)
    fake = FakeTime()

    async def sleep(seconds: float) -> None:  # a caller that waits its slot out elsewhere
        return None

    limit = SlidingWindowLimiter("cbc", quota, max_wait=3600, clock=fake.clock, sleep=sleep)
    slots: list[float] = []
    promised: list[tuple[float, float, int]] = []  # (when, free slots then, slots given then)
    for pause, asks_twice in pattern:
        fake.now += pause
        promised.append((fake.now, limit.free_slots(), len(slots)))
        for _ in range(2 if asks_twice else 1):
            slots.append(fake.now + await limit.acquire())
    # No window of ``window`` seconds, wherever it starts, holds more than the limit, and
    # the call ``calls`` after another goes a whole window and the margin after it.
    assert most_in_a_window(slots, window) <= limit_calls
    for earlier, later in zip(slots, slots[limit_calls:], strict=False):
        assert later - earlier >= quota.span - 1e-9
    # Never more than the burst at one instant.
    assert max(slots.count(at) for at in slots) <= quota.burst
    # What free_slots promised a queue: the n-th slot from then no sooner than
    # (n - free) / rate from then.
    for when, free, before in promised:
        for n, slot in enumerate(slots[before:], start=1):
            assert slot - when >= (n - free) / quota.rate - 1e-9


@given(shapes, st.integers(min_value=1, max_value=80))
async def test_a_backlog_goes_at_the_limit_never_slower(
    shape: tuple[int, float, int], calls: int
) -> None:
    limit_calls, window, burst = shape
    quota = Quota(limit_calls, window=window, burst=burst)
    fake = FakeTime()

    async def sleep(seconds: float) -> None:
        return None

    limit = SlidingWindowLimiter("cbc", quota, max_wait=3600, clock=fake.clock, sleep=sleep)
    waits = [await limit.acquire() for _ in range(calls)]
    # Each window like the first: the burst at once, the rest a step apart, and the next
    # window's first a whole span after this one's.
    expected = [
        (n // quota.calls) * quota.span + max(0, n % quota.calls - quota.burst + 1) * quota.interval
        for n in range(calls)
    ]
    assert waits == pytest.approx(expected)


# --- a pace alone: the gate of a lane ---------------------------------------------------------


async def test_a_bucket_without_a_rate_is_unlimited() -> None:
    async def no_sleep(seconds: float) -> None:
        raise AssertionError("an unlimited bucket never sleeps")

    bucket = TokenBucket("oma", rate=0, max_wait=0, sleep=no_sleep)
    assert bucket.free_slots() == math.inf
    assert [await bucket.acquire() for _ in range(100)] == [0.0] * 100


async def test_a_buckets_burst_goes_through_then_its_steady_rate_applies() -> None:
    fake = FakeTime()
    bucket = TokenBucket("oma", rate=10, burst=3, max_wait=5, clock=fake.clock, sleep=fake.sleep)
    assert bucket.free_slots() == 3
    assert [await bucket.acquire() for _ in range(2)] == [0.0, 0.0]
    assert bucket.free_slots() == pytest.approx(1)
    waits = [0.0, 0.0] + [await bucket.acquire() for _ in range(3)]
    assert waits == pytest.approx([0.0, 0.0, 0.0, 0.1, 0.1])
    fake.now += 10  # idle: the burst is back
    assert [await bucket.acquire() for _ in range(3)] == [0.0] * 3


def test_a_buckets_burst_defaults_to_the_rate_and_at_least_one() -> None:
    assert TokenBucket("oma", rate=10, max_wait=1).burst == 10
    assert TokenBucket("oma", rate=0.5, max_wait=1).burst == 1


async def test_a_bucket_throttles_at_once_past_max_wait_and_reserves_nothing() -> None:
    fake = FakeTime()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    bucket = TokenBucket("cbc", rate=1, burst=1, max_wait=1.5, clock=fake.clock, sleep=sleep)
    assert await bucket.acquire() == 0.0
    assert await bucket.acquire() == 1.0
    with pytest.raises(UpstreamError) as caught:
        await bucket.acquire()
    assert caught.value.kind is ErrorKind.THROTTLED and caught.value.upstream == "cbc"
    assert caught.value.retry_after == pytest.approx(0.5)
    assert slept == [1.0]
    fake.now += 0.5
    assert await bucket.acquire() == pytest.approx(1.5)


async def test_a_cancelled_bucket_waiter_gives_its_slot_back() -> None:
    fake = FakeTime()
    forever = asyncio.Event()

    async def sleep(seconds: float) -> None:
        await forever.wait()

    bucket = TokenBucket("oma", rate=10, burst=1, max_wait=5, clock=fake.clock, sleep=sleep)
    await bucket.acquire()
    await cancelled(bucket.acquire())
    bucket._sleep = fake.sleep
    assert await bucket.acquire() == pytest.approx(0.1)  # not 0.2


async def test_a_slice_goes_at_its_share_of_the_limits_pace() -> None:
    fake = FakeTime()
    quota = Quota.of(DEFAULTS)
    whole = limiter(quota, fake)
    part = SliceOf(whole, 0.2, max_wait=5, clock=fake.clock, sleep=fake.sleep)
    assert part.rate == pytest.approx(0.2 * quota.rate)
    assert part.free_slots() == 1  # one slot at a time
    waits = [await part.acquire() for _ in range(3)]
    assert waits == pytest.approx([0.0, 1 / part.rate, 1 / part.rate])
    assert part.free_slots() == pytest.approx(0, abs=1e-9)


async def test_a_slice_of_a_shared_limit_takes_this_replicas_part() -> None:
    fake = FakeTime()

    class Shared:
        rate = 10.0
        replica_rate = 5.0

        async def acquire(self) -> float:
            return 0.0

        def free_slots(self) -> float:
            return 10.0

    shared = Shared()
    part = SliceOf(shared, 0.2, max_wait=5, clock=fake.clock, sleep=fake.sleep)
    assert part.rate == pytest.approx(1.0)
    shared.replica_rate = 2.5  # more replicas alive: the slice follows
    assert part.rate == pytest.approx(0.5)
    await part.acquire()
    assert await part.acquire() == pytest.approx(2.0)
    shared.replica_rate = 0.0
    assert part.rate == 0.0 and await part.acquire() == 0.0

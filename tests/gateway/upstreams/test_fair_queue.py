"""The rate limit's slots shared between callers in turn."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

import pytest

from gateway.errors import ErrorKind, UpstreamError
from gateway.metrics import REGISTRY
from gateway.upstreams.fair_queue import FairQueue
from gateway.upstreams.rate_limit import TokenBucket

START = 1000.0


class Paced:
    """A limiter of ``rate`` slots a second on a clock that moves only when it waits."""

    def __init__(self, rate: float, burst: float = 1) -> None:
        self.now = START
        self.rate = rate
        self.bucket = TokenBucket(
            "cbc", rate, burst=burst, max_wait=3600, clock=self.clock, sleep=self.sleep
        )
        self.refusals = 0
        self.failure: Exception | None = None

    def free_slots(self) -> float:
        return self.bucket.free_slots()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)
        self.now += seconds

    async def acquire(self) -> float:
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure
        if self.refusals:
            self.refusals -= 1
            raise UpstreamError(ErrorKind.THROTTLED, "cbc", "the shared quota is spent")
        return await self.bucket.acquire()


def queue_for(limiter: Paced, *, max_wait: float = 3600) -> FairQueue:
    return FairQueue("cbc", limiter, max_wait=max_wait, clock=limiter.clock)


async def settle() -> None:
    """Let the queue's pump run until it waits for the next slot."""
    for _ in range(10):
        await asyncio.sleep(0)


def queued(lane: str = "calls") -> float | None:
    """Calls waiting in a lane of the last queue made, as /metrics shows them."""
    return REGISTRY.get_sample_value(
        "gateway_rate_limit_queued_calls", {"upstream": "cbc", "lane": lane}
    )


async def test_a_caller_alone_gets_every_slot_at_the_limiters_pace() -> None:
    limiter = Paced(rate=10, burst=3)
    queue = queue_for(limiter)
    waits = await asyncio.gather(*(queue.acquire("alice") for _ in range(6)))
    assert sorted(waits) == pytest.approx([0.0, 0.0, 0.0, 0.1, 0.2, 0.3])
    assert queued() == 0


async def test_callers_take_turns_so_one_call_never_waits_behind_a_hundred() -> None:
    limiter = Paced(rate=10)
    queue = queue_for(limiter)
    served: list[str] = []

    async def call(owner: str) -> float:
        waited = await queue.acquire(owner)
        served.append(owner)
        return waited

    # Tasks start in order: mallory's hundred calls are queued first, then alice's, bob's.
    mallory = [asyncio.create_task(call("mallory")) for _ in range(100)]
    alice = asyncio.create_task(call("alice"))
    bob = [asyncio.create_task(call("bob")) for _ in range(2)]
    await asyncio.gather(*mallory, alice, *bob)
    # Served in turn: alice's one call and bob's first come after one of mallory's.
    assert served[:6] == ["mallory", "alice", "bob", "mallory", "bob", "mallory"]
    assert await alice == pytest.approx(0.1)
    assert served.count("mallory") == 100


async def test_a_call_whose_turn_would_come_too_late_is_throttled_at_once() -> None:
    limiter = Paced(rate=10)
    queue = queue_for(limiter, max_wait=2)
    mallory = [asyncio.create_task(queue.acquire("mallory")) for _ in range(21)]
    await asyncio.sleep(0)
    with pytest.raises(UpstreamError) as caught:
        await queue.acquire("mallory")  # 21 ahead of it: 2.1 s
    assert caught.value.kind is ErrorKind.THROTTLED
    assert caught.value.retry_after == pytest.approx(0.1)
    # Another caller's turn comes in the next round: not refused.
    assert await queue.acquire("alice") == pytest.approx(0.1)
    await asyncio.gather(*mallory)


async def test_a_caller_that_gives_up_hands_its_turn_on() -> None:
    limiter = Paced(rate=10)
    queue = queue_for(limiter)
    first = asyncio.create_task(queue.acquire("alice"))
    gone = asyncio.create_task(queue.acquire("bob"))
    last = asyncio.create_task(queue.acquire("carol"))
    await asyncio.sleep(0)
    gone.cancel()
    assert await first == 0.0
    assert await last == pytest.approx(0.1)
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert queued() == 0


async def test_a_refusal_of_the_shared_quota_reaches_the_caller_whose_turn_it_is() -> None:
    limiter = Paced(rate=10)
    limiter.refusals = 1
    queue = queue_for(limiter)
    refused = asyncio.create_task(queue.acquire("alice"))
    served = asyncio.create_task(queue.acquire("bob"))
    with pytest.raises(UpstreamError) as caught:
        await refused
    assert caught.value.kind is ErrorKind.THROTTLED
    assert await served == 0.0


async def test_the_burst_already_spent_is_not_counted_on() -> None:
    limiter = Paced(rate=10, burst=10)
    queue = queue_for(limiter, max_wait=0.5)
    burst = await asyncio.gather(*(queue.acquire("alice") for _ in range(10)))
    assert burst == pytest.approx([0.0] * 10)
    # The burst is spent: five more fit in 0.5 s, the rest are refused at once.
    calls = [asyncio.ensure_future(queue.acquire("alice")) for _ in range(15)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    refused = [r for r in results if isinstance(r, UpstreamError)]
    assert len(refused) == 10
    assert sorted(r for r in results if not isinstance(r, UpstreamError)) == pytest.approx(
        [0.1, 0.2, 0.3, 0.4, 0.5]
    )


async def test_a_call_overtaken_by_later_callers_is_throttled_after_max_wait() -> None:
    # Real time: the queue's own bound on the wait, not the clock the limiter paces by.
    limiter = Paced(rate=10)
    queue = FairQueue("cbc", limiter, max_wait=0.05)

    async def never(seconds: float) -> None:
        await asyncio.Event().wait()  # no slot ever comes

    limiter.bucket._sleep = never
    first = await queue.acquire("alice")  # the one slot there is
    with pytest.raises(UpstreamError) as caught:
        await queue.acquire("alice")
    assert first == pytest.approx(0.0, abs=0.01)
    assert caught.value.kind is ErrorKind.THROTTLED  # not a timeout: the breaker ignores it
    assert queued() == 0


async def test_a_limiter_failing_fails_one_turn_and_the_others_are_still_served() -> None:
    limiter = Paced(rate=10)
    limiter.failure = RuntimeError("the limiter broke")
    queue = queue_for(limiter)
    failed = asyncio.ensure_future(queue.acquire("alice"))
    served = [asyncio.ensure_future(queue.acquire(owner)) for owner in ("bob", "carol")]
    with pytest.raises(RuntimeError):
        await failed
    assert await asyncio.gather(*served) == pytest.approx([0.0, 0.1])


async def test_without_a_limit_nobody_waits() -> None:
    limiter = Paced(rate=0)
    queue = queue_for(limiter)
    assert await asyncio.gather(*(queue.acquire("alice") for _ in range(100))) == [0.0] * 100
    assert queued() == 0


class Gate:
    """A gate on the same clock as the limiter: ``rate`` slots a second, one at a time."""

    def __init__(self, limiter: Paced, rate: float) -> None:
        self.bucket = TokenBucket(
            "cbc", rate, burst=1, max_wait=3600, clock=limiter.clock, sleep=limiter.sleep
        )
        self.refusals = 0

    @property
    def rate(self) -> float:
        return self.bucket.rate

    def free_slots(self) -> float:
        return self.bucket.free_slots()

    async def acquire(self) -> float:
        if self.refusals:
            self.refusals -= 1
            raise UpstreamError(ErrorKind.THROTTLED, "cbc", "the shared slice is spent")
        return await self.bucket.acquire()


def laned(limiter: Paced, gate: Gate, *, max_wait: float = 3600) -> FairQueue:
    return FairQueue(
        "cbc",
        limiter,
        max_wait=max_wait,
        lanes=(("unverified", gate), ("verified", None)),
        clock=limiter.clock,
    )


async def test_a_gated_lane_takes_no_more_than_its_gates_pace_and_the_others_the_rest() -> None:
    limiter = Paced(rate=10)
    queue = laned(limiter, Gate(limiter, rate=2))
    served: list[tuple[str, float]] = []

    async def call(key: str, lane: str) -> None:
        await queue.acquire(key, lane)
        served.append((lane, limiter.now - START))

    flood = [asyncio.create_task(call(f"address {i}", "unverified")) for i in range(20)]
    tenant = [asyncio.create_task(call("alice", "verified")) for _ in range(20)]
    await asyncio.gather(*flood, *tenant)
    first_second = [lane for lane, at in served if at < 1.0 - 1e-9]
    # Two of the ten slots of the first second went to the flood, eight to the tenant.
    assert first_second.count("unverified") == 2
    assert first_second.count("verified") == 8
    assert queued("unverified") == 0 and queued("verified") == 0


async def test_calls_of_one_key_in_a_gated_lane_take_one_turn_among_the_keys() -> None:
    limiter = Paced(rate=10)
    queue = laned(limiter, Gate(limiter, rate=2))
    served: list[str] = []

    async def call(key: str) -> None:
        await queue.acquire(key, "unverified")
        served.append(key)

    # One address invents a hundred tokens; another client comes after them.
    many = [asyncio.create_task(call("address 10.0.0.66")) for _ in range(30)]
    one = asyncio.create_task(call("address 10.0.0.7"))
    await asyncio.gather(*many, one)
    assert served.index("address 10.0.0.7") == 1


async def test_a_gated_lane_alone_has_every_slot_nobody_else_wants() -> None:
    limiter = Paced(rate=10)
    queue = laned(limiter, Gate(limiter, rate=1))
    waits = await asyncio.gather(*(queue.acquire("address a", "unverified") for _ in range(5)))
    # The quota's pace, not the gate's: the tenants are quiet.
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


async def test_a_gate_that_refuses_refuses_its_call_and_the_slot_goes_on() -> None:
    limiter = Paced(rate=10)
    gate = Gate(limiter, rate=5)
    gate.refusals = 1
    queue = laned(limiter, gate)
    refused = asyncio.create_task(queue.acquire("address a", "unverified"))
    tenant = asyncio.create_task(queue.acquire("alice", "verified"))
    with pytest.raises(UpstreamError) as caught:
        await refused
    assert caught.value.kind is ErrorKind.THROTTLED
    assert await tenant == 0.0  # the slot the refused call would have had


async def test_a_gated_call_is_refused_at_once_when_its_gates_pace_is_too_slow() -> None:
    limiter = Paced(rate=10)
    queue = laned(limiter, Gate(limiter, rate=1), max_wait=2)
    waiting = [asyncio.create_task(queue.acquire("address a", "unverified")) for _ in range(3)]
    await asyncio.sleep(0)
    tenant = [asyncio.create_task(queue.acquire("alice", "verified")) for _ in range(15)]
    await asyncio.sleep(0)
    with pytest.raises(UpstreamError) as caught:
        # Fourth behind the tenant's forty: at the gate's one a second, 3 s.
        await queue.acquire("address a", "unverified")
    assert caught.value.kind is ErrorKind.THROTTLED
    await asyncio.gather(*waiting, *tenant)


def test_a_gate_without_a_rate_is_refused() -> None:
    limiter = Paced(rate=10)
    with pytest.raises(ValueError):
        laned(limiter, Gate(limiter, rate=0))


async def test_a_cancelled_call_leaves_its_place_at_once() -> None:
    # Real time, one slot a second: the calls after the first wait while the test looks.
    queue = FairQueue("cbc", TokenBucket("cbc", 1, burst=1, max_wait=3600), max_wait=3600)
    calls = [asyncio.create_task(queue.acquire(key)) for key in ("alice", "bob", "bob", "bob")]
    await settle()
    assert calls[0].done() and queued() == 3  # alice's took the first slot; bob's three wait
    calls[2].cancel()
    await asyncio.sleep(0)
    assert queued() == 2
    for call in calls:
        call.cancel()
    await asyncio.gather(*calls, return_exceptions=True)


def test_forgetting_a_call_that_is_not_waiting_is_harmless() -> None:
    limiter = Paced(rate=10)
    queue = queue_for(limiter)
    loop = asyncio.new_event_loop()
    try:
        stranger: asyncio.Future[None] = loop.create_future()
        lane = queue._default
        lane.forget("nobody", stranger)  # no such key
        lane.waiting["alice"] = deque([loop.create_future()])
        lane.forget("alice", stranger)  # a key whose queue does not hold it
        assert len(lane) == 1
    finally:
        loop.close()


def test_a_queue_is_refused_without_a_lane_or_with_a_gate_of_no_pace() -> None:
    limiter = Paced(rate=10)
    with pytest.raises(ValueError, match=r"^a queue needs a lane$"):
        FairQueue("cbc", limiter, max_wait=1, lanes=())
    with pytest.raises(ValueError, match=r"^a lane's gate needs a rate above 0$"):
        laned(limiter, Gate(limiter, rate=0))


async def test_refusals_name_the_upstream() -> None:
    limiter = Paced(rate=10)
    queue = queue_for(limiter, max_wait=0.05)
    await queue.acquire("alice")
    with pytest.raises(UpstreamError) as caught:
        await queue.acquire("alice")
    assert caught.value.upstream == "cbc"
    assert caught.value.message == "the gateway's request-rate limit for this upstream is exhausted"


async def test_calls_go_to_the_first_lane_without_a_gate_unless_they_name_one() -> None:
    limiter = TokenBucket("cbc", 1, burst=1, max_wait=3600)  # real time, a slot a second
    gate = TokenBucket("cbc", 0.5, burst=1, max_wait=3600)
    lanes = (("slice", gate), ("first", None), ("second", None))
    queue = FairQueue("cbc", limiter, max_wait=3600, lanes=lanes)
    calls = [asyncio.create_task(queue.acquire("alice")) for _ in range(3)]
    await settle()
    assert (queued("slice"), queued("first"), queued("second")) == (0, 2, 0)
    only_gated = FairQueue("cbc", limiter, max_wait=3600, lanes=(("slice", gate),))
    calls += [asyncio.create_task(only_gated.acquire("a")) for _ in range(2)]
    await settle()
    assert queued("slice") == 2
    for call in calls:
        call.cancel()
    await asyncio.gather(*calls, return_exceptions=True)


async def test_a_limit_of_one_a_second_is_a_limit() -> None:
    limiter = Paced(rate=1)
    queue = queue_for(limiter)
    assert await asyncio.gather(*(queue.acquire("a") for _ in range(3))) == pytest.approx(
        [0.0, 1.0, 2.0]
    )


async def test_a_turn_that_never_comes_is_throttled_at_max_wait_and_two_slots() -> None:
    class Stuck:
        """Says a slot is free, and never gives one."""

        rate = 10.0

        def free_slots(self) -> float:
            return 5.0

        async def acquire(self) -> float:
            await asyncio.Event().wait()
            return 0.0

    queue = FairQueue("cbc", Stuck(), max_wait=0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(UpstreamError) as caught:
        await queue.acquire("alice")
    waited = loop.time() - started
    assert caught.value.kind is ErrorKind.THROTTLED and caught.value.retry_after is None
    assert 0.24 < waited < 0.34  # max_wait and two slots' slack (2 / rate), no more


async def test_the_expected_wait_counts_one_call_per_caller_per_round() -> None:
    limiter = Paced(rate=10)
    queue = queue_for(limiter, max_wait=0.35)
    others = [asyncio.create_task(queue.acquire(f"k{i % 2}")) for i in range(20)]
    await asyncio.sleep(0)
    # Alice's first call: one of each other caller's before it (2), so 0.3 s: let in.
    first = asyncio.create_task(queue.acquire("alice"))
    await asyncio.sleep(0)
    assert not first.done()
    # Her second: two rounds (4 others, her first) ahead: 0.5 s, over 0.35: refused.
    with pytest.raises(UpstreamError) as caught:
        await queue.acquire("alice")
    assert caught.value.retry_after == pytest.approx(0.5 - 0.35)
    await asyncio.gather(first, *others, return_exceptions=True)


async def test_a_refused_turn_takes_no_slot_of_its_gate() -> None:
    limiter = Paced(rate=10)
    limiter.refusals = 1
    queue = laned(limiter, Gate(limiter, rate=1))
    served: list[str] = []

    async def call(key: str, lane: str) -> None:
        with contextlib.suppress(UpstreamError):
            await queue.acquire(key, lane)
            served.append(key)

    await asyncio.gather(
        call("address a", "unverified"),
        call("address b", "unverified"),
        *(call("alice", "verified") for _ in range(3)),
    )
    # The shared quota refused address a; address b still had the gate's slot, first.
    assert served[0] == "address b"

"""The rate limit replicas share through Redis, against a real redis-server."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from gateway.config import UpstreamSettings
from gateway.errors import ErrorKind, UpstreamError
from gateway.upstreams.fair_queue import FairQueue
from gateway.upstreams.rate_limit import ARRIVAL_MARGIN, Quota
from gateway.upstreams.shared_rate_limit import REPLICA_ALIVE_MS, RedisRateLimiter
from tests.gateway.upstreams.test_rate_limit import most_in_a_window
from tests.support.redis_server import RedisServer, free_port

QUOTA = Quota.of(UpstreamSettings(name="oma", base_url="http://oma"))  # 10 in any second
SPAN = 1.0 + ARRIVAL_MARGIN
STEP = SPAN / 10


async def test_the_shared_limit_has_the_same_shape_as_the_in_process_one(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    limiter = RedisRateLimiter("cbc", QUOTA, client=client, max_wait=9)
    went: list[tuple[float, float]] = []  # (seconds waited, seconds from the start)

    async def call() -> None:
        waited = await limiter.acquire()
        went.append((waited, time.monotonic() - started))

    try:
        assert limiter.rate == QUOTA.rate and limiter.free_slots() == 5
        started = time.monotonic()
        calls = [asyncio.create_task(call()) for _ in range(12)]
        await asyncio.sleep(0.05)
        # Twelve slots reserved, the last a window on: the burst is spent.
        assert limiter.free_slots() == 0
        await asyncio.gather(*calls)
        assert limiter.free_slots() == pytest.approx(5, abs=0.2)  # idle again
    finally:
        await client.aclose()
    # The burst of five at once, the window's other five a step apart, then the next
    # window's first two a whole window and the margin after the first; each call goes
    # when it says it waited.
    waits = sorted(waited for waited, _ in went)
    assert waits[:5] == [0.0] * 5
    assert waits[5:] == pytest.approx(
        [STEP, 2 * STEP, 3 * STEP, 4 * STEP, 5 * STEP, SPAN, SPAN], abs=0.01
    )
    assert all(at == pytest.approx(waited, abs=0.03) for waited, at in went)
    assert (limiter.replicas, limiter.replica_rate) == (1, QUOTA.rate)


async def test_three_replicas_after_an_idle_start_keep_every_second_to_the_limit(
    redis_server: RedisServer,
) -> None:
    """What the upstream counts: calls in any one second, from all replicas together (the
    limiter before this shape let 20 through in the first second: a burst of ten at
    once, and ten more at the pace)."""
    clients = [redis.Redis.from_url(redis_server.url) for _ in range(3)]
    replicas = [RedisRateLimiter("oma", QUOTA, client=c, max_wait=9) for c in clients]
    went: list[float] = []

    async def call(limiter: RedisRateLimiter) -> None:
        await limiter.acquire()
        went.append(time.monotonic())

    try:
        started = time.monotonic()
        await asyncio.gather(*(call(limiter) for limiter in replicas for _ in range(15)))
    finally:
        for client in clients:
            await client.aclose()
    assert most_in_a_window(went, 1.0) == 10
    # At the limit all along: ten in each window and the margin, the 45th in the fifth.
    elapsed = [at - started for at in sorted(went)]
    assert [sum(1 for at in elapsed if k * SPAN <= at < (k + 1) * SPAN) for k in range(5)] == [
        10,
        10,
        10,
        10,
        5,
    ]
    assert elapsed[-1] == pytest.approx(4 * SPAN, abs=0.1)


async def test_a_wait_past_max_wait_is_refused_with_when_to_come_back(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    limiter = RedisRateLimiter("cbc", QUOTA, client=client, max_wait=0.3)
    try:
        outcomes = await asyncio.gather(
            *(limiter.acquire() for _ in range(12)), return_exceptions=True
        )
    finally:
        await client.aclose()
    served = sorted(w for w in outcomes if isinstance(w, float))
    refused = [e for e in outcomes if isinstance(e, UpstreamError)]
    # The burst and two steps; the third step would pass 0.3 s, and a refusal reserves
    # nothing, so every one after it is refused as well, told to come back then.
    assert served == pytest.approx([0.0] * 5 + [STEP, 2 * STEP], abs=0.01)
    assert len(refused) == 5
    assert all(e.kind is ErrorKind.THROTTLED and e.upstream == "cbc" for e in refused)
    assert all(e.retry_after == pytest.approx(3 * STEP - 0.3, abs=0.01) for e in refused)
    assert refused[0].message == (
        "the gateway's shared request-rate limit for this upstream is exhausted"
    )


async def test_a_slow_quota_is_still_a_limit(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    limiter = RedisRateLimiter(
        "cbc", Quota(1, window=1, burst=1), client=client, max_wait=0.5
    )  # a pace under one call a second
    try:
        assert limiter.free_slots() == 1
        assert await limiter.acquire() == 0.0
        with pytest.raises(UpstreamError) as caught:
            await limiter.acquire()  # a second on: past max_wait
    finally:
        await client.aclose()
    assert caught.value.retry_after == pytest.approx(SPAN - 0.5, abs=0.01)


async def test_the_shared_state_expires_once_it_holds_nothing_back(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    limiter = RedisRateLimiter("cbc", QUOTA, client=client, max_wait=9)
    try:
        await limiter.acquire()
        due = await client.pttl("gw:v1:rate:cbc")
        log = await client.pttl("gw:v1:rate:cbc:log")
        replicas = await client.pttl("gw:v1:rate:cbc:replicas")
    finally:
        await client.aclose()
    # The slot holds the next ones back for a window and the margin; then it is gone. A
    # replica counts towards the split for 30 s after its last reservation.
    assert SPAN * 1000 - 20 <= due <= SPAN * 1000 + 1
    assert SPAN * 1000 - 20 <= log <= SPAN * 1000 + 1
    assert REPLICA_ALIVE_MS == 30_000 and 29_980 <= replicas <= 30_000


async def test_no_limit_asks_redis_nothing(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    limiter = RedisRateLimiter(
        "oma", Quota(0, window=1, burst=5), client=client, max_wait=9, replicas=4
    )
    try:
        assert limiter.rate == 0.0 and limiter.free_slots() == float("inf")
        assert [await limiter.acquire() for _ in range(20)] == [0.0] * 20
        assert await client.keys("*") == []
    finally:
        await client.aclose()


async def test_a_frozen_redis_costs_a_call_no_more_than_the_timeout(
    redis_server: RedisServer,
) -> None:
    client = redis.Redis.from_url(redis_server.url)  # no timeout of its own
    limiter = RedisRateLimiter("oma", QUOTA, client=client, max_wait=9)  # 0.1 s by default
    await limiter.acquire()
    redis_server.freeze()
    started = time.monotonic()
    try:
        assert await limiter.acquire() == 0.0  # the in-process share's burst
    finally:
        redis_server.thaw()
        await client.aclose()
    assert time.monotonic() - started < 0.5


async def test_redis_down_is_said_once_and_asked_again_after_a_second(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = redis.Redis.from_url(redis_server.url, socket_timeout=0.2)
    limiter = RedisRateLimiter("oma", QUOTA, client=client, max_wait=9)

    def heard() -> list[tuple[str, str, object]]:
        records = [(r.name, r.getMessage(), getattr(r, "error", None)) for r in caplog.records]
        caplog.clear()
        return records

    try:
        with caplog.at_level(logging.INFO, logger="gateway.ratelimit"):
            await limiter.acquire()
            redis_server.stop()
            await limiter.acquire()
            await limiter.acquire()  # still down: nothing more said
            assert heard() == [
                (
                    "gateway.ratelimit",
                    "shared rate limit unavailable; limiting in-process",
                    "ConnectionError",
                )
            ]
            redis_server.start()
            await asyncio.sleep(0.7)
            await limiter.acquire()  # within the second: not asked
            assert heard() == [] and await client.exists("gw:v1:rate:oma:log") == 0
            await asyncio.sleep(0.5)
            await limiter.acquire()  # a second on: asked, and back
            assert heard() == [("gateway.ratelimit", "shared rate limit is back", None)]
            assert await client.exists("gw:v1:rate:oma:log") == 1
            await limiter.acquire()  # through Redis again
            redis_server.stop()
            await limiter.acquire()  # down again: said again
            assert [message for _, message, _ in heard()] == [
                "shared rate limit unavailable; limiting in-process"
            ]
    finally:
        if redis_server.process is None:
            redis_server.start()
        await client.aclose()


async def test_the_log_names_the_upstream(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = redis.Redis.from_url(redis_server.url, socket_timeout=0.2)
    limiter = RedisRateLimiter("cbc", QUOTA, client=client, max_wait=9)
    try:
        with caplog.at_level(logging.INFO, logger="gateway.ratelimit"):
            redis_server.stop()
            await limiter.acquire()
            redis_server.start()
            await asyncio.sleep(1.1)
            await limiter.acquire()
    finally:
        await client.aclose()
    assert [getattr(r, "upstream", None) for r in caplog.records] == ["cbc", "cbc"]


@pytest.fixture
async def two_replicas(
    redis_server: RedisServer,
) -> AsyncIterator[tuple[RedisRateLimiter, RedisRateLimiter]]:
    """Two replicas' limiters of OMA's quota (10 in any second), both seen alive by Redis."""
    clients = [redis.Redis.from_url(redis_server.url) for _ in range(2)]
    first, second = (RedisRateLimiter("oma", QUOTA, client=c, max_wait=9) for c in clients)
    try:
        # Each reservation counts the replicas alive: two, once both have reserved.
        await first.acquire()
        await second.acquire()
        await first.acquire()
        assert (first.replicas, second.replicas) == (2, 2)
        assert first.replica_rate == pytest.approx(QUOTA.rate / 2)
        yield first, second
    finally:
        for client in clients:
            await client.aclose()


async def test_while_redis_is_down_each_replica_keeps_to_its_share_of_the_quota(
    redis_server: RedisServer, two_replicas: tuple[RedisRateLimiter, RedisRateLimiter]
) -> None:
    first, _ = two_replicas
    redis_server.stop()
    waits = await asyncio.gather(*(first.acquire() for _ in range(7)))
    # Half the quota: five in any second, two at once, then a step of 1/5 of the window,
    # then the next window's two with its first.
    half = SPAN / 5
    assert sorted(waits) == pytest.approx(
        [0.0, 0.0, half, 2 * half, 3 * half, SPAN, SPAN], abs=0.03
    )


async def test_a_queue_in_front_expects_the_share_while_redis_is_down(
    redis_server: RedisServer, two_replicas: tuple[RedisRateLimiter, RedisRateLimiter]
) -> None:
    """Waits are estimated at the pace calls go: a call that would wait past max_wait at
    the share is refused at once, not queued until it times out."""
    first, _ = two_replicas
    queue = FairQueue("oma", first, max_wait=1)
    redis_server.stop()
    await first.acquire()  # finds Redis down
    assert first.rate == pytest.approx(QUOTA.share(2).rate)

    async def call() -> tuple[str, float | None]:
        try:
            await queue.acquire("tenant")
        except UpstreamError as exc:
            return "throttled", exc.retry_after
        return "served", None

    started = time.monotonic()
    outcomes = await asyncio.gather(*(call() for _ in range(15)))
    elapsed = time.monotonic() - started
    refused = [retry_after for outcome, retry_after in outcomes if outcome == "throttled"]
    # About 1 s of slots at the share (the burst left, then one every 210 ms) is served;
    # the rest are refused at once, each told when to come back.
    assert 4 <= len(refused) <= 11
    assert all(retry_after is not None and retry_after > 0 for retry_after in refused)
    assert elapsed < 1.3


async def test_while_redis_is_down_a_share_past_max_wait_is_refused_for_its_upstream(
    redis_server: RedisServer,
) -> None:
    clients = [redis.Redis.from_url(redis_server.url) for _ in range(2)]
    first, second = (RedisRateLimiter("cbc", QUOTA, client=c, max_wait=0.3) for c in clients)
    try:
        for limiter in (first, second, first):
            await limiter.acquire()  # Redis counts two replicas
        redis_server.stop()
        outcomes = await asyncio.gather(
            *(first.acquire() for _ in range(4)), return_exceptions=True
        )
    finally:
        for client in clients:
            await client.aclose()
    # Half the quota: two at once, one a fifth of the window on, the next past 0.3 s.
    refused = [e for e in outcomes if isinstance(e, UpstreamError)]
    assert len(refused) == 1 and refused[0].upstream == "cbc"


async def test_a_lone_replica_takes_the_whole_quota_while_redis_is_down() -> None:
    client = redis.Redis.from_url(
        f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.1, socket_connect_timeout=0.1
    )
    limiter = RedisRateLimiter("oma", QUOTA, client=client, max_wait=0.1)
    try:
        assert limiter.replica_rate == QUOTA.rate
        waits = [await limiter.acquire() for _ in range(5)]  # the whole burst
        with pytest.raises(UpstreamError) as caught:
            await limiter.acquire()
    finally:
        await client.aclose()
    assert waits == [0.0] * 5 and limiter.rate == QUOTA.rate
    assert caught.value.upstream == "oma"


async def test_a_replica_that_never_reached_redis_takes_the_share_of_the_most_replicas() -> None:
    """Started while Redis is down, a replica cannot know how many others run: it takes
    1/max_replicas of the quota, so that all of them together keep to it."""
    client = redis.Redis.from_url(
        f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.1, socket_connect_timeout=0.1
    )
    limiter = RedisRateLimiter("oma", QUOTA, client=client, max_wait=9, replicas=4)
    try:
        assert limiter.replica_rate == pytest.approx(QUOTA.rate / 4)
        waits = [await limiter.acquire()]  # finds Redis down
        assert limiter.rate == pytest.approx(2 / SPAN)
        waits += await asyncio.gather(*(limiter.acquire() for _ in range(3)))
    finally:
        await client.aclose()
    # A quarter of the quota: two calls in any second (of 2.5), one at a time.
    assert sorted(waits) == pytest.approx([0.0, SPAN / 2, SPAN, 1.5 * SPAN], abs=0.05)

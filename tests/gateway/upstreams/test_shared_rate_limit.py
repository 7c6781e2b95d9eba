"""The rate limit replicas share through Redis, against a real redis-server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from gateway.errors import UpstreamError
from gateway.upstreams.fair_queue import FairQueue
from gateway.upstreams.shared_rate_limit import RedisRateLimiter
from tests.support.redis_server import RedisServer, free_port


async def test_the_shared_limit_allows_the_same_burst_as_the_in_process_one(
    redis_url: str,
) -> None:
    client = redis.Redis.from_url(redis_url)
    limiter = RedisRateLimiter(
        "cbc",
        10,
        client=client,
        max_wait=9,
    )
    try:
        waits = await asyncio.gather(*(limiter.acquire() for _ in range(12)))
    finally:
        await client.aclose()
    # A burst of ten at once (the rate), then one slot every 100 ms.
    assert sorted(waits)[:10] == [0.0] * 10
    assert sorted(waits)[10:] == pytest.approx([0.1, 0.2], abs=0.02)


@pytest.fixture
async def two_replicas(
    redis_server: RedisServer,
) -> AsyncIterator[tuple[RedisRateLimiter, RedisRateLimiter]]:
    """Two replicas' limiters of OMA's quota (10/s), both seen alive by Redis."""
    clients = [redis.Redis.from_url(redis_server.url) for _ in range(2)]
    first, second = (RedisRateLimiter("oma", 10, client=c, max_wait=9) for c in clients)
    try:
        # Each reservation counts the replicas alive: two, once both have reserved.
        await first.acquire()
        await second.acquire()
        await first.acquire()
        assert (first.replicas, second.replicas) == (2, 2)
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
    # Half the quota: a burst of five, then one slot every 200 ms, not 100.
    assert sorted(waits)[:5] == [0.0] * 5
    assert sorted(waits)[5:] == pytest.approx([0.2, 0.4], abs=0.03)


async def test_a_queue_in_front_expects_the_share_while_redis_is_down(
    redis_server: RedisServer, two_replicas: tuple[RedisRateLimiter, RedisRateLimiter]
) -> None:
    """Waits are estimated at the pace calls go: a call that would wait past max_wait at
    the share is refused at once, not queued until it times out."""
    first, _ = two_replicas
    queue = FairQueue("oma", first, max_wait=1)
    redis_server.stop()
    await first.acquire()  # finds Redis down
    assert first.rate == 5.0

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
    # About 1 s of slots at 5 a second (the burst left, then one every 200 ms) is served;
    # the rest are refused at once, each told when to come back.
    assert 4 <= len(refused) <= 11
    assert all(retry_after is not None and retry_after > 0 for retry_after in refused)
    assert elapsed < 1.3


async def test_a_replica_that_never_reached_redis_takes_the_share_of_the_most_replicas() -> None:
    """Started while Redis is down, a replica cannot know how many others run: it takes
    1/max_replicas of the quota, so that all of them together keep to it."""
    client = redis.Redis.from_url(
        f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.1, socket_connect_timeout=0.1
    )
    limiter = RedisRateLimiter("oma", 10, client=client, max_wait=9, replicas=4)
    try:
        waits = [await limiter.acquire()]  # finds Redis down
        assert limiter.rate == 2.5
        waits += await asyncio.gather(*(limiter.acquire() for _ in range(4)))
    finally:
        await client.aclose()
    # A quarter of the quota: a burst of 2.5, then one slot every 400 ms.
    assert sorted(waits) == pytest.approx([0.0, 0.0, 0.2, 0.6, 1.0], abs=0.05)

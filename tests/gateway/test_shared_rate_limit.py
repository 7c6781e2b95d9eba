"""The rate limit replicas share through Redis, against a real redis-server."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as redis

from gateway.shared_rate_limit import RedisRateLimiter
from tests.support.redis_server import RedisServer


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


async def test_while_redis_is_down_each_replica_keeps_to_its_share_of_the_quota(
    redis_server: RedisServer,
) -> None:
    clients = [redis.Redis.from_url(redis_server.url) for _ in range(2)]
    first, second = (RedisRateLimiter("oma", 10, client=c, max_wait=9) for c in clients)
    try:
        # Each reservation counts the replicas alive: two, once both have reserved.
        await first.acquire()
        await second.acquire()
        await first.acquire()
        assert (first.replicas, second.replicas) == (2, 2)
        redis_server.stop()
        waits = await asyncio.gather(*(first.acquire() for _ in range(7)))
    finally:
        for client in clients:
            await client.aclose()
    # Half the quota: a burst of five, then one slot every 200 ms, not 100.
    assert sorted(waits)[:5] == [0.0] * 5
    assert sorted(waits)[5:] == pytest.approx([0.2, 0.4], abs=0.03)

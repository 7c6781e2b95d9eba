"""The rate limit replicas share through Redis, against a real redis-server."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as redis

from gateway.resilience import TokenBucket
from gateway.shared_rate_limit import RedisRateLimiter


async def test_the_shared_limit_allows_the_same_burst_as_the_in_process_one(
    redis_url: str,
) -> None:
    client = redis.Redis.from_url(redis_url)
    limiter = RedisRateLimiter(
        "cbc",
        10,
        client=client,
        fallback=TokenBucket("cbc", 10, max_wait=9),
        max_wait=9,
    )
    try:
        waits = await asyncio.gather(*(limiter.acquire() for _ in range(12)))
    finally:
        await client.aclose()
    # A burst of ten at once (the rate), then one slot every 100 ms.
    assert sorted(waits)[:10] == [0.0] * 10
    assert sorted(waits)[10:] == pytest.approx([0.1, 0.2], abs=0.02)

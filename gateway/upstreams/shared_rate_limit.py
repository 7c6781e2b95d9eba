"""A request-rate limit shared by every replica, kept in Redis.

Each upstream's quota (about 10 requests per second) belongs to the whole
deployment, not to one process. Replicas reserve slots with GCRA in one Lua
script: atomic, one round trip, and timed by Redis's own clock so replicas with
skewed clocks still agree. When Redis does not answer within the cache timeout,
the replica falls back to an in-process limiter, so Redis stays an accelerator
and never a dependency of correctness. That limiter takes this replica's share of
the quota: each reservation also tells Redis the replica is alive and learns how
many are, so while Redis is down the replicas together keep to the quota instead
of each spending all of it. A replica that has not heard from Redis since it started
takes the share of the most replicas that may run (``GATEWAY_MAX_REPLICAS``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import redis.asyncio as redis
from redis.exceptions import RedisError

from gateway.errors import ErrorKind, UpstreamError
from gateway.upstreams.rate_limit import RateLimiter, TokenBucket

logger = logging.getLogger("gateway.ratelimit")

# KEYS[1]: the bucket; KEYS[2]: the replicas that reserved lately, by when.
# ARGV: interval ms, burst tolerance ms, max wait ms, this replica, how long a replica
# counts as alive (ms). Returns {ms to wait before the reserved slot, or -1 when that is
# over max wait (then nothing is reserved); replicas alive}.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local alive = tonumber(ARGV[5])
redis.call('ZADD', KEYS[2], now, ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - alive)
redis.call('PEXPIRE', KEYS[2], alive)
local replicas = redis.call('ZCARD', KEYS[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait < 0 then wait = 0 end
if wait > max_wait then return {-1, replicas} end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now + 1000))
return {wait, replicas}
"""

_RETRY_REDIS_AFTER = 1.0
REPLICA_ALIVE_MS = 30_000
"""A replica that reserved within this long counts towards the quota's split."""


class RedisRateLimiter:
    """GCRA slots in Redis; ``acquire`` sleeps until its reserved slot."""

    def __init__(
        self,
        upstream: str,
        rate: float,
        *,
        client: redis.Redis,
        max_wait: float,
        burst: float | None = None,
        timeout: float = 0.1,
        replicas: int = 1,
    ) -> None:
        """``replicas``: how many to share the quota among until Redis has said how many
        are alive (the most that may run: a replica that never reaches Redis must not
        take the whole quota)."""
        self.upstream = upstream
        self.quota = rate
        """Requests per second for the whole deployment."""
        self._client = client
        self._max_wait = max_wait
        self._max_wait_ms = int(max_wait * 1000)
        self._replica = uuid.uuid4().hex
        self.replicas = max(1, replicas)
        """Replicas alive when Redis last answered (until then, the most that may run);
        each takes its share while Redis is down."""
        self._fallback: RateLimiter = TokenBucket(upstream, rate / self.replicas, max_wait=max_wait)
        self._interval_ms = 1000.0 / rate if rate > 0 else 0.0
        # The same burst as the in-process limiter (``TokenBucket``): the rate.
        burst = rate if burst is None else burst
        self._burst = max(1.0, burst)
        self._tolerance_ms = self._interval_ms * (self._burst - 1)
        self._timeout = timeout
        self._key = f"gw:v1:rate:{upstream}"
        self._replicas_key = f"gw:v1:rate:{upstream}:replicas"
        self._script = client.register_script(_RESERVE)
        self._redis_down_until = 0.0
        # When the last slot this replica reserved comes: the shared queue reaches at
        # least that far (other replicas may have reserved beyond it).
        self._reserved_until = 0.0

    @property
    def rate(self) -> float:
        """The pace this replica's calls go at now: the quota's through Redis, its share of
        it while Redis is down (what a queue in front of it must expect)."""
        if self.quota > 0 and time.monotonic() < self._redis_down_until:
            return self._fallback.rate
        return self.quota

    @property
    def replica_rate(self) -> float:
        """This replica's part of the quota: the quota divided by the replicas alive."""
        return self.quota / self.replicas

    def free_slots(self) -> float:
        """The burst left, as far as this replica has seen the shared queue."""
        if self.quota <= 0:
            return float("inf")
        if time.monotonic() < self._redis_down_until:
            return self._fallback.free_slots()
        reserved_ahead = max(0.0, self._reserved_until - time.monotonic()) * self.quota
        return max(0.0, self._burst - reserved_ahead)

    async def acquire(self) -> float:
        if self.quota <= 0:
            return 0.0
        if time.monotonic() < self._redis_down_until:
            return await self._fallback.acquire()
        try:
            async with asyncio.timeout(self._timeout):
                wait, replicas = await self._script(
                    keys=[self._key, self._replicas_key],
                    args=[
                        self._interval_ms,
                        self._tolerance_ms,
                        self._max_wait_ms,
                        self._replica,
                        REPLICA_ALIVE_MS,
                    ],
                )
            wait_ms = int(wait)
        except (RedisError, OSError, TimeoutError) as exc:
            if self._redis_down_until == 0.0:
                logger.warning(
                    "shared rate limit unavailable; limiting in-process",
                    extra={"upstream": self.upstream, "error": type(exc).__name__},
                )
            self._redis_down_until = time.monotonic() + _RETRY_REDIS_AFTER
            return await self._fallback.acquire()
        if self._redis_down_until:
            logger.info("shared rate limit is back", extra={"upstream": self.upstream})
            self._redis_down_until = 0.0
        self._share_among(max(1, int(replicas)))
        if wait_ms < 0:
            raise UpstreamError(
                ErrorKind.THROTTLED,
                self.upstream,
                "the gateway's shared request-rate limit for this upstream is exhausted",
            )
        self._reserved_until = max(self._reserved_until, time.monotonic() + wait_ms / 1000)
        if wait_ms:
            await asyncio.sleep(wait_ms / 1000)
        return wait_ms / 1000

    def _share_among(self, replicas: int) -> None:
        """The in-process limiter for when Redis is down: this replica's share."""
        if replicas != self.replicas:
            self.replicas = replicas
            self._fallback = TokenBucket(
                self.upstream, self.quota / replicas, max_wait=self._max_wait
            )

"""A request-rate limit shared by every replica, kept in Redis.

Each upstream's quota (10 calls in any second) belongs to the whole deployment, not to one
process. Replicas reserve slots of the same ``Quota`` the in-process limiter keeps (a
sliding log of the last ``calls`` slots, GCRA pacing for the burst) in one Lua script:
atomic, one round trip, and timed by Redis's own clock so replicas with skewed clocks still
agree. When Redis does not answer within the cache timeout, the replica falls back to an
in-process limiter, so Redis stays an accelerator and never a dependency of correctness.
That limiter takes this replica's share of the quota: each reservation also tells Redis the
replica is alive and learns how many are, so while Redis is down the replicas together keep
to the quota instead of each spending all of it. A replica that has not heard from Redis
since it started takes the share of the most replicas that may run (``GATEWAY_MAX_REPLICAS``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid

import redis.asyncio as redis
from redis.exceptions import RedisError

from gateway.errors import ErrorKind, UpstreamError
from gateway.upstreams.rate_limit import Quota, RateLimiter, SlidingWindowLimiter

logger = logging.getLogger("gateway.ratelimit")

# KEYS[1]: GCRA's due time (ms); KEYS[2]: the last ``calls`` slots (ms, a list, oldest
# first); KEYS[3]: the replicas that reserved lately, by when.
# ARGV: interval, tolerance, span and max wait (seconds), calls, this replica, how long a
# replica counts as alive (ms). Returns {1 when a slot is reserved, 0 when it would come
# after max wait (then nothing is); seconds to wait for it, as text; replicas alive}. Times
# are kept in ms with three decimals, as text (Lua's numbers reach Redis truncated), each
# key only as long as it may still hold a slot back.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1]) * 1000
local tolerance = tonumber(ARGV[2]) * 1000
local span = tonumber(ARGV[3]) * 1000
local max_wait = tonumber(ARGV[4]) * 1000
local calls = tonumber(ARGV[5])
local alive = tonumber(ARGV[7])
redis.call('ZADD', KEYS[3], now, ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - alive)
redis.call('PEXPIRE', KEYS[3], alive)
local replicas = redis.call('ZCARD', KEYS[3])
local due = tonumber(redis.call('GET', KEYS[1]) or now)
local slot = math.max(now, due - tolerance)
local oldest = redis.call('LINDEX', KEYS[2], -calls)
if oldest then slot = math.max(slot, tonumber(oldest) + span) end
local wait = slot - now
if wait > max_wait then return {0, string.format('%.6f', wait / 1000), replicas} end
due = math.max(due, slot) + interval
local keep = math.ceil(math.max(due, slot + span) - now)
redis.call('SET', KEYS[1], string.format('%.3f', due), 'PX', keep)
redis.call('RPUSH', KEYS[2], string.format('%.3f', slot))
redis.call('LTRIM', KEYS[2], -calls, -1)
redis.call('PEXPIRE', KEYS[2], keep)
return {1, string.format('%.6f', wait / 1000), replicas}
"""

_RETRY_REDIS_AFTER = 1.0
REPLICA_ALIVE_MS = 30_000
"""A replica that reserved within this long counts towards the quota's split."""


class RedisRateLimiter:
    """Slots of a ``Quota`` in Redis; ``acquire`` sleeps until its reserved slot."""

    def __init__(
        self,
        upstream: str,
        quota: Quota,
        *,
        client: redis.Redis,
        max_wait: float,
        timeout: float = 0.1,
        replicas: int = 1,
    ) -> None:
        """``replicas``: how many to share the quota among until Redis has said how many
        are alive (the most that may run: a replica that never reaches Redis must not
        take the whole quota)."""
        self.upstream = upstream
        self.quota = quota
        """The whole deployment's."""
        self._max_wait = max_wait
        self._replica = uuid.uuid4().hex
        self.replicas = max(1, replicas)
        """Replicas alive when Redis last answered (until then, the most that may run);
        each takes its share while Redis is down."""
        self._fallback: RateLimiter = SlidingWindowLimiter(
            upstream, quota.share(self.replicas), max_wait=max_wait
        )
        self._args: list[float | str] = [
            quota.interval,
            quota.tolerance,
            quota.span,
            max_wait,
            quota.calls,
            self._replica,
            REPLICA_ALIVE_MS,
        ]
        self._timeout = timeout
        self._keys = [
            f"gw:v1:rate:{upstream}",
            f"gw:v1:rate:{upstream}:log",
            f"gw:v1:rate:{upstream}:replicas",
        ]
        self._script = client.register_script(_RESERVE)
        self._redis_down_until = 0.0
        # When the last slot this replica reserved comes: the shared queue reaches at
        # least that far (other replicas may have reserved beyond it).
        self._reserved_until = -math.inf

    @property
    def rate(self) -> float:
        """The pace this replica's calls go at now: the quota's through Redis, its share of
        it while Redis is down (what a queue in front of it must expect)."""
        if self.quota.rate > 0 and time.monotonic() < self._redis_down_until:
            return self._fallback.rate
        return self.quota.rate

    @property
    def replica_rate(self) -> float:
        """This replica's part of the quota's pace: divided by the replicas alive."""
        return self.quota.rate / self.replicas

    def free_slots(self) -> float:
        """The burst left, as far as this replica has seen the shared queue."""
        if self.quota.rate <= 0:
            return math.inf
        if time.monotonic() < self._redis_down_until:
            return self._fallback.free_slots()
        reserved_ahead = max(0.0, self._reserved_until - time.monotonic()) * self.quota.rate
        return max(0.0, self.quota.burst - reserved_ahead)

    async def acquire(self) -> float:
        if self.quota.rate <= 0:
            return 0.0
        if time.monotonic() < self._redis_down_until:
            return await self._fallback.acquire()
        try:
            async with asyncio.timeout(self._timeout):
                reserved, wait_text, replicas = await self._script(keys=self._keys, args=self._args)
            wait = float(wait_text)
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
        self._share_among(int(replicas))  # at least this one
        if not reserved:
            raise UpstreamError(
                ErrorKind.THROTTLED,
                self.upstream,
                "the gateway's shared request-rate limit for this upstream is exhausted",
                retry_after=wait - self._max_wait,
            )
        self._reserved_until = max(self._reserved_until, time.monotonic() + wait)
        await asyncio.sleep(wait)
        return wait

    def _share_among(self, replicas: int) -> None:
        """The in-process limiter for when Redis is down: this replica's share."""
        if replicas != self.replicas:
            self.replicas = replicas
            self._fallback = SlidingWindowLimiter(
                self.upstream, self.quota.share(replicas), max_wait=self._max_wait
            )

"""Rate limits of calls to an upstream: the limiter protocol, the in-process one, and a
share of one for a lane of callers (``gateway.upstreams.fair_queue``).

The quota belongs to the upstream; ``gateway.upstreams.shared_rate_limit`` keeps it across
replicas in Redis, with this module's limiter as its fallback.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from gateway.errors import ErrorKind, UpstreamError

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateLimiter(Protocol):
    @property
    def rate(self) -> float:
        """Requests per second; 0 or less: no limit, and the guard skips the limiter."""
        ...

    async def acquire(self) -> float:
        """Wait for a slot; return the seconds waited, or raise ``UpstreamError`` with
        ``ErrorKind.THROTTLED`` at once when the wait would exceed the allowed maximum."""
        ...

    def free_slots(self) -> float:
        """Slots ``acquire`` would give now without waiting (the burst left)."""
        ...


class TokenBucket:
    """In-process ``RateLimiter`` (GCRA). Slots are reserved before sleeping, so
    concurrent callers get consecutive slots ``1/rate`` apart instead of all waking
    at once and racing for the same token."""

    def __init__(
        self,
        upstream: str,
        rate: float,
        *,
        burst: float | None = None,
        max_wait: float,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.upstream = upstream
        self.rate = rate
        self.burst = max(1.0, rate if burst is None else burst)
        self.max_wait = max_wait
        self._clock = clock
        self._sleep = sleep
        self._next_free = 0.0  # when the next slot frees once the burst is spent

    def free_slots(self) -> float:
        if self.rate <= 0:
            return float("inf")
        reserved_ahead = max(0.0, self._next_free - self._clock()) * self.rate
        return max(0.0, self.burst - reserved_ahead)

    async def acquire(self) -> float:
        if self.rate <= 0:
            return 0.0
        interval = 1.0 / self.rate
        now = self._clock()
        previous = self._next_free
        slot = max(previous, now)
        # Up to ``burst`` slots may be taken ahead of the steady pace.
        wait = max(0.0, slot - (self.burst - 1) * interval - now)
        if wait > self.max_wait:
            raise UpstreamError(
                ErrorKind.THROTTLED,
                self.upstream,
                "the gateway's request-rate limit for this upstream is exhausted",
                retry_after=wait - self.max_wait,
            )
        reserved_until = self._next_free = slot + interval
        if wait > 0:
            try:
                await self._sleep(wait)
            except asyncio.CancelledError:
                # A caller that gave up (deadline, disconnect) hands its slot back when
                # nobody queued behind it; otherwise the gap only slows the pace.
                if self._next_free == reserved_until:
                    self._next_free = previous
                raise
        return wait


class SliceOf:
    """A share of a rate limit's pace, for this process: an in-process bucket (one slot at a
    time) whose rate follows the limit's, and its part of it when replicas share it. It
    decides only which waiting calls go first (``FairQueue``'s gate): the slots themselves
    still come from the limit, so a slice never needs a round trip of its own."""

    def __init__(
        self,
        limiter: RateLimiter,
        share: float,
        *,
        max_wait: float,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._limiter = limiter
        self._share = share
        self._bucket = TokenBucket(
            "slice", self._pace(), burst=1, max_wait=max_wait, clock=clock, sleep=sleep
        )

    def _pace(self) -> float:
        # A limit shared by replicas says what part of it is this process's.
        replica_rate = getattr(self._limiter, "replica_rate", None)
        rate = self._limiter.rate if replica_rate is None else replica_rate
        return max(0.0, rate * self._share)

    @property
    def rate(self) -> float:
        self._bucket.rate = self._pace()
        return self._bucket.rate

    def free_slots(self) -> float:
        self._bucket.rate = self._pace()
        return self._bucket.free_slots()

    async def acquire(self) -> float:
        self._bucket.rate = self._pace()
        return await self._bucket.acquire()


__all__ = ["RateLimiter", "SliceOf", "TokenBucket"]

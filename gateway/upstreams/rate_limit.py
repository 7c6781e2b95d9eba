"""Rate limits of calls to an upstream: the limiter protocol, the quota's shape, the
in-process limiters, and a share of one for a lane of callers (``gateway.upstreams.fair_queue``).

The quota belongs to the upstream; ``gateway.upstreams.shared_rate_limit`` keeps it across
replicas in Redis, with this module's ``SlidingWindowLimiter`` as its fallback.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from gateway.config import UpstreamSettings
from gateway.errors import ErrorKind, UpstreamError

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

ARRIVAL_MARGIN = 0.05
"""Seconds added to the quota's window: a call goes at least ``window + ARRIVAL_MARGIN``
after the one ``limit`` calls before it. The limiter times slots on the gateway's clock (or
Redis's); the API gateway counts arrivals on its own. In between, each call's path varies
a little: the event loop resuming it, the wait for a pooled connection, the network, a
replica's round trip to Redis. A call late by that much and the call ``limit`` after it on
time would otherwise land in one of the upstream's windows. It covers jitter of a few tens
of ms (bench/notes.md has what was measured), not a connection set up across a continent:
for an upstream far away, lengthen ``GATEWAY_*_RATE_WINDOW`` by that time."""


_ROUNDING = 1e-9
"""Seconds within which a slot counts as now."""


class RateLimiter(Protocol):
    @property
    def rate(self) -> float:
        """Calls per second at the steady pace; 0 or less: no limit, and the guard skips the
        limiter."""
        ...

    async def acquire(self) -> float:
        """Wait for a slot; return the seconds waited, or raise ``UpstreamError`` with
        ``ErrorKind.THROTTLED`` at once when the wait would exceed the allowed maximum."""
        ...

    def free_slots(self) -> float:
        """The burst left: ``acquire`` gives at most this many slots without waiting, and the
        n-th slot from now is no sooner than ``(n - free_slots()) / rate`` from now (what a
        queue in front may promise a caller)."""
        ...


def _exhausted(upstream: str, retry_after: float | None) -> UpstreamError:
    return UpstreamError(
        ErrorKind.THROTTLED,
        upstream,
        "the gateway's request-rate limit for this upstream is exhausted",
        retry_after=retry_after,
    )


class Quota:
    """At most ``limit`` calls in any ``window`` seconds, at most ``burst`` of them at once:
    the shape of the upstream's quota (Huawei's "10/1(s)") as the limiters keep it.

    Two rules, both on every slot. A sliding log: a call goes at least ``span`` (the window
    and ``ARRIVAL_MARGIN``) after the one ``calls`` before it, so that no window, wherever it
    starts, ever holds more than ``calls``. And GCRA pacing: ``burst`` at once, then one every
    ``interval`` (``span / calls``), so that after an idle spell a window's calls do not all
    go at its start, and the n-th slot from now is never sooner than the pace allows (which
    ``RateLimiter.free_slots`` promises). The log alone would let the whole quota go at once;
    GCRA alone lets ``burst`` more than the pace through in a window (with the burst equal
    to the limit, twice the limit: what three replicas sent after an idle start).

    A whole number of calls fits in a window, so a ``limit`` of 2.5 is 2; one under 1 is one
    call every ``window / limit`` seconds. A ``burst`` is at least 1 and at most the calls.
    A ``limit`` of 0 or less is no limit (``rate`` 0)."""

    __slots__ = (
        "burst",
        "calls",
        "interval",
        "limit",
        "margin",
        "rate",
        "span",
        "tolerance",
        "window",
    )

    def __init__(
        self, limit: float, *, window: float, burst: float, margin: float = ARRIVAL_MARGIN
    ) -> None:
        self.limit = limit
        self.window = window
        self.margin = margin
        length = window / min(limit, 1.0) if limit > 0 else window
        self.calls = max(1, math.floor(limit))
        """Calls a window holds at most."""
        self.span = length + margin
        """Seconds from a call to the ``calls``-th after it, at least."""
        self.burst = min(self.calls, max(1, math.floor(burst)))
        """Calls let go at once after an idle spell."""
        self.interval = self.span / self.calls
        """Seconds between slots at the steady pace."""
        self.tolerance = (self.burst - 1) * self.interval
        """Seconds a slot may come ahead of the steady pace: the burst after the first."""
        self.rate = self.calls / self.span if limit > 0 else 0.0
        """Calls per second at the steady pace; 0: no limit."""

    @classmethod
    def of(cls, settings: UpstreamSettings) -> Quota:
        """The quota ``settings`` configure (``GATEWAY_*_RATE_LIMIT``, ``_RATE_WINDOW``,
        ``_RATE_BURST``)."""
        return cls(settings.rate_limit, window=settings.rate_window, burst=settings.rate_burst)

    def share(self, parts: int) -> Quota:
        """One of ``parts`` equal shares, limit and burst alike: the shares together keep to
        this quota in every window as long as each holds a call (``parts`` at most the limit);
        beyond that, only on average."""
        return Quota(
            self.limit / parts, window=self.window, burst=self.burst / parts, margin=self.margin
        )


class SlidingWindowLimiter:
    """In-process ``RateLimiter`` of a ``Quota``. Slots are reserved before sleeping, so
    concurrent callers get consecutive slots instead of all waking at once and racing for
    the same one; a refusal reserves nothing."""

    def __init__(
        self,
        upstream: str,
        quota: Quota,
        *,
        max_wait: float,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.upstream = upstream
        self.quota = quota
        self.max_wait = max_wait
        self._clock = clock
        self._sleep = sleep
        self._given: deque[float] = deque(maxlen=quota.calls)
        """The last ``calls`` slots given, oldest first."""
        self._due = -math.inf
        """GCRA's theoretical arrival time: when the next slot is due at the steady pace."""

    @property
    def rate(self) -> float:
        return self.quota.rate

    def free_slots(self) -> float:
        # The pace's burst left only: the log may hold a slot back, never bring one forward.
        if self.quota.rate <= 0:
            return math.inf
        ahead = max(0.0, self._due - self._clock()) * self.quota.rate
        return max(0.0, self.quota.burst - ahead)

    def _next_slot(self, now: float) -> float:
        slot = max(now, self._due - self.quota.tolerance)
        if len(self._given) == self.quota.calls:
            slot = max(slot, self._given[0] + self.quota.span)
        # The pace's sums round: a burst's last slot would otherwise wait 1e-13 s.
        return now if slot - now < _ROUNDING else slot

    async def acquire(self) -> float:
        if self.quota.rate <= 0:
            return 0.0
        now = self._clock()
        slot = self._next_slot(now)
        wait = slot - now
        if wait > self.max_wait:
            raise _exhausted(self.upstream, retry_after=wait - self.max_wait)
        due_before = self._due
        dropped = self._given[0] if len(self._given) == self.quota.calls else None
        self._given.append(slot)
        reserved_due = self._due = max(due_before, slot) + self.quota.interval
        if wait > 0:
            try:
                await self._sleep(wait)
            except asyncio.CancelledError:
                # A caller that gave up (deadline, disconnect) hands its slot back when
                # nobody reserved behind it; otherwise the gap only slows the pace.
                if self._due == reserved_due:
                    self._due = due_before
                    self._given.pop()
                    if dropped is not None:
                        self._given.appendleft(dropped)
                raise
        return wait


class TokenBucket:
    """In-process ``RateLimiter`` of a pace alone (GCRA): ``burst`` at once, then one slot
    every ``1/rate``. With a burst of one, no window of ``1/rate`` seconds holds two slots:
    the pace of a lane's gate (``SliceOf``). Slots are reserved before sleeping, as in
    ``SlidingWindowLimiter``."""

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
        self._next_free = -math.inf  # when the next slot frees once the burst is spent

    def free_slots(self) -> float:
        if self.rate <= 0:
            return math.inf
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
            raise _exhausted(self.upstream, retry_after=wait - self.max_wait)
        reserved_until = self._next_free = slot + interval
        if wait > 0:
            try:
                await self._sleep(wait)
            except asyncio.CancelledError:
                # As in ``SlidingWindowLimiter``: the slot back when nobody queued behind it.
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


__all__ = [
    "ARRIVAL_MARGIN",
    "Quota",
    "RateLimiter",
    "SliceOf",
    "SlidingWindowLimiter",
    "TokenBucket",
]

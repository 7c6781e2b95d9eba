"""Per-upstream resilience: deadline, retries, circuit breaker, concurrency cap, rate limit.

``UpstreamGuard.run`` turns one logical upstream call into as many HTTP tries as
the deadline allows. Each try passes, in order: the circuit breaker, the rate
limiter, the concurrency cap, then the attempt itself. Clocks, sleeps and jitter
are injectable so tests control time.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Literal, Protocol, TypeVar

from gateway.config import UpstreamSettings
from gateway.errors import CircuitOpen, ErrorKind, UpstreamError
from gateway.metrics import BREAKER_STATE, RATE_LIMIT_WAIT, UPSTREAM_RETRIES
from gateway.upstreams.fair_queue import FairQueue

logger = logging.getLogger("gateway.resilience")

T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
BreakerState = Literal["closed", "open", "half_open"]

# What a call refused during a probe is told to wait: the probe's verdict is due
# within one attempt, and the breaker cannot know how long that will be.
_PROBE_RETRY_AFTER = 1.0
# The least time handed to an attempt: some HTTP clients read 0 as "no timeout".
_MIN_ATTEMPT_TIMEOUT = 0.001


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures; after ``cooldown`` lets exactly one
    probe through; the probe's outcome closes it or opens it for another cool-down.

    Whoever is let through reports the outcome with ``record_success`` or
    ``record_failure``. Any answer counts, including one from a call let through
    before the breaker opened: an answer is evidence of health, a failure of the
    opposite.
    """

    def __init__(
        self, upstream: str, threshold: int, cooldown: float, clock: Clock = time.monotonic
    ) -> None:
        self.upstream = upstream
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        # Identifies the half-open probe in flight, so only its own caller can free the slot.
        self._probe: object | None = None
        # The labelled gauge looked up once: record_success runs on every answer.
        self._state_gauge = BREAKER_STATE.labels(upstream)
        self._state_gauge.set(0)

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self._probe is not None or self._cooldown_left() <= 0:
            return "half_open"
        return "open"

    def acquire(self) -> None:
        """Let a call through, or raise ``CircuitOpen`` while open or while a probe runs."""
        self._admit()

    def record_success(self) -> None:
        """The upstream answered: close and forget past failures."""
        if self._opened_at is not None:
            logger.info("circuit closed", extra={"upstream": self.upstream})
        self._failures = 0
        self._opened_at = None
        self._probe = None
        self._state_gauge.set(0)

    def record_failure(self) -> None:
        """The upstream failed: open at ``threshold`` consecutive failures. A failure while
        open or probing (a failed probe, or a straggler) restarts the cool-down."""
        self._failures += 1
        if self._opened_at is None:
            if self._failures < self.threshold:
                return
            logger.warning(
                "circuit opened", extra={"upstream": self.upstream, "failures": self._failures}
            )
        self._opened_at = self._clock()
        self._probe = None
        self._state_gauge.set(1)

    def _admit(self) -> object | None:
        """``acquire``, returning a token when this call is the half-open probe.

        The probe's caller must hand the token to ``_release`` when it is done, so a
        probe that ends without a verdict (cancelled, refused by the rate limit, an
        unexpected exception) does not keep every later call out.
        """
        if self._opened_at is None:
            return None
        left = self._cooldown_left()
        if left > 0:
            raise CircuitOpen(self.upstream, retry_after=left)
        if self._probe is not None:
            raise CircuitOpen(self.upstream, retry_after=_PROBE_RETRY_AFTER)
        self._probe = object()
        logger.info("circuit half-open: probing", extra={"upstream": self.upstream})
        return self._probe

    def _release(self, probe: object) -> None:
        """Free the probe slot unless a verdict already did (or a newer probe holds it)."""
        if self._probe is probe:
            self._probe = None

    def _cooldown_left(self) -> float:
        assert self._opened_at is not None
        return self.cooldown - (self._clock() - self._opened_at)


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


class UpstreamGuard:
    """Everything one upstream call goes through; one per upstream per process."""

    def __init__(
        self,
        settings: UpstreamSettings,
        *,
        rate_limiter: RateLimiter | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.breaker = CircuitBreaker(
            settings.name, settings.breaker_threshold, settings.breaker_cooldown, clock
        )
        if rate_limiter is None:
            rate_limiter = TokenBucket(
                settings.name,
                settings.rate_limit,
                max_wait=settings.rate_limit_max_wait,
                clock=clock,
                sleep=sleep,
            )
        self.rate_limiter: RateLimiter = rate_limiter
        # Its slots go to the callers waiting in turn.
        self.turns = FairQueue(
            settings.name, rate_limiter, max_wait=settings.rate_limit_max_wait, clock=clock
        )
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self._slots = asyncio.Semaphore(settings.max_concurrency)

    async def run(self, attempt: Callable[[float], Awaitable[T]], owner: str = "") -> T:
        """One logical call within ``settings.deadline``, retried while the budget allows.
        ``owner`` names the caller: the rate limit's slots go to callers in turn.

        ``attempt(seconds_remaining)`` makes one HTTP try and raises ``UpstreamError``
        on failure. ``CircuitOpen`` and the rate limiter's refusals propagate without
        a retry: neither says anything new about the upstream.
        """
        deadline = self._clock() + self.settings.deadline
        retries = 0
        while True:
            probe = self.breaker._admit()
            try:
                await self._wait_for_rate_limit(deadline, owner)
                try:
                    result = await self._call(attempt, deadline)
                except UpstreamError as error:
                    self._record(error)
                    delay = self._retry_delay(error, retries, deadline)
                    if delay is None:
                        raise
                else:
                    self.breaker.record_success()
                    return result
            finally:
                if probe is not None:
                    self.breaker._release(probe)
            retries += 1
            UPSTREAM_RETRIES.labels(self.settings.name).inc()
            await self._sleep(delay)

    def _record(self, error: UpstreamError) -> None:
        # Caller errors (bad token, bad input) and the upstream's own throttling show
        # that it is alive and answering.
        if error.kind.counts_against_breaker:
            self.breaker.record_failure()
        else:
            self.breaker.record_success()

    def _retry_delay(self, error: UpstreamError, retries: int, deadline: float) -> float | None:
        """Seconds to sleep before the next try, or ``None`` to give up with ``error``."""
        if not error.kind.retryable or retries >= self.settings.max_retries:
            return None
        if self.breaker.state != "closed":
            return None  # the breaker would refuse the retry: fail now, not after the sleep
        if error.retry_after is not None:
            delay = max(0.0, error.retry_after)
        else:
            delay = self.settings.retry_backoff * 2**retries * (0.5 + self._jitter())
        if self._clock() + delay >= deadline:
            return None  # no time would be left for the retry
        return delay

    async def _wait_for_rate_limit(self, deadline: float, owner: str) -> None:
        if self.rate_limiter.rate <= 0:
            return
        name = self.settings.name
        scope = asyncio.timeout(self._left(deadline))
        try:
            async with scope:
                waited = await self.turns.acquire(owner)
        except TimeoutError:
            if not scope.expired():
                raise
            # Local queueing, not the upstream: THROTTLED, which the breaker ignores.
            raise UpstreamError(
                ErrorKind.THROTTLED,
                name,
                "the gateway's request-rate limit for this upstream leaves no time "
                "before the deadline",
            ) from None
        RATE_LIMIT_WAIT.labels(name).observe(waited)

    async def _call(self, attempt: Callable[[float], Awaitable[T]], deadline: float) -> T:
        """The attempt under the concurrency cap, the wait for a slot within the deadline too."""
        scope = asyncio.timeout(self._left(deadline))
        try:
            async with scope, self._slots:
                return await attempt(max(_MIN_ATTEMPT_TIMEOUT, self._left(deadline)))
        except TimeoutError:
            if not scope.expired():
                raise  # the attempt's own TimeoutError is not ours to translate
            raise UpstreamError(
                ErrorKind.TIMEOUT,
                self.settings.name,
                f"no answer within the {self.settings.deadline:g} s deadline",
            ) from None

    def _left(self, deadline: float) -> float:
        return max(0.0, deadline - self._clock())

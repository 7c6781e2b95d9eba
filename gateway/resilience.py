"""Per-upstream resilience: deadline, retries, circuit breaker, concurrency cap, rate limit.

``UpstreamGuard.run`` turns one logical upstream call into as many HTTP tries as
the budget allows. Clocks and sleeps are injectable so tests control time.
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

logger = logging.getLogger("gateway.resilience")

T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures; after ``cooldown`` lets exactly one
    probe through; the probe's outcome closes it or opens it for another cool-down."""

    def __init__(
        self, upstream: str, threshold: int, cooldown: float, clock: Clock = time.monotonic
    ) -> None:
        self.upstream = upstream
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probe_in_flight = False
        BREAKER_STATE.labels(upstream).set(0)

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self._probe_in_flight or self._clock() - self._opened_at >= self.cooldown:
            return "half_open"
        return "open"

    def acquire(self) -> None:
        """Let a call through, or raise ``CircuitOpen``."""
        if self._opened_at is None:
            return
        remaining = self.cooldown - (self._clock() - self._opened_at)
        if remaining > 0:
            raise CircuitOpen(self.upstream, retry_after=remaining)
        if self._probe_in_flight:
            raise CircuitOpen(self.upstream, retry_after=0.0)
        self._probe_in_flight = True

    def record_success(self) -> None:
        if self._opened_at is not None:
            logger.info("circuit closed", extra={"upstream": self.upstream})
        self._failures = 0
        self._opened_at = None
        self._probe_in_flight = False
        BREAKER_STATE.labels(self.upstream).set(0)

    def record_failure(self) -> None:
        self._failures += 1
        if self._probe_in_flight or self._failures >= self.threshold:
            if self._opened_at is None:
                logger.warning(
                    "circuit opened", extra={"upstream": self.upstream, "failures": self._failures}
                )
            self._opened_at = self._clock()
            self._probe_in_flight = False
            BREAKER_STATE.labels(self.upstream).set(1)

    def release_probe(self) -> None:
        """The probe ended without a verdict (cancelled, or an unexpected error)."""
        self._probe_in_flight = False


class RateLimiter(Protocol):
    async def acquire(self) -> float:
        """Wait for a slot; return the seconds waited, or raise THROTTLED when the wait
        would exceed the limiter's maximum."""
        ...


class TokenBucket:
    """In-process limiter: slots reserved up front, so concurrent callers get
    consecutive slots ``1/rate`` apart instead of all waking at once."""

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
        self.burst = max(1.0, burst if burst is not None else rate)
        self.max_wait = max_wait
        self._clock = clock
        self._sleep = sleep
        self._next_free = 0.0  # theoretical arrival time of the next slot (GCRA)

    async def acquire(self) -> float:
        if self.rate <= 0:
            return 0.0
        interval = 1.0 / self.rate
        now = self._clock()
        tat = max(self._next_free, now)
        wait = max(0.0, tat - (self.burst - 1) * interval - now)
        if wait > self.max_wait:
            raise UpstreamError(
                ErrorKind.THROTTLED,
                self.upstream,
                "the gateway's request-rate limit for this upstream is exhausted",
                retry_after=wait,
            )
        self._next_free = tat + interval
        if wait > 0:
            await self._sleep(wait)
        return wait


class UpstreamGuard:
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
        self.rate_limiter: RateLimiter = rate_limiter or TokenBucket(
            settings.name,
            settings.rate_limit,
            max_wait=settings.rate_limit_max_wait,
            clock=clock,
            sleep=sleep,
        )
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self._slots = asyncio.Semaphore(settings.max_concurrency)

    async def run(self, attempt: Callable[[float], Awaitable[T]]) -> T:
        """One logical call within ``settings.deadline``, retried while the budget allows."""
        settings = self.settings
        deadline = self._clock() + settings.deadline
        tries = 0
        while True:
            self.breaker.acquire()
            try:
                result = await self._try(attempt, deadline)
            except UpstreamError as error:
                if error.kind.counts_against_breaker:
                    self.breaker.record_failure()
                else:
                    self.breaker.record_success()
                if not error.kind.retryable or tries >= settings.max_retries:
                    raise
                backoff = (
                    error.retry_after
                    if error.retry_after is not None
                    else settings.retry_backoff * 2**tries * (0.5 + self._jitter())
                )
                if self._clock() + backoff >= deadline:
                    raise
                tries += 1
                UPSTREAM_RETRIES.labels(settings.name).inc()
                await self._sleep(backoff)
                continue
            except BaseException:
                self.breaker.release_probe()
                raise
            self.breaker.record_success()
            return result

    async def _try(self, attempt: Callable[[float], Awaitable[T]], deadline: float) -> T:
        name = self.settings.name
        remaining = deadline - self._clock()
        try:
            async with asyncio.timeout(remaining if remaining > 0 else 0):
                waited = await self.rate_limiter.acquire()
                RATE_LIMIT_WAIT.labels(name).observe(waited)
                async with self._slots:
                    return await attempt(max(0.001, deadline - self._clock()))
        except TimeoutError:
            raise UpstreamError(
                ErrorKind.TIMEOUT, name, f"no answer within {self.settings.deadline:g} s"
            ) from None

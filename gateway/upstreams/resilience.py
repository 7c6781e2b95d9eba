"""Per-upstream resilience: deadline, retries, circuit breaker, concurrency cap, rate limit.

``UpstreamGuard.run`` turns one logical upstream call into as many HTTP tries as
the deadline allows. Each try passes, in order: the circuit breaker's cool-down, the
rate limiter (in turn with the other callers), the breaker's probe, the concurrency
cap, then the attempt itself. Clocks, sleeps and jitter
are injectable so tests control time.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal, TypeVar

from gateway.config import UpstreamSettings
from gateway.errors import CircuitOpen, ErrorKind, UpstreamError
from gateway.metrics import BREAKER_STATE, RATE_LIMIT_WAIT, UPSTREAM_RETRIES
from gateway.upstreams.fair_queue import FairQueue
from gateway.upstreams.rate_limit import Quota, RateLimiter, SliceOf, SlidingWindowLimiter

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
    """Opens after ``threshold`` consecutive failures that came from at least
    ``min_callers`` distinct callers; after ``cooldown`` lets exactly one probe through;
    the probe's outcome closes it or opens it for another cool-down.

    Whoever is let through reports the outcome with ``record_success`` or
    ``record_failure``, and nothing for an outcome that says nothing of the upstream's
    health (a refusal of the caller's own request). Any answer counts, including one
    from a call let through before the breaker opened: an answer is evidence of health,
    a failure of the opposite. A failure names its source, the caller it came to: one
    caller failing again and again (an input the upstream answers with a 500) is one
    source, and cannot open the breaker for every other caller. A failure no caller can
    cause (the upstream refused the connection) is a source of its own each time.
    """

    def __init__(
        self,
        upstream: str,
        threshold: int,
        cooldown: float,
        clock: Clock = time.monotonic,
        *,
        min_callers: int = 1,
    ) -> None:
        self.upstream = upstream
        self.threshold = threshold
        self.cooldown = cooldown
        self.min_callers = min_callers
        self._clock = clock
        self._failures = 0
        # The callers among the consecutive failures, and the failures of no caller.
        self._sources: set[str] = set()
        self._sourceless = 0
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

    def record_success(self) -> None:
        """The upstream answered: close and forget past failures."""
        if self._opened_at is not None:
            logger.info("circuit closed", extra={"upstream": self.upstream})
        self._failures = 0
        self._sources.clear()
        self._sourceless = 0
        self._opened_at = None
        self._probe = None
        self._state_gauge.set(0)

    def record_failure(self, source: str | None) -> None:
        """The upstream failed for ``source`` (a caller's fingerprint; None for a failure
        no caller can cause): open at ``threshold`` consecutive failures from at least
        ``min_callers`` sources. A failure while open or probing (a failed probe, or a
        straggler) restarts the cool-down."""
        self._failures += 1
        if source is None:
            self._sourceless += 1
        elif len(self._sources) < self.min_callers:  # more are never needed
            self._sources.add(source)
        if self._opened_at is None:
            distinct = len(self._sources) + self._sourceless
            if self._failures < self.threshold or distinct < self.min_callers:
                return
            logger.warning(
                "circuit opened",
                extra={"upstream": self.upstream, "failures": self._failures, "callers": distinct},
            )
        self._opened_at = self._clock()
        self._probe = None
        self._state_gauge.set(1)

    def fail_fast(self) -> None:
        """Raise ``CircuitOpen`` while the breaker cools down; a call need not wait for a
        slot of the rate limit only to be refused."""
        if self._opened_at is not None and (left := self._cooldown_left()) > 0:
            raise CircuitOpen(self.upstream, retry_after=left)

    def admit(self) -> object | None:
        """Let a call through, or raise ``CircuitOpen`` while open or while a probe runs;
        a token when this call is the half-open probe.

        The probe's caller must hand the token to ``release`` when it is done, so a
        probe that ends without a verdict (cancelled, a refusal of its own request, an
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

    def release(self, probe: object) -> None:
        """Free the probe slot unless a verdict already did (or a newer probe holds it)."""
        if self._probe is probe:
            self._probe = None

    def _cooldown_left(self) -> float:
        assert self._opened_at is not None
        return self.cooldown - (self._clock() - self._opened_at)


Priority = Literal["interactive", "deferred", "background"]
"""What a call is for: an answer a caller waits for (the initial payload), the deferred or
streamed parts of one, a refresh of a cached page nobody waits for. The quota's slots go
in that order (``FairQueue``'s lanes), in turns between callers within each."""
PRIORITIES: tuple[Priority, ...] = ("interactive", "deferred", "background")

CALL_PRIORITY: ContextVar[Priority] = ContextVar("call_priority", default="interactive")
"""The priority of the calls made from here on in this context: the executor sets it for
deferred work, the cache for background refreshes; a call reads it when it is made."""


@dataclass(frozen=True, slots=True)
class Requester:
    """Who a call is made for, as the quota and the breaker see it."""

    tenant: str
    """The caller's credential fingerprint."""
    origin: str = ""
    """The client's address."""
    verified: bool = True
    """The upstream has answered this credential before: its failures are evidence about
    the upstream, and its calls take turns as a tenant, not by address in the slice of
    the quota left to the unverified."""
    priority: Priority = "interactive"

    @property
    def lane(self) -> str:
        return self.priority if self.verified else UNVERIFIED

    @property
    def turn_key(self) -> str:
        return self.tenant if self.verified else f"address {self.origin}"


UNVERIFIED = "unverified"
ANYONE = Requester("")
"""The requester of calls made for no caller in particular (tools, tests)."""


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
            settings.name,
            settings.breaker_threshold,
            settings.breaker_cooldown,
            clock,
            min_callers=settings.breaker_min_callers,
        )
        if rate_limiter is None:
            rate_limiter = SlidingWindowLimiter(
                settings.name,
                Quota.of(settings),
                max_wait=settings.rate_limit_max_wait,
                clock=clock,
                sleep=sleep,
            )
        self.rate_limiter: RateLimiter = rate_limiter
        # The limit's slots go to the callers waiting in turn: first to the unverified,
        # within their slice of it, then to the tenants the upstream has answered (their
        # waiting answers, then their deferred parts, then refreshes), and what no tenant
        # wants to the unverified again.
        tenants: tuple[tuple[str, RateLimiter | None], ...] = tuple(
            (priority, None) for priority in PRIORITIES
        )
        lanes = (*tenants, (UNVERIFIED, None))
        if settings.unverified_share > 0 and rate_limiter.rate > 0:
            unverified = SliceOf(
                rate_limiter,
                settings.unverified_share,
                max_wait=settings.rate_limit_max_wait,
                clock=clock,
                sleep=sleep,
            )
            lanes = ((UNVERIFIED, unverified), *tenants)
        self.turns = FairQueue(
            settings.name,
            rate_limiter,
            max_wait=settings.rate_limit_max_wait,
            lanes=lanes,
            clock=clock,
        )
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self._slots = asyncio.Semaphore(settings.max_concurrency)

    async def run(
        self, attempt: Callable[[float], Awaitable[T]], requester: Requester = ANYONE
    ) -> T:
        """One logical call within ``settings.deadline``, retried while the budget allows,
        for ``requester``: the rate limit's slots go to callers in turn, and only its
        verified failures count towards opening the breaker.

        ``attempt(seconds_remaining)`` makes one HTTP try and raises ``UpstreamError``
        on failure. ``CircuitOpen`` and the rate limiter's refusals propagate without
        a retry: neither says anything new about the upstream.
        """
        deadline = self._clock() + self.settings.deadline
        retries = 0
        while True:
            # Refused at once while the breaker cools down; the probe is chosen only once
            # its call has a slot, so a call queued for the quota cannot hold it.
            self.breaker.fail_fast()
            await self._wait_for_rate_limit(deadline, requester)
            probe = self.breaker.admit()
            try:
                try:
                    result = await self._call(attempt, deadline)
                except UpstreamError as error:
                    self._record(error, requester)
                    delay = self._retry_delay(error, retries, deadline)
                    if delay is None:
                        raise
                else:
                    self.breaker.record_success()
                    return result
            finally:
                if probe is not None:
                    self.breaker.release(probe)
            retries += 1
            UPSTREAM_RETRIES.labels(self.settings.name).inc()
            await self._sleep(delay)

    def _record(self, error: UpstreamError, requester: Requester) -> None:
        """Only evidence about the upstream's health moves the breaker. A refusal of the
        caller's own request (any 4xx, OMA's returnCode, the upstream's throttling) says
        nothing of it; a failure seen by a credential the upstream never answered may be
        the caller's doing; a failure to connect is nobody's."""
        if not error.kind.counts_against_breaker:
            return
        if error.at_connect:
            self.breaker.record_failure(None)
        elif requester.verified:
            self.breaker.record_failure(requester.tenant)

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

    async def _wait_for_rate_limit(self, deadline: float, requester: Requester) -> None:
        if self.rate_limiter.rate <= 0:
            return
        name = self.settings.name
        scope = asyncio.timeout(self._left(deadline))
        try:
            async with scope:
                waited = await self.turns.acquire(requester.turn_key, requester.lane)
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

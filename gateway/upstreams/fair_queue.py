"""The upstream quota shared fairly between callers.

A rate limiter on its own serves calls in the order they come: one caller's linked
query, a hundred calls at once, reserves the next ten seconds of the quota, and every
other tenant's single call waits behind all of them (or is refused as throttled).
``FairQueue`` sits in front of the limiter and hands its slots out in turn: each caller
with calls waiting gets one slot per round, in the order the callers started waiting.
A caller alone still gets every slot, as fast as the limiter allows.

The price of turns: a call let in may be overtaken by the calls of callers who come
after it. It then waits at most ``max_wait`` and fails as throttled, never as a timeout
(which would count against the circuit breaker): under a quota that cannot serve
everyone, every caller gets a share instead of the first taking it all.

Fair within one process. With the limit shared through Redis, each replica orders its
own callers; the slots themselves still come from the shared limiter.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from gateway.errors import ErrorKind, UpstreamError

Clock = Callable[[], float]


class SlotSource(Protocol):
    """Where ``FairQueue`` takes its slots from: a rate limiter (``gateway.resilience``)."""

    @property
    def rate(self) -> float: ...

    async def acquire(self) -> float: ...

    def free_slots(self) -> float:
        """Slots ``acquire`` would give now without waiting (the burst left)."""
        ...


class FairQueue:
    """Slots of ``limiter`` for callers (``owner``: the caller's credential fingerprint),
    round-robin between the callers waiting."""

    def __init__(
        self,
        upstream: str,
        limiter: SlotSource,
        *,
        max_wait: float,
        clock: Clock = time.monotonic,
    ) -> None:
        self.upstream = upstream
        self._limiter = limiter
        self.max_wait = max_wait
        self._clock = clock
        # Callers with calls waiting, in turn order (a dict keeps insertion order).
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}
        self._pump: asyncio.Task[None] | None = None

    @property
    def rate(self) -> float:
        return self._limiter.rate

    def waiting(self) -> int:
        """Calls queued for a slot."""
        return sum(len(queue) for queue in self._waiting.values())

    async def acquire(self, owner: str) -> float:
        """Wait for this caller's turn and a slot; the seconds waited. ``UpstreamError``
        (THROTTLED) at once when the caller's turn would come after ``max_wait``."""
        if self.rate <= 0:
            return 0.0  # no limit: no turns to take
        started = self._clock()
        queue = self._waiting.get(owner)
        position = len(queue) if queue is not None else 0
        wait = self._expected_wait(owner, position)
        if wait > self.max_wait:
            raise self._throttled(retry_after=wait - self.max_wait)
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if queue is None:
            queue = self._waiting[owner] = deque()
        queue.append(turn)
        if self._pump is None:
            self._pump = asyncio.create_task(self._hand_out_slots())
        try:
            # Two slots of slack: a turn due at just under max_wait comes a little late
            # when the event loop is busy with the calls already answered.
            async with asyncio.timeout(self.max_wait + 2 / self.rate):
                await turn
        except TimeoutError:
            # Overtaken by callers who came later: their turns pushed this one back.
            self._forget(owner, turn)
            raise self._throttled(retry_after=None) from None
        except asyncio.CancelledError:
            self._forget(owner, turn)
            raise
        return self._clock() - started

    def _throttled(self, retry_after: float | None) -> UpstreamError:
        return UpstreamError(
            ErrorKind.THROTTLED,
            self.upstream,
            "the gateway's request-rate limit for this upstream is exhausted",
            retry_after=retry_after,
        )

    def _expected_wait(self, owner: str, position: int) -> float:
        """Seconds until a new call of ``owner``, ``position`` calls deep in its own queue,
        gets a slot: the calls served before it, one per caller per round, less the
        burst the limiter serves at once."""
        ahead = position + sum(
            min(len(queue), position + 1)
            for other, queue in self._waiting.items()
            if other != owner
        )
        rate = self._limiter.rate
        return max(0.0, ahead + 1 - self._limiter.free_slots()) / rate if rate > 0 else 0.0

    def _forget(self, owner: str, turn: asyncio.Future[None]) -> None:
        queue = self._waiting.get(owner)
        if queue is None:
            return
        try:
            queue.remove(turn)
        except ValueError:
            return
        if not queue:
            del self._waiting[owner]

    def _next_turn(self) -> asyncio.Future[None] | None:
        """The first waiting call of the caller whose turn it is; that caller goes to the
        back of the round."""
        while self._waiting:
            owner = next(iter(self._waiting))
            queue = self._waiting.pop(owner)
            turn = queue.popleft()
            if queue:
                self._waiting[owner] = queue
            if not turn.done():
                return turn
        return None

    async def _hand_out_slots(self) -> None:
        """One slot at a time from the limiter, each to the next caller in turn."""
        try:
            while self._waiting:
                try:
                    await self._limiter.acquire()
                except Exception as refusal:
                    # The shared quota spent elsewhere (or a limiter failing): the caller
                    # whose turn it is hears it, and the others keep their places.
                    turn = self._next_turn()
                    if turn is not None:
                        turn.set_exception(refusal)
                    continue
                turn = self._next_turn()
                if turn is not None:
                    turn.set_result(None)
        finally:
            self._pump = None


__all__ = ["FairQueue"]

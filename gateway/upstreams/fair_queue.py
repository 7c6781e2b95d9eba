"""The upstream quota shared fairly between callers.

A rate limiter on its own serves calls in the order they come: one caller's linked
query, a hundred calls at once, reserves the next ten seconds of the quota, and every
other tenant's single call waits behind all of them (or is refused as throttled).
``FairQueue`` sits in front of the limiter and hands its slots out in turn: each caller
with calls waiting gets one slot per round, in the order the callers started waiting.
A caller alone still gets every slot, as fast as the limiter allows.

Calls wait in lanes, served in the order the lanes are declared. A lane may have a
gate, a limiter of its own: it goes first only while its gate has a slot, so its calls
take at most the gate's pace before the lanes after it; beyond that they have the slots
nobody else waits for (the calls of credentials no upstream has vouched for share such a
slice of the quota: invented tokens cannot take it from the tenants, and the quota is
still all used when the tenants are quiet). Within a lane the turns go by key: the
tenant for verified callers, the client's address for the others, so one client
inventing a thousand tokens takes one turn, not a thousand.

The price of turns: a call let in may be overtaken by the calls of callers who come
after it. It then waits at most ``max_wait`` and fails as throttled, never as a timeout
(which would count against the circuit breaker): under a quota that cannot serve
everyone, every caller gets a share instead of the first taking it all.

Fair within one process. With the limit shared through Redis, each replica orders its
own callers; the slots themselves (and a gate's) still come from the shared limiters.
Each replica holds one slot of the shared queue at a time, so the calls of one replica
never stand deep in front of another's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from gateway.errors import ErrorKind, UpstreamError
from gateway.metrics import RATE_LIMIT_QUEUED

Clock = Callable[[], float]


class SlotSource(Protocol):
    """Where ``FairQueue`` takes its slots: a rate limiter (``gateway.upstreams.resilience``)."""

    @property
    def rate(self) -> float: ...

    async def acquire(self) -> float: ...

    def free_slots(self) -> float:
        """Slots ``acquire`` would give now without waiting (the burst left)."""
        ...


class _Lane:
    """The calls of one lane, by key in turn order (a dict keeps insertion order)."""

    __slots__ = ("gate", "name", "waiting")

    def __init__(self, name: str, gate: SlotSource | None) -> None:
        self.name = name
        self.gate = gate
        self.waiting: dict[str, deque[asyncio.Future[None]]] = {}

    def __len__(self) -> int:
        return sum(len(queue) for queue in self.waiting.values())

    def gate_open(self) -> bool:
        return self.gate is None or self.gate.free_slots() >= 1

    def next_turn(self) -> asyncio.Future[None] | None:
        """The first waiting call of the key whose turn it is; that key goes to the back
        of the round."""
        while self.waiting:
            key = next(iter(self.waiting))
            queue = self.waiting.pop(key)
            turn = queue.popleft()
            if queue:
                self.waiting[key] = queue
            if not turn.done():
                return turn
        return None

    def forget(self, key: str, turn: asyncio.Future[None]) -> None:
        queue = self.waiting.get(key)
        if queue is None:
            return
        with contextlib.suppress(ValueError):
            queue.remove(turn)
        if not queue:
            del self.waiting[key]


class FairQueue:
    """Slots of ``limiter`` for calls, in ``lanes`` (name and gate, in the order they are
    served), round-robin between the keys waiting in a lane."""

    def __init__(
        self,
        upstream: str,
        limiter: SlotSource,
        *,
        max_wait: float,
        lanes: Sequence[tuple[str, SlotSource | None]] = (("calls", None),),
        clock: Clock = time.monotonic,
    ) -> None:
        if not lanes:
            raise ValueError("a queue needs a lane")
        if any(gate is not None and gate.rate <= 0 for _, gate in lanes):
            raise ValueError("a lane's gate needs a rate above 0")
        self.upstream = upstream
        self._limiter = limiter
        self.max_wait = max_wait
        self._clock = clock
        self._lanes = [_Lane(name, gate) for name, gate in lanes]
        self._by_name = {lane.name: lane for lane in self._lanes}
        # Calls go to the first lane without a gate unless they name one.
        self._default = next((lane for lane in self._lanes if lane.gate is None), self._lanes[0])
        self._pump: asyncio.Task[None] | None = None
        for lane in self._lanes:
            RATE_LIMIT_QUEUED.labels(upstream, lane.name).set_function(lane.__len__)

    @property
    def rate(self) -> float:
        return self._limiter.rate

    async def acquire(self, key: str, lane: str | None = None) -> float:
        """Wait for ``key``'s turn in ``lane`` and a slot; the seconds waited.
        ``UpstreamError`` (THROTTLED) at once when the turn would come after ``max_wait``."""
        if self.rate <= 0:
            return 0.0  # no limit: no turns to take
        chosen = self._default if lane is None else self._by_name[lane]
        started = self._clock()
        queue = chosen.waiting.get(key)
        wait = self._expected_wait(chosen, key, len(queue) if queue is not None else 0)
        if wait > self.max_wait:
            raise self._throttled(retry_after=wait - self.max_wait)
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if queue is None:
            queue = chosen.waiting[key] = deque()
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
            chosen.forget(key, turn)
            raise self._throttled(retry_after=None) from None
        except asyncio.CancelledError:
            chosen.forget(key, turn)
            raise
        return self._clock() - started

    def _throttled(self, retry_after: float | None) -> UpstreamError:
        return UpstreamError(
            ErrorKind.THROTTLED,
            self.upstream,
            "the gateway's request-rate limit for this upstream is exhausted",
            retry_after=retry_after,
        )

    def _expected_wait(self, lane: _Lane, key: str, position: int) -> float:
        """Seconds until a new call of ``key``, ``position`` calls deep in its own queue,
        gets a slot: the calls of its lane served before it (one per key per round), less
        the burst the limiter serves at once, at the limiter's pace; a gated lane's while
        other lanes wait is its gate's. Never more than the wait will be, so a call is
        never refused that would have been served: the lanes before it may make the
        wait longer, which the timeout in ``acquire`` then bounds."""
        ahead = position + sum(
            min(len(queue), position + 1) for other, queue in lane.waiting.items() if other != key
        )
        pace = self._limiter.rate
        free = self._limiter.free_slots()
        if lane.gate is not None and any(
            other.waiting for other in self._lanes if other is not lane
        ):
            pace = min(pace, lane.gate.rate)
            free = min(free, lane.gate.free_slots())
        return max(0.0, ahead + 1 - free) / pace

    def _waiting(self) -> bool:
        return any(lane.waiting for lane in self._lanes)

    async def _next_turn(self, *, through_gate: bool = True) -> asyncio.Future[None] | None:
        """The call the slot in hand goes to: of the first lane, in order, with a call
        waiting and its gate open, else of the first with a call waiting (a gated lane's:
        a slot nobody else wants). Through the gate, a gated lane served first takes a slot
        of its gate too; a gate that refuses (a shared slice spent elsewhere) refuses that
        call, and the slot goes on to the next."""
        while waiting := [lane for lane in self._lanes if lane.waiting]:
            lane = next((each for each in waiting if each.gate_open()), waiting[0])
            refusal: Exception | None = None
            if through_gate and lane.gate is not None and lane.gate_open():
                try:
                    await lane.gate.acquire()
                except Exception as exc:
                    refusal = exc
            turn = lane.next_turn()
            if turn is None:
                continue  # its calls went away meanwhile
            if refusal is None:
                return turn
            turn.set_exception(refusal)
        return None

    async def _hand_out_slots(self) -> None:
        """One slot at a time from the limiter, each to the next call in turn."""
        try:
            while self._waiting():
                try:
                    await self._limiter.acquire()
                except Exception as refusal:
                    # The shared quota spent elsewhere (or a limiter failing): the caller
                    # whose turn it is hears it, and the others keep their places.
                    turn = await self._next_turn(through_gate=False)
                    if turn is not None:
                        turn.set_exception(refusal)
                    continue
                turn = await self._next_turn()
                if turn is not None:
                    turn.set_result(None)
        finally:
            self._pump = None


__all__ = ["FairQueue", "SlotSource"]

"""What an upstream has said of the credentials it was sent, remembered for a while.

A credential is *verified* once the upstream has answered it with data: its calls then
take turns as a tenant's, and its failures are evidence about the upstream's health. A
credential the upstream refused (401, 403) is refused again without a call for a short
while, so repeating an invented or revoked token costs the shared quota nothing.

Kept in this process, bounded, and in Redis when the deployment has one, so replicas
agree: a lookup asks Redis only for a fingerprint this process knows nothing of (and
then not again for a few seconds), and Redis failing leaves the local memory alone in
charge, never a refusal. Keys hold fingerprints (``gateway.credentials``), never tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

import redis.asyncio as redis
from redis.exceptions import RedisError

from gateway.config import SecuritySettings
from gateway.errors import ErrorKind, UpstreamError

logger = logging.getLogger("gateway.credentials")

V = TypeVar("V")
R = TypeVar("R")
Clock = Callable[[], float]

MAX_ENTRIES = 100_000
"""Fingerprints remembered per kind and upstream: about 10 MB at most."""
_UNKNOWN_FOR = 2.0
"""Seconds a fingerprint Redis knew nothing of is not looked up again."""
_SHARED_VERDICT_FOR = 60.0
"""Seconds a verdict read from Redis is believed here before Redis is asked again, so a
refusal another replica saw reaches this one within a minute."""
_RETRY_REDIS_AFTER = 1.0
REFUSALS = frozenset({ErrorKind.UNAUTHENTICATED, ErrorKind.FORBIDDEN})
"""The answers that refuse the credential itself, whatever was asked."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """How the upstream refused a credential, to refuse it the same way without a call."""

    kind: ErrorKind
    status: int | None
    upstream_code: str | None

    def error(self, upstream: str) -> UpstreamError:
        return UpstreamError(
            self.kind,
            upstream,
            f"{upstream.upper()} did not accept the token a moment ago; it is not sent "
            "again for a while",
            status=self.status,
            upstream_code=self.upstream_code,
        )

    def encode(self) -> str:
        return f"{self.kind.name}|{self.status or ''}|{self.upstream_code or ''}"

    @classmethod
    def decode(cls, raw: bytes | str) -> Refusal | None:
        text = raw.decode() if isinstance(raw, bytes) else raw
        try:
            kind, status, code = text.split("|")
            refusal = cls(ErrorKind[kind], int(status) if status else None, code or None)
        except (ValueError, KeyError):
            return None
        return refusal if refusal.kind in REFUSALS else None


class _Expiring(Generic[V]):
    """A bounded map whose entries expire; the entry least recently put goes first when
    full."""

    def __init__(self, max_entries: int, clock: Clock) -> None:
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()
        self._max = max_entries
        self._clock = clock

    def get(self, key: str) -> V | None:
        found = self._entries.get(key)
        if found is None:
            return None
        if found[0] <= self._clock():
            del self._entries[key]
            return None
        return found[1]

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def put(self, key: str, value: V, seconds: float) -> None:
        self._entries.pop(key, None)  # to the end: put again, kept the longest
        self._entries[key] = (self._clock() + seconds, value)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def pop(self, key: str) -> None:
        self._entries.pop(key, None)


class CredentialBook:
    """The verdicts of one upstream on credentials, by fingerprint."""

    def __init__(
        self,
        upstream: str,
        settings: SecuritySettings,
        *,
        client: redis.Redis | None = None,
        timeout: float,
        clock: Clock = time.monotonic,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self.upstream = upstream
        self._verified_ttl = settings.verified_ttl
        self._rejected_ttl = settings.rejected_ttl
        self._client = client
        self._timeout = timeout
        self._clock = clock
        # Fingerprints the upstream answered; refused, and how; Redis knew nothing of.
        self._verified: _Expiring[Literal[True]] = _Expiring(max_entries, clock)
        self._refused: _Expiring[Refusal] = _Expiring(max_entries, clock)
        self._unknown: _Expiring[Literal[True]] = _Expiring(max_entries, clock)
        self._redis_down_until = 0.0
        self._prefix = f"gw:v2:credential:{upstream}:"
        # The first call of each unverified credential in flight: its other calls wait for
        # its verdict instead of all going out as the calls of a stranger.
        self._trials: dict[str, asyncio.Event] = {}

    def refusal_here(self, fingerprint: str) -> Refusal | None:
        """The refusal this process remembers for the credential, without asking Redis."""
        return self._refused.get(fingerprint)

    def verified_here(self, fingerprint: str) -> bool:
        return fingerprint in self._verified

    async def look_up(self, fingerprint: str) -> tuple[bool, Refusal | None]:
        """Whether the credential is verified, and the refusal remembered for it: from
        this process, else from Redis (once in a while per fingerprint)."""
        refusal = self._refused.get(fingerprint)
        if refusal is not None:
            return False, refusal
        if fingerprint in self._verified:
            return True, None
        if self._client is None or fingerprint in self._unknown:
            return False, None
        client = self._client
        found = await self._redis(
            lambda: client.mget(self._key("ok", fingerprint), self._key("no", fingerprint))
        )
        if found is None:
            return False, None
        verified_raw, refused_raw = found
        refusal = Refusal.decode(refused_raw) if refused_raw is not None else None
        if refusal is not None:
            self._refused.put(fingerprint, refusal, min(self._rejected_ttl, _SHARED_VERDICT_FOR))
            return False, refusal
        if verified_raw is not None:
            self._verified.put(fingerprint, True, min(self._verified_ttl, _SHARED_VERDICT_FOR))
            return True, None
        self._unknown.put(fingerprint, True, _UNKNOWN_FOR)
        return False, None

    async def await_trial(self, fingerprint: str, patience: float) -> bool:
        """For a call of an unverified credential: True when it is the credential's first
        call in flight here (its trial: ``end_trial`` when it is done); else, after waiting
        up to ``patience`` seconds for the trial's verdict, False. An invented token's fan-out then
        costs one call, and a new tenant's the trial's round trip before its other calls
        take the verified lane."""
        pending = self._trials.get(fingerprint)
        if pending is None:
            self._trials[fingerprint] = asyncio.Event()
            return True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(patience):
                await pending.wait()
        return False

    def end_trial(self, fingerprint: str) -> None:
        pending = self._trials.pop(fingerprint, None)
        if pending is not None:
            pending.set()

    async def answered(self, fingerprint: str) -> None:
        """The upstream answered the credential with data: it is verified."""
        known = fingerprint in self._verified
        self._verified.put(fingerprint, True, self._verified_ttl)
        if known or self._client is None:
            return  # Redis has it already, from this process
        client = self._client
        ttl_ms = max(1, int(self._verified_ttl * 1000))
        await self._redis(lambda: client.set(self._key("ok", fingerprint), b"1", px=ttl_ms))

    async def refused(self, fingerprint: str, error: UpstreamError) -> None:
        """The upstream refused the credential (401, 403): not verified any more, and
        refused again without a call for ``rejected_ttl`` seconds."""
        if error.kind not in REFUSALS:
            return
        self._verified.pop(fingerprint)
        if self._rejected_ttl <= 0:
            return
        refusal = Refusal(error.kind, error.status, error.upstream_code)
        self._refused.put(fingerprint, refusal, self._rejected_ttl)
        if self._client is None:
            return
        client = self._client
        ttl_ms = max(1, int(self._rejected_ttl * 1000))

        async def record() -> None:
            async with client.pipeline() as pipe:
                pipe.delete(self._key("ok", fingerprint))
                pipe.set(self._key("no", fingerprint), refusal.encode(), px=ttl_ms)
                await pipe.execute()

        await self._redis(record)

    def _key(self, kind: str, fingerprint: str) -> str:
        return f"{self._prefix}{kind}:{fingerprint}"

    async def _redis(self, operation: Callable[[], Awaitable[R]]) -> R | None:
        """The operation's result, or None when Redis fails or is being skipped: the
        verdicts of this process then stand alone."""
        if self._clock() < self._redis_down_until:
            return None
        try:
            async with asyncio.timeout(self._timeout):
                result = await operation()
        except (RedisError, OSError, TimeoutError) as exc:
            if self._redis_down_until == 0.0:
                logger.warning(
                    "shared credential verdicts unavailable; keeping them in-process",
                    extra={"upstream": self.upstream, "error": type(exc).__name__},
                )
            self._redis_down_until = self._clock() + _RETRY_REDIS_AFTER
            return None
        if self._redis_down_until:
            logger.info("shared credential verdicts are back", extra={"upstream": self.upstream})
            self._redis_down_until = 0.0
        return result


__all__ = ["REFUSALS", "CredentialBook", "Refusal"]

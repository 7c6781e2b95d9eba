"""Who an upstream call is made for.

A ``Caller`` is created per GraphQL request and per upstream. It carries the
caller's own token (never stored on a shared client), whether the caller asked
for fresh data, and the request's counters. The cache keys entries by the
token's fingerprint, so callers with different tokens never share an entry.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


@dataclass(slots=True)
class RequestStats:
    """Counters of one GraphQL request, for its log line and ``extensions``."""

    upstream_calls: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    stale_served: list[str] = field(default_factory=list)
    """Upstream names for which a stale page was served because the upstream failed."""


@dataclass(frozen=True, slots=True)
class Caller:
    token: str
    fresh: bool = False
    """The caller sent ``Cache-Control: no-cache``: refetch and refresh the entries touched."""
    stats: RequestStats = field(default_factory=RequestStats, compare=False)
    fingerprint: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A one-way hash: cache keys and logs may carry it, never the token itself.
        digest = hashlib.sha256(b"gateway-credential\x00" + self.token.encode()).hexdigest()
        object.__setattr__(self, "fingerprint", digest[:32])

    def __repr__(self) -> str:
        return f"Caller(fingerprint={self.fingerprint[:8]}…, fresh={self.fresh})"

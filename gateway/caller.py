"""Who an upstream call is made for.

A ``Caller`` is created per GraphQL request and per upstream. It carries the
caller's own token (never stored on a shared client), where the request came from,
whether the caller asked for fresh data, and the request's counters. The cache keys
entries by the token's fingerprint, so callers with different tokens never share an
entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.credentials import PROCESS_KEY, CredentialKey


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
    origin: str = ""
    """The client's address (through trusted proxies): the quota's turns for callers whose
    credentials no upstream has vouched for are taken by address, not by token."""
    key: CredentialKey = field(default=PROCESS_KEY, repr=False, compare=False)
    fingerprint: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A keyed one-way hash: cache keys and logs may carry it, never the token itself.
        object.__setattr__(self, "fingerprint", self.key.fingerprint(self.token))

    def __repr__(self) -> str:
        return f"Caller(fingerprint={self.fingerprint[:8]}…, fresh={self.fresh})"

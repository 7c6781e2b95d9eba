"""One error taxonomy for every upstream.

Upstream clients translate HTTP statuses, the upstreams' own codes and transport
failures into an ``UpstreamError`` exactly once, at their boundary. The schema
maps ``ErrorKind`` onto GraphQL ``extensions.code``; nothing above the clients
looks at HTTP statuses or upstream JSON.
"""

from __future__ import annotations

import enum


class ErrorKind(enum.Enum):
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    BAD_REQUEST = "BAD_USER_INPUT"
    THROTTLED = "UPSTREAM_THROTTLED"
    UNAVAILABLE = "UPSTREAM_UNAVAILABLE"
    TIMEOUT = "UPSTREAM_TIMEOUT"
    BAD_RESPONSE = "UPSTREAM_BAD_RESPONSE"
    # A well-formed answer that refuses this one request (OMA's returnCode other than
    # "0", a 4xx with no meaning of its own): the upstream is up and said no to this
    # request, for reasons of its own.
    REFUSED = "UPSTREAM_REFUSED"

    @property
    def retryable(self) -> bool:
        """Only these are retried: the calls are read-only queries, so a retry is safe."""
        return self in (ErrorKind.UNAVAILABLE, ErrorKind.TIMEOUT, ErrorKind.THROTTLED)

    @property
    def upstream_could_not_answer(self) -> bool:
        """The upstream was down, slow, throttled or garbled, and said nothing about the
        caller: only then may an expired page stand in (stale-if-error). A refusal (a
        revoked token, a forbidden account) must reach the caller, never old data."""
        return self.counts_against_breaker or self is ErrorKind.THROTTLED

    @property
    def counts_against_breaker(self) -> bool:
        """Failures that may say the upstream is unhealthy, not that the caller is wrong.
        A refusal does not, nor throttling (the upstream answered): one tenant's refused
        calls must not open the breaker for all. Whose failure it was decides the rest
        (``gateway.upstreams.resilience.UpstreamGuard``)."""
        return self in (
            ErrorKind.UNAVAILABLE,
            ErrorKind.TIMEOUT,
            ErrorKind.BAD_RESPONSE,
        )


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""


class UpstreamError(GatewayError):
    """An upstream call failed; carries what a caller may be told, never a token or URL."""

    def __init__(
        self,
        kind: ErrorKind,
        upstream: str,
        message: str,
        *,
        status: int | None = None,
        upstream_code: str | None = None,
        retry_after: float | None = None,
        at_connect: bool = False,
    ) -> None:
        self.kind = kind
        self.upstream = upstream
        self.message = message
        """The gateway's own words: never text the upstream wrote."""
        self.status = status
        self.upstream_code = upstream_code
        """The upstream's error code (``CBC.0100``, ``APIG.0308``, a returnCode), which
        callers may be told: it is one of a documented few, checked before it is kept."""
        self.retry_after = retry_after
        self.at_connect = at_connect
        """The call never reached the upstream (no connection): no caller's input can
        have caused it."""
        super().__init__(f"{upstream}: {message}")

    def __repr__(self) -> str:
        return (
            f"UpstreamError({self.kind.name}, upstream={self.upstream!r}, status={self.status}, "
            f"code={self.upstream_code!r}, message={self.message!r})"
        )


class InvalidRequest(GatewayError):
    """A request the gateway refuses before any upstream call (limits, bad values)."""

    def __init__(self, message: str, *, upstream: str | None = None) -> None:
        self.message = message
        self.upstream = upstream
        super().__init__(message)


class CircuitOpen(UpstreamError):
    """The breaker is open: failing fast without calling the upstream."""

    def __init__(self, upstream: str, retry_after: float) -> None:
        super().__init__(
            ErrorKind.UNAVAILABLE,
            upstream,
            "upstream is failing; circuit breaker is open",
            retry_after=retry_after,
        )

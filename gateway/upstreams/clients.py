"""Both upstream clients, built once for the life of the app."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx
import redis.asyncio as redis

from gateway.cache.pages import PageCache
from gateway.config import Settings, UpstreamSettings
from gateway.upstreams.cbc import RESOURCES_QUERY, CbcClient, ResourcePage, ResourceQuery
from gateway.upstreams.endpoint import UpstreamClient
from gateway.upstreams.oma import QUERY_RESOURCE, OmaClient, SubscriptionPage, SubscriptionQuery
from gateway.upstreams.rate_limit import RateLimiter
from gateway.upstreams.resilience import UpstreamGuard
from gateway.upstreams.transport import UpstreamHttp
from gateway.upstreams.verification import CredentialBook


@dataclass(frozen=True, slots=True)
class Upstreams:
    oma: OmaClient
    cbc: CbcClient
    guards: Mapping[str, UpstreamGuard]
    books: Mapping[str, CredentialBook]
    """What each upstream said of the credentials it was sent."""
    http: tuple[UpstreamHttp, ...]

    def breaker_states(self) -> dict[str, str]:
        return {name: guard.breaker.state for name, guard in self.guards.items()}

    def vouched_for(self, fingerprint: str) -> bool:
        """Whether any upstream has answered this credential (in this process)."""
        return any(book.verified_here(fingerprint) for book in self.books.values())

    async def aclose(self) -> None:
        for http in self.http:
            await http.aclose()


def build_upstreams(
    settings: Settings,
    cache: PageCache,
    *,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    rate_limiters: Mapping[str, RateLimiter] | None = None,
    redis_client: redis.Redis | None = None,
) -> Upstreams:
    """``transports`` is the test seam: a mock or ASGI transport per upstream name.
    ``rate_limiters`` replace the in-process ones; ``redis_client`` shares what the
    upstreams said of credentials between replicas."""
    transports = transports or {}
    rate_limiters = rate_limiters or {}

    def parts(upstream: UpstreamSettings) -> tuple[UpstreamHttp, UpstreamGuard, CredentialBook]:
        http = UpstreamHttp(upstream, transports.get(upstream.name))
        guard = UpstreamGuard(upstream, rate_limiter=rate_limiters.get(upstream.name))
        book = CredentialBook(
            upstream.name,
            settings.security,
            client=redis_client,
            timeout=settings.cache.operation_timeout,
        )
        return http, guard, book

    oma_http, oma_guard, oma_book = parts(settings.oma)
    cbc_http, cbc_guard, cbc_book = parts(settings.cbc)
    oma = UpstreamClient[SubscriptionQuery, SubscriptionPage](
        settings.oma, QUERY_RESOURCE, oma_http, cache, oma_guard, oma_book
    )
    cbc = UpstreamClient[ResourceQuery, ResourcePage](
        settings.cbc, RESOURCES_QUERY, cbc_http, cache, cbc_guard, cbc_book
    )
    return Upstreams(
        oma=OmaClient(oma),
        cbc=CbcClient(cbc),
        guards={"oma": oma_guard, "cbc": cbc_guard},
        books={"oma": oma_book, "cbc": cbc_book},
        http=(oma_http, cbc_http),
    )

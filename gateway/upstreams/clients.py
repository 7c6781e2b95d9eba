"""Both upstream clients, built once for the life of the app."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from gateway.cache.pages import PageCache
from gateway.config import Settings, UpstreamSettings
from gateway.upstreams.cbc import RESOURCES_QUERY, CbcClient, ResourcePage, ResourceQuery
from gateway.upstreams.endpoint import UpstreamClient
from gateway.upstreams.oma import QUERY_RESOURCE, OmaClient, SubscriptionPage, SubscriptionQuery
from gateway.upstreams.resilience import RateLimiter, UpstreamGuard
from gateway.upstreams.transport import UpstreamHttp


@dataclass(frozen=True, slots=True)
class Upstreams:
    oma: OmaClient
    cbc: CbcClient
    guards: Mapping[str, UpstreamGuard]
    http: tuple[UpstreamHttp, ...]

    def breaker_states(self) -> dict[str, str]:
        return {name: guard.breaker.state for name, guard in self.guards.items()}

    async def aclose(self) -> None:
        for http in self.http:
            await http.aclose()


def build_upstreams(
    settings: Settings,
    cache: PageCache,
    *,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    rate_limiters: Mapping[str, RateLimiter] | None = None,
) -> Upstreams:
    """``transports`` is the test seam: a mock or ASGI transport per upstream name."""
    transports = transports or {}
    rate_limiters = rate_limiters or {}

    def parts(upstream: UpstreamSettings) -> tuple[UpstreamHttp, UpstreamGuard]:
        http = UpstreamHttp(upstream, transports.get(upstream.name))
        guard = UpstreamGuard(upstream, rate_limiter=rate_limiters.get(upstream.name))
        return http, guard

    oma_http, oma_guard = parts(settings.oma)
    cbc_http, cbc_guard = parts(settings.cbc)
    oma = UpstreamClient[SubscriptionQuery, SubscriptionPage](
        settings.oma, QUERY_RESOURCE, oma_http, cache, oma_guard
    )
    cbc = UpstreamClient[ResourceQuery, ResourcePage](
        settings.cbc, RESOURCES_QUERY, cbc_http, cache, cbc_guard
    )
    return Upstreams(
        oma=OmaClient(oma),
        cbc=CbcClient(cbc),
        guards={"oma": oma_guard, "cbc": cbc_guard},
        http=(oma_http, cbc_http),
    )

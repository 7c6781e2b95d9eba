"""Everything the gateway holds for its lifetime: cache, upstream clients, schema."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from gateway.cache import PageCache
from gateway.clients import Upstreams, build_upstreams
from gateway.config import Settings
from gateway.resilience import RateLimiter
from schema.build import GatewaySchema, build_schema


@dataclass(slots=True)
class Gateway:
    settings: Settings
    cache: PageCache
    upstreams: Upstreams
    schema: GatewaySchema
    draining: bool = field(default=False)
    """Set on SIGTERM: readiness answers 503 while in-flight requests finish."""

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
        cache: PageCache | None = None,
        rate_limiters: Mapping[str, RateLimiter] | None = None,
    ) -> Gateway:
        cache = cache or PageCache.from_settings(settings.cache)
        upstreams = build_upstreams(
            settings, cache, transports=transports, rate_limiters=rate_limiters
        )
        schema = build_schema(settings.limits, production=settings.is_production)
        return cls(settings=settings, cache=cache, upstreams=upstreams, schema=schema)

    async def aclose(self) -> None:
        await self.upstreams.aclose()
        await self.cache.close()

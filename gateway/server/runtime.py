"""Everything the gateway holds for its lifetime: cache, upstream clients, schema."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx
import redis.asyncio as redis

from gateway.cache.pages import PageCache
from gateway.config import Settings
from gateway.credentials import CredentialKey
from gateway.upstreams.clients import Upstreams, build_upstreams
from gateway.upstreams.rate_limit import Quota, RateLimiter
from gateway.upstreams.shared_rate_limit import RedisRateLimiter
from schema.build import GatewaySchema, build_schema


@dataclass(slots=True)
class Gateway:
    settings: Settings
    cache: PageCache
    upstreams: Upstreams
    schema: GatewaySchema
    credential_key: CredentialKey
    """The deployment's key of credential fingerprints (``GATEWAY_CREDENTIAL_SECRET``)."""
    redis_client: redis.Redis | None = None
    """The connection the shared rate limits and credential verdicts use, when Redis is
    configured."""
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
        redis_client = redis_connection(settings) if settings.cache.is_redis else None
        if rate_limiters is None and redis_client is not None:
            rate_limiters = shared_rate_limiters(settings, redis_client)
        upstreams = build_upstreams(
            settings,
            cache,
            transports=transports,
            rate_limiters=rate_limiters,
            redis_client=redis_client,
        )
        schema = build_schema(
            settings.limits,
            production=settings.is_production,
            tracing=settings.server.otel_enabled,
        )
        return cls(
            settings=settings,
            cache=cache,
            upstreams=upstreams,
            schema=schema,
            credential_key=credential_key(settings),
            redis_client=redis_client,
        )

    async def aclose(self) -> None:
        await self.upstreams.aclose()
        await self.cache.close()
        if self.redis_client is not None:
            await self.redis_client.aclose()


def credential_key(settings: Settings) -> CredentialKey:
    """The key of credential fingerprints: ``GATEWAY_CREDENTIAL_SECRET``; else, for replicas
    sharing Redis (which must agree on fingerprints to share entries and verdicts), one
    drawn from what they share, its URL with its password; else one of this process."""
    secret = settings.security.credential_secret
    if secret is None and settings.cache.is_redis:
        secret = f"redis\x00{settings.cache.url}"
    return CredentialKey(secret)


def redis_connection(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(
        settings.cache.url,
        socket_timeout=settings.cache.operation_timeout,
        socket_connect_timeout=settings.cache.operation_timeout,
    )


def shared_rate_limiters(settings: Settings, client: redis.Redis) -> dict[str, RateLimiter]:
    """With Redis configured, the replicas share each upstream's quota through it."""
    limiters: dict[str, RateLimiter] = {}
    for upstream in (settings.oma, settings.cbc):
        limiters[upstream.name] = RedisRateLimiter(
            upstream.name,
            Quota.of(upstream),
            client=client,
            max_wait=upstream.rate_limit_max_wait,
            timeout=settings.cache.operation_timeout,
            replicas=settings.server.max_replicas,
        )
    return limiters

"""The page cache, in memory and against a real redis-server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from gateway.cache import CacheKey, PageCache
from gateway.caller import Caller
from gateway.codec import RecordCodec
from gateway.config import CacheSettings
from gateway.errors import ErrorKind, UpstreamError
from tests.support.redis_server import RedisServer


@dataclass(frozen=True, slots=True)
class Page:
    owner: str
    number: int


CODEC = RecordCodec(Page)


def key(token: str = "alice", page: int = 0) -> CacheKey:
    return CacheKey(
        "oma", "queryresource", (("limit", 10), ("offset", page)), Caller(token).fingerprint
    )


class Upstream:
    """Counts fetches; answers with the page of the caller who asked."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls = 0
        self.delay = delay
        self.failing = False

    def fetcher(self, owner: str) -> Callable[[], Awaitable[Page]]:
        async def fetch() -> Page:
            self.calls += 1
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.failing:
                raise UpstreamError(ErrorKind.UNAVAILABLE, "oma", "down")
            return Page(owner, self.calls)

        return fetch


@pytest.fixture(params=["memory", "redis"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[PageCache]:
    if request.param == "memory":
        settings = CacheSettings()
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        settings = CacheSettings(url=server.url, operation_timeout=0.2)
    page_cache = PageCache.from_settings(settings)
    yield page_cache
    await page_cache.close()


async def test_miss_then_hit(cache: PageCache) -> None:
    upstream = Upstream()
    first = await cache.get_or_fetch(key(), upstream.fetcher("alice"), CODEC, ttl=30)
    second = await cache.get_or_fetch(key(), upstream.fetcher("alice"), CODEC, ttl=30)
    assert (first.source, second.source) == ("miss", "hit")
    assert second.value == Page("alice", 1)
    assert upstream.calls == 1


async def test_two_tokens_never_share_an_entry(cache: PageCache) -> None:
    upstream = Upstream()
    alice = await cache.get_or_fetch(key("alice"), upstream.fetcher("alice"), CODEC, ttl=30)
    bob = await cache.get_or_fetch(key("bob"), upstream.fetcher("bob"), CODEC, ttl=30)
    assert alice.value.owner == "alice" and bob.value.owner == "bob"
    assert upstream.calls == 2


async def test_200_interleaved_callers_each_get_their_own_data(cache: PageCache) -> None:
    upstream = Upstream(delay=0.01)
    owners = ["alice", "bob"] * 100
    results = await asyncio.gather(
        *(cache.get_or_fetch(key(o), upstream.fetcher(o), CODEC, ttl=30) for o in owners)
    )
    assert [r.value.owner for r in results] == owners
    assert upstream.calls == 2


async def test_100_concurrent_identical_misses_make_one_fetch(cache: PageCache) -> None:
    upstream = Upstream(delay=0.05)
    results = await asyncio.gather(
        *(cache.get_or_fetch(key(), upstream.fetcher("alice"), CODEC, ttl=30) for _ in range(100))
    )
    assert upstream.calls == 1
    assert {r.value for r in results} == {Page("alice", 1)}


async def test_errors_are_never_cached(cache: PageCache) -> None:
    upstream = Upstream()
    upstream.failing = True
    with pytest.raises(UpstreamError):
        await cache.get_or_fetch(key(), upstream.fetcher("alice"), CODEC, ttl=30)
    upstream.failing = False
    result = await cache.get_or_fetch(key(), upstream.fetcher("alice"), CODEC, ttl=30)
    assert result.source == "miss" and upstream.calls == 2


async def test_entries_expire_after_their_ttl(cache: PageCache) -> None:
    upstream = Upstream()
    await cache.get_or_fetch(key(), upstream.fetcher("alice"), CODEC, ttl=0.3)
    await asyncio.sleep(0.4)
    result = await cache.get_or_fetch(key(), upstream.fetcher("alice"), CODEC, ttl=0.3)
    assert result.source == "miss" and upstream.calls == 2


async def test_refresh_refetches_and_later_reads_see_the_new_value(cache: PageCache) -> None:
    upstream = Upstream()
    await cache.get_or_fetch(key(), upstream.fetcher("alice"), CODEC, ttl=30)
    fresh = await cache.get_or_fetch(key(), upstream.fetcher("alice"), CODEC, ttl=30, refresh=True)
    later = await cache.get_or_fetch(key(), upstream.fetcher("alice"), CODEC, ttl=30)
    assert fresh.value.number == 2 and later.value.number == 2 and later.source == "hit"


async def test_ttl_zero_bypasses_the_cache(cache: PageCache) -> None:
    upstream = Upstream()
    for _ in range(2):
        result = await cache.get_or_fetch(key(), upstream.fetcher("alice"), CODEC, ttl=0)
        assert result.source == "bypass"
    assert upstream.calls == 2


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_stale_if_error(backend: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("redis_server").url if backend == "redis" else "memory://"
    cache = PageCache.from_settings(CacheSettings(url=url, stale_if_error=0.5))
    try:
        upstream = Upstream()
        await cache.get_or_fetch(key(), upstream.fetcher("alice"), CODEC, ttl=0.2)
        await asyncio.sleep(0.3)
        upstream.failing = True
        stale = await cache.get_or_fetch(key(), upstream.fetcher("alice"), CODEC, ttl=0.2)
        assert stale.source == "stale" and stale.value == Page("alice", 1)
        await asyncio.sleep(0.5)  # now past ttl + stale window
        with pytest.raises(UpstreamError):
            await cache.get_or_fetch(key(), upstream.fetcher("alice"), CODEC, ttl=0.2)
    finally:
        await cache.close()


async def test_memory_cache_evicts_the_least_recently_used() -> None:
    cache = PageCache.from_settings(CacheSettings(max_entries=3))
    upstream = Upstream()
    for page in range(3):
        await cache.get_or_fetch(key(page=page), upstream.fetcher("alice"), CODEC, ttl=30)
    await cache.get_or_fetch(key(page=0), upstream.fetcher("alice"), CODEC, ttl=30)  # used again
    await cache.get_or_fetch(key(page=3), upstream.fetcher("alice"), CODEC, ttl=30)  # evicts page 1
    assert cache.status()["entries"] == 3
    calls = upstream.calls
    assert (
        await cache.get_or_fetch(key(page=0), upstream.fetcher("alice"), CODEC, ttl=30)
    ).source == "hit"
    assert (
        await cache.get_or_fetch(key(page=1), upstream.fetcher("alice"), CODEC, ttl=30)
    ).source == "miss"
    assert upstream.calls == calls + 1
    await cache.close()


def test_values_handed_out_cannot_be_mutated_into_the_cache() -> None:
    page = Page("alice", 1)
    with pytest.raises(AttributeError):
        page.owner = "mallory"  # type: ignore[misc]


def test_rendered_keys_never_contain_the_token() -> None:
    rendered = key("super-secret-token").render()
    assert "super-secret-token" not in rendered
    assert rendered.startswith("gw:v1:oma:queryresource:")
    assert key("a").render() != key("b").render()


async def test_two_instances_sharing_redis_make_one_fetch_for_100_misses(
    redis_server: RedisServer,
) -> None:
    settings = CacheSettings(url=redis_server.url, operation_timeout=0.5)
    first, second = PageCache.from_settings(settings), PageCache.from_settings(settings)
    upstream = Upstream(delay=0.2)
    try:
        results = await asyncio.gather(
            *(
                (first if i % 2 else second).get_or_fetch(
                    key(), upstream.fetcher("alice"), CODEC, ttl=30
                )
                for i in range(100)
            )
        )
    finally:
        await first.close()
        await second.close()
    assert upstream.calls == 1
    assert {r.value for r in results} == {Page("alice", 1)}


async def test_redis_stopped_then_restarted(redis_server: RedisServer) -> None:
    cache = PageCache.from_settings(CacheSettings(url=redis_server.url, operation_timeout=0.1))
    upstream = Upstream()
    try:
        await cache.get_or_fetch(key(), upstream.fetcher("alice"), CODEC, ttl=30)
        redis_server.stop()
        for _ in range(3):
            started = time.monotonic()
            result = await cache.get_or_fetch(key(), upstream.fetcher("alice"), CODEC, ttl=30)
            assert result.source == "miss"
            assert time.monotonic() - started < 0.5
        assert cache.status()["healthy"] is False
        assert await cache.ping() is False
        redis_server.start()
        await asyncio.sleep(1.1)  # past the back-off after a failure
        await cache.get_or_fetch(key(page=9), upstream.fetcher("alice"), CODEC, ttl=30)
        again = await cache.get_or_fetch(key(page=9), upstream.fetcher("alice"), CODEC, ttl=30)
        assert again.source == "hit"
        assert cache.status()["healthy"] is True
    finally:
        await cache.close()


async def test_frozen_redis_costs_at_most_about_the_timeout(redis_server: RedisServer) -> None:
    cache = PageCache.from_settings(CacheSettings(url=redis_server.url, operation_timeout=0.1))
    upstream = Upstream()
    try:
        await cache.get_or_fetch(key(), upstream.fetcher("alice"), CODEC, ttl=30)
        redis_server.freeze()
        for page in range(5):
            started = time.monotonic()
            result = await cache.get_or_fetch(
                key(page=page), upstream.fetcher("alice"), CODEC, ttl=30
            )
            assert result.value.owner == "alice"
            assert time.monotonic() - started < 0.35
        redis_server.thaw()
        await asyncio.sleep(1.1)
        assert await cache.ping() is True
        assert (
            await cache.get_or_fetch(key(), upstream.fetcher("alice"), CODEC, ttl=30)
        ).source == "hit"
    finally:
        redis_server.thaw()
        await cache.close()

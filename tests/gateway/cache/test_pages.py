"""The page cache, in memory and against a real redis-server."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from gateway.cache.codec import RecordCodec
from gateway.cache.pages import CacheKey, CacheResult, PageCache
from gateway.caller import Caller
from gateway.config import CacheSettings
from gateway.errors import ErrorKind, UpstreamError
from gateway.metrics import REGISTRY
from tests.support.redis_server import RedisServer


@dataclass(frozen=True, slots=True)
class Page:
    owner: str
    number: int


CODEC = RecordCodec(Page)
TTL = 30.0


def key(token: str = "alice", page: int = 0, upstream: str = "oma") -> CacheKey:
    return CacheKey(
        upstream, "queryresource", (("limit", 10), ("offset", page)), Caller(token).fingerprint
    )


def events(event: str, upstream: str = "oma") -> float:
    value = REGISTRY.get_sample_value(
        "gateway_cache_events_total", {"upstream": upstream, "event": event}
    )
    return value or 0.0


def backend_up() -> float | None:
    return REGISTRY.get_sample_value("gateway_cache_backend_up")


class Upstream:
    """Counts fetches; answers with a page of the caller who asked, numbered by fetch."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls = 0
        self.delay = delay
        self.failing = False
        self.failure = ErrorKind.UNAVAILABLE

    def fetcher(self, owner: str = "alice") -> Callable[[], Awaitable[Page]]:
        async def fetch() -> Page:
            self.calls += 1
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.failing:
                raise UpstreamError(self.failure, "oma", "down")
            return Page(owner, self.calls)

        return fetch


async def get(
    cache: PageCache,
    upstream: Upstream,
    owner: str = "alice",
    page: int = 0,
    ttl: float = TTL,
    refresh: bool = False,
) -> tuple[Page, str]:
    result = await cache.get_or_fetch(
        key(owner, page), upstream.fetcher(owner), CODEC, ttl=ttl, refresh=refresh
    )
    return result.value, result.source


@pytest.fixture
async def make_cache(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., PageCache]]:
    """Builds caches on the named backend and closes them after the test."""
    built: list[PageCache] = []

    def make(backend: str = "memory", **settings: Any) -> PageCache:
        url = request.getfixturevalue("redis_url") if backend == "redis" else "memory://"
        cache = PageCache.from_settings(CacheSettings(url=url, **settings))
        built.append(cache)
        return cache

    yield make
    for cache in built:
        await cache.close()


@pytest.fixture(params=["memory", "redis"])
def cache(request: pytest.FixtureRequest, make_cache: Callable[..., PageCache]) -> PageCache:
    return make_cache(request.param, operation_timeout=0.2)


# Both backends


async def test_miss_then_hit(cache: PageCache) -> None:
    upstream = Upstream()
    hits, misses = events("hit"), events("miss")
    assert await get(cache, upstream) == (Page("alice", 1), "miss")
    assert await get(cache, upstream) == (Page("alice", 1), "hit")
    assert upstream.calls == 1
    assert (events("hit") - hits, events("miss") - misses) == (1, 1)


async def test_two_credentials_with_the_same_params_never_share_an_entry(
    cache: PageCache,
) -> None:
    upstream = Upstream()
    for _ in range(2):
        assert (await get(cache, upstream, "alice"))[0].owner == "alice"
        assert (await get(cache, upstream, "bob"))[0].owner == "bob"
    assert upstream.calls == 2


async def test_200_interleaved_callers_each_get_their_own_value(cache: PageCache) -> None:
    upstream = Upstream(delay=0.02)
    owners = ["alice", "bob"] * 100
    results = await asyncio.gather(*(get(cache, upstream, owner) for owner in owners))
    assert [page.owner for page, _ in results] == owners
    assert upstream.calls == 2


async def test_100_concurrent_identical_misses_make_one_fetch(cache: PageCache) -> None:
    upstream = Upstream(delay=0.05)
    results = await asyncio.gather(*(get(cache, upstream) for _ in range(100)))
    assert upstream.calls == 1
    assert {page for page, _ in results} == {Page("alice", 1)}
    # One caller fetched; the 99 that joined cost no upstream call.
    assert [source for _, source in results].count("hit") == 99


async def test_concurrent_waiters_share_one_failure_and_it_is_not_cached(
    cache: PageCache,
) -> None:
    upstream = Upstream(delay=0.05)
    upstream.failing = True
    results = await asyncio.gather(
        *(get(cache, upstream) for _ in range(20)), return_exceptions=True
    )
    assert upstream.calls == 1
    assert all(isinstance(r, UpstreamError) for r in results)
    assert len({id(r) for r in results}) == 1  # the same exception, not one per waiter
    upstream.failing = False
    assert await get(cache, upstream) == (Page("alice", 2), "miss")


async def test_entries_expire_after_their_ttl(cache: PageCache) -> None:
    upstream = Upstream()
    assert (await get(cache, upstream, ttl=0.3))[1] == "miss"
    assert (await get(cache, upstream, ttl=0.3))[1] == "hit"
    await asyncio.sleep(0.4)
    assert await get(cache, upstream, ttl=0.3) == (Page("alice", 2), "miss")


async def test_refresh_refetches_and_later_reads_see_the_new_value(cache: PageCache) -> None:
    upstream = Upstream()
    await get(cache, upstream)
    assert await get(cache, upstream, refresh=True) == (Page("alice", 2), "miss")
    assert await get(cache, upstream) == (Page("alice", 2), "hit")


async def test_concurrent_refreshes_share_a_fetch_but_not_with_plain_reads(
    cache: PageCache,
) -> None:
    upstream = Upstream()
    await get(cache, upstream)
    upstream.delay = 0.05
    plain, *fresh = await asyncio.gather(
        get(cache, upstream), get(cache, upstream, refresh=True), get(cache, upstream, refresh=True)
    )
    assert plain == (Page("alice", 1), "hit")
    assert [page for page, _ in fresh] == [Page("alice", 2)] * 2
    assert upstream.calls == 2


async def test_ttl_zero_bypasses_the_cache(cache: PageCache) -> None:
    upstream = Upstream()
    for _ in range(2):
        assert (await get(cache, upstream, ttl=0))[1] == "bypass"
    assert upstream.calls == 2
    # Nothing was stored: the first cached read still misses.
    assert (await get(cache, upstream))[1] == "miss"


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_stale_if_error_within_the_window_only(
    backend: str, make_cache: Callable[..., PageCache]
) -> None:
    cache = make_cache(backend, stale_if_error=0.5)
    upstream = Upstream()
    stale_events = events("stale")
    await get(cache, upstream, ttl=0.2)
    await asyncio.sleep(0.3)  # expired, inside the stale window
    upstream.failing = True
    assert await get(cache, upstream, ttl=0.2) == (Page("alice", 1), "stale")
    # A caller who asked for fresh data also gets the stale page rather than an error.
    assert await get(cache, upstream, ttl=0.2, refresh=True) == (Page("alice", 1), "stale")
    assert events("stale") - stale_events == 2
    await asyncio.sleep(0.5)  # past ttl + stale window
    with pytest.raises(UpstreamError):
        await get(cache, upstream, ttl=0.2)


@pytest.mark.parametrize(
    "refusal",
    [ErrorKind.UNAUTHENTICATED, ErrorKind.FORBIDDEN, ErrorKind.BAD_REQUEST, ErrorKind.REFUSED],
)
async def test_a_refusal_is_never_answered_with_a_stale_page(
    refusal: ErrorKind, make_cache: Callable[..., PageCache]
) -> None:
    # A revoked token must not go on reading its old pages while they are in the window.
    cache = make_cache("memory", stale_if_error=10)
    upstream = Upstream()
    await get(cache, upstream, ttl=0.1)
    await asyncio.sleep(0.15)
    upstream.failing = True
    upstream.failure = refusal
    for refresh in (False, True):
        with pytest.raises(UpstreamError) as caught:
            await get(cache, upstream, ttl=0.1, refresh=refresh)
        assert caught.value.kind is refusal


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_no_stale_pages_when_stale_if_error_is_zero(
    backend: str, make_cache: Callable[..., PageCache]
) -> None:
    cache = make_cache(backend, stale_if_error=0)
    upstream = Upstream()
    await get(cache, upstream, ttl=0.1)
    await asyncio.sleep(0.15)
    upstream.failing = True
    with pytest.raises(UpstreamError):
        await get(cache, upstream, ttl=0.1)


async def test_the_stale_window_is_the_readers_not_the_writers(
    make_cache: Callable[..., PageCache],
) -> None:
    # Replicas mid-rollout may disagree; an entry kept for a long window is not served
    # by a replica configured with a short one.
    writer = make_cache("redis", stale_if_error=10)
    reader = make_cache("redis", stale_if_error=0.2)
    upstream = Upstream()
    await get(writer, upstream, ttl=0.1)
    await asyncio.sleep(0.35)
    upstream.failing = True
    with pytest.raises(UpstreamError):
        await get(reader, upstream, ttl=0.1)
    assert (await get(writer, upstream, ttl=0.1))[1] == "stale"


def test_rendered_keys_never_contain_the_token() -> None:
    token = "super-secret-token"
    rendered = key(token).render()
    assert token not in rendered
    assert rendered.startswith(f"gw:v1:oma:queryresource:{Caller(token).fingerprint}:")
    assert len(rendered.rsplit(":", 1)[1]) == 32
    assert key("a").render() != key("b").render()
    assert key(page=1).render() != key(page=2).render()


def test_a_key_is_the_same_in_every_process() -> None:
    """Replicas, and the next start, find each other's entries: nothing in a key comes
    from id() or hash(). The records' version is one of the parameters (the upstream
    endpoints' cache_params), so another declaration of a record is another key."""
    params = (("records", "version-a"), ("limit", 10), ("offset", 0))
    rendered = CacheKey("oma", "queryresource", params, "fingerprint").render()
    script = (
        "from gateway.cache.pages import CacheKey\n"
        f"print(CacheKey('oma', 'queryresource', {params!r}, 'fingerprint').render())\n"
    )
    for seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        )
        assert done.stdout.strip() == rendered
    other = (("records", "version-b"), *params[1:])
    assert CacheKey("oma", "queryresource", other, "fingerprint").render() != rendered


# Memory backend


@dataclass(frozen=True)
class Records:
    """A page of ``count`` records (what the bound on records weighs)."""

    records: tuple[int, ...]


async def test_memory_cache_is_bounded_by_the_records_on_its_pages(
    make_cache: Callable[..., PageCache],
) -> None:
    cache = make_cache(max_records=10)
    codec = RecordCodec(Records)
    evictions = events("eviction")

    async def put(page: int, count: int, ttl: float = TTL) -> None:
        async def fetch() -> Records:
            return Records(tuple(range(count)))

        await cache.get_or_fetch(key(page=page), fetch, codec, ttl=ttl)

    await put(0, 4)
    await put(1, 4)
    assert cache.status()["records"] == 8
    await put(2, 4)  # 12 records: the least recently used page goes
    assert cache.status() == {"backend": "memory", "healthy": True, "entries": 2, "records": 8}
    assert events("eviction") - evictions == 1
    assert cache.peek(key(page=0), ttl=TTL) is None
    # An expired page no longer counts: aiocache's own timer removes it.
    await put(3, 2, ttl=0.05)
    await asyncio.sleep(0.1)
    assert cache.status()["records"] == 8
    await put(4, 1)
    assert cache.status()["entries"] == 3 and events("eviction") - evictions == 1


async def test_memory_cache_evicts_the_least_recently_used(
    make_cache: Callable[..., PageCache],
) -> None:
    cache = make_cache(max_entries=3)
    upstream = Upstream()
    evictions = events("eviction")
    for page in range(3):
        await get(cache, upstream, page=page)
    await get(cache, upstream, page=0)  # page 0 is used again: page 1 is now the oldest use
    await get(cache, upstream, page=3)
    assert cache.status() == {"backend": "memory", "healthy": True, "entries": 3, "records": 3}
    assert events("eviction") - evictions == 1
    for page in (0, 2, 3):
        assert (await get(cache, upstream, page=page))[1] == "hit"
    assert (await get(cache, upstream, page=1))[1] == "miss"


async def test_memory_cache_hands_out_the_stored_object(
    make_cache: Callable[..., PageCache],
) -> None:
    cache = make_cache()
    upstream = Upstream()
    first, _ = await get(cache, upstream)
    again, _ = await get(cache, upstream)
    assert again is first  # no codec round trip: values are immutable
    assert await cache.ping() is True


async def test_peek_answers_only_from_this_process_and_only_fresh(
    cache: PageCache, request: pytest.FixtureRequest
) -> None:
    upstream = Upstream()
    assert cache.peek(key(), ttl=TTL) is None
    first, _ = await get(cache, upstream)
    hits = events("hit")
    peeked = cache.peek(key(), ttl=TTL)
    if "redis" in request.node.name:
        assert peeked is None  # every Redis read is a round trip: get_or_fetch makes it
    else:
        assert peeked is first and events("hit") - hits == 1
    assert cache.peek(key(), ttl=0) is None  # caching off
    assert cache.peek(key("bob"), ttl=TTL) is None
    await asyncio.sleep(0.02)
    assert cache.peek(key(), ttl=0.01) is None  # stale
    assert upstream.calls == 1


async def test_a_memory_hit_is_answered_without_a_task(
    make_cache: Callable[..., PageCache], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = make_cache()
    upstream = Upstream()
    first, _ = await get(cache, upstream)
    tasks: list[object] = []
    create_task = asyncio.create_task

    def counting_create_task(coro: Any, **kwargs: Any) -> Any:
        tasks.append(coro)
        return create_task(coro, **kwargs)

    monkeypatch.setattr(asyncio, "create_task", counting_create_task)
    hits = events("hit")
    assert await get(cache, upstream) == (first, "hit")
    assert events("hit") - hits == 1
    assert tasks == []  # a warm page costs a dict lookup, not a task and a shield
    # A stale entry still goes the long way, and is fetched again.
    assert await get(cache, upstream, ttl=0.000001) == (Page("alice", 2), "miss")
    assert len(tasks) == 1


async def test_a_caller_going_away_does_not_cancel_the_shared_fetch(
    make_cache: Callable[..., PageCache],
) -> None:
    cache = make_cache()
    upstream = Upstream(delay=0.1)
    leader = asyncio.create_task(get(cache, upstream))
    await asyncio.sleep(0.01)
    follower = asyncio.create_task(get(cache, upstream))
    await asyncio.sleep(0.01)
    leader.cancel()
    assert await follower == (Page("alice", 1), "hit")
    assert upstream.calls == 1


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_the_last_caller_going_away_stops_the_fetch(
    make_cache: Callable[..., PageCache], backend: str
) -> None:
    """Nobody left to answer (a client gone in the middle of an answer in parts): the
    fetch is cancelled, not left to spend the upstream's quota, and nothing is cached."""
    cache = make_cache(backend, operation_timeout=0.2)
    upstream = Upstream(delay=0.2)
    fetches_cancelled: list[bool] = []
    plain_fetch = upstream.fetcher()

    async def fetch() -> Page:
        try:
            return await plain_fetch()
        except asyncio.CancelledError:
            fetches_cancelled.append(True)
            raise

    async def one() -> CacheResult[Page]:
        return await cache.get_or_fetch(key(), fetch, CODEC, ttl=TTL)

    callers = [asyncio.create_task(one()) for _ in range(3)]
    await asyncio.sleep(0.05)
    callers[0].cancel()
    callers[1].cancel()
    await asyncio.sleep(0.01)
    assert fetches_cancelled == []  # one still waits
    callers[2].cancel()
    await asyncio.gather(*callers, return_exceptions=True)
    await asyncio.sleep(0.01)
    assert fetches_cancelled == [True]
    assert cache.peek(key(), ttl=TTL) is None
    assert await get(cache, upstream) == (Page("alice", 2), "miss")


# Redis backend


async def test_redis_stores_the_encoded_value_with_its_fetch_time_and_expiry(
    make_cache: Callable[..., PageCache], redis_server: RedisServer
) -> None:
    cache = make_cache("redis", stale_if_error=20)
    upstream = Upstream()
    before = time.time()
    await get(cache, upstream, "super-secret-token")
    stored = redis_server.command("GET", key("super-secret-token").render())
    header, _, payload = stored.split(b"\r\n")[1].partition(b"|")
    assert before <= float(header) <= time.time()
    assert CODEC.decode(payload) == Page("super-secret-token", 1)
    ttl_ms = int(redis_server.command("PTTL", key("super-secret-token").render())[1:-2])
    assert 45_000 < ttl_ms <= 50_000  # ttl + stale_if_error
    assert b"super-secret-token" not in redis_server.command("KEYS", "*")
    hit, source = await get(cache, upstream, "super-secret-token")
    assert source == "hit" and hit == Page("super-secret-token", 1)
    assert cache.status() == {"backend": "redis", "healthy": True, "entries": None}
    assert await cache.ping() is True


async def test_unreadable_or_unencodable_entries_cost_a_fetch_never_an_answer(
    make_cache: Callable[..., PageCache], redis_server: RedisServer
) -> None:
    class Unencodable(RecordCodec[Page]):
        def encode(self, value: Page) -> bytes:
            raise TypeError("cannot cache Page")

    cache = make_cache("redis")
    upstream = Upstream()
    redis_server.command("SET", key().render(), "not an entry")
    assert await get(cache, upstream) == (Page("alice", 1), "miss")
    assert await get(cache, upstream) == (Page("alice", 1), "hit")  # overwritten
    for number in (2, 3):
        result = await cache.get_or_fetch(
            key(page=1), upstream.fetcher(), Unencodable(Page), ttl=TTL
        )
        assert (result.value.number, result.source) == (number, "miss")


async def test_two_instances_sharing_redis_make_one_fetch_for_100_misses(
    make_cache: Callable[..., PageCache],
) -> None:
    first = make_cache("redis", operation_timeout=0.5)
    second = make_cache("redis", operation_timeout=0.5)
    upstream = Upstream(delay=0.2)
    results = await asyncio.gather(*(get((first, second)[i % 2], upstream) for i in range(100)))
    assert upstream.calls == 1
    assert {page for page, _ in results} == {Page("alice", 1)}


async def test_a_lock_left_by_a_dead_replica_delays_at_most_the_lock_timeout(
    make_cache: Callable[..., PageCache], redis_server: RedisServer
) -> None:
    cache = make_cache("redis", lock_timeout=0.3)
    redis_server.command("SET", key().render() + ":lock", "dead-replica", "PX", "60000")
    upstream = Upstream()
    started = time.monotonic()
    assert await get(cache, upstream) == (Page("alice", 1), "miss")
    assert 0.25 < time.monotonic() - started < 1.0


async def test_when_the_lock_holder_fails_the_other_replica_fetches_at_once(
    make_cache: Callable[..., PageCache],
) -> None:
    first = make_cache("redis", lock_timeout=5)
    second = make_cache("redis", lock_timeout=5)
    failing, working = Upstream(delay=0.2), Upstream()
    failing.failing = True
    holder = asyncio.create_task(get(first, failing))
    await asyncio.sleep(0.05)  # the holder has the lock now
    started = time.monotonic()
    assert await get(second, working) == (Page("alice", 1), "miss")
    assert time.monotonic() - started < 1.0  # not the 5 s lock timeout
    with pytest.raises(UpstreamError):
        await holder


async def test_redis_stopped_then_restarted(
    make_cache: Callable[..., PageCache],
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.cache")
    cache = make_cache("redis", operation_timeout=0.1)
    upstream = Upstream()
    await get(cache, upstream)
    redis_server.stop()
    errors = events("error")
    for page in range(3):
        started = time.monotonic()
        assert (await get(cache, upstream, page=page))[1] == "miss"
        assert time.monotonic() - started < 0.3
    assert events("error") - errors == 3
    assert cache.status()["healthy"] is False and backend_up() == 0
    assert await cache.ping() is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "redis unavailable" in warnings[0].getMessage()

    redis_server.start()
    await asyncio.sleep(1.1)  # past the pause after a failure
    assert (await get(cache, upstream, page=9))[1] == "miss"
    assert (await get(cache, upstream, page=9))[1] == "hit"
    assert cache.status()["healthy"] is True and backend_up() == 1
    assert "redis answers again" in caplog.text


async def test_redis_down_at_start_up_does_not_stop_the_cache(
    make_cache: Callable[..., PageCache], redis_server: RedisServer
) -> None:
    redis_server.stop()
    cache = make_cache("redis", operation_timeout=0.1)
    upstream = Upstream()
    assert await get(cache, upstream) == (Page("alice", 1), "miss")
    assert await cache.ping() is False
    redis_server.start()
    await asyncio.sleep(1.1)
    assert await cache.ping() is True
    await get(cache, upstream)
    assert (await get(cache, upstream))[1] == "hit"


async def test_frozen_redis_costs_at_most_about_the_timeout(
    make_cache: Callable[..., PageCache], redis_server: RedisServer
) -> None:
    cache = make_cache("redis", operation_timeout=0.1)
    upstream = Upstream()
    await get(cache, upstream)
    redis_server.freeze()
    slowest = 0.0
    for page in range(6):
        if page == 3:
            await asyncio.sleep(1.05)  # past the pause: Redis is tried, and times out, again
        started = time.monotonic()
        assert (await get(cache, upstream, page=page))[0].owner == "alice"
        slowest = max(slowest, time.monotonic() - started)
    assert slowest < 0.3
    assert await cache.ping() is False
    redis_server.thaw()
    await asyncio.sleep(1.05)
    assert await cache.ping() is True
    assert (await get(cache, upstream))[1] == "hit"

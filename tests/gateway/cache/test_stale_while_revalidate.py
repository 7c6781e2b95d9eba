"""Stale-while-revalidate: a page expired a moment ago answers at once and is refetched
behind the answer, once, at the quota's background priority, for its own tenant."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import httpx
import orjson
import pytest

from gateway.cache.pages import PageCache
from gateway.caller import Caller
from gateway.config import CacheSettings
from gateway.errors import ErrorKind, UpstreamError
from gateway.upstreams.clients import Upstreams, build_upstreams
from gateway.upstreams.oma import SubscriptionQuery
from gateway.upstreams.rate_limit import TokenBucket
from gateway.upstreams.resilience import CALL_PRIORITY
from tests.gateway.cache.test_pages import CODEC, Page, events, key
from tests.support.helpers import load_fixture, settings_for_tests
from tests.support.redis_server import RedisServer

TTL = 0.1
"""Seconds a page is fresh in these tests; they wait a little longer for it to go stale."""
AFTER_EXPIRY = 0.15


class Upstream:
    """Counts fetches and answers with a page of its owner, numbered by fetch. While
    ``gate`` is clear, fetches wait for it: an answer that came meanwhile did not wait
    for the upstream."""

    def __init__(self) -> None:
        self.calls = 0
        self.failure: ErrorKind | None = None
        self.gate = asyncio.Event()
        self.gate.set()
        self.cancelled = 0

    def fetcher(self, owner: str = "alice") -> Callable[[], Awaitable[Page]]:
        async def fetch() -> Page:
            self.calls += 1
            number = self.calls
            try:
                async with asyncio.timeout(3):  # a test that would hang fails instead
                    await self.gate.wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
            if self.failure is not None:
                raise UpstreamError(self.failure, "oma", "down")
            return Page(owner, number)

        return fetch


async def get(
    cache: PageCache,
    upstream: Upstream,
    owner: str = "alice",
    page: int = 0,
    *,
    refresh: bool = False,
    revalidate: bool = True,
    ttl: float = TTL,
) -> tuple[Page, str]:
    result = await cache.get_or_fetch(
        key(owner, page),
        upstream.fetcher(owner),
        CODEC,
        ttl=ttl,
        refresh=refresh,
        revalidate=upstream.fetcher(owner) if revalidate else None,
    )
    return result.value, result.source


async def until(condition: Callable[[], bool]) -> None:
    """Wait (3 s at most) for what a refresh behind an answer does: nobody awaits it."""
    async with asyncio.timeout(3.0):
        while not condition():  # noqa: ASYNC110 - a metric or a count, not an event
            await asyncio.sleep(0.005)


def counted(event: str) -> Callable[[], float]:
    """The events counted since now."""
    before = events(event)
    return lambda: events(event) - before


@pytest.fixture
async def make_cache(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., PageCache]]:
    built: list[PageCache] = []

    def make(backend: str = "memory", **settings: Any) -> PageCache:
        url = request.getfixturevalue("redis_url") if backend == "redis" else "memory://"
        settings = {"stale_while_revalidate": 5.0, "operation_timeout": 0.5, **settings}
        cache = PageCache.from_settings(CacheSettings(url=url, **settings))
        built.append(cache)
        return cache

    yield make
    for cache in built:
        await cache.close()


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def stale_entry(
    cache: PageCache, upstream: Upstream, owner: str = "alice", ttl: float = TTL
) -> None:
    """A page fetched, then left to go stale."""
    expected = Page(owner, upstream.calls + 1)
    assert await get(cache, upstream, owner, ttl=ttl) == (expected, "miss")
    await asyncio.sleep(ttl + AFTER_EXPIRY - TTL)


# The cache


async def test_a_stale_page_answers_at_once_and_one_refresh_follows_for_all_its_readers(
    backend: str, make_cache: Callable[..., PageCache]
) -> None:
    cache = make_cache(backend)
    upstream = Upstream()
    await stale_entry(cache, upstream)
    answers, refreshed = counted("stale_while_revalidate"), counted("refresh_ok")
    upstream.gate.clear()  # the upstream answers nothing until the callers have theirs
    started = time.monotonic()
    results = await asyncio.gather(*(get(cache, upstream) for _ in range(100)))
    assert time.monotonic() - started < 0.5
    assert results == [(Page("alice", 1), "stale_while_revalidate")] * 100
    assert answers() == 100
    await until(lambda: upstream.calls == 2)  # one refresh for the hundred
    upstream.gate.set()
    await until(lambda: refreshed() == 1)
    assert await get(cache, upstream) == (Page("alice", 2), "hit")
    await asyncio.sleep(0.05)
    assert upstream.calls == 2


async def test_a_refreshed_page_is_fresh_for_its_ttl_then_answers_stale_again(
    backend: str, make_cache: Callable[..., PageCache]
) -> None:
    cache = make_cache(backend)
    upstream = Upstream()
    await stale_entry(cache, upstream)
    refreshed = counted("refresh_ok")
    assert await get(cache, upstream) == (Page("alice", 1), "stale_while_revalidate")
    await until(lambda: refreshed() == 1)
    assert await get(cache, upstream) == (Page("alice", 2), "hit")
    await asyncio.sleep(AFTER_EXPIRY)
    assert await get(cache, upstream) == (Page("alice", 2), "stale_while_revalidate")
    await until(lambda: refreshed() == 2)
    assert await get(cache, upstream) == (Page("alice", 3), "hit")


async def test_past_the_window_a_page_is_fetched_while_the_caller_waits(
    backend: str, make_cache: Callable[..., PageCache]
) -> None:
    cache = make_cache(backend, stale_while_revalidate=0.2)
    upstream = Upstream()
    await stale_entry(cache, upstream)
    await asyncio.sleep(0.2)  # 0.35 s old: past ttl + the window
    assert await get(cache, upstream) == (Page("alice", 2), "miss")
    assert upstream.calls == 2


async def test_without_a_way_to_refresh_a_stale_page_is_fetched_while_the_caller_waits(
    backend: str, make_cache: Callable[..., PageCache]
) -> None:
    cache = make_cache(backend)
    upstream = Upstream()
    await stale_entry(cache, upstream)
    assert await get(cache, upstream, revalidate=False) == (Page("alice", 2), "miss")


async def test_off_by_default(backend: str, make_cache: Callable[..., PageCache]) -> None:
    cache = make_cache(backend, stale_while_revalidate=0.0)
    upstream = Upstream()
    await stale_entry(cache, upstream)
    assert await get(cache, upstream) == (Page("alice", 2), "miss")
    assert CacheSettings().stale_while_revalidate == 0


async def test_two_replicas_refresh_a_stale_page_once_between_them(
    make_cache: Callable[..., PageCache],
) -> None:
    first, second = make_cache("redis"), make_cache("redis")
    upstream = Upstream()
    ttl = 0.5  # the refreshed page stays fresh while the test looks
    await stale_entry(first, upstream, ttl=ttl)
    refreshed = counted("refresh_ok")
    upstream.gate.clear()
    replicas = [(first, second)[i % 2] for i in range(50)]
    results = await asyncio.gather(*(get(replica, upstream, ttl=ttl) for replica in replicas))
    assert results == [(Page("alice", 1), "stale_while_revalidate")] * 50
    await until(lambda: upstream.calls == 2)
    upstream.gate.set()
    await until(lambda: refreshed() == 1)
    await asyncio.sleep(0.1)  # time for a second refresh, were there one
    assert upstream.calls == 2
    for replica in (first, second):
        assert await get(replica, upstream, ttl=ttl) == (Page("alice", 2), "hit")


async def test_a_replica_locking_after_another_refreshed_the_page_does_not_refresh_again(
    make_cache: Callable[..., PageCache], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = make_cache("redis"), make_cache("redis")
    upstream = Upstream()
    ttl = 0.5  # the refreshed page stays fresh while the second replica looks
    await stale_entry(first, upstream, ttl=ttl)
    # The second replica reads the stale page, then takes the lock only once the first has
    # refreshed the page and let the lock go.
    refreshed, locked = asyncio.Event(), asyncio.Event()
    backend = second._backend
    try_lock = backend.try_lock

    async def late_try_lock(rendered: str, token: str, lease: float) -> bool:
        await refreshed.wait()
        acquired = await try_lock(rendered, token, lease)
        locked.set()
        return acquired

    monkeypatch.setattr(backend, "try_lock", late_try_lock)
    refreshes = counted("refresh_ok")
    assert await get(second, upstream, ttl=ttl) == (Page("alice", 1), "stale_while_revalidate")
    assert await get(first, upstream, ttl=ttl) == (Page("alice", 1), "stale_while_revalidate")
    await until(lambda: refreshes() == 1)
    refreshed.set()
    async with asyncio.timeout(3):
        await locked.wait()
    await asyncio.sleep(0.1)
    assert upstream.calls == 2
    assert refreshes() == 1


async def test_no_cache_waits_for_a_fresh_page_and_starts_no_refresh(
    backend: str, make_cache: Callable[..., PageCache]
) -> None:
    cache = make_cache(backend)
    upstream = Upstream()
    await stale_entry(cache, upstream)
    refreshes = [counted(event) for event in ("refresh_ok", "refresh_failed", "refresh_skipped")]
    assert await get(cache, upstream, refresh=True) == (Page("alice", 2), "miss")
    await asyncio.sleep(0.05)
    assert upstream.calls == 2
    assert [each() for each in refreshes] == [0, 0, 0]


@pytest.mark.parametrize("failure", [ErrorKind.UNAVAILABLE, ErrorKind.THROTTLED])
async def test_a_failed_refresh_keeps_the_stale_page_until_its_window_ends_and_is_counted(
    failure: ErrorKind,
    backend: str,
    make_cache: Callable[..., PageCache],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.cache")
    cache = make_cache(backend, stale_while_revalidate=0.4)
    upstream = Upstream()
    await stale_entry(cache, upstream)
    upstream.failure = failure
    failed, ok = counted("refresh_failed"), counted("refresh_ok")
    for attempt in (1, 2):
        assert await get(cache, upstream) == (Page("alice", 1), "stale_while_revalidate")
        await until(lambda: failed() == attempt)  # noqa: B023 - awaited in the loop
    assert ok() == 0
    assert [record.getMessage() for record in caplog.records] == [
        "a refresh failed; the stale page answers until its window ends"
    ] * 2
    assert {(r.__dict__["upstream"], r.__dict__["error"]) for r in caplog.records} == {
        ("oma", failure.name)
    }
    await asyncio.sleep(0.4)  # past the window: the caller waits, and hears the failure
    with pytest.raises(UpstreamError):
        await get(cache, upstream)


@pytest.mark.parametrize(
    "refusal",
    [ErrorKind.UNAUTHENTICATED, ErrorKind.FORBIDDEN, ErrorKind.BAD_REQUEST, ErrorKind.REFUSED],
)
async def test_a_refused_refresh_ends_the_stale_pages_life(
    refusal: ErrorKind,
    backend: str,
    make_cache: Callable[..., PageCache],
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.cache")
    cache = make_cache(backend, stale_if_error=10)
    upstream = Upstream()
    await stale_entry(cache, upstream)
    upstream.failure = refusal
    refused, failed = counted("refresh_refused"), counted("refresh_failed")
    assert await get(cache, upstream) == (Page("alice", 1), "stale_while_revalidate")
    await until(lambda: refused() == 1)
    assert failed() == 0
    assert [record.getMessage() for record in caplog.records] == [
        "a refresh was refused; the stale page is dropped"
    ]
    assert (caplog.records[0].__dict__["upstream"], caplog.records[0].__dict__["error"]) == (
        "oma",
        refusal.name,
    )
    if backend == "redis":
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        assert redis_server.command("EXISTS", key().render()) == b":0\r\n"
    # Still inside both windows, yet nothing answers from the old page: the next read asks.
    with pytest.raises(UpstreamError) as caught:
        await get(cache, upstream)
    assert caught.value.kind is refusal
    upstream.failure = None
    assert await get(cache, upstream) == (Page("alice", 4), "miss")


async def test_a_refresh_failing_unexpectedly_is_logged_and_keeps_the_stale_page(
    make_cache: Callable[..., PageCache], caplog: pytest.LogCaptureFixture
) -> None:
    cache = make_cache()
    upstream = Upstream()
    await stale_entry(cache, upstream)
    failed = counted("refresh_failed")

    async def broken() -> Page:
        raise RuntimeError("a bug")

    result = await cache.get_or_fetch(key(), upstream.fetcher(), CODEC, ttl=TTL, revalidate=broken)
    assert (result.value, result.source) == (Page("alice", 1), "stale_while_revalidate")
    await until(lambda: failed() == 1)
    (record,) = [r for r in caplog.records if r.name == "gateway.cache"]
    assert record.getMessage() == "a refresh failed unexpectedly"
    assert record.__dict__["upstream"] == "oma"
    assert record.exc_info is not None and record.levelno == logging.ERROR
    assert await get(cache, upstream) == (Page("alice", 1), "stale_while_revalidate")


async def test_a_refresh_is_given_up_once_it_outlasts_its_lock(
    make_cache: Callable[..., PageCache], caplog: pytest.LogCaptureFixture
) -> None:
    # The lock lasts lock_timeout or the entry's ttl and window, whichever is longer: a
    # refresh longer than that could run beside another replica's.
    cache = make_cache(lock_timeout=0.3, stale_while_revalidate=0.1)
    upstream = Upstream()
    await stale_entry(cache, upstream)
    failed = counted("refresh_failed")
    upstream.gate.clear()
    started = time.monotonic()
    assert (await get(cache, upstream))[1] == "stale_while_revalidate"
    await until(lambda: failed() == 1)
    assert 0.25 < time.monotonic() - started < 1.5
    assert upstream.cancelled == 1
    (record,) = [r for r in caplog.records if r.name == "gateway.cache"]
    assert record.getMessage() == (
        "a refresh outlasted its lock; the stale page answers until its window ends"
    )
    assert (record.__dict__["upstream"], record.__dict__["error"]) == ("oma", "TimeoutError")


@pytest.mark.parametrize(
    ("lock_timeout", "window", "lease"),
    [(0.3, 10.0, 10.1), (3.0, 0.2, 3.0)],
)
async def test_a_refresh_holds_the_fill_lock_for_as_long_as_it_may_run(
    lock_timeout: float,
    window: float,
    lease: float,
    make_cache: Callable[..., PageCache],
    redis_server: RedisServer,
) -> None:
    cache = make_cache("redis", lock_timeout=lock_timeout, stale_while_revalidate=window)
    upstream = Upstream()
    await stale_entry(cache, upstream)
    upstream.gate.clear()
    assert (await get(cache, upstream))[1] == "stale_while_revalidate"
    await until(lambda: upstream.calls == 2)
    ttl_ms = int(redis_server.command("PTTL", key().render() + ":lock")[1:-2])
    assert lease * 1000 - 500 < ttl_ms <= lease * 1000
    refreshed = counted("refresh_ok")
    upstream.gate.set()
    await until(lambda: refreshed() == 1)
    assert redis_server.command("EXISTS", key().render() + ":lock") == b":0\r\n"


async def test_with_redis_failing_a_refresh_makes_no_call_it_could_not_keep(
    make_cache: Callable[..., PageCache],
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = make_cache("redis", operation_timeout=0.1)
    upstream = Upstream()
    await stale_entry(cache, upstream)
    backend = cache._backend
    try_lock = backend.try_lock

    async def try_lock_after_redis_stopped(rendered: str, token: str, lease: float) -> bool:
        redis_server.stop()  # after the stale read, before the refresh's lock
        return await try_lock(rendered, token, lease)

    monkeypatch.setattr(backend, "try_lock", try_lock_after_redis_stopped)
    errors = counted("error")
    assert (await get(cache, upstream))[1] == "stale_while_revalidate"
    await until(lambda: errors() == 1)
    await asyncio.sleep(0.05)
    assert upstream.calls == 1


async def test_no_cache_hears_the_failure_when_stale_if_error_is_off(
    backend: str, make_cache: Callable[..., PageCache]
) -> None:
    cache = make_cache(backend, stale_if_error=0)
    upstream = Upstream()
    await stale_entry(cache, upstream)
    upstream.failure = ErrorKind.UNAVAILABLE
    # Inside the stale-while-revalidate window, but a fresh read was asked for.
    with pytest.raises(UpstreamError):
        await get(cache, upstream, refresh=True)
    assert await get(cache, upstream) == (Page("alice", 1), "stale_while_revalidate")


async def test_tenants_refresh_and_read_only_their_own_pages(
    backend: str, make_cache: Callable[..., PageCache]
) -> None:
    cache = make_cache(backend)
    upstream = Upstream()
    await get(cache, upstream, "alice")
    await get(cache, upstream, "bob")
    await asyncio.sleep(AFTER_EXPIRY)
    refreshed = counted("refresh_ok")
    owners = ["alice", "bob"] * 20
    results = await asyncio.gather(*(get(cache, upstream, owner) for owner in owners))
    assert [page.owner for page, _ in results] == owners
    assert {page.number for page, _ in results if page.owner == "bob"} == {2}
    await until(lambda: refreshed() == 2)
    assert upstream.calls == 4  # one refresh each
    alice, bob = (await get(cache, upstream, "alice"))[0], (await get(cache, upstream, "bob"))[0]
    assert (alice.owner, bob.owner) == ("alice", "bob")
    assert {alice.number, bob.number} == {3, 4}


async def test_a_flood_of_stale_pages_starts_at_most_a_hundred_refreshes(
    make_cache: Callable[..., PageCache],
) -> None:
    cache = make_cache()
    upstream = Upstream()
    for page in range(150):
        await get(cache, upstream, page=page)
    await asyncio.sleep(AFTER_EXPIRY)
    skipped, refreshed = counted("refresh_skipped"), counted("refresh_ok")
    upstream.gate.clear()
    results = await asyncio.gather(*(get(cache, upstream, page=page) for page in range(150)))
    assert {source for _, source in results} == {"stale_while_revalidate"}
    await until(lambda: upstream.calls == 250)
    await asyncio.sleep(0.05)
    assert upstream.calls == 250 and skipped() == 50
    upstream.gate.set()
    await until(lambda: refreshed() == 100)
    # The skipped pages still answer stale, and now start their refreshes.
    assert (await get(cache, upstream, page=149))[1] == "stale_while_revalidate"
    await until(lambda: refreshed() == 101)


async def test_closing_the_cache_cancels_the_refreshes_it_runs(
    backend: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("redis_url") if backend == "redis" else "memory://"
    cache = PageCache.from_settings(CacheSettings(url=url, stale_while_revalidate=5))
    upstream = Upstream()
    await stale_entry(cache, upstream)
    upstream.gate.clear()
    assert (await get(cache, upstream))[1] == "stale_while_revalidate"
    await until(lambda: upstream.calls == 2)
    started = time.monotonic()
    await cache.close()
    assert time.monotonic() - started < 0.5  # not the refresh's own bound, 5 s
    assert upstream.cancelled == 1


async def test_a_refresh_runs_in_a_context_of_its_own(make_cache: Callable[..., PageCache]) -> None:
    request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
    cache = make_cache()
    upstream = Upstream()
    await stale_entry(cache, upstream)
    seen: list[str | None] = []

    async def refresh() -> Page:
        seen.append(request_id.get())
        return Page("alice", 99)

    request_id.set("the request's")
    refreshed = counted("refresh_ok")
    await cache.get_or_fetch(key(), upstream.fetcher(), CODEC, ttl=TTL, revalidate=refresh)
    await until(lambda: refreshed() == 1)
    assert seen == [None]


async def test_the_entry_lives_for_its_ttl_and_both_windows(
    make_cache: Callable[..., PageCache], redis_server: RedisServer
) -> None:
    cache = make_cache("redis", stale_while_revalidate=20, stale_if_error=10)
    upstream = Upstream()
    await cache.get_or_fetch(key(), upstream.fetcher(), CODEC, ttl=30)
    ttl_ms = int(redis_server.command("PTTL", key().render())[1:-2])
    assert 59_000 < ttl_ms <= 60_000


async def test_stale_if_error_follows_the_stale_while_revalidate_window(
    backend: str, make_cache: Callable[..., PageCache]
) -> None:
    # Fresh for 0.1 s, answered at once while refreshed for 0.3 s more, then 0.4 s more
    # only while the upstream fails.
    cache = make_cache(backend, stale_while_revalidate=0.3, stale_if_error=0.4)
    upstream = Upstream()
    await stale_entry(cache, upstream)
    upstream.failure = ErrorKind.UNAVAILABLE
    await asyncio.sleep(0.4)  # 0.55 s old: past ttl + stale-if-error, not past both windows
    assert await get(cache, upstream) == (Page("alice", 1), "stale")
    assert await get(cache, upstream, refresh=True) == (Page("alice", 1), "stale")
    await asyncio.sleep(0.3)  # 0.85 s old: past every window
    with pytest.raises(UpstreamError):
        await get(cache, upstream)


# Through an upstream client: the quota, the caller's own credential, a revoked token


def answering(token_pages: dict[str, int]) -> Callable[[httpx.Request], httpx.Response]:
    """An OMA that answers a page whose subscription id names the token that asked and
    how many times it asked; a token mapped to 0 is refused (401)."""
    example = load_fixture("oma_example_response.json")

    def answer(request: httpx.Request) -> httpx.Response:
        token = request.headers["X-Auth-Token"]
        if token_pages.get(token) == 0:
            return httpx.Response(401, json={"schema": "Unauthorized"})
        token_pages[token] = token_pages.get(token, 0) + 1
        body = copy.deepcopy(example)
        body["result"][0]["id"] = f"{token}-{token_pages[token]}"
        return httpx.Response(200, json=body)

    return answer


@pytest.fixture
async def make_upstreams() -> AsyncIterator[Callable[..., Upstreams]]:
    built: list[tuple[Upstreams, PageCache]] = []

    def make(
        handler: Callable[[httpx.Request], httpx.Response],
        requests: list[httpx.Request],
        *,
        rate: float = 0.0,
        **security: Any,
    ) -> Upstreams:
        settings = settings_for_tests()
        settings = settings.replace(
            oma=dataclasses.replace(
                settings.oma, cache_ttl=TTL, rate_limit=rate, unverified_share=0.0
            ),
            security=dataclasses.replace(settings.security, **security),
        )
        cache = PageCache.from_settings(CacheSettings(stale_while_revalidate=5))

        def recording(request: httpx.Request) -> httpx.Response:
            requests.append(request)
            return handler(request)

        limiters = {}
        if rate:
            # One slot at a time: the order the quota hands them out is the order served.
            limiters["oma"] = TokenBucket("oma", rate, burst=1, max_wait=9)
        upstreams = build_upstreams(
            settings,
            cache,
            transports={"oma": httpx.MockTransport(recording)},
            rate_limiters=limiters,
        )
        built.append((upstreams, cache))
        return upstreams

    yield make
    for upstreams, cache in built:
        await cache.close()
        await upstreams.aclose()


def first_id(page: Any) -> str:
    return str(page.records[0].id)


async def test_a_refresh_waits_behind_the_answers_callers_wait_for(
    make_upstreams: Callable[..., Upstreams],
) -> None:
    requests: list[httpx.Request] = []
    oma = make_upstreams(answering({}), requests, rate=2).oma
    alice = Caller("alice")
    await oma.fetch_subscription_page(alice, SubscriptionQuery(10, 0))  # the quota's slot now
    await asyncio.sleep(AFTER_EXPIRY)  # stale; the next slot in 0.35 s
    stale = await oma.fetch_subscription_page(alice, SubscriptionQuery(10, 0))
    assert first_id(stale) == "alice-1" and len(requests) == 1  # no wait for the slot
    await asyncio.sleep(0.01)  # the refresh is queued for the next slot
    other = await oma.fetch_subscription_page(alice, SubscriptionQuery(10, 10))
    assert first_id(other) == "alice-2"  # served first, though it came after the refresh
    await until(lambda: len(requests) == 3)
    assert [orjson.loads(request.content)["offset"] for request in requests] == [0, 10, 0]
    fresh = await oma.fetch_subscription_page(alice, SubscriptionQuery(10, 0))
    assert first_id(fresh) == "alice-3"
    assert CALL_PRIORITY.get() == "interactive"  # the caller's context is its own


async def test_a_refresh_carries_its_callers_credential_and_counts_in_no_request(
    make_upstreams: Callable[..., Upstreams],
) -> None:
    requests: list[httpx.Request] = []
    oma = make_upstreams(answering({}), requests).oma
    for token in ("alice", "bob"):
        await oma.fetch_subscription_page(Caller(token), SubscriptionQuery(10))
    await asyncio.sleep(AFTER_EXPIRY)
    callers = {token: Caller(token) for token in ("alice", "bob")}
    pages = {
        token: await oma.fetch_subscription_page(caller, SubscriptionQuery(10))
        for token, caller in callers.items()
    }
    assert {token: first_id(page) for token, page in pages.items()} == {
        "alice": "alice-1",
        "bob": "bob-1",
    }
    await until(lambda: len(requests) == 4)
    assert sorted(r.headers["X-Auth-Token"] for r in requests[2:]) == ["alice", "bob"]
    for token, caller in callers.items():
        # The stale answer was a hit; the refresh behind it is no call of this request's.
        assert (caller.stats.cache_hits, caller.stats.upstream_calls) == (1, 0)
        fresh = await oma.fetch_subscription_page(Caller(token), SubscriptionQuery(10))
        assert first_id(fresh) == f"{token}-2"


async def test_a_token_revoked_meanwhile_never_reads_its_stale_pages_again(
    make_upstreams: Callable[..., Upstreams],
) -> None:
    requests: list[httpx.Request] = []
    pages: dict[str, int] = {}
    oma = make_upstreams(answering(pages), requests, rejected_ttl=0.05).oma
    await oma.fetch_subscription_page(Caller("alice"), SubscriptionQuery(10))
    await asyncio.sleep(AFTER_EXPIRY)
    pages["alice"] = 0  # the token is revoked
    # The page already stale answers once, before its refresh hears of the revocation.
    stale = await oma.fetch_subscription_page(Caller("alice"), SubscriptionQuery(10))
    assert first_id(stale) == "alice-1"
    await until(lambda: len(requests) == 2)
    await asyncio.sleep(0.1)  # past the time a refusal is remembered, inside the window
    with pytest.raises(UpstreamError) as caught:
        await oma.fetch_subscription_page(Caller("alice"), SubscriptionQuery(10))
    assert caught.value.kind is ErrorKind.UNAUTHENTICATED
    assert len(requests) == 3  # asked again, not answered from the stale page

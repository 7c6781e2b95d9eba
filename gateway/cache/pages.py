"""The page cache: the only module that knows aiocache.

Entries are keyed by upstream, endpoint, the normalised request parameters and a
one-way fingerprint of the caller's token, so two callers never share an entry.
In memory by default (bounded, least recently used evicted); in Redis when
several replicas run. Redis is an accelerator, never a dependency of
correctness: every operation has a short timeout, and while Redis fails the
gateway answers from the upstreams and tries Redis again a second later.

Concurrent identical misses in one process share one fetch (single flight);
across replicas a short Redis lock lets one replica fetch while the others wait
for its entry. Errors are never cached.

An entry expires in three steps (RFC 5861's two windows, one after the other): fresh for
``ttl``; then, with stale-while-revalidate, for ``stale_while_revalidate`` seconds it
still answers at once while one refresh (one per key across replicas, under the fill
lock) fetches it again behind the answer; then, with stale-if-error, for
``stale_if_error`` seconds more it answers only while the upstream fails.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, Literal, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

import orjson
from aiocache import RedisCache, SimpleMemoryCache
from aiocache.serializers import BaseSerializer, NullSerializer

from gateway.config import CacheSettings
from gateway.errors import UpstreamError
from gateway.metrics import CACHE_BACKEND_UP, CACHE_EVENTS, LabelledChildren

logger = logging.getLogger("gateway.cache")

T = TypeVar("T")
R = TypeVar("R")
Source = Literal["hit", "miss", "stale", "stale_while_revalidate", "bypass"]
RefreshOutcome = Literal["refresh_ok", "refresh_failed", "refresh_refused"]

_KEY_VERSION = "gw:v1"
"""What every key starts with. A record's declaration is in its pages' keys already (the
upstream endpoints' ``cache_params`` carry its ``record_version``): bump this for a change
of what entries hold that no declaration shows (the codec's format, a page's own fields, a
record's post-processing), so that no replica reads entries written the old way."""
_RETRY_REDIS_AFTER = 1.0
"""Seconds Redis is skipped after a failure, so a dead Redis costs no timeout per call."""
_POLL_INTERVAL = 0.025
"""Seconds between looks at another replica's lock and entry."""
_MAX_REFRESHES = 100
"""Refreshes behind stale answers running at once in one process; a stale answer past it
starts none (a later one will). A hundred calls are five seconds of both upstreams' quota
(10 calls/s each), and refreshes only have the slots no answer wants."""
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True, slots=True)
class CacheKey:
    upstream: str
    endpoint: str
    params: tuple[tuple[str, object], ...]
    """Normalised request parameters; values are str, int, None or tuples of those."""
    credential: str
    """``Caller.fingerprint``: a one-way hash, never the token."""

    def render(self) -> str:
        # Sorted here too, so a caller that forgets to sort still hits its own entries.
        params = sorted(self.params, key=lambda item: item[0])
        digest = hashlib.sha256(orjson.dumps(params)).hexdigest()[:32]
        return f"{_KEY_VERSION}:{self.upstream}:{self.endpoint}:{self.credential}:{digest}"


class Codec(Protocol[T]):
    def encode(self, value: T) -> bytes: ...

    def decode(self, data: bytes) -> T: ...


@dataclass(frozen=True, slots=True)
class CacheResult(Generic[T]):
    value: T
    source: Source


@dataclass(frozen=True, slots=True)
class _Entry:
    value: Any
    stored_at: float
    """Wall-clock time of the fetch: replicas share it through Redis."""

    def age(self) -> float:
        return time.time() - self.stored_at


class _BackendUnavailable(Exception):
    """The backend failed, timed out or is being skipped after a recent failure."""


class _Backend(Protocol):
    def get_now(self, key: str) -> _Entry | None:
        """The entry, when the backend holds it in this process; None means ask ``get``."""
        ...

    async def get(self, key: str, codec: Codec[Any]) -> _Entry | None: ...

    async def set(self, key: str, entry: _Entry, codec: Codec[Any], expire: float) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def try_lock(self, key: str, token: str, lease: float) -> bool: ...

    async def peek(self, key: str, codec: Codec[Any]) -> tuple[_Entry | None, bool]:
        """The entry and whether its fill lock is held, in one round trip."""
        ...

    async def unlock(self, key: str, token: str) -> None: ...

    async def ping(self) -> bool: ...

    def status(self) -> dict[str, object]: ...

    async def close(self) -> None: ...


def _upstream_of(rendered: str) -> str:
    return rendered.split(":")[2]


def _records_in(entry: Any) -> int:
    """What an entry weighs: the records of its page (a page of 500 CBC resources holds
    about 470 KB), at least 1."""
    return max(1, len(getattr(getattr(entry, "value", None), "records", ())))


class _RecordCountingDict(dict[str, Any]):
    """A dict that keeps the total of its entries' records, however aiocache changes it
    (its expiry timers delete entries behind the cache's back)."""

    def __init__(self) -> None:
        super().__init__()
        self.records = 0

    def __setitem__(self, key: str, value: Any) -> None:
        self.records -= _records_in(super().get(key)) if key in self else 0
        super().__setitem__(key, value)
        self.records += _records_in(value)

    def __delitem__(self, key: str) -> None:
        self.records -= _records_in(super().__getitem__(key))
        super().__delitem__(key)

    def pop(self, key: str, *default: Any) -> Any:
        if key not in self:
            return super().pop(key, *default)
        value = super().pop(key)
        self.records -= _records_in(value)
        return value

    def clear(self) -> None:
        super().clear()
        self.records = 0


class _LruMemoryCache(SimpleMemoryCache):  # type: ignore[misc]
    """aiocache's memory cache, bounded: the least recently used entry goes first.

    Its dict keeps insertion order; moving a key to the end on every read and
    write makes the first key the least recently used. Bounded twice: by entries, and
    by the records they hold, since a page may hold 1 record or 500.
    """

    def __init__(self, max_entries: int, max_records: int, on_evict: Callable[[str], None]) -> None:
        # No aiocache timeout: a dict operation cannot hang, and wait_for costs a task.
        super().__init__(serializer=NullSerializer(), timeout=None)
        self._cache: _RecordCountingDict = _RecordCountingDict()
        self.max_entries = max_entries
        self.max_records = max_records
        self._on_evict = on_evict

    async def _get(self, key: str, encoding: str | None = "utf-8", _conn: object = None) -> Any:
        return self.get_now(key)

    def get_now(self, key: str) -> Any:
        """A read that needs no await: the dict is in this process."""
        value = self._cache.pop(key, None)
        if value is not None:
            self._cache[key] = value
        return value

    async def _set(
        self,
        key: str,
        value: Any,
        ttl: float | None = None,
        _cas_token: object = None,
        _conn: object = None,
    ) -> bool:
        self._cache.pop(key, None)
        result: bool = await super()._set(key, value, ttl=ttl, _cas_token=_cas_token, _conn=_conn)
        while len(self._cache) > self.max_entries or (
            self._cache.records > self.max_records and len(self._cache) > 1
        ):
            oldest = next(iter(self._cache))
            await super()._delete(oldest)  # also cancels its expiry timer
            self._on_evict(oldest)
        return result

    def __len__(self) -> int:
        return len(self._cache)

    async def _close(self, *args: object, **kwargs: object) -> None:
        for handle in self._handlers.values():
            handle.cancel()
        self._cache.clear()
        self._handlers.clear()


class _MemoryBackend:
    """Stores the value object itself: see ``PageCache.get_or_fetch`` for why that is safe."""

    def __init__(self, max_entries: int, max_records: int) -> None:
        self._cache = _LruMemoryCache(
            max_entries,
            max_records,
            lambda key: CACHE_EVENTS.labels(_upstream_of(key), "eviction").inc(),
        )
        # In this process: it answers as long as the process does.
        CACHE_BACKEND_UP.set(1)

    def get_now(self, key: str) -> _Entry | None:
        entry: _Entry | None = self._cache.get_now(key)
        return entry

    async def get(self, key: str, codec: Codec[Any]) -> _Entry | None:
        entry: _Entry | None = await self._cache.get(key)
        return entry

    async def set(self, key: str, entry: _Entry, codec: Codec[Any], expire: float) -> None:
        await self._cache.set(key, entry, ttl=expire)

    async def delete(self, key: str) -> None:
        await self._cache.delete(key)  # also cancels its expiry timer

    async def try_lock(self, key: str, token: str, lease: float) -> bool:
        return True  # one process: the single flight already makes this the only fetch

    async def peek(self, key: str, codec: Codec[Any]) -> tuple[_Entry | None, bool]:
        return await self.get(key, codec), False

    async def unlock(self, key: str, token: str) -> None:
        return None

    async def ping(self) -> bool:
        return True

    def status(self) -> dict[str, object]:
        return {
            "backend": "memory",
            "healthy": True,
            "entries": len(self._cache),
            "records": self._cache._cache.records,
        }

    async def close(self) -> None:
        await self._cache.close()


class _BytesSerializer(BaseSerializer):  # type: ignore[misc]
    """Hands bytes through: the codec and the envelope make them, not aiocache."""

    DEFAULT_ENCODING = None

    def dumps(self, value: bytes) -> bytes:
        return value

    def loads(self, value: bytes | None) -> bytes | None:
        return value


class _RedisBackend:
    """Entries are ``b"<fetch time>|<codec bytes>"``; the lock of ``key`` is ``key:lock``."""

    def __init__(self, settings: CacheSettings) -> None:
        parts = urlsplit(settings.url)
        # A zero timeout would fail every call; it means "no limit" instead.
        self._timeout = settings.operation_timeout if settings.operation_timeout > 0 else None
        pool_kwargs: dict[str, object] = {"socket_timeout": self._timeout}
        if parts.username:
            pool_kwargs["username"] = unquote(parts.username)
        self._cache = RedisCache(
            serializer=_BytesSerializer(),
            endpoint=parts.hostname or "127.0.0.1",
            port=parts.port or 6379,
            db=int(parts.path.strip("/") or 0),
            password=unquote(parts.password) if parts.password else None,
            ssl=parts.scheme == "rediss",
            timeout=None,  # our own timeout wraps every call
            create_connection_timeout=self._timeout,
            connection_pool_kwargs=pool_kwargs,
        )
        self._client = self._cache.client
        self._skip_until = 0.0
        # Nothing connects yet: a Redis that is down at start-up shows on first use.
        self.healthy = True
        CACHE_BACKEND_UP.set(1)

    async def _call(self, operation: Callable[[], Awaitable[R]]) -> R:
        if time.monotonic() < self._skip_until:
            raise _BackendUnavailable
        try:
            async with asyncio.timeout(self._timeout):
                result = await operation()
        except Exception as exc:  # any failure of an accelerator is a miss, never an answer
            self._mark_down(exc)
            raise _BackendUnavailable from exc
        self._mark_up()
        return result

    def _mark_down(self, exc: BaseException) -> None:
        self._skip_until = time.monotonic() + _RETRY_REDIS_AFTER
        if self.healthy:
            self.healthy = False
            CACHE_BACKEND_UP.set(0)
            logger.warning(
                "redis unavailable; answering from the upstreams without the shared cache",
                extra={"error": type(exc).__name__},
            )

    def _mark_up(self) -> None:
        if not self.healthy:
            self.healthy = True
            self._skip_until = 0.0
            CACHE_BACKEND_UP.set(1)
            logger.info("redis answers again; shared cache back in use")

    @staticmethod
    def _decode(key: str, raw: bytes | None, codec: Codec[Any]) -> _Entry | None:
        if raw is None:
            return None
        header, _, payload = raw.partition(b"|")
        try:
            return _Entry(value=codec.decode(payload), stored_at=float(header))
        except Exception:  # an entry of another version or a corrupt one is a miss
            logger.warning("unreadable cache entry ignored", extra={"key": key})
            return None

    def get_now(self, key: str) -> _Entry | None:
        return None  # every read is a round trip

    async def get(self, key: str, codec: Codec[Any]) -> _Entry | None:
        raw: bytes | None = await self._call(lambda: self._cache.get(key))
        return self._decode(key, raw, codec)

    async def set(self, key: str, entry: _Entry, codec: Codec[Any], expire: float) -> None:
        try:
            payload = codec.encode(entry.value)
        except Exception:  # a bug to fix, but the caller still gets the page it fetched
            logger.exception("value not cached: the codec cannot encode it", extra={"key": key})
            return
        raw = b"%.6f|" % entry.stored_at + payload
        # A float ttl makes aiocache use PSETEX; it must be at least one millisecond.
        await self._call(lambda: self._cache.set(key, raw, ttl=max(float(expire), 0.001)))

    async def delete(self, key: str) -> None:
        await self._call(lambda: self._cache.delete(key))

    async def try_lock(self, key: str, token: str, lease: float) -> bool:
        lease_ms = max(1, int(lease * 1000))
        acquired = await self._call(
            lambda: self._client.set(f"{key}:lock", token, nx=True, px=lease_ms)
        )
        return bool(acquired)

    async def peek(self, key: str, codec: Codec[Any]) -> tuple[_Entry | None, bool]:
        raw, lock = await self._call(lambda: self._cache.multi_get([key, f"{key}:lock"]))
        return self._decode(key, raw, codec), lock is not None

    async def unlock(self, key: str, token: str) -> None:
        # Only the holder deletes: a lock that expired and was taken by another stays.
        await self._call(lambda: self._client.eval(_UNLOCK, 1, f"{key}:lock", token))

    async def ping(self) -> bool:
        # Readiness asks Redis itself, also while calls are skipping it.
        try:
            async with asyncio.timeout(self._timeout):
                await self._client.ping()
        except Exception as exc:
            self._mark_down(exc)
            return False
        self._mark_up()
        return True

    def status(self) -> dict[str, object]:
        return {"backend": "redis", "healthy": self.healthy, "entries": None}

    async def close(self) -> None:
        # aiocache 0.12's close() calls redis-py's deprecated close(); aclose() is the same.
        await self._client.aclose()


class DocumentStore:
    """GraphQL documents by key (automatic persisted queries), beside the pages: in this
    process, or in the shared Redis so that replicas know what any of them was sent.

    Bounded whatever callers send: at most ``max_entries`` documents of at most
    ``max_document_bytes`` each. In memory the least recently used goes first; in Redis each
    key has one of ``max_entries`` slots (a new document takes its slot from the one there),
    so the store never holds more than that many keys, each expiring after a day unused.
    A slot keeps its key beside the document and answers only that key: two keys that share
    a slot cost a miss, never another's document. The caller chooses keys; the store trusts
    nothing else of them. Like the pages, it is an accelerator: a failing Redis is a miss.
    """

    _REDIS_TTL_MS = 86_400_000

    def __init__(self, backend: _Backend, max_entries: int, max_document_bytes: int) -> None:
        self._redis = backend if isinstance(backend, _RedisBackend) else None
        self._memory: OrderedDict[str, str] = OrderedDict()
        self.max_entries = max_entries
        self.max_document_bytes = max_document_bytes

    def __len__(self) -> int:
        """Documents held in this process (0 with Redis, which holds them)."""
        return len(self._memory)

    async def get(self, key: str) -> str | None:
        redis = self._redis
        if redis is None:
            document = self._memory.get(key)
            if document is not None:
                self._memory.move_to_end(key)
            return document
        try:
            raw: bytes | None = await redis._call(lambda: redis._client.get(self._slot(key)))
        except _BackendUnavailable:
            return None
        if raw is None:
            return None
        held, _, text = raw.partition(b"\n")
        return text.decode("utf-8") if held == key.encode("utf-8") else None

    async def put(self, key: str, document: str) -> bool:
        """Keep ``document`` under ``key``, unless it is over ``max_document_bytes``; whether
        it was kept (a failing Redis keeps nothing)."""
        encoded = document.encode("utf-8")
        if len(encoded) > self.max_document_bytes or "\n" in key:
            return False
        redis = self._redis
        if redis is None:
            self._memory[key] = document
            self._memory.move_to_end(key)
            while len(self._memory) > self.max_entries:
                self._memory.popitem(last=False)
            return True
        value = key.encode("utf-8") + b"\n" + encoded
        slot = self._slot(key)
        try:
            await redis._call(lambda: redis._client.set(slot, value, px=self._REDIS_TTL_MS))
        except _BackendUnavailable:
            return False
        return True

    def _slot(self, key: str) -> str:
        digest = hashlib.sha256(key.encode("utf-8")).digest()
        return f"{_KEY_VERSION}:documents:{int.from_bytes(digest[:8], 'big') % self.max_entries}"


class _Attempt:
    """One resolution's use of the backend: a failure is a miss and one ``error`` event."""

    def __init__(self, backend: _Backend, upstream: str) -> None:
        self.backend = backend
        self.upstream = upstream
        self.failed = False

    async def run(self, operation: Awaitable[R], fallback: R) -> R:
        try:
            return await operation
        except _BackendUnavailable:
            if not self.failed:
                self.failed = True
                CACHE_EVENTS.labels(self.upstream, "error").inc()
            return fallback


class PageCache:
    def __init__(self, settings: CacheSettings, backend: _Backend) -> None:
        self.settings = settings
        self._backend = backend
        self._flights: dict[str, asyncio.Task[CacheResult[Any]]] = {}
        # Callers waiting on each fetch: the last to go away stops it.
        self._waiting: dict[asyncio.Task[CacheResult[Any]], int] = {}
        self._refreshes: dict[str, asyncio.Task[None]] = {}
        self._events = LabelledChildren(CACHE_EVENTS)  # a warm request counts hundreds

    @classmethod
    def from_settings(cls, settings: CacheSettings) -> PageCache:
        backend: _Backend = (
            _RedisBackend(settings)
            if settings.is_redis
            else _MemoryBackend(settings.max_entries, settings.max_records)
        )
        return cls(settings, backend)

    async def get_or_fetch(
        self,
        key: CacheKey,
        fetch: Callable[[], Awaitable[T]],
        codec: Codec[T],
        *,
        ttl: float,
        refresh: bool = False,
        revalidate: Callable[[], Awaitable[T]] | None = None,
    ) -> CacheResult[T]:
        """The value for ``key``: cached when younger than ``ttl`` seconds, else fetched.

        Values must be immutable (frozen dataclasses of tuples): the memory backend
        stores and hands out the object itself, without the codec, so every caller
        of a key gets the same object. Redis stores ``codec.encode(value)``.

        Identical concurrent calls in this process share one ``fetch()`` and its
        result or exception; those that joined another's fetch get ``hit``.
        ``refresh`` skips the read (and shares a fetch only with other refreshes).
        ``ttl <= 0`` calls ``fetch()`` and touches no backend.

        ``revalidate`` fetches the value for nobody waiting: with stale-while-revalidate,
        an entry expired less than that window ago answers at once
        (``stale_while_revalidate``) and ``revalidate()`` refreshes it behind the answer,
        in a task of its own that outlives the caller. It must hold none of the request's
        objects (the caller's credential, not its request). None: a stale entry is
        fetched while the caller waits.
        """
        if ttl <= 0:
            return CacheResult(await fetch(), "bypass")
        rendered = key.render()
        if not refresh:
            # An entry in this process answers at once: no task, no shield, no await.
            entry = self._backend.get_now(rendered)
            if entry is not None:
                answer = self._answer(key, rendered, entry, codec, ttl, revalidate)
                if answer is not None:
                    self._events(key.upstream, answer.source).inc()
                    return answer
        flight_key = f"refresh:{rendered}" if refresh else rendered
        flight = self._flights.get(flight_key)
        joined = flight is not None and not flight.done()
        if flight is None or not joined:
            flight = asyncio.create_task(
                self._resolve(key, rendered, fetch, codec, ttl, refresh, revalidate)
            )
            self._flights[flight_key] = flight
            flight.add_done_callback(partial(self._landed, flight_key))
        result: CacheResult[T] = await self._wait_for(flight)
        if joined and result.source == "miss":
            result = CacheResult(result.value, "hit")  # no upstream call of its own
        self._events(key.upstream, result.source).inc()
        return result

    async def _wait_for(self, flight: asyncio.Task[CacheResult[T]]) -> CacheResult[T]:
        """The fetch's result. Shielded: a caller that goes away does not cancel the fetch
        the others wait for; the last one to go does (nobody is left to answer: a client
        gone in the middle of an answer in parts)."""
        waiting = self._waiting
        waiting[flight] = waiting.get(flight, 0) + 1
        try:
            return await asyncio.shield(flight)
        except asyncio.CancelledError:
            if waiting[flight] == 1:
                flight.cancel()
            raise
        finally:
            if waiting[flight] == 1:
                del waiting[flight]
            else:
                waiting[flight] -= 1

    def documents(self, max_entries: int, max_document_bytes: int) -> DocumentStore:
        """A store of GraphQL documents in this cache's backend (``DocumentStore``)."""
        return DocumentStore(self._backend, max_entries, max_document_bytes)

    def peek(self, key: CacheKey, *, ttl: float) -> Any | None:
        """The value for ``key`` when this process holds it fresh, else None: no await,
        no fetch. For callers that can skip a whole chain of coroutines when warm."""
        if ttl <= 0:
            return None
        entry = self._backend.get_now(key.render())
        if entry is None or entry.age() >= ttl:
            return None
        self._events(key.upstream, "hit").inc()
        return entry.value

    def _answer(
        self,
        key: CacheKey,
        rendered: str,
        entry: _Entry,
        codec: Codec[Any],
        ttl: float,
        revalidate: Callable[[], Awaitable[Any]] | None,
    ) -> CacheResult[Any] | None:
        """What ``entry`` answers without a fetch: itself while fresh, or, within the
        stale-while-revalidate window, itself while a refresh starts; else None."""
        age = entry.age()
        if age < ttl:
            return CacheResult(entry.value, "hit")
        if revalidate is None or age >= ttl + self.settings.stale_while_revalidate:
            return None
        self._revalidate(key, rendered, revalidate, codec, ttl)
        return CacheResult(entry.value, "stale_while_revalidate")

    def _lifetime(self, ttl: float) -> float:
        """Seconds an entry is kept: fresh, then each stale window after the other."""
        return ttl + self.settings.stale_while_revalidate + self.settings.stale_if_error

    def _landed(self, flight_key: str, flight: asyncio.Task[CacheResult[Any]]) -> None:
        if self._flights.get(flight_key) is flight:
            del self._flights[flight_key]
        if not flight.cancelled():
            flight.exception()  # mark it retrieved even if every waiter went away

    async def _resolve(
        self,
        key: CacheKey,
        rendered: str,
        fetch: Callable[[], Awaitable[T]],
        codec: Codec[T],
        ttl: float,
        refresh: bool,
        revalidate: Callable[[], Awaitable[T]] | None,
    ) -> CacheResult[T]:
        attempt = _Attempt(self._backend, key.upstream)
        backend = self._backend
        entry = None if refresh else await attempt.run(backend.get(rendered, codec), None)
        if entry is not None:
            answer = self._answer(key, rendered, entry, codec, ttl, revalidate)
            if answer is not None:
                return answer

        token = uuid.uuid4().hex
        locked = False
        if not refresh:
            lock = backend.try_lock(rendered, token, self.settings.lock_timeout)
            locked = await attempt.run(lock, False)
            # Another replica holds the lock; with Redis failing there is nobody to wait for.
            if not locked and not attempt.failed:
                filled = await self._wait_for_holder(attempt, rendered, codec, ttl)
                if filled is not None:
                    return CacheResult(filled.value, "hit")
        try:
            try:
                value = await fetch()
            except UpstreamError as error:
                if not error.kind.upstream_could_not_answer:
                    raise
                stale = await self._stale(attempt, entry, rendered, codec, ttl, refresh)
                if stale is None:
                    raise
                logger.warning("serving a stale page", extra={"upstream": key.upstream})
                return CacheResult(stale.value, "stale")
            stored = _Entry(value, time.time())
            await attempt.run(backend.set(rendered, stored, codec, self._lifetime(ttl)), None)
        finally:
            # After the write: a waiter that sees the lock gone finds the entry.
            if locked:
                await attempt.run(backend.unlock(rendered, token), None)
        return CacheResult(value, "miss")

    def _revalidate(
        self,
        key: CacheKey,
        rendered: str,
        revalidate: Callable[[], Awaitable[Any]],
        codec: Codec[Any],
        ttl: float,
    ) -> None:
        """Start refreshing ``rendered`` behind a stale answer, unless this process is
        refreshing it already or runs ``_MAX_REFRESHES`` refreshes. The task runs in a
        context of its own: none of the request's context variables (its priority, its
        spans) reach the refresh, nor keep the request's objects alive."""
        if rendered in self._refreshes:
            return
        if len(self._refreshes) >= _MAX_REFRESHES:
            self._events(key.upstream, "refresh_skipped").inc()
            return
        task = asyncio.create_task(
            self._refresh(key, rendered, revalidate, codec, ttl), context=contextvars.Context()
        )
        self._refreshes[rendered] = task
        task.add_done_callback(partial(self._refreshed, rendered))

    def _refreshed(self, rendered: str, task: asyncio.Task[None]) -> None:
        del self._refreshes[rendered]

    async def _refresh(
        self,
        key: CacheKey,
        rendered: str,
        revalidate: Callable[[], Awaitable[Any]],
        codec: Codec[Any],
        ttl: float,
    ) -> None:
        """One refresh of a stale entry, under its fill lock so that one replica makes it,
        and only while no other replica has refreshed it since it was read. Whatever
        happens is counted and logged, and never reaches a caller."""
        attempt = _Attempt(self._backend, key.upstream)
        backend = self._backend
        token = uuid.uuid4().hex
        # The lock is held for as long as the refresh may run (which the same bound cuts
        # short), so no other replica refreshes the entry meanwhile. A refresh still
        # running once the entry it refreshes would have lived out its windows is of no use.
        lease = max(self.settings.lock_timeout, ttl + self.settings.stale_while_revalidate)
        if not await attempt.run(backend.try_lock(rendered, token, lease), False):
            return  # another replica refreshes it; with Redis failing, nowhere to keep it
        try:
            entry = await attempt.run(backend.get(rendered, codec), None)
            if entry is not None and entry.age() < ttl:
                return  # another replica refreshed it after this one read it
            outcome = await self._refetch(attempt, rendered, revalidate, codec, ttl, lease)
            self._events(key.upstream, outcome).inc()
        finally:
            await attempt.run(backend.unlock(rendered, token), None)

    async def _refetch(
        self,
        attempt: _Attempt,
        rendered: str,
        revalidate: Callable[[], Awaitable[Any]],
        codec: Codec[Any],
        ttl: float,
        lease: float,
    ) -> RefreshOutcome:
        """Fetch the entry again and keep what comes: the new page, the stale one when the
        upstream could not answer, nothing when it refused."""
        upstream = attempt.upstream
        try:
            async with asyncio.timeout(lease):
                value = await revalidate()
        except UpstreamError as error:
            if not error.kind.upstream_could_not_answer:
                # A revoked token must not read on for the rest of the window, nor anyone
                # an answer the upstream no longer gives: the next read asks it.
                await attempt.run(self._backend.delete(rendered), None)
                logger.info(
                    "a refresh was refused; the stale page is dropped",
                    extra={"upstream": upstream, "error": error.kind.name},
                )
                return "refresh_refused"
            logger.warning(
                "a refresh failed; the stale page answers until its window ends",
                extra={"upstream": upstream, "error": error.kind.name},
            )
            return "refresh_failed"
        except TimeoutError:
            logger.warning(
                "a refresh outlasted its lock; the stale page answers until its window ends",
                extra={"upstream": upstream, "error": "TimeoutError"},
            )
            return "refresh_failed"
        except Exception:  # a bug to fix; the callers have their answer already
            logger.exception("a refresh failed unexpectedly", extra={"upstream": upstream})
            return "refresh_failed"
        stored = _Entry(value, time.time())
        await attempt.run(self._backend.set(rendered, stored, codec, self._lifetime(ttl)), None)
        return "refresh_ok"

    async def _wait_for_holder(
        self, attempt: _Attempt, rendered: str, codec: Codec[Any], ttl: float
    ) -> _Entry | None:
        """The entry another replica fills; None once its lock is gone or ``lock_timeout`` ends."""
        deadline = time.monotonic() + self.settings.lock_timeout
        while (remaining := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(_POLL_INTERVAL, remaining))
            entry, held = await attempt.run(attempt.backend.peek(rendered, codec), (None, False))
            if entry is not None and entry.age() < ttl:
                return entry
            if not held:
                return None  # the holder failed or the backend did: fetch ourselves
        return None

    async def _stale(
        self,
        attempt: _Attempt,
        entry: _Entry | None,
        rendered: str,
        codec: Codec[Any],
        ttl: float,
        refresh: bool,
    ) -> _Entry | None:
        if self.settings.stale_if_error <= 0:
            return None
        if refresh:  # the read was skipped: look now
            entry = await attempt.run(self._backend.get(rendered, codec), None)
        if entry is not None and entry.age() < self._lifetime(ttl):
            return entry
        return None

    async def ping(self) -> bool:
        """Whether the backend answers within the operation timeout (memory: always)."""
        return await self._backend.ping()

    def status(self) -> dict[str, object]:
        return self._backend.status()

    async def close(self) -> None:
        for flight in list(self._flights.values()):
            flight.cancel()
        refreshes = list(self._refreshes.values())
        for task in refreshes:
            task.cancel()
        # Awaited: a refresh holds the backend, which closes next.
        await asyncio.gather(*refreshes, return_exceptions=True)
        await self._backend.close()

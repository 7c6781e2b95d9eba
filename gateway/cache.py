"""The page cache: the only module that knows aiocache.

Entries are keyed by upstream, endpoint, the normalised request parameters and a
one-way fingerprint of the caller's token, so two callers never share an entry.
In memory by default (bounded, least recently used evicted); in Redis when
several replicas run. Redis is an accelerator, never a dependency of
correctness: every operation has a short timeout, and while Redis fails the
gateway answers from the upstreams and tries Redis again a second later.

Concurrent identical misses in one process share one fetch (single flight);
across replicas a short Redis lock lets one replica fetch while the others wait
for its entry. Errors are never cached. With stale-if-error, an entry that
expired less than ``stale_if_error`` seconds ago may answer while the upstream
fails.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

import orjson
from aiocache import RedisCache, SimpleMemoryCache
from aiocache.serializers import BaseSerializer, NullSerializer

from gateway.config import CacheSettings
from gateway.errors import UpstreamError
from gateway.metrics import CACHE_BACKEND_UP, CACHE_EVENTS

logger = logging.getLogger("gateway.cache")

T = TypeVar("T")
Source = Literal["hit", "miss", "stale", "bypass"]

_KEY_VERSION = "gw:v1"
_RETRY_REDIS_AFTER = 1.0
_POLL_INTERVAL = 0.025
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True, slots=True)
class CacheKey:
    upstream: str
    endpoint: str
    params: tuple[tuple[str, object], ...]
    credential: str
    """``Caller.fingerprint``: a one-way hash, never the token."""

    def render(self) -> str:
        canonical = orjson.dumps(self.params, option=orjson.OPT_SORT_KEYS)
        digest = hashlib.sha256(canonical).hexdigest()[:32]
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


class _BackendUnavailable(Exception):
    pass


class _Backend(Protocol):
    name: str
    shared: bool

    async def get(self, key: str, codec: Codec[Any]) -> _Entry | None: ...

    async def set(self, key: str, entry: _Entry, codec: Codec[Any], ttl: float) -> None: ...

    async def try_lock(self, key: str, token: str, lease: float) -> bool: ...

    async def unlock(self, key: str, token: str) -> None: ...

    async def ping(self) -> bool: ...

    def status(self) -> dict[str, object]: ...

    async def close(self) -> None: ...


class _LruMemoryCache(SimpleMemoryCache):  # type: ignore[misc]
    """aiocache's memory cache, bounded: the least recently used entry goes first."""

    def __init__(self, max_entries: int, on_evict: Callable[[str], None]) -> None:
        super().__init__(serializer=NullSerializer())
        self.max_entries = max_entries
        self._on_evict = on_evict

    async def _get(self, key: str, encoding: str | None = "utf-8", _conn: object = None) -> Any:
        value = self._cache.pop(key, None)
        if value is not None:
            self._cache[key] = value  # most recently used goes last
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
        while len(self._cache) > self.max_entries:
            oldest = next(iter(self._cache))
            await super()._delete(oldest)
            self._on_evict(oldest)
        return result


class _MemoryBackend:
    name = "memory"
    shared = False

    def __init__(self, max_entries: int) -> None:
        self._cache = _LruMemoryCache(max_entries, self._evicted)

    @staticmethod
    def _evicted(key: str) -> None:
        CACHE_EVENTS.labels(key.split(":")[2], "eviction").inc()

    # Values are immutable (frozen dataclasses of tuples), so the object itself is
    # stored and handed out: no caller can mutate what the cache holds.
    async def get(self, key: str, codec: Codec[Any]) -> _Entry | None:
        entry: _Entry | None = await self._cache.get(key)
        return entry

    async def set(self, key: str, entry: _Entry, codec: Codec[Any], ttl: float) -> None:
        await self._cache.set(key, entry, ttl=ttl)

    async def try_lock(self, key: str, token: str, lease: float) -> bool:
        return False  # one process: single flight already coalesces

    async def unlock(self, key: str, token: str) -> None:
        return None

    async def ping(self) -> bool:
        return True

    def status(self) -> dict[str, object]:
        return {"backend": self.name, "healthy": True, "entries": len(self._cache._cache)}

    async def close(self) -> None:
        await self._cache.clear()


class _BytesSerializer(BaseSerializer):  # type: ignore[misc]
    DEFAULT_ENCODING = None

    def dumps(self, value: bytes) -> bytes:
        return value

    def loads(self, value: bytes | None) -> bytes | None:
        return value


class _RedisBackend:
    name = "redis"
    shared = True

    def __init__(self, settings: CacheSettings) -> None:
        parts = urlsplit(settings.url)
        self._timeout = settings.operation_timeout
        self._cache = RedisCache(
            serializer=_BytesSerializer(),
            endpoint=parts.hostname or "127.0.0.1",
            port=parts.port or 6379,
            db=int(parts.path.strip("/") or 0),
            password=unquote(parts.password) if parts.password else None,
            ssl=parts.scheme == "rediss",
            timeout=None,  # our own timeout wraps every call
            create_connection_timeout=settings.operation_timeout,
            connection_pool_kwargs={"socket_timeout": settings.operation_timeout},
        )
        self._down_until = 0.0
        self.healthy = True
        CACHE_BACKEND_UP.set(1)

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
        if time.monotonic() < self._down_until:
            raise _BackendUnavailable
        try:
            async with asyncio.timeout(self._timeout):
                result = await operation()
        except Exception as exc:
            self._mark_down(exc)
            raise _BackendUnavailable from None
        if not self.healthy:
            self.healthy = True
            CACHE_BACKEND_UP.set(1)
            logger.info("redis answers again; shared cache back in use")
        return result

    def _mark_down(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + _RETRY_REDIS_AFTER
        if self.healthy:
            self.healthy = False
            CACHE_BACKEND_UP.set(0)
            logger.warning(
                "redis unavailable; answering from the upstreams without the shared cache",
                extra={"error": type(exc).__name__},
            )

    async def get(self, key: str, codec: Codec[Any]) -> _Entry | None:
        raw: bytes | None = await self._call(lambda: self._cache.get(key))
        if raw is None:
            return None
        header, _, payload = raw.partition(b"|")
        try:
            return _Entry(value=codec.decode(payload), stored_at=float(header))
        except (ValueError, TypeError, KeyError, IndexError):
            logger.warning("unreadable cache entry ignored", extra={"key": key})
            return None

    async def set(self, key: str, entry: _Entry, codec: Codec[Any], ttl: float) -> None:
        raw = b"%.3f|" % entry.stored_at + codec.encode(entry.value)
        await self._call(lambda: self._cache.set(key, raw, ttl=float(ttl)))

    async def try_lock(self, key: str, token: str, lease: float) -> bool:
        client = self._cache.client
        acquired = await self._call(
            lambda: client.set(f"{key}:lock", token, nx=True, px=max(1, int(lease * 1000)))
        )
        return bool(acquired)

    async def lock_held(self, key: str) -> bool:
        exists: bool = await self._call(lambda: self._cache.exists(f"{key}:lock"))
        return exists

    async def unlock(self, key: str, token: str) -> None:
        # Only the holder deletes: a lock that expired and was taken by another stays.
        client = self._cache.client
        await self._call(lambda: client.eval(_UNLOCK, 1, f"{key}:lock", token))

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout):
                await self._cache.client.ping()
        except Exception as exc:
            self._mark_down(exc)
            return False
        if not self.healthy:
            self._down_until = 0.0
            self.healthy = True
            CACHE_BACKEND_UP.set(1)
            logger.info("redis answers again; shared cache back in use")
        return True

    def status(self) -> dict[str, object]:
        return {"backend": self.name, "healthy": self.healthy, "entries": None}

    async def close(self) -> None:
        # aiocache 0.12's close() calls redis-py's deprecated close(); aclose() is the same.
        await self._cache.client.aclose()


class PageCache:
    def __init__(self, settings: CacheSettings, backend: _Backend) -> None:
        self.settings = settings
        self._backend = backend
        self._flights: dict[str, asyncio.Task[CacheResult[Any]]] = {}

    @classmethod
    def from_settings(cls, settings: CacheSettings) -> PageCache:
        backend: _Backend = (
            _RedisBackend(settings) if settings.is_redis else _MemoryBackend(settings.max_entries)
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
    ) -> CacheResult[T]:
        if ttl <= 0:
            return CacheResult(await fetch(), "bypass")
        rendered = key.render()
        flight_key = f"refresh:{rendered}" if refresh else rendered
        flight = self._flights.get(flight_key)
        if flight is not None:
            shared: CacheResult[T] = await asyncio.shield(flight)
            # Joining another caller's fetch cost no upstream call of our own.
            return shared if shared.source != "miss" else CacheResult(shared.value, "hit")
        # A task of its own, so one caller going away does not cancel the others' fetch.
        flight = asyncio.ensure_future(self._resolve(key, rendered, fetch, codec, ttl, refresh))
        self._flights[flight_key] = flight
        flight.add_done_callback(lambda _: self._flights.pop(flight_key, None))
        result: CacheResult[T] = await asyncio.shield(flight)
        return result

    async def _resolve(
        self,
        key: CacheKey,
        rendered: str,
        fetch: Callable[[], Awaitable[T]],
        codec: Codec[T],
        ttl: float,
        refresh: bool,
    ) -> CacheResult[T]:
        entry = None if refresh else await self._read(rendered, codec)
        if entry is not None and time.time() - entry.stored_at < ttl:
            CACHE_EVENTS.labels(key.upstream, "hit").inc()
            return CacheResult(entry.value, "hit")
        lock_token = uuid.uuid4().hex
        locked = False
        if self._backend.shared and not refresh:
            locked, waited = await self._lock_or_wait(rendered, lock_token, codec, ttl)
            if waited is not None:
                CACHE_EVENTS.labels(key.upstream, "hit").inc()
                return CacheResult(waited.value, "hit")
        try:
            value = await fetch()
        except UpstreamError:
            stale = await self._stale(entry, rendered, codec, ttl, refresh)
            if stale is None:
                raise
            CACHE_EVENTS.labels(key.upstream, "stale").inc()
            logger.warning("serving a stale page", extra={"upstream": key.upstream})
            return CacheResult(stale.value, "stale")
        finally:
            if locked:
                await self._quietly(self._backend.unlock(rendered, lock_token))
        CACHE_EVENTS.labels(key.upstream, "miss").inc()
        stored = _Entry(value, time.time())
        await self._quietly(
            self._backend.set(rendered, stored, codec, ttl + self.settings.stale_if_error)
        )
        return CacheResult(value, "miss")

    async def _read(self, rendered: str, codec: Codec[Any]) -> _Entry | None:
        try:
            return await self._backend.get(rendered, codec)
        except _BackendUnavailable:
            CACHE_EVENTS.labels(rendered.split(":")[2], "error").inc()
            return None

    async def _quietly(self, operation: Awaitable[None]) -> None:
        try:
            await operation
        except _BackendUnavailable:
            return

    async def _lock_or_wait(
        self, rendered: str, token: str, codec: Codec[Any], ttl: float
    ) -> tuple[bool, _Entry | None]:
        """(we hold the lock, an entry another replica stored while we waited)."""
        try:
            if await self._backend.try_lock(rendered, token, self.settings.lock_timeout):
                return True, None
        except _BackendUnavailable:
            return False, None
        backend = self._backend
        deadline = time.monotonic() + self.settings.lock_timeout
        while time.monotonic() < deadline:
            await asyncio.sleep(_POLL_INTERVAL)
            try:
                entry = await backend.get(rendered, codec)
                if entry is not None and time.time() - entry.stored_at < ttl:
                    return False, entry
                if isinstance(backend, _RedisBackend) and not await backend.lock_held(rendered):
                    break  # the other replica failed: fetch ourselves
            except _BackendUnavailable:
                break
        return False, None

    async def _stale(
        self, entry: _Entry | None, rendered: str, codec: Codec[Any], ttl: float, refresh: bool
    ) -> _Entry | None:
        window = self.settings.stale_if_error
        if window <= 0:
            return None
        if entry is None and refresh:
            entry = await self._read(rendered, codec)
        if entry is not None and time.time() - entry.stored_at < ttl + window:
            return entry
        return None

    async def ping(self) -> bool:
        return await self._backend.ping()

    def status(self) -> dict[str, object]:
        return self._backend.status()

    async def close(self) -> None:
        for flight in list(self._flights.values()):
            flight.cancel()
        await self._backend.close()

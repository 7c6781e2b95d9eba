"""What every upstream call goes through: validation, cache, resilience, HTTP, parsing.

An upstream module (``gateway.oma``, ``gateway.cbc``) describes its endpoint as an
``Endpoint``: path, request validation and body, cache parameters, response
parsing and error translation. ``UpstreamClient`` runs any endpoint of one
upstream; a third upstream is one more module with one more ``Endpoint``.
"""

from __future__ import annotations

import email.utils
import logging
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any, Generic, Protocol, TypeVar

import httpx
import orjson

from gateway.cache.pages import CacheKey, Codec, PageCache
from gateway.caller import Caller
from gateway.config import UpstreamSettings
from gateway.credentials import CredentialKey
from gateway.errors import ErrorKind, InvalidRequest, UpstreamError
from gateway.metrics import UPSTREAM_CALLS, UPSTREAM_LATENCY, LabelledChildren
from gateway.upstreams.resilience import CALL_PRIORITY, Requester, UpstreamGuard
from gateway.upstreams.transport import HttpAnswer, UpstreamHttp
from gateway.upstreams.verification import REFUSALS, CredentialBook

logger = logging.getLogger("gateway.upstream")

Q = TypeVar("Q", contravariant=True)
P = TypeVar("P")
Qx = TypeVar("Qx")


class Endpoint(Protocol[Q, P]):
    """One upstream operation, described in the upstream's own module."""

    upstream: str
    name: str
    path: str
    codec: Codec[P]

    def validate(self, query: Q) -> None:
        """Raise ``InvalidRequest`` for anything the upstream would refuse."""

    def known_answer(self, query: Q) -> P | None:
        """The answer when it is known without asking (a window too narrow to hold any
        time the upstream stores), else None."""
        ...

    def body(self, query: Q) -> dict[str, Any]:
        """The JSON body the upstream expects."""
        ...

    def cache_params(self, query: Q) -> tuple[tuple[str, object], ...]:
        """The normalised parameters that identify the answer."""
        ...

    def decode(self, content: bytes) -> Any | None:
        """A 200 answer's body decoded for ``parse``, quicker than as general JSON
        (``gateway.fields.RecordFields.page_decoder``), or None to decode it so."""
        ...

    def parse(self, status: int, headers: httpx.Headers, payload: Any) -> P:
        """Turn a decoded response into a typed page, or raise ``UpstreamError``."""
        ...


class UpstreamClient(Generic[Qx, P]):
    """Runs one endpoint for callers, each with their own token."""

    def __init__(
        self,
        settings: UpstreamSettings,
        endpoint: Endpoint[Qx, P],
        http: UpstreamHttp,
        cache: PageCache,
        guard: UpstreamGuard,
        book: CredentialBook,
    ) -> None:
        self.settings = settings
        self.endpoint = endpoint
        self.book = book
        self._http = http
        self._url = http.url(endpoint.path)
        # Labelled metric children looked up once, not on every call.
        self._latency = UPSTREAM_LATENCY.labels(endpoint.upstream, endpoint.name)
        self._calls = LabelledChildren(UPSTREAM_CALLS)
        self._cache = cache
        # Stale pages answer at once only where a refresh can follow them.
        self._revalidates = cache.settings.stale_while_revalidate > 0
        self.guard = guard
        # The usual try's timeouts, made once (httpx.Timeout checks its arguments each time).
        self._timeout = httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout)
        self._longest_timeout = max(settings.read_timeout, settings.connect_timeout)

    def serves_cached(self, caller: Caller) -> bool:
        """Whether ``cached`` can find anything for this caller: not with caching off,
        nor for a caller who asked for fresh answers."""
        return not caller.fresh and self.settings.cache_ttl > 0

    def cached(self, caller: Caller, query: Qx) -> P | None:
        """The page when this process's cache holds it fresh, else None (then ``fetch``).
        Never calls the upstream; a query ``fetch`` would refuse is None too."""
        if not self.serves_cached(caller):
            return None
        endpoint = self.endpoint
        try:
            endpoint.validate(query)
        except InvalidRequest:
            return None  # fetch raises it
        known = endpoint.known_answer(query)
        if known is not None:
            return known
        value: P | None = self._cache.peek(self._key(caller, query), ttl=self.settings.cache_ttl)
        if value is not None:
            caller.stats.cache_hits += 1
        return value

    def _key(self, caller: Caller, query: Qx) -> CacheKey:
        endpoint = self.endpoint
        return CacheKey(
            upstream=endpoint.upstream,
            endpoint=endpoint.name,
            params=endpoint.cache_params(query),
            credential=caller.fingerprint,
        )

    async def fetch(self, caller: Caller, query: Qx) -> P:
        """One page for one caller: from the cache when fresh (or expired less than the
        stale-while-revalidate window ago, refreshed behind the answer), else from the
        upstream. A credential the upstream refused a moment ago is refused again at once."""
        endpoint = self.endpoint
        endpoint.validate(query)
        known = endpoint.known_answer(query)
        if known is not None:
            return known
        refusal = self.book.refusal_here(caller.fingerprint)
        if refusal is not None:
            raise refusal.error(endpoint.upstream)
        # Partials, not a closure and a lambda: a call is one coroutine frame fewer.
        call = partial(self._call, caller, query)
        if self.settings.cache_ttl <= 0:
            # Caching off: no key to build, nothing to count.
            return await call()
        key = self._key(caller, query)
        revalidate = None
        if self._revalidates:
            # The caller's credential, none of its request's objects: the refresh may
            # outlive the request.
            revalidate = partial(self._refresh, caller.token, caller.origin, caller.key, query)
        result = await self._cache.get_or_fetch(
            key,
            call,
            endpoint.codec,
            ttl=self.settings.cache_ttl,
            refresh=caller.fresh,
            revalidate=revalidate,
        )
        stats = caller.stats
        if result.source == "hit" or result.source == "stale_while_revalidate":
            stats.cache_hits += 1
        elif result.source == "stale":
            stats.cache_hits += 1
            if endpoint.upstream not in stats.stale_served:
                stats.stale_served.append(endpoint.upstream)
        elif result.source == "miss":
            stats.cache_misses += 1
        return result.value

    async def _refresh(self, token: str, origin: str, key: CredentialKey, query: Qx) -> P:
        """The page fetched again behind a stale answer, for nobody waiting: with the
        caller's own credential, counted in no request's stats, at the quota's background
        priority (after every waiting answer and deferred part)."""
        priority = CALL_PRIORITY.set("background")
        try:
            return await self._call(Caller(token, origin=origin, key=key), query)
        finally:
            CALL_PRIORITY.reset(priority)

    async def _call(self, caller: Caller, query: Qx) -> P:
        """The upstream's answer, retried as the guard allows, for a caller whose standing
        with the upstream (verified, or refused a moment ago) is looked up first."""
        book, fingerprint = self.book, caller.fingerprint
        verified, refusal = await book.look_up(fingerprint)
        trial = False
        if refusal is None and not verified:
            # A credential the upstream has not answered yet: one call tries it first.
            trial = await book.await_trial(fingerprint, self.settings.deadline)
            if not trial:
                verified, refusal = await book.look_up(fingerprint)
        if refusal is not None:
            raise refusal.error(self.endpoint.upstream)
        requester = Requester(fingerprint, caller.origin, verified, CALL_PRIORITY.get())
        try:
            return await self.guard.run(partial(self._attempt, caller, query), requester)
        finally:
            if trial:
                book.end_trial(fingerprint)

    async def _attempt(self, caller: Caller, query: Qx, remaining: float) -> P:
        """One HTTP try. Every failure leaves here as an ``UpstreamError``."""
        endpoint = self.endpoint
        name = endpoint.upstream
        timeout = self._timeout
        if remaining < self._longest_timeout:
            # Near the request's deadline: this try may not outlast it.
            timeout = httpx.Timeout(
                min(self.settings.read_timeout, remaining),
                connect=min(self.settings.connect_timeout, remaining),
            )
        caller.stats.upstream_calls += 1
        started = time.perf_counter()
        outcome = "error"
        try:
            try:
                answer = await self._http.post_json(
                    self._url, orjson.dumps(endpoint.body(query)), caller.token, timeout
                )
            except httpx.TimeoutException as exc:
                # aiohttp reports a dropped connection as a connect timeout; only a
                # read or pool timeout says the upstream was too slow.
                if isinstance(exc, httpx.ConnectTimeout):
                    raise _unavailable(name, "could not connect", at_connect=True) from None
                raise UpstreamError(ErrorKind.TIMEOUT, name, "upstream timed out") from None
            except httpx.ConnectError:
                raise _unavailable(name, "could not connect", at_connect=True) from None
            except httpx.HTTPError as exc:
                raise _unavailable(name, f"connection failed ({type(exc).__name__})") from None
            payload = endpoint.decode(answer.content) if answer.status == 200 else None
            if payload is None:
                payload = _decode_json(name, answer)
            page = endpoint.parse(answer.status, answer.headers, payload)
            outcome = "ok"
            if not self.book.verified_here(caller.fingerprint):
                await self.book.answered(caller.fingerprint)
            return page
        except UpstreamError as exc:
            outcome = exc.kind.name.lower()
            if exc.kind in REFUSALS:
                await self.book.refused(caller.fingerprint, exc)
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "upstream call failed",
                    extra={"upstream": name, "endpoint": endpoint.name, "error": repr(exc)},
                )
            raise
        finally:
            elapsed = time.perf_counter() - started
            self._calls(name, endpoint.name, outcome).inc()
            self._latency.observe(elapsed)
            # The extra dict costs more than the call when debug is off, as it usually is.
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "upstream call",
                    extra={
                        "upstream": name,
                        "endpoint": endpoint.name,
                        "outcome": outcome,
                        "duration_ms": round(elapsed * 1000, 1),
                    },
                )


def _unavailable(upstream: str, message: str, *, at_connect: bool = False) -> UpstreamError:
    return UpstreamError(ErrorKind.UNAVAILABLE, upstream, message, at_connect=at_connect)


def _decode_json(upstream: str, answer: HttpAnswer) -> Any:
    """The body as JSON, or ``None`` for an empty body; anything else is a bad response
    unless the status already says what went wrong."""
    content = answer.content
    if not content or content.isspace():  # strip() would copy a whole page
        return None
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        if answer.status >= 300:
            # An HTML error page (a proxy's, a login page): the status tells enough. A
            # 401 in HTML is still the caller's bad token, not an unwell upstream.
            return None
        raise UpstreamError(
            ErrorKind.BAD_RESPONSE,
            upstream,
            "upstream answered with a body that is not JSON",
            status=answer.status,
        ) from None


def retry_after_seconds(headers: httpx.Headers | Mapping[str, str]) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date."""
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    if raw.isdigit():
        return float(raw)
    try:
        moment = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


_UPSTREAM_CODE = re.compile(r"[A-Za-z][A-Za-z0-9]{0,15}\.[0-9]{1,6}|-?[0-9]{1,6}")
"""What an upstream's error code looks like (``CBC.0100``, ``APIG.0308``, ``APIGW.0301``,
OMA's returnCode ``1``): only such a code is passed on to callers, never free text."""


def upstream_code(value: object) -> str | None:
    """An upstream's error code when it has the form codes have, else None."""
    if isinstance(value, str) and _UPSTREAM_CODE.fullmatch(value):
        return value
    return None


def log_upstream_text(upstream: str, status: int, code: str | None, text: object) -> None:
    """What the upstream wrote about a failure, for the operators and never for callers:
    it may name hosts, stack frames or another caller's input. Cut to 200 characters."""
    if not isinstance(text, str) or not text:
        return
    level = logging.WARNING if status >= 500 else logging.INFO
    if logger.isEnabledFor(level):
        logger.log(
            level,
            "upstream error text",
            extra={
                "upstream": upstream,
                "status": status,
                "upstream_code": code,
                "upstream_text": text[:200],
            },
        )


def classify_http_failure(
    upstream: str,
    status: int,
    headers: httpx.Headers,
    code: str | None,
    text: object = None,
) -> UpstreamError:
    """The statuses both upstreams share; each module handles its own codes first.
    ``code`` is the upstream's error code (kept when it has a code's form); ``text`` what it
    wrote, which goes to the log only: the error's message is the gateway's own."""
    code = upstream_code(code)
    retry_after = retry_after_seconds(headers)
    name = upstream.upper()
    suffix = f" ({status}{', ' + code if code else ''})"
    if status == 429 or (code or "").endswith(".0308"):
        kind, message = ErrorKind.THROTTLED, f"{name} is throttling the gateway's calls"
    elif status == 401:
        kind, message = ErrorKind.UNAUTHENTICATED, f"{name} did not accept the token"
    elif status == 403:
        kind, message = ErrorKind.FORBIDDEN, f"{name} refused this token access"
    elif status == 400:
        kind, message = ErrorKind.BAD_REQUEST, f"{name} refused the request as invalid"
    elif status >= 500:
        kind, message = ErrorKind.UNAVAILABLE, f"{name} failed to answer"
    elif 300 <= status < 400:
        kind = ErrorKind.BAD_RESPONSE
        message = f"{name} answered with a redirect, which is not followed"
    elif 400 <= status < 500:
        # 404, 405, 413, 431...: the upstream is up and refuses this request.
        kind, message = ErrorKind.REFUSED, f"{name} refused the request"
    else:
        kind, message = ErrorKind.BAD_RESPONSE, f"{name} answered with an unexpected status"
    log_upstream_text(upstream, status, code, text)
    return UpstreamError(
        kind, upstream, message + suffix, status=status, upstream_code=code, retry_after=retry_after
    )

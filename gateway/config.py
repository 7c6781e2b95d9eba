"""Configuration: frozen value objects with documented defaults.

This is the only module that reads the environment. Everything else receives a
``Settings`` (or one of its parts) and never looks at ``os.environ`` itself.
Every variable is ``GATEWAY_*``; per-upstream variables are ``GATEWAY_OMA_*`` and
``GATEWAY_CBC_*``. ``Settings.from_env`` collects every problem before raising,
so ``gateway check-config`` can say everything that is wrong at once.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeVar
from urllib.parse import urlsplit

Profile = Literal["development", "production"]
T = TypeVar("T")

# Whole-number settings end up in C ints (the collector's threshold, for one).
_INT_MAX = 2**31 - 1


class ConfigError(ValueError):
    """Raised with every problem found in the environment, one per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    """How the gateway talks to one upstream API.

    Defaults follow the documented quota of these APIs (about 10 requests per
    second each) and keep a slow upstream from holding a GraphQL answer for long.
    """

    name: str
    base_url: str
    connect_timeout: float = 2.0
    """Seconds to open a connection."""
    read_timeout: float = 5.0
    """Seconds to wait for one response."""
    deadline: float = 11.0
    """Seconds one logical call may take, retries and waits included: the rate limit's
    ``rate_limit_max_wait`` and a second for the answer."""
    max_retries: int = 2
    """Retries after the first attempt, only for unavailable, timeout and throttled errors."""
    retry_backoff: float = 0.1
    """Base of the jittered exponential backoff between retries, in seconds."""
    max_concurrency: int = 128
    """Requests in flight to this upstream from one process (and the connections its pool
    keeps). With the rate limit off it must not be what limits one request's fan-out: a
    linked query over 100 subscriptions sends 99 calls to CBC at once, so 128 holds a whole
    level. With the limit on it must never bind either: a call takes its quota slot before
    its place here, so calls held here would go out together once places free, more than
    the quota in one window; 128 is above the quota times the read timeout (10/s x 5 s).
    Not more, to stay within the default 1,024 open files: both upstreams' 256 connections
    beside the server's 500 (``max_connections``), Redis and the logs."""
    rate_limit: float = 10.0
    """Calls to this upstream in any ``rate_window`` seconds, across replicas sharing Redis
    (the documented quota, "10/1(s)"); 0 switches the limit off. A whole number of calls fits
    a window (2.5 is 2); under 1, one call every ``rate_window / rate_limit`` seconds."""
    rate_window: float = 1.0
    """Seconds of the quota's window. Every window of this length, wherever it starts, holds
    at most ``rate_limit`` calls, with a margin of 50 ms for the jitter between the
    gateway's clock and the upstream's arrivals (``gateway.upstreams.rate_limit``)."""
    rate_burst: int = 5
    """Calls let go at once after an idle spell (at most ``rate_limit``); the others of the
    window follow at the steady pace, ``rate_window / rate_limit`` apart. Half the window's
    calls: a request's first calls go without waiting, and the rest of the window's are
    spread over it instead of all landing in the instant the upstream starts counting."""
    rate_limit_max_wait: float = 10.0
    """Seconds a call may queue for the rate limit before it fails as throttled. A second
    under the deadline: at 10 calls a second, the 99 calls a linked query over 100
    subscriptions sends to CBC at once are all served, the last after about 9.9 s (no
    second may hold more than 10, so the 91st to 99th go in the tenth). At 5 s, 40 of them
    failed as throttled and the answer came back with holes."""
    breaker_threshold: int = 5
    """Consecutive failures that open the circuit breaker."""
    breaker_min_callers: int = 3
    """Distinct verified callers whose failures must be among those consecutive failures
    (a failure to connect, which no caller's input can cause, counts as one of its own).
    One tenant who finds an input the upstream answers with a 500 cannot open the breaker
    for every other tenant; a few tenants failing together, or the upstream refusing
    connections, still can."""
    breaker_cooldown: float = 15.0
    """Seconds the breaker stays open before one probe is let through."""
    cache_ttl: float = 30.0
    """Seconds a fetched page is served from the cache; 0 switches caching off."""
    unverified_share: float = 0.2
    """The part of ``rate_limit`` that calls with unverified credentials (ones this upstream
    has not yet answered) may take between them, taking turns by client address, while
    verified tenants' calls wait; beyond it they have only the slots no tenant wants.
    Invented tokens cannot take the quota from the tenants, and new tenants still get in.
    From 0 (only the slots no tenant wants) to 1."""


@dataclass(frozen=True, slots=True)
class CacheSettings:
    """Where and how upstream pages are cached."""

    url: str = "memory://"
    """``memory://`` (one process) or ``redis://host:port/db`` (shared by replicas)."""
    operation_timeout: float = 0.1
    """Seconds any single cache operation may take before it is abandoned."""
    max_entries: int = 10_000
    """Bound of the in-memory cache; least recently used entries are evicted."""
    max_records: int = 100_000
    """Bound of the records the in-memory cache holds, on all its pages: about 100 to 150 MB
    (a record and its share of its page take 1 to 1.5 KB). Entries alone do not bound memory:
    10,000 pages of 500 resources would be 4.7 GB."""
    stale_while_revalidate: float = 0.0
    """Seconds after expiry a page still answers at once while it is fetched again behind the
    answer (at the quota's background priority); 0 is off."""
    stale_if_error: float = 0.0
    """Seconds after the stale-while-revalidate window a page may still be served while its
    upstream fails; 0 is off."""
    lock_timeout: float = 5.0
    """Seconds one replica waits for another to fill the same entry."""

    @property
    def is_redis(self) -> bool:
        return self.url.startswith(("redis://", "rediss://"))


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """Safety limits on incoming GraphQL operations. All are on by default."""

    max_depth: int = 10
    max_aliases: int = 30
    max_tokens: int = 2_000
    max_directives_per_field: int = 5
    max_root_fields: int = 10
    max_body_bytes: int = 64 * 1024
    max_first: int = 1_000
    max_cost: int = 200
    """Estimated upstream calls one request may cause (a batch's operations together)."""
    allow_batching: bool = False
    max_batch_size: int = 5


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    """What the gateway believes of its callers, and how it keeps what it learns of them."""

    credential_secret: str | None = field(default=None, repr=False)
    """Key of the fingerprints that stand for credentials in cache keys, logs and the quota's
    turns (HMAC-SHA-256), so a fingerprint in a log cannot confirm a guessed token. Unset,
    replicas sharing Redis key them by its URL (password included), which they must agree
    on to share entries; a process without Redis draws a key of its own at start."""
    max_token_bytes: int = 12_288
    """Longest credential accepted. Huawei IAM tokens are base64 text of a signed PKI
    document: 5.1 KB in the CBC page's example (``MIIPAgYJ...``, 3,846 bytes of DER), 9.1 KB
    in IAM's documented example (``MIIatAYJ...``, 6,840 bytes), longer with more roles. The
    API gateway in front of both upstreams refuses request headers over 16 KB in all."""
    verified_ttl: float = 3600.0
    """Seconds an upstream's answer to a credential vouches for it (IAM tokens last 24 h)."""
    rejected_ttl: float = 30.0
    """Seconds a credential an upstream refused (401, 403) is refused again without a call."""
    trusted_proxies: tuple[str, ...] = ()
    """Addresses or networks (CIDR) of the proxies in front of the gateway whose
    ``X-Forwarded-For`` names the client; from anyone else it is ignored."""


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    shutdown_grace: float = 20.0
    """Seconds in-flight requests get to finish after SIGTERM."""
    drain_delay: float = 0.0
    """Seconds between SIGTERM (readiness turns false) and closing the listener. Kubernetes
    does this wait in a preStop hook; set it where nothing else holds traffic back."""
    cors_origins: tuple[str, ...] = ()
    log_level: str = "INFO"
    otel_enabled: bool = False
    gc_threshold: int = 50_000
    """Allocations between collections of the garbage collector's youngest generation
    (CPython's default is 700). A request makes thousands of short-lived objects that
    reference counting already frees; collecting every 700 allocations costs a third of
    a warm request's CPU (``python -m bench.run``). 0 turns the collector off."""
    max_replicas: int = 1
    """Replicas that may run at once (an autoscaler's maximum). With Redis, each replica
    learns from it how many are alive and, while Redis is down, takes its share of each
    upstream's rate limit; one that has not heard from Redis yet (down since it started)
    takes 1/``max_replicas``, so that together they never go past the quota."""
    max_header_bytes: int = 32 * 1024
    """Bytes of a request's head (request line and header fields) at most; 431 above. Huawei
    IAM tokens (``X-Auth-Token``) run to about 12 KB, and browsers add a few KB of their own
    headers: 32 KB leaves room for both, and bounds what a client can make the server hold."""
    header_timeout: float = 10.0
    """Seconds a request's head may take to arrive, from the connection opening (or from its
    first byte, on a kept-alive connection); 408 after it. A connection that sends nothing
    at all is closed then."""
    body_timeout: float = 10.0
    """Seconds a request's body may take to arrive after its head; 408 after it. A body is
    at most ``max_body_bytes`` (64 KB by default): 10 s is 6.5 KB/s."""
    keep_alive_timeout: float = 75.0
    """Seconds an idle connection is kept open for the client's next request. Above the 60 s
    that ingresses and load balancers keep their pooled connections to a backend (nginx,
    Huawei ELB): a backend that closes first races the proxy's next request, which answers
    a POST with 502. Idle connections never crowd out new ones (``max_connections``)."""
    max_connections: int = 500
    """Connections open at once, per process. One more closes the connection idle longest;
    when none is idle, its request is answered 503 with ``Retry-After``. Under the 1,024
    open files a container may get by default, with room for the upstream connections."""


@dataclass(frozen=True, slots=True)
class PersistedSettings:
    """Persisted operations: documents named by hash instead of sent whole."""

    documents_path: str | None = None
    """A manifest of trusted documents (``GATEWAY_PERSISTED_DOCUMENTS``): graphql-codegen's
    ``persisted-documents.json`` (id to document) or Apollo's
    ``persisted-query-manifest.json``. Requests may name one by ``documentId`` or by the
    APQ extension's hash."""
    documents_only: bool = False
    """Run the manifest's documents and nothing else (``GATEWAY_PERSISTED_DOCUMENTS_ONLY``)."""
    apq_enabled: bool = True
    """Automatic persisted queries: a client sends a document's SHA-256 and, when the gateway
    does not know it, the document with its hash, which the gateway checks and keeps."""
    apq_max_entries: int = 4_096
    """Documents kept for APQ, in memory (least recently used evicted) or in Redis (in this
    many slots): with ``apq_max_document_bytes``, the most they can ever hold."""
    apq_max_document_bytes: int = 8_192
    """Longest document kept for APQ (larger ones run, but are sent whole each time): 4,096
    of them take 32 MB at most, an eighth of the production Redis."""


@dataclass(frozen=True, slots=True)
class Settings:
    profile: Profile = "production"
    oma: UpstreamSettings = field(
        default_factory=lambda: UpstreamSettings(name="oma", base_url="http://127.0.0.1:8081")
    )
    cbc: UpstreamSettings = field(
        default_factory=lambda: UpstreamSettings(name="cbc", base_url="http://127.0.0.1:8081")
    )
    cache: CacheSettings = field(default_factory=CacheSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    persisted: PersistedSettings = field(default_factory=PersistedSettings)

    @property
    def is_production(self) -> bool:
        return self.profile == "production"

    @property
    def introspection_enabled(self) -> bool:
        return not self.is_production

    @property
    def graphiql_enabled(self) -> bool:
        return not self.is_production

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``GATEWAY_*`` variables, raising ``ConfigError`` on any problem."""
        env = _EnvReader(os.environ if environ is None else environ)
        settings = env.settings()
        env.raise_problems()
        return settings


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """A warning for each ``GATEWAY_*`` variable set that the gateway does not read (a
    misspelt name is silently the default), with the nearest name it does read."""
    environ = os.environ if environ is None else environ
    known = _known_variables()
    # Compared without the prefix every name shares, which would make any two look alike.
    suffixes = [name.removeprefix("GATEWAY_") for name in known]
    warnings = []
    for name in sorted(n for n in environ if n.startswith("GATEWAY_") and n not in known):
        nearest = difflib.get_close_matches(name.removeprefix("GATEWAY_"), suffixes, n=1)
        hint = f" (did you mean GATEWAY_{nearest[0]}?)" if nearest else ""
        warnings.append(f"{name} is not a setting the gateway reads{hint}")
    return warnings


def _known_variables() -> list[str]:
    """Every variable ``Settings.from_env`` reads: the names asked of an empty environment."""
    reader = _EnvReader({})
    reader.settings()
    return sorted(reader.read)


def upstream_variables(name: str) -> dict[str, str]:
    """The per-upstream variable names and their meaning, for docs and ``check-config``."""
    prefix = f"GATEWAY_{name.upper()}_"
    return {prefix + suffix: doc for suffix, (_, doc) in _UPSTREAM_FIELDS.items()}


# suffix -> (UpstreamSettings field, short description)
_UPSTREAM_FIELDS: dict[str, tuple[str, str]] = {
    "BASE_URL": ("base_url", "base URL of the upstream API"),
    "CONNECT_TIMEOUT": ("connect_timeout", "seconds to connect"),
    "READ_TIMEOUT": ("read_timeout", "seconds to wait for a response"),
    "DEADLINE": ("deadline", "seconds for one call, retries included"),
    "MAX_RETRIES": ("max_retries", "retries of unavailable/timeout/throttled calls"),
    "RETRY_BACKOFF": ("retry_backoff", "base backoff between retries, seconds"),
    "MAX_CONCURRENCY": ("max_concurrency", "requests in flight per process"),
    "RATE_LIMIT": ("rate_limit", "calls in any window of RATE_WINDOW seconds, 0 = off"),
    "RATE_WINDOW": ("rate_window", "seconds of the rate limit's window"),
    "RATE_BURST": ("rate_burst", "calls the rate limit lets go at once"),
    "RATE_LIMIT_MAX_WAIT": ("rate_limit_max_wait", "seconds a call may queue for the rate limit"),
    "BREAKER_THRESHOLD": ("breaker_threshold", "consecutive failures that open the breaker"),
    "BREAKER_MIN_CALLERS": (
        "breaker_min_callers",
        "distinct verified callers among the failures that open the breaker",
    ),
    "BREAKER_COOLDOWN": ("breaker_cooldown", "seconds before the open breaker probes again"),
    "CACHE_TTL": ("cache_ttl", "seconds pages are cached, 0 = off"),
    "UNVERIFIED_SHARE": ("unverified_share", "part of the rate limit unverified callers share"),
}


# 128 bits as hex (``openssl rand -hex 16``): shorter keys can be guessed.
_MIN_SECRET_LENGTH = 32
_AT_LEAST_ONE = ("max_concurrency", "rate_burst", "breaker_threshold", "breaker_min_callers")


class _EnvReader:
    """Reads and validates variables, collecting problems instead of stopping at the first."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self.problems: list[str] = []
        self.read: set[str] = set()
        """Every name asked for, set or not."""

    def raise_problems(self) -> None:
        if self.problems:
            raise ConfigError(self.problems)

    def settings(self) -> Settings:
        profile = self.choice("GATEWAY_PROFILE", ("development", "production"), "production")
        return Settings(
            profile=profile,  # type: ignore[arg-type]
            oma=self.upstream("oma"),
            cbc=self.upstream("cbc"),
            cache=self.cache(),
            limits=self.limits(),
            server=self.server(),
            security=self.security(),
            persisted=self.persisted(),
        )

    def _get(self, name: str) -> str | None:
        self.read.add(name)
        value = self._environ.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def _parse(self, name: str, default: T, convert: Callable[[str], T], kind: str) -> T:
        raw = self._get(name)
        if raw is None:
            return default
        try:
            return convert(raw)
        except ValueError:
            self.problems.append(f"{name}={raw!r} is not {kind}")
            return default

    def number(
        self,
        name: str,
        default: float,
        *,
        minimum: float = 0.0,
        above: bool = False,
        maximum: float = math.inf,
    ) -> float:
        """A finite number of at least ``minimum`` (above it, when ``above``), at most
        ``maximum``."""
        value = self._parse(name, default, float, "a number")
        if not math.isfinite(value):  # NaN and infinity are not settings
            self.problems.append(f"{name} must be a finite number, got {value:g}")
            return default
        if value < minimum or (above and value == minimum):
            bound = "above" if above else "at least"
            self.problems.append(f"{name} must be {bound} {minimum:g}, got {value:g}")
            return default
        if value > maximum:
            self.problems.append(f"{name} must be at most {maximum:g}, got {value:g}")
            return default
        return value

    def integer(self, name: str, default: int, *, minimum: int = 0, maximum: int = _INT_MAX) -> int:
        value = self._parse(name, default, int, "a whole number")
        if not minimum <= value <= maximum:
            self.problems.append(f"{name} must be from {minimum} to {maximum}, got {value}")
            return default
        return value

    def flag(self, name: str, default: bool) -> bool:
        raw = self._get(name)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        self.problems.append(f"{name}={raw!r} is not a boolean (true/false)")
        return default

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        raw = self._get(name)
        if raw is None:
            return default
        if raw.lower() not in choices:
            self.problems.append(f"{name}={raw!r} must be one of {', '.join(choices)}")
            return default
        return raw.lower()

    def url(self, name: str, default: str, schemes: tuple[str, ...]) -> str:
        raw = self._get(name)
        if raw is None:
            return default
        parts = urlsplit(raw)
        if parts.scheme not in schemes:
            self.problems.append(f"{name}={raw!r} must be a URL with scheme {' or '.join(schemes)}")
            return default
        if not parts.hostname and parts.scheme != "memory":
            self.problems.append(f"{name}={raw!r} has no host")
            return default
        try:
            parts.port  # noqa: B018 - reading it checks it: a number from 0 to 65535
        except ValueError:
            self.problems.append(f"{name}={raw!r} has a port that is not a number up to 65535")
            return default
        if any(character.isspace() for character in raw):
            self.problems.append(f"{name}={raw!r} must not contain spaces")
            return default
        database = parts.path.strip("/")
        if parts.scheme.startswith("redis") and database and not database.isdigit():
            self.problems.append(f"{name}={raw!r} must name its Redis database by number")
            return default
        # A trailing slash after the path ("/0/"), not the scheme's own ("memory://").
        return raw if raw.endswith("://") else raw.rstrip("/")

    def upstream(self, name: str) -> UpstreamSettings:
        defaults = UpstreamSettings(name=name, base_url="http://127.0.0.1:8081")
        prefix = f"GATEWAY_{name.upper()}_"
        values: dict[str, object] = {"name": name}
        for suffix, (attr, _) in _UPSTREAM_FIELDS.items():
            variable = prefix + suffix
            default = getattr(defaults, attr)
            if attr == "base_url":
                values[attr] = self.url(variable, default, ("http", "https"))
            elif isinstance(default, int) and not isinstance(default, bool):
                minimum = 1 if attr in _AT_LEAST_ONE else 0
                values[attr] = self.integer(variable, default, minimum=minimum)
            elif attr == "unverified_share":
                values[attr] = self.number(variable, default, maximum=1.0)
            else:
                above = attr in ("connect_timeout", "read_timeout", "deadline", "rate_window")
                values[attr] = self.number(variable, default, above=above)
        return UpstreamSettings(**values)  # type: ignore[arg-type]

    def cache(self) -> CacheSettings:
        d = CacheSettings()
        return CacheSettings(
            url=self.url("GATEWAY_CACHE_URL", d.url, ("memory", "redis", "rediss")),
            # Above 0: Redis's client reads 0 as no timeout, the rate limit as none left.
            operation_timeout=self.number("GATEWAY_CACHE_TIMEOUT", d.operation_timeout, above=True),
            max_entries=self.integer("GATEWAY_CACHE_MAX_ENTRIES", d.max_entries, minimum=1),
            max_records=self.integer("GATEWAY_CACHE_MAX_RECORDS", d.max_records, minimum=1),
            stale_while_revalidate=self.number(
                "GATEWAY_CACHE_STALE_WHILE_REVALIDATE", d.stale_while_revalidate
            ),
            stale_if_error=self.number("GATEWAY_CACHE_STALE_IF_ERROR", d.stale_if_error),
            lock_timeout=self.number("GATEWAY_CACHE_LOCK_TIMEOUT", d.lock_timeout),
        )

    def security(self) -> SecuritySettings:
        d = SecuritySettings()
        secret = self._get("GATEWAY_CREDENTIAL_SECRET")
        if secret is not None and len(secret) < _MIN_SECRET_LENGTH:
            self.problems.append(
                f"GATEWAY_CREDENTIAL_SECRET must be at least {_MIN_SECRET_LENGTH} characters"
            )
            secret = None
        return SecuritySettings(
            credential_secret=secret,
            max_token_bytes=self.integer(
                "GATEWAY_MAX_TOKEN_BYTES", d.max_token_bytes, minimum=64, maximum=16_384
            ),
            verified_ttl=self.number("GATEWAY_CREDENTIAL_VERIFIED_TTL", d.verified_ttl, above=True),
            rejected_ttl=self.number("GATEWAY_CREDENTIAL_REJECTED_TTL", d.rejected_ttl),
            trusted_proxies=self.networks("GATEWAY_TRUSTED_PROXIES"),
        )

    def persisted(self) -> PersistedSettings:
        d = PersistedSettings()
        only = self.flag("GATEWAY_PERSISTED_DOCUMENTS_ONLY", d.documents_only)
        path = self._get("GATEWAY_PERSISTED_DOCUMENTS")
        if only and path is None:
            self.problems.append(
                "GATEWAY_PERSISTED_DOCUMENTS_ONLY=true needs GATEWAY_PERSISTED_DOCUMENTS "
                "(the manifest of the documents to run)"
            )
        return PersistedSettings(
            documents_path=path,
            documents_only=only,
            apq_enabled=self.flag("GATEWAY_APQ_ENABLED", d.apq_enabled),
            apq_max_entries=self.integer("GATEWAY_APQ_MAX_ENTRIES", d.apq_max_entries, minimum=1),
            apq_max_document_bytes=self.integer(
                "GATEWAY_APQ_MAX_DOCUMENT_BYTES", d.apq_max_document_bytes, minimum=1
            ),
        )

    def networks(self, name: str) -> tuple[str, ...]:
        """Comma-separated addresses or CIDR networks, each checked."""
        raw = self._get(name)
        if raw is None:
            return ()
        networks: list[str] = []
        for item in (part.strip() for part in raw.split(",")):
            if not item:
                continue
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                self.problems.append(f"{name}: {item!r} is not an IP address or network")
                continue
            networks.append(item)
        return tuple(networks)

    def limits(self) -> LimitSettings:
        d = LimitSettings()
        return LimitSettings(
            max_depth=self.integer("GATEWAY_MAX_DEPTH", d.max_depth, minimum=1),
            max_aliases=self.integer("GATEWAY_MAX_ALIASES", d.max_aliases, minimum=1),
            max_tokens=self.integer("GATEWAY_MAX_TOKENS", d.max_tokens, minimum=1),
            max_directives_per_field=self.integer(
                "GATEWAY_MAX_DIRECTIVES_PER_FIELD", d.max_directives_per_field, minimum=0
            ),
            max_root_fields=self.integer("GATEWAY_MAX_ROOT_FIELDS", d.max_root_fields, minimum=1),
            max_body_bytes=self.integer("GATEWAY_MAX_BODY_BYTES", d.max_body_bytes, minimum=1024),
            max_first=self.integer("GATEWAY_MAX_FIRST", d.max_first, minimum=1),
            max_cost=self.integer("GATEWAY_MAX_COST", d.max_cost, minimum=1),
            allow_batching=self.flag("GATEWAY_ALLOW_BATCHING", d.allow_batching),
            max_batch_size=self.integer("GATEWAY_MAX_BATCH_SIZE", d.max_batch_size, minimum=1),
        )

    def server(self) -> ServerSettings:
        d = ServerSettings()
        origins = self._get("GATEWAY_CORS_ORIGINS")
        return ServerSettings(
            host=self._get("GATEWAY_HOST") or d.host,
            port=self.integer("GATEWAY_PORT", d.port, minimum=0, maximum=65535),
            workers=self.integer("GATEWAY_WORKERS", d.workers, minimum=1),
            shutdown_grace=self.number("GATEWAY_SHUTDOWN_GRACE", d.shutdown_grace),
            drain_delay=self.number("GATEWAY_DRAIN_DELAY", d.drain_delay),
            cors_origins=tuple(o.strip() for o in origins.split(",") if o.strip())
            if origins
            else (),
            log_level=self.choice(
                "GATEWAY_LOG_LEVEL", ("debug", "info", "warning", "error"), d.log_level.lower()
            ).upper(),
            otel_enabled=self.flag("GATEWAY_OTEL_ENABLED", d.otel_enabled),
            gc_threshold=self.integer("GATEWAY_GC_THRESHOLD", d.gc_threshold, minimum=0),
            max_replicas=self.integer("GATEWAY_MAX_REPLICAS", d.max_replicas, minimum=1),
            max_header_bytes=self.integer(
                "GATEWAY_MAX_HEADER_BYTES", d.max_header_bytes, minimum=1024
            ),
            header_timeout=self.number("GATEWAY_HEADER_TIMEOUT", d.header_timeout, above=True),
            body_timeout=self.number("GATEWAY_BODY_TIMEOUT", d.body_timeout, above=True),
            keep_alive_timeout=self.number(
                "GATEWAY_KEEP_ALIVE_TIMEOUT", d.keep_alive_timeout, above=True
            ),
            max_connections=self.integer("GATEWAY_MAX_CONNECTIONS", d.max_connections, minimum=1),
        )

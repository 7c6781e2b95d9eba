"""Prometheus metrics of the whole gateway, defined once.

Labels never carry a token, a URL or a caller-chosen string other than the
GraphQL operation name, which is cut to a bounded length and character set, and of
which at most ``MAX_OPERATION_LABELS`` distinct values are kept.
"""

from __future__ import annotations

import re
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)
M = TypeVar("M", Counter, Gauge, Histogram)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

GRAPHQL_REQUESTS = Counter(
    "gateway_graphql_requests",
    "GraphQL requests answered, by operation name and outcome (ok, error).",
    ["operation", "outcome"],
    registry=REGISTRY,
)
GRAPHQL_LATENCY = Histogram(
    "gateway_graphql_request_seconds",
    "Time to answer one GraphQL request, by operation name.",
    ["operation"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
GRAPHQL_ERRORS = Counter(
    "gateway_graphql_errors",
    "GraphQL errors returned, by extensions.code.",
    ["code"],
    registry=REGISTRY,
)
UPSTREAM_CALLS = Counter(
    "gateway_upstream_calls",
    "HTTP calls made to an upstream, by upstream, endpoint and outcome.",
    ["upstream", "endpoint", "outcome"],
    registry=REGISTRY,
)
UPSTREAM_LATENCY = Histogram(
    "gateway_upstream_call_seconds",
    "Latency of one upstream HTTP call, by upstream and endpoint.",
    ["upstream", "endpoint"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
UPSTREAM_RETRIES = Counter(
    "gateway_upstream_retries",
    "Retries of failed upstream calls, by upstream.",
    ["upstream"],
    registry=REGISTRY,
)
BREAKER_STATE = Gauge(
    "gateway_circuit_breaker_open",
    "1 while the upstream's circuit breaker is open or half-open, else 0.",
    ["upstream"],
    registry=REGISTRY,
)
RATE_LIMIT_WAIT = Histogram(
    "gateway_rate_limit_wait_seconds",
    "Time calls queued for the per-upstream rate limit.",
    ["upstream"],
    buckets=(0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
RATE_LIMIT_QUEUED = Gauge(
    "gateway_rate_limit_queued_calls",
    "Calls waiting for a slot of the per-upstream rate limit, by upstream and lane "
    "(verified callers, unverified ones).",
    ["upstream", "lane"],
    registry=REGISTRY,
)
CACHE_EVENTS = Counter(
    "gateway_cache_events",
    "Cache events by upstream and event: answers (hit, miss, stale: served while the "
    "upstream failed, stale_while_revalidate: served at once while refreshed), refreshes "
    "behind stale answers (refresh_ok, refresh_failed: the stale page kept, "
    "refresh_refused: the page dropped, refresh_skipped: too many running), error (the "
    "backend failed), eviction.",
    ["upstream", "event"],
    registry=REGISTRY,
)
CACHE_BACKEND_UP = Gauge(
    "gateway_cache_backend_up",
    "1 while the shared cache backend answers, 0 while the gateway works without it.",
    registry=REGISTRY,
)
IN_FLIGHT = Gauge(
    "gateway_http_in_flight_requests",
    "HTTP requests being served.",
    registry=REGISTRY,
)

_OPERATION_NAME = re.compile(r"[^A-Za-z0-9_]")

MAX_OPERATION_LABELS = 100
"""Distinct operation names given series of their own, per process; the names seen after
them share ``OTHER_OPERATION``. Each costs about 2 KB of /metrics and of memory until
restart: unbounded, a loop of ``query op_<random>`` grows both forever. The first names
seen keep their series rather than being evicted for newer ones, because a counter that
vanishes and comes back at zero reads as a reset to rate() and breaks the alerts built on
it. A rising ``other`` rate says the bound was reached. Only a name that may be trusted
takes a place (``operation_label``): any caller, even one without a token, chooses it."""
OTHER_OPERATION = "other"
INVALID_OPERATION = "invalid"
"""The label of every document that did not parse or validate, whatever it calls itself."""
UNVERIFIED_OPERATION = "unverified"
"""The label of operations from callers no upstream has answered: their names are theirs
to invent, and must not take the places of the tenants' operations."""

_operation_labels: set[str] = set()


def operation_label(name: str | None, *, validated: bool = True, trusted: bool = True) -> str:
    """A bounded label for a client-chosen operation name: its own only for an operation
    that ``validated``, from a caller who is ``trusted`` (an upstream has answered its
    credential), while fewer than ``MAX_OPERATION_LABELS`` names have one."""
    if not validated:
        return INVALID_OPERATION
    if not name:
        return "anonymous"
    label = _OPERATION_NAME.sub("_", name)[:64]
    if label in _operation_labels:
        return label
    if not trusted:
        return UNVERIFIED_OPERATION
    if len(_operation_labels) >= MAX_OPERATION_LABELS:
        return OTHER_OPERATION
    _operation_labels.add(label)
    return label


class LabelledChildren(Generic[M]):
    """A metric's labelled children, each looked up once: ``labels()`` costs a lock and
    a tuple per call, which on a path taken hundreds of times a request adds up."""

    def __init__(self, metric: M) -> None:
        self._metric: M = metric
        self._children: dict[tuple[str, ...], M] = {}

    def __call__(self, *labels: str) -> M:
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self._metric.labels(*labels)
        return child

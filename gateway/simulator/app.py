"""The simulator's HTTP face: both APIs at their real paths, knobs and counters under ``/_sim/``.

Validation, error bodies and quirks follow the seed pages; where they are silent
the choice is said where it is made. Knobs change at run time, from Python
(``simulator.knobs.cbc.error_rate = 1.0``) or over HTTP (``POST /_sim/knobs``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import re
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypedDict, get_args
from urllib.parse import unquote_plus

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.simulator.data import (
    VISIBLE_STATUSES,
    ResourceQuery,
    SimulatorConfig,
    SubscriptionQuery,
    Tenant,
    Tenants,
)
from gateway.times import parse_cbc_time

OMA_PATH: Final = "/rest/oma/softwareconsole/tenant/queryresource"
CBC_PATH: Final = "/v2/orders/suscriptions/resources/query"  # sic: the real path
OMA_ENDPOINT: Final = "oma.queryresource"
CBC_ENDPOINT: Final = "cbc.resources_query"

OMA_UNAUTHORIZED: Final = (
    "Unauthorized operation. 1. Check whether you have purchased services related to the AICC. "
    "2. Sign in to the AICC as the system administrator and check whether the value of Business "
    "Software Mall Official Website under System parameters > Unified Public Configuration > "
    "Cloud Customers is correct. 3. Check whether the request header parameter is correctly set."
)
OMA_MAX_LIMIT: Final = 99  # "The value must be less than 100."
CBC_MAX_LIMIT: Final = 500
CBC_MAX_RESOURCE_IDS: Final = 50
CBC_MAX_ORDER_ID: Final = 64
CBC_MAX_STATUSES: Final = 10
REDIRECT_TARGET: Final = "http://127.0.0.2:9/elsewhere"
HANG_SECONDS: Final = 3600.0
JSON_TYPE: Final = "application/json;charset=UTF-8"

Upstream = Literal["oma", "cbc"]
Fault = Literal["non_json", "wrong_shape", "redirect", "hang"]
FAULTS: Final[tuple[str, ...]] = get_args(Fault)

_OMA_NUMBER = re.compile(r"^-?\d{1,18}$")
_CBC_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_RATE_KNOBS: Final = ("error_rate", "throttle_rate")
_COUNT_KNOBS: Final = ("throttle_next", "retry_after")
_MAX_ERROR_TEXT: Final = 4096
MAX_HEADER_BYTES: Final = 16 * 1024
"""The API gateway in front of both APIs refuses requests whose headers pass 16 KB."""


@dataclass(slots=True)
class UpstreamKnobs:
    """How one simulated upstream misbehaves. Every assignment is checked."""

    latency: float = 0.0
    """Seconds added to every answer."""
    error_rate: float = 0.0
    """Fraction of calls answered with the upstream's 5xx (OMA 502, CBC 500 CBC.0999)."""
    throttle_rate: float = 0.0
    """Fraction of calls answered 429 APIG.0308 with ``Retry-After``."""
    throttle_next: int = 0
    """The next N calls are answered 429, counting down."""
    retry_after: int = 1
    """Seconds in the ``Retry-After`` header of a 429."""
    fault: Fault | None = None
    """Every call, until cleared: non_json, wrong_shape, redirect or hang."""
    failing_tokens: str | None = None
    """Calls whose token starts with this are answered with the upstream's 5xx: an input
    that makes the upstream fail, which only the caller who found it sends."""
    error_text: str | None = None
    """What a 5xx answer says instead of the documented text (OMA's ``schema``, CBC's
    ``error_msg``): a real upstream's failure may name hosts and stack frames."""

    def __setattr__(self, name: str, value: object) -> None:
        object.__setattr__(self, name, checked_knob(name, value))


def checked_knob(name: str, value: object) -> object:
    """The value a knob takes, or ``ValueError`` naming what is wrong."""
    if name == "fault":
        if value is None or value in FAULTS:
            return value
        raise ValueError(f"fault must be null or one of {', '.join(FAULTS)}")
    if name in ("error_text", "failing_tokens"):
        if value is None or (isinstance(value, str) and 0 < len(value) <= _MAX_ERROR_TEXT):
            return value
        raise ValueError(f"{name} must be null or a string of 1 to {_MAX_ERROR_TEXT} characters")
    if name in _COUNT_KNOBS:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        raise ValueError(f"{name} must be a whole number >= 0")
    if name == "latency" or name in _RATE_KNOBS:
        if (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and value >= 0
            and (name == "latency" or value <= 1)
        ):
            return float(value)
        bounds = "seconds >= 0" if name == "latency" else "a fraction from 0 to 1"
        raise ValueError(f"{name} must be {bounds}")
    raise ValueError(f"unknown knob {name!r}")


@dataclass(slots=True)
class Knobs:
    oma: UpstreamKnobs = field(default_factory=UpstreamKnobs)
    cbc: UpstreamKnobs = field(default_factory=UpstreamKnobs)

    def patch(self, changes: object) -> None:
        """Apply ``{"oma": {"latency": 0.02}, ...}``: all of it, or nothing on any bad entry."""
        if not isinstance(changes, Mapping):
            raise ValueError("knobs must be an object like {'oma': {'latency': 0.02}}")
        staged: list[tuple[UpstreamKnobs, Mapping[str, object]]] = []
        for upstream, values in changes.items():
            if upstream not in ("oma", "cbc") or not isinstance(values, Mapping):
                raise ValueError(f"unknown upstream {upstream!r}: use oma or cbc")
            for name, value in values.items():
                checked_knob(name, value)
            staged.append((self.oma if upstream == "oma" else self.cbc, values))
        for target, values in staged:
            for name, value in values.items():
                setattr(target, name, value)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class CallRecord(TypedDict):
    endpoint: str
    token: str | None
    body: Any
    """The parsed JSON body; None when it was not JSON."""
    at: float
    """Wall-clock arrival time (``time.time()``)."""


class _Malformed:
    """Stands for a request body that is not JSON."""


MALFORMED: Final = _Malformed()


class Simulator:
    """Both upstreams in one ASGI app (``simulator.app``): importable in tests, runnable alone."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self.tenants = Tenants(self.config)
        self.knobs = Knobs()
        self.calls: deque[CallRecord] = deque(maxlen=self.config.max_calls)
        """The last ``max_calls`` calls to either API, oldest first."""
        self._counts: Counter[str] = Counter()
        # Seeded, one stream per upstream: one upstream's traffic never shifts the other's draws.
        self._chance = {
            "oma": random.Random(f"{self.config.seed}:oma").random,
            "cbc": random.Random(f"{self.config.seed}:cbc").random,
        }
        self.app = Starlette(
            routes=[
                Route(OMA_PATH, self._oma, methods=["POST"]),
                Route(CBC_PATH, self._cbc, methods=["POST"]),
                Route("/_sim/stats", self._stats, methods=["GET"]),
                Route("/_sim/calls", self._calls, methods=["GET"]),
                Route("/_sim/reset", self._reset, methods=["POST"]),
                Route("/_sim/knobs", self._knobs, methods=["GET", "POST"]),
                Route("/_sim/healthz", self._healthz, methods=["GET"]),
            ]
        )

    def counts(self) -> dict[str, int]:
        """Calls per endpoint since the last reset; endpoints not called are left out."""
        return {endpoint: n for endpoint, n in self._counts.items() if n}

    def reset(self) -> None:
        """Forget counters and the call log (knobs stay as they are)."""
        self._counts.clear()
        self.calls.clear()

    def dataset(self, token: str) -> Tenant:
        """The token's data as the APIs serve it (closed resources included), for expectations."""
        return self.tenants.get(token)

    # -- the two APIs ---------------------------------------------------------------

    async def _oma(self, request: Request) -> Response:
        # The page's table says X-Auth-Token, its own example sends X-Auth_Token.
        token = _token(request, "x-auth-token") or _token(request, "x-auth_token")
        body = await self._record(OMA_ENDPOINT, request, token)
        if _header_bytes(request) > MAX_HEADER_BYTES:
            return _too_large_headers()
        failure = await self._misbehave("oma", token)
        if failure is not None:
            return failure
        if token is None or token.startswith(("invalid", "forbidden")):
            return _json({"schema": OMA_UNAUTHORIZED}, 401)
        query = oma_query(body)
        if isinstance(query, str):
            # The page documents no 400: a refused request is a 200 whose returnCode is
            # not "0", the failure form the page does document.
            return _json({"result": [], "count": 0, "returnCode": "1", "description": query})
        records = self.tenants.get(token).find_subscriptions(query)
        return _json(
            {
                "result": records[query.offset : query.offset + query.limit],
                "count": len(records),  # a number, as in the page's example
                "returnCode": "0",
                "description": "success",
            }
        )

    async def _cbc(self, request: Request) -> Response:
        token = _token(request, "x-auth-token")
        body = await self._record(CBC_ENDPOINT, request, token)
        if _header_bytes(request) > MAX_HEADER_BYTES:
            return _too_large_headers()
        failure = await self._misbehave("cbc", token)
        if failure is not None:
            return failure
        if token is None or token.startswith("invalid"):
            return _cbc_error(401, "APIGW.0301", "Incorrect IAM authentication information")
        if token.startswith("forbidden"):
            return _cbc_error(403, "CBC.0151", "Access denied.")
        query = cbc_query(body)
        if isinstance(query, str):
            return _cbc_error(400, "CBC.0100", f"Parameter error: {query}")
        matches = self.tenants.get(token).find_resources(query)
        return _json(
            {
                "data": matches[query.offset : query.offset + query.limit],
                "total_count": len(matches),
            }
        )

    # -- knobs and bookkeeping ------------------------------------------------------

    async def _record(self, endpoint: str, request: Request, token: str | None) -> object:
        """Count and log the call; the parsed body, or ``MALFORMED``."""
        body: object
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            body = MALFORMED
        self._counts[endpoint] += 1
        self.calls.append(
            CallRecord(
                endpoint=endpoint,
                token=token,
                body=None if body is MALFORMED else body,
                at=time.time(),
            )
        )
        return body

    async def _misbehave(self, upstream: Upstream, token: str | None) -> Response | None:
        """What the knobs make of this call: a failure to answer with, or None to answer."""
        knobs = self.knobs.oma if upstream == "oma" else self.knobs.cbc
        if knobs.latency > 0:
            await asyncio.sleep(knobs.latency)
        if knobs.fault == "hang":
            await asyncio.sleep(HANG_SECONDS)
        elif knobs.fault == "non_json":
            return Response(
                "<html><body><h1>502 Bad Gateway</h1></body></html>", 200, media_type="text/html"
            )
        elif knobs.fault == "wrong_shape":
            # Plausible JSON without result/data (and without CBC's total_count, whose
            # presence alone may stand for an empty answer).
            if upstream == "oma":
                return _json({"returnCode": "0", "description": "success", "records": []})
            return _json({"resources": [], "total": 0})
        elif knobs.fault == "redirect":
            return Response(status_code=307, headers={"Location": REDIRECT_TARGET})
        chance = self._chance[upstream]
        if knobs.throttle_next > 0 or (knobs.throttle_rate > 0 and chance() < knobs.throttle_rate):
            if knobs.throttle_next > 0:
                knobs.throttle_next -= 1
            return _json(
                {"error_code": "APIG.0308", "error_msg": "The request is throttled"},
                429,
                headers={"Retry-After": str(knobs.retry_after)},
            )
        failing = knobs.failing_tokens is not None and (token or "").startswith(
            knobs.failing_tokens
        )
        if failing or (knobs.error_rate > 0 and chance() < knobs.error_rate):
            if upstream == "oma":
                return _json({"schema": knobs.error_text or "Business failure"}, 502)
            return _cbc_error(500, "CBC.0999", knobs.error_text or "Other errors.")
        return None

    async def _stats(self, _: Request) -> Response:
        return _json(self.counts())

    async def _calls(self, _: Request) -> Response:
        return _json(list(self.calls))

    async def _reset(self, _: Request) -> Response:
        self.reset()
        return _json({"reset": True})

    async def _knobs(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                self.knobs.patch(orjson.loads(await request.body()))
            except (ValueError, orjson.JSONDecodeError) as exc:
                return _json({"error": str(exc)}, 400)
        return _json(self.knobs.as_dict())

    async def _healthz(self, _: Request) -> Response:
        return _json({"status": "ok", "tenants": len(self.tenants)})


def _header_bytes(request: Request) -> int:
    return sum(len(name) + len(value) + 4 for name, value in request.scope["headers"])


def _too_large_headers() -> Response:
    # The API gateway's own answer, before the service sees the request.
    return _json({"error_code": "APIG.0201", "error_msg": "Request header fields too large"}, 431)


def _token(request: Request, header: str) -> str | None:
    value = request.headers.get(header, "").strip()
    return value or None


def _json(body: object, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers=headers, media_type=JSON_TYPE)


def _cbc_error(status: int, code: str, message: str) -> Response:
    return _json({"error_code": code, "error_msg": message}, status)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _oma_integer(value: object) -> int | None:
    """OMA's numbers: a JSON integer or a numeric string (the page sends ``"limit": "10"``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _OMA_NUMBER.match(value):
        return int(value)
    return None


def oma_query(body: object) -> SubscriptionQuery | str:
    """The OMA request the body asks for, or what is wrong with it."""
    if body is MALFORMED:
        return "the request body is not valid JSON"
    if not isinstance(body, dict):
        return "the request body must be a JSON object"
    if body.get("limit") is None:
        return "limit is mandatory"
    limit = _oma_integer(body["limit"])
    if limit is None or not 1 <= limit <= OMA_MAX_LIMIT:
        return f"limit must be a whole number from 1 to {OMA_MAX_LIMIT} (less than 100)"
    if body.get("offset") is None:
        return "offset is mandatory"
    offset = _oma_integer(body["offset"])
    if offset is None or offset < 0:
        return "offset must be a whole number greater than or equal to 0"
    window: list[int | None] = []
    for name in ("startDate", "endDate"):
        raw = body.get(name)
        value = None if raw is None else _oma_integer(raw)
        if raw is not None and (value is None or value < 0):
            return f"{name} must be a timestamp in epoch milliseconds"
        window.append(value)
    return SubscriptionQuery(limit=limit, offset=offset, start_ms=window[0], end_ms=window[1])


def cbc_query(body: object) -> ResourceQuery | str:
    """The CBC request the body asks for, or what is wrong with it.

    Every field is optional, and JSON null counts as absent. An empty
    ``resource_ids`` or ``status_list`` filters nothing, like an absent one.
    """
    if body is MALFORMED:
        return "the request body is not valid JSON"
    if not isinstance(body, dict):
        return "the request body must be a JSON object"
    ids = body.get("resource_ids") or []
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        return "resource_ids must be a list of resource id strings"
    if len(ids) > CBC_MAX_RESOURCE_IDS:
        return f"resource_ids holds at most {CBC_MAX_RESOURCE_IDS} ids"
    order_id = body.get("order_id")
    if order_id is not None:
        if not isinstance(order_id, str):
            return "order_id must be a string"
        # Sent URL-encoded where it has special characters, as the documentation asks.
        order_id = unquote_plus(order_id)
        if len(order_id) > CBC_MAX_ORDER_ID:
            return f"order_id must be a string of at most {CBC_MAX_ORDER_ID} characters"
    only_main = body.get("only_main_resource")
    if only_main is None:
        only_main = 0
    if not _is_int(only_main) or only_main not in (0, 1):
        return "only_main_resource must be 0 or 1"
    statuses = body.get("status_list") or []
    if not isinstance(statuses, list) or not all(
        _is_int(s) and s in VISIBLE_STATUSES for s in statuses
    ):
        return "status_list must be a list of statuses 2, 4 or 5"
    if len(statuses) > CBC_MAX_STATUSES:
        return f"status_list holds at most {CBC_MAX_STATUSES} statuses"
    offset = body.get("offset")
    offset = 0 if offset is None else offset
    if not _is_int(offset) or offset < 0:
        return "offset must be a whole number >= 0"
    limit = body.get("limit")
    limit = 10 if limit is None else limit
    if not _is_int(limit) or not 1 <= limit <= CBC_MAX_LIMIT:
        return f"limit must be a whole number from 1 to {CBC_MAX_LIMIT}"
    times: list[str | None] = []
    for name in ("expire_time_begin", "expire_time_end"):
        value = body.get(name)
        if value is not None and not _is_cbc_time(value):
            return f"{name} must be a UTC time like 2021-09-01T08:05:01Z"
        times.append(value)
    return ResourceQuery(
        resource_ids=tuple(ids),
        order_id=order_id,
        only_main_resource=only_main == 1,
        statuses=frozenset(statuses) or VISIBLE_STATUSES,
        offset=offset,
        limit=limit,
        expire_time_begin=times[0],
        expire_time_end=times[1],
    )


def _is_cbc_time(value: object) -> bool:
    if not isinstance(value, str) or not _CBC_TIME.match(value):
        return False
    try:
        parse_cbc_time(value)
    except ValueError:
        return False
    return True

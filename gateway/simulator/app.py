"""The simulator's HTTP face: both APIs at their real paths, and knobs under ``/_sim/``.

Validation, error bodies and quirks follow the seed pages. Where the pages are
silent the choice is said where it is made.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.simulator.data import SimulatorConfig, Tenant, Tenants

OMA_PATH = "/rest/oma/softwareconsole/tenant/queryresource"
CBC_PATH = "/v2/orders/suscriptions/resources/query"
OMA_ENDPOINT = "oma.queryresource"
CBC_ENDPOINT = "cbc.resources_query"

OMA_UNAUTHORIZED = (
    "Unauthorized operation. 1. Check whether you have purchased services related to the AICC. "
    "2. Sign in to the AICC as the system administrator and check whether the value of Business "
    "Software Mall Official Website under System parameters > Unified Public Configuration > "
    "Cloud Customers is correct. 3. Check whether the request header parameter is correctly set."
)
_JSON = "application/json;charset=UTF-8"
_CBC_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_NUMERIC = re.compile(r"^\d+$")
FAULTS = ("non_json", "wrong_shape", "redirect", "hang")


@dataclass(slots=True)
class UpstreamKnobs:
    latency: float = 0.0
    """Seconds added to every answer."""
    error_rate: float = 0.0
    """Fraction of calls answered with the upstream's 5xx."""
    throttle_rate: float = 0.0
    """Fraction of calls answered 429 APIG.0308 with Retry-After."""
    throttle_next: int = 0
    """The next N calls are throttled."""
    retry_after: int = 1
    fault: str | None = None
    """One of non_json, wrong_shape, redirect, hang: every call, until cleared."""


@dataclass(slots=True)
class Knobs:
    oma: UpstreamKnobs = field(default_factory=UpstreamKnobs)
    cbc: UpstreamKnobs = field(default_factory=UpstreamKnobs)

    def patch(self, changes: dict[str, Any]) -> None:
        """Apply ``{"oma": {"latency": 0.02}, ...}``; refuses unknown names or values."""
        for upstream, values in changes.items():
            target = getattr(self, upstream, None)
            if not isinstance(target, UpstreamKnobs) or not isinstance(values, dict):
                raise ValueError(f"unknown upstream {upstream!r}")
            names = {f.name for f in fields(UpstreamKnobs)}
            for name, value in values.items():
                if name not in names:
                    raise ValueError(f"unknown knob {name!r}")
                if name == "fault" and value is not None and value not in FAULTS:
                    raise ValueError(f"fault must be one of {FAULTS}")
                setattr(target, name, value)


class Simulator:
    """Both upstreams in one ASGI app. Importable in tests, runnable on its own."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self.tenants = Tenants(self.config)
        self.knobs = Knobs()
        self.calls: deque[dict[str, Any]] = deque(maxlen=10_000)
        self._counts: Counter[str] = Counter()
        self._rng = random.Random(self.config.seed)
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
        return dict(self._counts)

    def reset(self) -> None:
        self._counts.clear()
        self.calls.clear()

    def dataset(self, token: str) -> Tenant:
        return self.tenants.get(token)

    # -- the two APIs ----------------------------------------------------------------

    async def _oma(self, request: Request) -> Response:
        token = request.headers.get("x-auth-token") or request.headers.get("x-auth_token")
        body = await self._record(OMA_ENDPOINT, request, token)
        fault = await self._fault(self.knobs.oma, "oma")
        if fault is not None:
            return fault
        if not token or token.startswith(("invalid", "forbidden")):
            return _json({"schema": OMA_UNAUTHORIZED}, 401)
        if not isinstance(body, dict):
            return _oma_refusal("the request body is not a JSON object")
        # The page documents no 400: a refused request answers 200 with a returnCode
        # other than "0", which the page says is how OMA reports failure.
        limit = _oma_number(body.get("limit"))
        offset = _oma_number(body.get("offset"))
        if limit is None or not 1 <= limit <= 99:
            return _oma_refusal("limit is mandatory and must be less than 100")
        if offset is None:
            return _oma_refusal("offset is mandatory and must be greater than or equal to 0")
        window = []
        for name in ("startDate", "endDate"):
            value = body.get(name)
            parsed = None if value is None else _oma_number(value)
            if value is not None and parsed is None:
                return _oma_refusal(f"{name} must be a timestamp in milliseconds")
            window.append(parsed)
        start, end = window
        records = self.tenants.get(token).subscriptions
        if start is not None or end is not None:
            records = [
                r
                for r in records
                if (start is None or int(r["modifyTime"]) >= start)
                and (end is None or int(r["modifyTime"]) <= end)
            ]
        return _json(
            {
                "result": records[offset : offset + limit],
                "count": len(records),  # a number, as in the seed's example
                "returnCode": "0",
                "description": "success",
            }
        )

    async def _cbc(self, request: Request) -> Response:
        token = request.headers.get("x-auth-token")
        body = await self._record(CBC_ENDPOINT, request, token)
        fault = await self._fault(self.knobs.cbc, "cbc")
        if fault is not None:
            return fault
        if not token or token.startswith("invalid"):
            return _json(
                {
                    "error_code": "APIGW.0301",
                    "error_msg": "Incorrect IAM authentication information",
                },
                401,
            )
        if token.startswith("forbidden"):
            return _json({"error_code": "CBC.0151", "error_msg": "Access denied."}, 403)
        problem = _cbc_problem(body)
        if problem is not None:
            return _json({"error_code": "CBC.0100", "error_msg": problem}, 400)
        assert isinstance(body, dict)
        tenant = self.tenants.get(token)
        matches = _cbc_select(tenant, body)
        offset = body.get("offset", 0)
        limit = body.get("limit", 10)
        return _json({"data": matches[offset : offset + limit], "total_count": len(matches)})

    # -- knobs and bookkeeping -------------------------------------------------------

    async def _record(self, endpoint: str, request: Request, token: str | None) -> Any:
        raw = await request.body()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        self._counts[endpoint] += 1
        self.calls.append({"endpoint": endpoint, "token": token, "body": body, "at": time.time()})
        return body

    async def _fault(self, knobs: UpstreamKnobs, upstream: str) -> Response | None:
        if knobs.latency > 0:
            await asyncio.sleep(knobs.latency)
        if knobs.fault == "hang":
            await asyncio.sleep(3600)
        if knobs.fault == "non_json":
            return Response(
                "<html><body>Service Unavailable</body></html>", 200, media_type="text/html"
            )
        if knobs.fault == "wrong_shape":
            return _json({"unexpected": True})
        if knobs.fault == "redirect":
            return Response(status_code=307, headers={"Location": "http://127.0.0.2:9/elsewhere"})
        if knobs.throttle_next > 0 or (
            knobs.throttle_rate and self._rng.random() < knobs.throttle_rate
        ):
            knobs.throttle_next = max(0, knobs.throttle_next - 1)
            return _json(
                {"error_code": "APIG.0308", "error_msg": "The request is throttled"},
                429,
                headers={"Retry-After": str(knobs.retry_after)},
            )
        if knobs.error_rate and self._rng.random() < knobs.error_rate:
            if upstream == "oma":
                return _json({"schema": "Business failure"}, 502)
            return _json({"error_code": "CBC.0999", "error_msg": "Other errors."}, 500)
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
        return _json(asdict(self.knobs))

    async def _healthz(self, _: Request) -> Response:
        return _json({"status": "ok"})


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers=headers, media_type=_JSON)


def _oma_refusal(description: str) -> Response:
    return _json({"result": [], "count": 0, "returnCode": "1", "description": description})


def _oma_number(value: object) -> int | None:
    """OMA takes numbers or numeric strings (the seed sends ``"limit": "10"``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and _NUMERIC.match(value):
        return int(value)
    return None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _cbc_problem(body: object) -> str | None:
    """The documented parameter rules; a violation is CBC.0100."""
    if not isinstance(body, dict):
        return "the request body must be a JSON object"
    ids = body.get("resource_ids")
    if ids is not None and (
        not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids) or len(ids) > 50
    ):
        return "resource_ids must be a list of at most 50 ids"
    order_id = body.get("order_id")
    if order_id is not None and (not isinstance(order_id, str) or len(order_id) > 64):
        return "order_id must be a string of at most 64 characters"
    if body.get("only_main_resource", 0) not in (0, 1) or isinstance(
        body.get("only_main_resource"), bool
    ):
        return "only_main_resource must be 0 or 1"
    statuses = body.get("status_list")
    if statuses is not None and (
        not isinstance(statuses, list)
        or len(statuses) > 10
        or not all(_is_int(s) and s in (2, 4, 5) for s in statuses)
    ):
        return "status_list must hold at most 10 of 2, 4 and 5"
    offset = body.get("offset", 0)
    if not _is_int(offset) or offset < 0:
        return "offset must be an integer >= 0"
    limit = body.get("limit", 10)
    if not _is_int(limit) or not 1 <= limit <= 500:
        return "limit must be an integer from 1 to 500"
    for name in ("expire_time_begin", "expire_time_end"):
        value = body.get(name)
        if value is not None and (not isinstance(value, str) or not _CBC_TIME.match(value)):
            return f"{name} must be a UTC time like 2021-09-01T08:05:01Z"
    return None


def _cbc_select(tenant: Tenant, body: dict[str, Any]) -> list[dict[str, Any]]:
    only_main = body.get("only_main_resource", 0) == 1
    ids = body.get("resource_ids")
    if ids:
        named = [tenant.by_id[i] for i in dict.fromkeys(ids) if i in tenant.by_id]
        chosen = {r["resource_id"] for r in named}
        if not only_main:
            # The named resources and the resources attached to them.
            chosen |= {
                r["resource_id"]
                for r in tenant.resources
                if r["is_main_resource"] == 0 and r.get("parent_resource_id") in chosen
            }
        candidates = sorted(
            (tenant.by_id[i] for i in chosen), key=lambda r: tenant.position[r["resource_id"]]
        )
    elif body.get("order_id") is not None:
        candidates = tenant.by_order.get(body["order_id"], [])
    else:
        candidates = tenant.resources
    if ids and body.get("order_id") is not None:
        candidates = [
            r for r in candidates if tenant.order_of[r["resource_id"]] == body["order_id"]
        ]
    if only_main and not ids:
        candidates = [r for r in candidates if r["is_main_resource"] == 1]
    statuses = set(body.get("status_list") or (2, 4, 5))
    begin = body.get("expire_time_begin")
    end = body.get("expire_time_end")
    # Same-format UTC strings compare in time order.
    return [
        r
        for r in candidates
        if r["status"] in statuses
        and (begin is None or r["expire_time"] >= begin)
        and (end is None or r["expire_time"] <= end)
    ]


__all__ = ["FAULTS", "Knobs", "Simulator", "SimulatorConfig", "UpstreamKnobs"]

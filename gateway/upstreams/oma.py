"""OMA "Querying Subscription Information" (business software mall subscriptions).

``POST {base}/rest/oma/softwareconsole/tenant/queryresource`` with the caller's
``X-Auth-Token``. Body: ``limit`` (mandatory, "must be less than 100"),
``offset`` (mandatory, >= 0), ``startDate``/``endDate`` (optional epoch ms; the
window applies to the subscription's modification time). Answers
``{result, count, returnCode, description}``; ``returnCode`` other than "0" is a
failure even with HTTP 200. 401 and 502 carry a ``schema`` string.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, NamedTuple

import httpx

from gateway.cache.codec import RecordCodec
from gateway.cache.pages import Codec
from gateway.caller import Caller
from gateway.errors import ErrorKind, InvalidRequest, UpstreamError
from gateway.times import FLOAT_EXACT_MS, from_epoch_ms_digits, parse_epoch_ms, to_epoch_ms
from gateway.upstreams.endpoint import (
    UpstreamClient,
    classify_http_failure,
    log_upstream_text,
    upstream_code,
)
from gateway.upstreams.fields import (
    INT,
    TEXT,
    RecordFields,
    Scaled,
    Upstream,
    new_record,
    read_int,
    read_text,
    record_version,
    time_kind,
)
from gateway.upstreams.paging import fetch_all, fetch_range, joined

UPSTREAM = "oma"
PATH = "/rest/oma/softwareconsole/tenant/queryresource"
MAX_PAGE_SIZE = 99
"""The documented limit "must be less than 100"."""

logger = logging.getLogger("gateway.upstream")


@dataclass(frozen=True, slots=True)
class SubscriptionQuery:
    limit: int
    offset: int = 0
    start: datetime | None = None
    """Earliest modification time (``startDate``)."""
    end: datetime | None = None
    """Latest modification time (``endDate``)."""


EPOCH_MS = time_kind(
    "epoch_ms",
    parse_epoch_ms,
    # from_epoch_ms of a number, written out in the reader: four times a record.
    {int: Scaled(datetime.fromtimestamp, 1000, UTC, FLOAT_EXACT_MS), str: from_epoch_ms_digits},
)
"""OMA's times: numbers, or numeric strings as often as not."""


class SubscriptionRecord(NamedTuple):
    """One subscription, fields renamed to what they mean (``procutName`` is the charging mode).

    A NamedTuple, immutable like a frozen dataclass, and four times cheaper to build: a
    page of 99 is parsed on the critical path of every cold request. Each attribute
    names the OMA field it is read from and how (``gateway.upstreams.fields``)."""

    id: Annotated[str, Upstream("id", TEXT)]
    order_id: Annotated[str, Upstream("orderId", TEXT)]
    status: Annotated[int | None, Upstream("status", INT)]
    created_at: Annotated[datetime | None, Upstream("createTime", EPOCH_MS)]
    modified_at: Annotated[datetime | None, Upstream("modifyTime", EPOCH_MS)]
    expires_at: Annotated[datetime | None, Upstream("expireTime", EPOCH_MS)]
    cec_expires_at: Annotated[datetime | None, Upstream("cecExpireTime", EPOCH_MS)]
    sku_name: Annotated[str | None, Upstream("skuName", TEXT)]
    sku_code: Annotated[str | None, Upstream("skuCode", TEXT)]
    charging_mode: Annotated[str | None, Upstream("procutName", TEXT)]
    product_id: Annotated[str | None, Upstream("productId", TEXT)]
    order_amount: Annotated[str | None, Upstream("orderAmount", TEXT)]
    quantity: Annotated[int | None, Upstream("amount", INT)]
    period_number: Annotated[int | None, Upstream("periodNumber", INT)]
    period_type: Annotated[str | None, Upstream("periodType", TEXT)]
    operation_type: Annotated[str | None, Upstream("opType", TEXT)]
    remark: Annotated[str | None, Upstream("remark", TEXT)]
    customer_id: Annotated[str | None, Upstream("customerId", TEXT)]
    customer_name: Annotated[str | None, Upstream("customerName", TEXT)]
    company: Annotated[str | None, Upstream("company", TEXT)]
    vdn_id: Annotated[str | None, Upstream("vdnId", TEXT)]
    cec_tenant_id: Annotated[str | None, Upstream("cecTenantId", TEXT)]
    cec_tenant_name: Annotated[str | None, Upstream("cecTenantName", TEXT)]
    cec_feature_type: Annotated[str | None, Upstream("cecFeatureType", TEXT)]
    create_source: Annotated[str | None, Upstream("createSource", TEXT)]
    manual_status: Annotated[str | None, Upstream("manualStatus", TEXT)]
    auto_status: Annotated[str | None, Upstream("autoStatus", TEXT)]
    trial: Annotated[bool | None, Upstream("trialFlag", INT)]  # 0 or 1: see _subscription
    retry_times: Annotated[int | None, Upstream("retryTimes", INT)]


@dataclass(frozen=True, slots=True)
class SubscriptionPage:
    records: tuple[SubscriptionRecord, ...]
    total: int


_SUBSCRIPTION_FIELDS = RecordFields.declared_by(SubscriptionRecord)
_RECORDS_VERSION = record_version(SubscriptionRecord)
"""In every page's cache key: a page cached by a build that declares the record otherwise
is never read as this one's."""
_ID, _ORDER_ID, _TRIAL = (SubscriptionRecord._fields.index(f) for f in ("id", "order_id", "trial"))


_DECODE_PAGE = _SUBSCRIPTION_FIELDS.page_decoder("result", ("returnCode", "description", "count"))


def parse_subscription(record: Mapping[str, Any]) -> SubscriptionRecord:
    """One record of ``result``; raises ``ValueError`` only when it cannot be identified."""
    return _subscription(_SUBSCRIPTION_FIELDS.read(record))


def _subscription(values: list[Any]) -> SubscriptionRecord:
    if not values[_ID] or not values[_ORDER_ID]:
        raise ValueError("a subscription record without id or orderId")
    trial_flag = values[_TRIAL]
    values[_TRIAL] = None if trial_flag is None else trial_flag != 0
    return new_record(SubscriptionRecord, values)


def _window_ms(query: SubscriptionQuery) -> tuple[int | None, int | None]:
    """The milliseconds the window holds: from the first one not before ``start`` to the
    one ``end`` falls in, so that a record OMA holds is in it exactly when its time is."""
    start = None if query.start is None else to_epoch_ms(query.start, round_up=True)
    end = None if query.end is None else to_epoch_ms(query.end)
    return start, end


class QueryResourceEndpoint:
    """The endpoint description ``UpstreamClient`` runs."""

    upstream = UPSTREAM
    name = "queryresource"
    path = PATH
    codec: Codec[SubscriptionPage] = RecordCodec(SubscriptionPage)

    def validate(self, query: SubscriptionQuery) -> None:
        if not 1 <= query.limit <= MAX_PAGE_SIZE:
            raise InvalidRequest(
                f"OMA page size must be 1..{MAX_PAGE_SIZE}, got {query.limit}", upstream=UPSTREAM
            )
        if query.offset < 0:
            raise InvalidRequest(f"offset must be >= 0, got {query.offset}", upstream=UPSTREAM)
        if query.start is not None and query.end is not None and query.start > query.end:
            raise InvalidRequest("the time window starts after it ends", upstream=UPSTREAM)

    def known_answer(self, query: SubscriptionQuery) -> SubscriptionPage | None:
        """No page for a window that holds no millisecond from 1970 on: OMA stores times
        to the millisecond, and no subscription was modified before 1970."""
        start, end = _window_ms(query)
        if end is not None and (end < 0 or (start is not None and start > end)):
            return SubscriptionPage(records=(), total=0)
        return None

    def body(self, query: SubscriptionQuery) -> dict[str, Any]:
        body: dict[str, Any] = {"limit": query.limit, "offset": query.offset}
        start, end = _window_ms(query)
        # A window reaching before 1970 means the same from epoch 0, and OMA is never
        # sent a negative time to refuse.
        if start is not None:
            body["startDate"] = max(0, start)
        if end is not None:
            body["endDate"] = end
        return body

    def cache_params(self, query: SubscriptionQuery) -> tuple[tuple[str, object], ...]:
        return (("records", _RECORDS_VERSION), *sorted(self.body(query).items()))

    def decode(self, content: bytes) -> Any | None:
        return _DECODE_PAGE(content)

    def parse(self, status: int, headers: httpx.Headers, payload: Any) -> SubscriptionPage:
        if status != 200:
            failure: Mapping[str, Any] = payload if isinstance(payload, Mapping) else {}
            # OMA's own failures carry a ``schema`` text, its API gateway's an error_code
            # and error_msg: texts for the log, a code the caller may see.
            text = failure.get("schema") or failure.get("error_msg")
            raise classify_http_failure(UPSTREAM, status, headers, failure.get("error_code"), text)
        fields: Mapping[str, Any] = payload if isinstance(payload, Mapping) else {}
        return_code = read_text(fields, "returnCode")
        result = fields.get("result")
        # A failure may come without a result list: its code and description say more.
        if return_code != "0" and (return_code is not None or isinstance(result, list)):
            code = upstream_code(return_code)
            log_upstream_text(UPSTREAM, status, code, read_text(fields, "description"))
            refused = return_code is not None
            raise UpstreamError(
                ErrorKind.REFUSED if refused else ErrorKind.BAD_RESPONSE,
                UPSTREAM,
                f"OMA refused the request (returnCode {code or 'unreadable'})"
                if refused
                else "OMA answered without a returnCode",
                status=status,
                upstream_code=code,
            )
        if not isinstance(result, list):
            raise UpstreamError(
                ErrorKind.BAD_RESPONSE, UPSTREAM, "response has no result list", status=status
            )
        try:
            records = tuple(map(_subscription, _SUBSCRIPTION_FIELDS.read_all(result)))
        except ValueError as exc:
            raise UpstreamError(ErrorKind.BAD_RESPONSE, UPSTREAM, str(exc), status=status) from None
        count = read_int(fields, "count")
        return SubscriptionPage(records=records, total=count if count is not None else len(records))


QUERY_RESOURCE = QueryResourceEndpoint()


class OmaClient:
    """Subscriptions for a caller, page by page or as ranges."""

    def __init__(self, client: UpstreamClient[SubscriptionQuery, SubscriptionPage]) -> None:
        self._client = client

    async def fetch_subscription_page(
        self, caller: Caller, query: SubscriptionQuery
    ) -> SubscriptionPage:
        return await self._client.fetch(caller, query)

    async def fetch_subscription_range(
        self,
        caller: Caller,
        *,
        offset: int,
        count: int,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> SubscriptionPage:
        """``count`` subscriptions from ``offset``: every page requested at once."""
        pages, total = await fetch_range(
            lambda o, n: self.fetch_subscription_page(caller, SubscriptionQuery(n, o, start, end)),
            offset,
            count,
            MAX_PAGE_SIZE,
        )
        return joined(pages, total, SubscriptionPage)

    async def fetch_all_subscriptions(
        self,
        caller: Caller,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        max_records: int = 10_000,
    ) -> SubscriptionPage:
        pages, total = await fetch_all(
            lambda o, n: self.fetch_subscription_page(caller, SubscriptionQuery(n, o, start, end)),
            MAX_PAGE_SIZE,
            max_records=max_records,
        )
        return joined(pages, total, SubscriptionPage)

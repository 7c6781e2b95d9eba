"""CBC "Querying Customer's Yearly/Monthly Resources".

``POST {base}/v2/orders/suscriptions/resources/query`` (sic: ``suscriptions`` is
the real path) with the caller's ``X-Auth-Token``. Every body field is optional:
``resource_ids`` (at most 50), ``order_id`` (at most 64 characters),
``only_main_resource`` (0 primary and attached, the default; 1 primary only),
``status_list`` (at most 10 of 2 provisioned, 4 frozen, 5 expired), ``offset``
(>= 0), ``limit`` (1..500, default 10), ``expire_time_begin``/``expire_time_end``
(UTC ``yyyy-MM-ddTHH:mm:ssZ``). Answers ``{data, total_count}``; failures carry
``error_code``/``error_msg``: 400 CBC.0100, 403 CBC.0151, 500 CBC.0999.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Annotated, Any, NamedTuple
from urllib.parse import quote_plus

import httpx

from gateway.cache.codec import RecordCodec
from gateway.cache.pages import Codec
from gateway.caller import Caller
from gateway.errors import ErrorKind, InvalidRequest, UpstreamError
from gateway.times import format_cbc_time, parse_cbc_time, whole_second
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
    Upstream,
    new_record,
    read_int,
    read_text,
    record_version,
    time_kind,
)
from gateway.upstreams.paging import cached_all, chunks, fetch_all, fetch_range, joined

UPSTREAM = "cbc"
PATH = "/v2/orders/suscriptions/resources/query"
MAX_PAGE_SIZE = 500
MAX_RESOURCE_IDS = 50
MAX_ORDER_ID_LENGTH = 64
MAX_STATUSES = 10
QUERYABLE_STATUSES = frozenset({2, 4, 5})
"""``status_list`` accepts provisioned, frozen and expired; closed is never visible."""


@dataclass(frozen=True, slots=True)
class ResourceQuery:
    resource_ids: tuple[str, ...] = ()
    order_id: str | None = None
    only_main_resource: bool = False
    statuses: tuple[int, ...] = ()
    offset: int = 0
    limit: int = 10
    expire_from: datetime | None = None
    expire_to: datetime | None = None

    def page(self, offset: int, limit: int) -> ResourceQuery:
        """This query for one page: itself when it asks for that page already, as a whole
        order's query does for its first (``replace`` costs 2 µs a call)."""
        if offset == self.offset and limit == self.limit:
            return self
        return replace(self, offset=offset, limit=limit)


_CBC_TIME = time_kind("cbc_time", parse_cbc_time, {str: parse_cbc_time})


class ResourceRecord(NamedTuple):
    """One resource; each attribute names the CBC field it is read from and how
    (``gateway.upstreams.fields``)."""

    id: Annotated[str, Upstream("id", TEXT)]  # resource_id when CBC gives none
    resource_id: Annotated[str, Upstream("resource_id", TEXT)]
    name: Annotated[str | None, Upstream("resource_name", TEXT)]
    region_code: Annotated[str | None, Upstream("region_code", TEXT)]
    service_type_code: Annotated[str | None, Upstream("service_type_code", TEXT)]
    resource_type_code: Annotated[str | None, Upstream("resource_type_code", TEXT)]
    spec_code: Annotated[str | None, Upstream("resource_spec_code", TEXT)]
    project_id: Annotated[str | None, Upstream("project_id", TEXT)]
    product_id: Annotated[str | None, Upstream("product_id", TEXT)]
    parent_resource_id: Annotated[str | None, Upstream("parent_resource_id", TEXT)]
    is_main_resource: Annotated[bool, Upstream("is_main_resource", INT)]  # 1 or 0
    status: Annotated[int | None, Upstream("status", INT)]
    effective_at: Annotated[datetime | None, Upstream("effective_time", _CBC_TIME)]
    expires_at: Annotated[datetime | None, Upstream("expire_time", _CBC_TIME)]
    expire_policy: Annotated[int | None, Upstream("expire_policy", INT)]


@dataclass(frozen=True, slots=True)
class ResourcePage:
    records: tuple[ResourceRecord, ...]
    total: int


_RESOURCE_FIELDS = RecordFields.declared_by(ResourceRecord)
_RECORDS_VERSION = record_version(ResourceRecord)
"""In every page's cache key: a page cached by a build that declares the record otherwise
is never read as this one's."""
_ID, _RESOURCE_ID, _PARENT, _IS_MAIN = (
    ResourceRecord._fields.index(f)
    for f in ("id", "resource_id", "parent_resource_id", "is_main_resource")
)


_DECODE_PAGE = _RESOURCE_FIELDS.page_decoder("data", ("error_code", "error_msg", "total_count"))


def parse_resource(record: Mapping[str, Any]) -> ResourceRecord:
    return _resource(_RESOURCE_FIELDS.read(record))


def _resource(values: list[Any]) -> ResourceRecord:
    resource_id = values[_RESOURCE_ID]
    if not resource_id:
        raise ValueError("a resource record without resource_id")
    values[_ID] = values[_ID] or resource_id
    # An empty parent id means "none", not a resource named "".
    values[_PARENT] = values[_PARENT] or None
    values[_IS_MAIN] = values[_IS_MAIN] == 1
    return new_record(ResourceRecord, values)


def sendable(text: str) -> bool:
    """Whether ``text`` can go in a JSON body: a lone surrogate (which JSON's ``\\ud800``
    escape lets a client send) has no UTF-8 form."""
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


_STATUS_OF_CODE = {"CBC.0100": 400, "CBC.0151": 403, "CBC.0999": 500}
"""The documented failures (Returned Values) and the status each comes with."""
_SUCCESS_CODES = frozenset({"", "0", "CBC.0000"})
"""Codes that say nothing failed: an empty one, zero, and Huawei's usual code for success."""


def _expiry_seconds(query: ResourceQuery) -> tuple[datetime | None, datetime | None]:
    """The whole seconds the expiry window holds: from the first one not before its start
    to the one its end falls in, so that a resource is in it exactly when its time is."""
    start = None if query.expire_from is None else whole_second(query.expire_from, round_up=True)
    end = None if query.expire_to is None else whole_second(query.expire_to)
    return start, end


class ResourcesQueryEndpoint:
    upstream = UPSTREAM
    name = "resources_query"
    path = PATH
    codec: Codec[ResourcePage] = RecordCodec(ResourcePage)

    def validate(self, query: ResourceQuery) -> None:
        def refuse(message: str) -> InvalidRequest:
            return InvalidRequest(message, upstream=UPSTREAM)

        if not 1 <= query.limit <= MAX_PAGE_SIZE:
            raise refuse(f"CBC page size must be 1..{MAX_PAGE_SIZE}, got {query.limit}")
        if query.offset < 0:
            raise refuse(f"offset must be >= 0, got {query.offset}")
        if len(query.resource_ids) > MAX_RESOURCE_IDS:
            count = len(query.resource_ids)
            raise refuse(f"at most {MAX_RESOURCE_IDS} resource ids per CBC call, got {count}")
        if any(not rid or len(rid) > 128 for rid in query.resource_ids):
            raise refuse("resource ids must be 1..128 characters")
        if query.order_id is not None and not 1 <= len(query.order_id) <= MAX_ORDER_ID_LENGTH:
            raise refuse(f"an order id is 1..{MAX_ORDER_ID_LENGTH} characters")
        if not all(map(sendable, query.resource_ids)) or not sendable(query.order_id or ""):
            raise refuse("resource and order ids must be valid Unicode text")
        if len(query.statuses) > MAX_STATUSES:
            raise refuse(f"at most {MAX_STATUSES} statuses, got {len(query.statuses)}")
        unknown = sorted(set(query.statuses) - QUERYABLE_STATUSES)
        if unknown:
            raise refuse(f"status_list accepts 2, 4 and 5 only, got {unknown}")
        if (
            query.expire_from is not None
            and query.expire_to is not None
            and query.expire_from > query.expire_to
        ):
            raise refuse("the expiry window starts after it ends")

    def body(self, query: ResourceQuery) -> dict[str, Any]:
        body: dict[str, Any] = {
            "only_main_resource": 1 if query.only_main_resource else 0,
            "offset": query.offset,
            "limit": query.limit,
        }
        if query.resource_ids:
            body["resource_ids"] = list(query.resource_ids)
        if query.order_id is not None:
            # As CBC's table asks: "When special characters are used for query, perform
            # the URL code conversion" (% as %25), form-encoded as a Java service decodes
            # it ("+" for a space). Letters, digits and "-_.*" stay as they are: the ids
            # OMA issues, and the seed's own example ("CS1905251035OA***").
            body["order_id"] = quote_plus(query.order_id, safe="*")
        if query.statuses:
            body["status_list"] = sorted(set(query.statuses))
        start, end = _expiry_seconds(query)
        if start is not None:
            body["expire_time_begin"] = format_cbc_time(start)
        if end is not None:
            body["expire_time_end"] = format_cbc_time(end)
        return body

    def known_answer(self, query: ResourceQuery) -> ResourcePage | None:
        """No page for an expiry window that holds no whole second (CBC's resolution)."""
        if query.expire_from is None:
            return None
        start, end = _expiry_seconds(query)
        if start is None or (end is not None and start > end):
            return ResourcePage(records=(), total=0)
        return None

    def cache_params(self, query: ResourceQuery) -> tuple[tuple[str, object], ...]:
        # The body's lists as tuples: a key's parameters are immutable (CacheKey).
        params = (
            (name, tuple(value) if isinstance(value, list) else value)
            for name, value in self.body(query).items()
        )
        return (("records", _RECORDS_VERSION), *sorted(params))

    def decode(self, content: bytes) -> Any | None:
        return _DECODE_PAGE(content)

    def parse(self, status: int, headers: httpx.Headers, payload: Any) -> ResourcePage:
        code = read_text(payload, "error_code") if isinstance(payload, Mapping) else None
        if code in _SUCCESS_CODES:
            code = None
        # A documented code says what went wrong whatever status it came with: error_code
        # is set "on failure", so a 200 carrying one is that failure, data or not.
        documented = _STATUS_OF_CODE.get(code or "")
        if documented is not None and (status == 200 or (documented == 500 and status < 500)):
            status = documented
        if status != 200:
            text = payload.get("error_msg") if isinstance(payload, Mapping) else None
            raise classify_http_failure(UPSTREAM, status, headers, code, text)
        if not isinstance(payload, Mapping):
            raise UpstreamError(ErrorKind.BAD_RESPONSE, UPSTREAM, "response is not an object")
        data = payload.get("data")
        # An empty answer may omit data; an error_code or no total_count is a failure.
        if code or (data is None and "total_count" not in payload):
            code = upstream_code(code)
            if code:
                log_upstream_text(UPSTREAM, status, code, payload.get("error_msg"))
            raise UpstreamError(
                ErrorKind.BAD_RESPONSE,
                UPSTREAM,
                f"CBC answered with an error ({code or 'unreadable code'})"
                if code
                else "response has no data list",
                status=status,
                upstream_code=code,
            )
        if data is None:
            data = []
        if not isinstance(data, list):
            raise UpstreamError(ErrorKind.BAD_RESPONSE, UPSTREAM, "response data is not a list")
        try:
            records = tuple(map(_resource, _RESOURCE_FIELDS.read_all(data)))
        except ValueError as exc:
            raise UpstreamError(ErrorKind.BAD_RESPONSE, UPSTREAM, str(exc), status=status) from None
        total = read_int(payload, "total_count")
        return ResourcePage(records=records, total=total if total is not None else len(records))


RESOURCES_QUERY = ResourcesQueryEndpoint()


class CbcClient:
    """Resources for a caller: pages, ranges, id lookups in chunks of 50, whole orders."""

    def __init__(self, client: UpstreamClient[ResourceQuery, ResourcePage]) -> None:
        self._client = client

    async def fetch_resource_page(self, caller: Caller, query: ResourceQuery) -> ResourcePage:
        return await self._client.fetch(caller, query)

    async def fetch_resource_range(
        self, caller: Caller, query: ResourceQuery, *, offset: int, count: int
    ) -> ResourcePage:
        """``count`` resources matching ``query`` from ``offset``, every page at once."""
        pages, total = await fetch_range(
            lambda o, n: self.fetch_resource_page(caller, query.page(o, n)),
            offset,
            count,
            MAX_PAGE_SIZE,
        )
        return joined(pages, total, ResourcePage)

    async def fetch_all_resources(
        self, caller: Caller, query: ResourceQuery, *, max_records: int = 10_000
    ) -> ResourcePage:
        pages, total = await fetch_all(
            lambda o, n: self.fetch_resource_page(caller, query.page(o, n)),
            MAX_PAGE_SIZE,
            max_records=max_records,
        )
        return joined(pages, total, ResourcePage)

    def cached_all_resources(
        self, caller: Caller, query: ResourceQuery, *, max_records: int = 10_000
    ) -> ResourcePage | None:
        """What ``fetch_all_resources`` would answer, when every page of it is cached fresh
        in this process; else None. No upstream call, no await."""
        if not self._client.serves_cached(caller):
            return None  # cold: not even the page queries are worth building
        found = cached_all(
            lambda o, n: self._client.cached(caller, query.page(o, n)),
            MAX_PAGE_SIZE,
            max_records=max_records,
        )
        if found is None:
            return None
        pages, total = found
        return joined(pages, total, ResourcePage)

    async def fetch_resources_by_ids(
        self, caller: Caller, resource_ids: Sequence[str], *, only_main_resource: bool
    ) -> list[tuple[ResourceRecord, ...]]:
        """One answer per chunk of at most 50 ids, all chunks in flight together.

        With ``only_main_resource`` False the answer holds the named resources and
        the resources attached to them, as the API documents.
        """
        unique = list(dict.fromkeys(resource_ids))
        pages = await asyncio.gather(
            *(
                self.fetch_all_resources(
                    caller,
                    ResourceQuery(
                        resource_ids=chunk,
                        only_main_resource=only_main_resource,
                        limit=MAX_PAGE_SIZE,  # the first page fetch_all asks for
                    ),
                )
                for chunk in chunks(unique, MAX_RESOURCE_IDS)
            )
        )
        return [page.records for page in pages]

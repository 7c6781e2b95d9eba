"""Ranges of records that span several upstream pages.

Offsets are known before the first answer, so every page a range spans is
requested at once; "everything" needs the first page's total, then the rest
follow concurrently, bounded so one query cannot flood an upstream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R", covariant=True)


class Page(Protocol[R]):
    @property
    def records(self) -> tuple[R, ...]: ...

    @property
    def total(self) -> int: ...


PageT = TypeVar("PageT", bound=Page[object])
FetchPage = Callable[[int, int], Awaitable[PageT]]
"""``fetch(offset, limit)`` for one upstream page."""


def page_spans(offset: int, count: int, page_size: int) -> list[tuple[int, int]]:
    """The (offset, limit) pairs that cover ``count`` records from ``offset`` in the
    fewest calls: ``ceil(count / page_size)``."""
    if offset < 0 or count < 0 or page_size < 1:
        raise ValueError("offset and count must be >= 0 and page_size >= 1")
    return [
        (start, min(page_size, offset + count - start))
        for start in range(offset, offset + count, page_size)
    ]


def chunks(items: Sequence[T], size: int) -> Iterator[tuple[T, ...]]:
    """Consecutive chunks of at most ``size`` items, e.g. for a 50-ids-per-call limit."""
    for start in range(0, len(items), size):
        yield tuple(items[start : start + size])


async def fetch_range(
    fetch: FetchPage[PageT], offset: int, count: int, page_size: int
) -> tuple[list[PageT], int]:
    """Every page of ``[offset, offset + count)`` at once; the pages in order, and the
    upstream's total (0 records asked still costs one call, to learn the total)."""
    spans = page_spans(offset, count, page_size) or [(offset, 1)]
    pages = await asyncio.gather(*(fetch(start, limit) for start, limit in spans))
    total = pages[0].total
    if count == 0:
        return [], total
    # A short page means the upstream ran out; later pages are then empty anyway.
    return list(pages), total


async def fetch_all(
    fetch: FetchPage[PageT], page_size: int, *, max_concurrency: int = 4, max_records: int
) -> tuple[list[PageT], int]:
    """Every record: the first page tells the total, the rest follow concurrently.

    ``max_records`` bounds what one call may pull (a runaway total must not turn
    into thousands of upstream calls); the caller learns the true total.
    """
    first = await fetch(0, page_size)
    spans = _spans_after_first(first, page_size, max_records)
    if not spans:
        return [first], first.total
    gate = asyncio.Semaphore(max_concurrency)

    async def bounded(start: int, limit: int) -> PageT:
        async with gate:
            return await fetch(start, limit)

    rest = await asyncio.gather(*(bounded(start, limit) for start, limit in spans))
    return [first, *rest], first.total


def cached_all(
    peek: Callable[[int, int], PageT | None], page_size: int, *, max_records: int
) -> tuple[list[PageT], int] | None:
    """``fetch_all`` from pages at hand (``peek(offset, limit)``, no await), or None when
    one is missing: the same pages ``fetch_all`` would ask for, in the same order."""
    first = peek(0, page_size)
    if first is None:
        return None
    pages = [first]
    for start, limit in _spans_after_first(first, page_size, max_records):
        page = peek(start, limit)
        if page is None:
            return None
        pages.append(page)
    return pages, first.total


def _spans_after_first(
    first: Page[object], page_size: int, max_records: int
) -> list[tuple[int, int]]:
    """The pages "everything" still needs once the first has told the total: none when
    it held all there is (or all ``max_records`` allows), or ran short of a full page."""
    wanted = min(first.total, max_records)
    if len(first.records) >= wanted or len(first.records) < page_size:
        return []
    return page_spans(page_size, wanted - page_size, page_size)


def joined(
    pages: Sequence[PageT], total: int, page: Callable[[tuple[Any, ...], int], PageT]
) -> PageT:
    """Pages as one answer of ``total`` records: a single page as it came (the usual
    case, no copy), else ``page(records, total)`` with their records in order."""
    if len(pages) == 1:
        return pages[0]
    records: list[Any] = []
    for each in pages:
        records.extend(each.records)
    return page(tuple(records), total)

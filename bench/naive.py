"""A deliberately naive build of the same schema, only for comparison in benchmarks.

Same types, resolvers, clients and upstreams, but no loaders, no lookahead and no
concurrency: every field that needs upstream data makes its own call, one call at
a time, pages of a range are fetched one after another, and Strawberry's stock
executor runs every resolver. Run as ``python -m bench.naive``;
it takes the same ``GATEWAY_*`` settings as ``gateway serve``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from strawberry.dataloader import DataLoader
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from gateway.server.cli import main
from gateway.upstreams import cbc, oma, paging
from schema import build as schema_build
from schema import context as schema_context
from schema.loaders import load_order_resources, load_resource_families


async def fetch_range_one_by_one(fetch: Any, offset: int, count: int, page_size: int) -> Any:
    spans = paging.page_spans(offset, count, page_size) or [(offset, 1)]
    pages = [await fetch(start, limit) for start, limit in spans]
    return ([] if count == 0 else pages), pages[0].total


async def fetch_all_one_by_one(fetch: Any, page_size: int, **_: Any) -> Any:
    first = await fetch(0, page_size)
    pages = [first]
    while sum(len(p.records) for p in pages) < first.total and len(pages[-1].records) == page_size:
        pages.append(await fetch(page_size * len(pages), page_size))
    return pages, first.total


def one_at_a_time(
    load_one: Callable[[Any], Awaitable[Any]], lock: asyncio.Lock
) -> DataLoader[Any, Any]:
    """A loader in name only: one upstream call per key, none remembered, serialised
    per request."""

    async def load(keys: list[Any]) -> list[Any]:
        async with lock:
            return [await load_one(keys[0])]

    return DataLoader(load_fn=load, max_batch_size=1, cache=False)


class NaiveLoaders:
    def __init__(self, upstreams: Any, caller: Any) -> None:
        lock = asyncio.Lock()

        async def family(resource_id: str) -> Any:
            return (await load_resource_families(upstreams, caller, [resource_id]))[0]

        async def order(key: Any) -> Any:
            (answer,) = await load_order_resources(upstreams, caller, [key])
            if isinstance(answer, BaseException):
                raise answer
            return answer

        self.resource_family = one_at_a_time(family, lock)
        self.order_resources = one_at_a_time(order, lock)
        self.deferred_order_resources = self.order_resources

    def cancel(self) -> None:
        """Nothing to stop: each load runs in its caller's task."""


def naive_loaders(self: Any) -> Any:
    if self._loaders is None:
        self._loaders = NaiveLoaders(self.upstreams, self.caller)
    return self._loaders


def install(set_attribute: Callable[[object, str, Any], None] = setattr) -> None:
    """Patch the gateway into its naive build (tests pass ``monkeypatch.setattr``)."""
    for module in (oma, cbc):
        set_attribute(module, "fetch_range", fetch_range_one_by_one)
        set_attribute(module, "fetch_all", fetch_all_one_by_one)
    set_attribute(schema_context.GatewayContext, "loaders", property(naive_loaders))
    # Strawberry's stock executor: no lookahead, no shortcut, a resolver call per field.
    set_attribute(schema_build, "GatewayExecutor", StrawberryGraphQLCoreExecutionContext)


if __name__ == "__main__":
    install()
    sys.exit(main(["serve"]))

"""Per-request DataLoaders: within one GraphQL request every upstream call is made once.

Loaders live in the request's context and die with it, so nothing loaded for
one caller can reach another.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

from strawberry.dataloader import DataLoader

from gateway.caller import Caller
from gateway.upstreams.cbc import MAX_PAGE_SIZE, MAX_RESOURCE_IDS, ResourceQuery, ResourceRecord
from gateway.upstreams.clients import Upstreams
from gateway.upstreams.resilience import CALL_PRIORITY

DEFERRED_ORDERS_PER_BATCH = 10
"""One second of the documented quota (10 calls/s per API): one call per order."""


@dataclass(frozen=True, slots=True)
class ResourceFamily:
    """A resource as looked up by id, and the resources attached to it."""

    record: ResourceRecord | None
    attached: tuple[ResourceRecord, ...]


class OrderResourcesKey(NamedTuple):
    """What one subscription's ``resources`` asks for. A NamedTuple: its hash is a
    tuple's, in C, where a frozen dataclass's runs Python, and the lookahead, the
    loader and the completion each hash one per subscription."""

    order_id: str
    only_main_resources: bool
    statuses: tuple[int, ...]


class Loaders:
    def __init__(self, upstreams: Upstreams, caller: Callable[[str], Caller]) -> None:
        # The load functions are partials, not bound methods: a loader holding its Loaders
        # would make a cycle, and everything the request loaded would wait for the
        # garbage collector instead of going when the request does.
        # One loader answers resource(), resourcesByIds, parent and attachedResources:
        # CBC with resource_ids and only_main_resource 0 returns the named resources
        # and their attached ones, so one call of 50 ids serves all four.
        # Batches of at most 50 ids (the API's limit) run concurrently, and a failed
        # batch fails only its own keys.
        # The batches in flight, for ``cancel``: their tasks are the DataLoader's own.
        self._in_flight: set[asyncio.Task[Any]] = set()
        self.resource_family: DataLoader[str, ResourceFamily] = DataLoader(
            load_fn=functools.partial(
                _tracked,
                self._in_flight,
                functools.partial(load_resource_families, upstreams, caller),
            ),
            max_batch_size=MAX_RESOURCE_IDS,
        )
        load_orders = functools.partial(
            _tracked, self._in_flight, functools.partial(load_order_resources, upstreams, caller)
        )
        self.order_resources: DataLoader[OrderResourcesKey, tuple[ResourceRecord, ...]] = (
            DataLoader(load_fn=load_orders)
        )
        # Deferred parts load orders a second of the quota at a time, so that under it
        # they arrive a batch a second rather than all at the end (a batch answers when
        # its last call does). The initial payload waits for all of them anyway: one batch.
        self.deferred_order_resources: DataLoader[OrderResourcesKey, tuple[ResourceRecord, ...]] = (
            DataLoader(load_fn=load_orders, max_batch_size=DEFERRED_ORDERS_PER_BATCH)
        )
        # What schema.links made of loaded values, by (future, link): the lookahead and
        # the resolvers then share one set of objects instead of building two.
        self.converted: dict[tuple[int, int], Any] = {}

    def cancel(self) -> None:
        """Stop the batches still loading: the request has ended (its client left in the
        middle of an answer in parts), nobody will read them. A page fetched for other
        requests too goes on for them (the cache shields it)."""
        for task in list(self._in_flight):
            task.cancel()

    def orders(self) -> DataLoader[OrderResourcesKey, tuple[ResourceRecord, ...]]:
        """The loader of orders' resources for the calls made from here: a deferred part's
        own, or the initial payload's."""
        if CALL_PRIORITY.get() == "deferred":
            return self.deferred_order_resources
        return self.order_resources


async def _tracked(
    in_flight: set[asyncio.Task[Any]],
    load: Callable[[list[Any]], Awaitable[list[Any]]],
    keys: list[Any],
) -> list[Any]:
    task = asyncio.current_task()
    assert task is not None  # a DataLoader runs each batch in a task of its own
    in_flight.add(task)
    try:
        return await load(keys)
    finally:
        in_flight.discard(task)


async def load_resource_families(
    upstreams: Upstreams, caller: Callable[[str], Caller], resource_ids: list[str]
) -> list[ResourceFamily]:
    answers = await upstreams.cbc.fetch_resources_by_ids(
        caller("cbc"), resource_ids, only_main_resource=False
    )
    by_id: dict[str, ResourceRecord] = {}
    attached: dict[str, list[ResourceRecord]] = {}
    for records in answers:
        for record in records:
            by_id.setdefault(record.resource_id, record)
    for record in by_id.values():
        if record.parent_resource_id and not record.is_main_resource:
            attached.setdefault(record.parent_resource_id, []).append(record)
    return [
        ResourceFamily(record=by_id.get(rid), attached=tuple(attached.get(rid, ())))
        for rid in resource_ids
    ]


async def load_order_resources(
    upstreams: Upstreams, caller: Callable[[str], Caller], keys: list[OrderResourcesKey]
) -> list[tuple[ResourceRecord, ...] | BaseException]:
    cbc = caller("cbc")
    queries = [
        ResourceQuery(
            order_id=key.order_id,
            only_main_resource=key.only_main_resources,
            statuses=key.statuses,
            limit=MAX_PAGE_SIZE,  # a whole order starts with a full first page
        )
        for key in keys
    ]
    # Orders whose pages are all cached fresh in this process answer at once: a warm
    # batch of a hundred orders then costs no task and no coroutine chain per order.
    answers: list[tuple[ResourceRecord, ...] | BaseException | None] = []
    for query in queries:
        cached = upstreams.cbc.cached_all_resources(cbc, query)
        answers.append(None if cached is None else cached.records)
    missing = [index for index, answer in enumerate(answers) if answer is None]
    # The API takes one order_id per call: one call per distinct order, all in
    # flight together; a failed order fails only the subscriptions that asked for it.
    fetched = await asyncio.gather(
        *(upstreams.cbc.fetch_all_resources(cbc, queries[index]) for index in missing),
        return_exceptions=True,
    )
    for index, page in zip(missing, fetched, strict=True):
        answers[index] = page if isinstance(page, BaseException) else page.records
    return cast("list[tuple[ResourceRecord, ...] | BaseException]", answers)

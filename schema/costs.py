"""The upstream calls each field fans out to: declared with the field, read by the cost
estimate (``schema.limits``).

Each function is a ``schema.links.FanOut``: for a field's arguments (as graphql-core
coerced them, by GraphQL name) and the number of objects it is selected on, the calls it
makes to each upstream and the number of objects its own selection then sees. A root
field carries its function in its metadata (``cost``); a link carries it in its ``Link``.
A field that declares none makes no call and passes its objects on (a connection's nodes,
an edge's node).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from gateway.upstreams.cbc import MAX_PAGE_SIZE as CBC_PAGE_SIZE
from gateway.upstreams.cbc import MAX_RESOURCE_IDS, RESOURCES_QUERY, ResourceQuery
from gateway.upstreams.oma import MAX_PAGE_SIZE as OMA_PAGE_SIZE
from gateway.upstreams.oma import QUERY_RESOURCE, SubscriptionQuery
from schema.links import COST, NO_CALLS, FanOut, UpstreamCalls

# Expected fan-out where the schema cannot know it: resources per order and
# attached resources per primary. Generous, so the estimate errs towards refusing.
RESOURCES_PER_ORDER = 4
ATTACHED_PER_RESOURCE = 3
DEFAULT_FIRST = 20


def cost(fan_out: FanOut) -> dict[str, Any]:
    """The Strawberry field metadata that declares a root field's fan-out."""
    return {COST: fan_out}


def _pages(first: int | None, page_size: int) -> tuple[int, int]:
    """A root list's calls (the pages ``first`` spans, one at least for the total) and
    the objects its selection sees."""
    first = DEFAULT_FIRST if first is None else max(first, 0)
    return max(1, math.ceil(first / page_size)), first


def _no_modification_in_window(arguments: Mapping[str, Any]) -> bool:
    """Whether ``subscriptions``' window holds no millisecond OMA stores."""
    window = arguments.get("window")
    if not isinstance(window, Mapping):
        return False
    # known_answer reads the window only: the limit is any valid one.
    query = SubscriptionQuery(limit=1, start=window.get("from"), end=window.get("to"))
    return QUERY_RESOURCE.known_answer(query) is not None


def _no_expiry_in_window(arguments: Mapping[str, Any]) -> bool:
    """Whether ``resources``' expiry window holds no second CBC stores."""
    resource_filter = arguments.get("filter")
    window = resource_filter.get("expiring") if isinstance(resource_filter, Mapping) else None
    if not isinstance(window, Mapping):
        return False
    expiring = ResourceQuery(expire_from=window.get("from"), expire_to=window.get("to"))
    return RESOURCES_QUERY.known_answer(expiring) is not None


def subscriptions(arguments: Mapping[str, Any], parents: int) -> tuple[UpstreamCalls, int]:
    if _no_modification_in_window(arguments):
        return NO_CALLS, 0  # answered empty without a call
    calls, children = _pages(arguments.get("first"), OMA_PAGE_SIZE)
    return UpstreamCalls(oma=calls), children


def resources(arguments: Mapping[str, Any], parents: int) -> tuple[UpstreamCalls, int]:
    if _no_expiry_in_window(arguments):
        return NO_CALLS, 0  # answered empty without a call
    calls, children = _pages(arguments.get("first"), CBC_PAGE_SIZE)
    return UpstreamCalls(cbc=calls), children


def resource(arguments: Mapping[str, Any], parents: int) -> tuple[UpstreamCalls, int]:
    return UpstreamCalls(cbc=1), 1


def resources_by_ids(arguments: Mapping[str, Any], parents: int) -> tuple[UpstreamCalls, int]:
    count = len(arguments["resourceIds"])
    return UpstreamCalls(cbc=math.ceil(count / MAX_RESOURCE_IDS)), count


def order_resources(arguments: Mapping[str, Any], parents: int) -> tuple[UpstreamCalls, int]:
    """One call per order: the API takes one order_id at a time."""
    return UpstreamCalls(cbc=parents), parents * RESOURCES_PER_ORDER


def parent(arguments: Mapping[str, Any], parents: int) -> tuple[UpstreamCalls, int]:
    return UpstreamCalls(cbc=math.ceil(parents / MAX_RESOURCE_IDS)), parents


def attached_resources(arguments: Mapping[str, Any], parents: int) -> tuple[UpstreamCalls, int]:
    calls = math.ceil(parents / MAX_RESOURCE_IDS)
    return UpstreamCalls(cbc=calls), parents * ATTACHED_PER_RESOURCE


__all__ = [
    "ATTACHED_PER_RESOURCE",
    "DEFAULT_FIRST",
    "RESOURCES_PER_ORDER",
    "attached_resources",
    "cost",
    "order_resources",
    "parent",
    "resource",
    "resources",
    "resources_by_ids",
    "subscriptions",
]

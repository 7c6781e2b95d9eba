"""The root ``Query`` type."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from gateway.errors import InvalidRequest
from gateway.upstreams.cbc import MAX_ORDER_ID_LENGTH, MAX_RESOURCE_IDS, ResourcePage, ResourceQuery
from schema import costs
from schema.context import GatewayContext
from schema.costs import cost
from schema.cursors import decode_cursor, encode_cursor
from schema.enums import resource_status_codes
from schema.inputs import ResourceFilter, TimeWindow
from schema.types import (
    CloudResource,
    Connection,
    PageInfo,
    SoftwareSubscription,
    family_head,
    resource_objects,
    subscription_objects,
)

SUBSCRIPTIONS = "subscriptions"
RESOURCES = "resources"
MAX_IDS_PER_QUERY = 1_000
DEFAULT_FIRST = 20


def page_window(
    connection: str, first: int | None, after: str | None, max_first: int
) -> tuple[int, int]:
    """(offset, count) of a page; refuses a bad ``first`` or a foreign cursor."""
    if first is None:
        first = DEFAULT_FIRST
    if first < 0:
        raise InvalidRequest("`first` must not be negative")
    if first > max_first:
        raise InvalidRequest(f"`first` may be at most {max_first}, got {first}")
    return (0 if after is None else decode_cursor(connection, after) + 1), first


def page_info(connection: str, offset: int, count: int, total: int) -> PageInfo:
    return PageInfo(
        has_next_page=offset + count < total,
        has_previous_page=offset > 0,
        start_cursor=encode_cursor(connection, offset) if count else None,
        end_cursor=encode_cursor(connection, offset + count - 1) if count else None,
    )


FIRST_DESCRIPTION = "How many items to return (0 to the configured maximum, 1000 by default)."
AFTER_DESCRIPTION = "Return the items after this cursor (`pageInfo.endCursor` of the last page)."


@strawberry.type(description="Read business software subscriptions and cloud resources.")
class Query:
    @strawberry.field(
        description=(
            "Software subscriptions of the caller (OMA), in the order OMA lists them. "
            "`window` bounds their modification time. Null, with an error, when OMA fails."
        ),
        metadata=cost(costs.subscriptions),
    )
    async def subscriptions(
        self,
        info: Info[GatewayContext, None],
        window: Annotated[
            TimeWindow | None, strawberry.argument(description="Modification time window.")
        ] = None,
        first: Annotated[int | None, strawberry.argument(description=FIRST_DESCRIPTION)] = 20,
        after: Annotated[str | None, strawberry.argument(description=AFTER_DESCRIPTION)] = None,
    ) -> Connection[SoftwareSubscription] | None:
        context = info.context
        offset, count = page_window(SUBSCRIPTIONS, first, after, context.limits.max_first)
        start, end = window.bounds() if window else (None, None)
        page = await context.upstreams.oma.fetch_subscription_range(
            context.caller("oma"), offset=offset, count=count, start=start, end=end
        )
        nodes = subscription_objects.lazy(page.records)
        return Connection(
            total_count=page.total,
            page_info=page_info(SUBSCRIPTIONS, offset, len(nodes), page.total),
            nodes=nodes,
            connection=SUBSCRIPTIONS,
            offset=offset,
        )

    @strawberry.field(
        description="Yearly/monthly cloud resources of the caller (CBC). Null, with an error, "
        "when CBC fails.",
        metadata=cost(costs.resources),
    )
    async def resources(
        self,
        info: Info[GatewayContext, None],
        filter: Annotated[
            ResourceFilter | None, strawberry.argument(description="Which resources.")
        ] = None,
        first: Annotated[int | None, strawberry.argument(description=FIRST_DESCRIPTION)] = 20,
        after: Annotated[str | None, strawberry.argument(description=AFTER_DESCRIPTION)] = None,
    ) -> Connection[CloudResource] | None:
        context = info.context
        offset, count = page_window(RESOURCES, first, after, context.limits.max_first)
        query = resource_query(filter)
        caller = context.caller("cbc")
        if filter is not None and filter.resource_ids == []:
            # Only these resources, and there are none: CBC would read an absent list
            # and answer every resource.
            page = ResourcePage(records=(), total=0)
        else:
            page = await context.upstreams.cbc.fetch_resource_range(
                caller, query, offset=offset, count=count
            )
        nodes = resource_objects.lazy(page.records)
        return Connection(
            total_count=page.total,
            page_info=page_info(RESOURCES, offset, len(nodes), page.total),
            nodes=nodes,
            connection=RESOURCES,
            offset=offset,
        )

    @strawberry.field(
        description="One cloud resource by its resource id, or null if not found.",
        metadata=cost(costs.resource),
    )
    async def resource(
        self, info: Info[GatewayContext, None], resource_id: strawberry.ID
    ) -> CloudResource | None:
        check_resource_ids([resource_id])
        family = await info.context.loaders.resource_family.load(resource_id)
        return family_head(family)

    @strawberry.field(
        description=(
            "Cloud resources by resource id, in the order asked; null where an id is not found. "
            "Fetched in CBC calls of at most 50 ids. Null, with an error, when CBC fails."
        ),
        metadata=cost(costs.resources_by_ids),
    )
    async def resources_by_ids(
        self, info: Info[GatewayContext, None], resource_ids: list[strawberry.ID]
    ) -> list[CloudResource | None] | None:
        check_resource_ids(resource_ids)
        families = await info.context.loaders.resource_family.load_many(list(resource_ids))
        return [family_head(family) for family in families]


def check_resource_ids(resource_ids: list[strawberry.ID]) -> None:
    if len(resource_ids) > MAX_IDS_PER_QUERY:
        raise InvalidRequest(f"at most {MAX_IDS_PER_QUERY} resource ids, got {len(resource_ids)}")
    if any(not rid or len(rid) > 128 for rid in resource_ids):
        raise InvalidRequest("a resource id is 1..128 characters")


def resource_query(resource_filter: ResourceFilter | None) -> ResourceQuery:
    """A ``ResourceFilter`` in CBC's terms, refused before any call when CBC would refuse it."""
    if resource_filter is None:
        return ResourceQuery()
    ids = tuple(dict.fromkeys(resource_filter.resource_ids or ()))
    if len(ids) > MAX_RESOURCE_IDS:
        raise InvalidRequest(
            f"filter.resourceIds takes at most {MAX_RESOURCE_IDS} ids (the CBC limit); "
            f"use resourcesByIds for more"
        )
    order_id = resource_filter.order_id
    if order_id is not None and not 1 <= len(order_id) <= MAX_ORDER_ID_LENGTH:
        raise InvalidRequest(f"filter.orderId must be 1..{MAX_ORDER_ID_LENGTH} characters")
    expire_from, expire_to = (
        resource_filter.expiring.bounds() if resource_filter.expiring else (None, None)
    )
    return ResourceQuery(
        resource_ids=ids,
        order_id=order_id,
        only_main_resource=bool(resource_filter.only_main_resources),
        statuses=resource_status_codes(resource_filter.statuses),
        expire_from=expire_from,
        expire_to=expire_to,
    )

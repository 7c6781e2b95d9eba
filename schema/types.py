"""The object types: OMA subscriptions and CBC resources, linked.

Types are built from the upstream clients' typed records, never from upstream
JSON. Scalar fields are plain attributes (the default resolver is a getattr,
the cheapest Strawberry has); only the links to other records resolve through
the request's loaders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

import strawberry
from strawberry.types import Info

from gateway.upstreams.cbc import ResourceRecord
from gateway.upstreams.oma import SubscriptionRecord
from schema import costs
from schema.context import GatewayContext
from schema.cursors import encode_cursor
from schema.enums import (
    ExpirePolicy,
    ResourceStatus,
    SubscriptionStatus,
    expire_policy,
    resource_status,
    resource_status_codes,
    subscription_status,
)
from schema.execution.objects import record_maker
from schema.execution.views import ObjectsByRecord
from schema.links import Link
from schema.loaders import Loaders, OrderResourcesKey, ResourceFamily

AUTO_RENEW_POLICY = 3
T = TypeVar("T")


# The linking fields, each declared once as a Link (schema.links): its resolver, the
# lookahead's prefetch and the executor's shortcut all read it. The functions refer to
# the types by name when called, after the types exist.


def family_head(family: ResourceFamily) -> CloudResource | None:
    return resource_objects.object_of(family.record) if family.record else None


def resource_list(records: Sequence[ResourceRecord]) -> Sequence[CloudResource]:
    # Lazily: a selection of plain fields is completed from the records themselves.
    return resource_objects.lazy(records)


def family_attached(family: ResourceFamily) -> Sequence[CloudResource]:
    return resource_list(family.attached)


def parent_key(resource: CloudResource, arguments: Mapping[str, Any]) -> str | None:
    # A primary has no parent; an attached resource names its primary.
    if not resource.parent_resource_id or resource.is_main_resource:
        return None
    return resource.parent_resource_id


def attached_key(resource: CloudResource, arguments: Mapping[str, Any]) -> str | None:
    # Only a primary has resources attached to it.
    return resource.resource_id if resource.is_main_resource else None


def order_resources_key(
    subscription: SoftwareSubscription, arguments: Mapping[str, Any]
) -> OrderResourcesKey:
    return OrderResourcesKey(
        order_id=subscription.order_id,
        only_main_resources=bool(arguments.get("only_main_resources")),
        statuses=resource_status_codes(arguments.get("statuses")),
    )


PARENT: Link[CloudResource, str, ResourceFamily, CloudResource | None] = Link(
    loader=lambda loaders: loaders.resource_family,
    key=parent_key,
    convert=family_head,
    empty=None,
    fan_out=costs.parent,
)
ATTACHED: Link[CloudResource, str, ResourceFamily, Sequence[CloudResource]] = Link(
    loader=lambda loaders: loaders.resource_family,
    key=attached_key,
    convert=family_attached,
    empty=[],
    fan_out=costs.attached_resources,
)
ORDER_RESOURCES: Link[
    SoftwareSubscription, OrderResourcesKey, tuple[ResourceRecord, ...], Sequence[CloudResource]
] = Link(
    loader=Loaders.orders,
    key=order_resources_key,
    convert=resource_list,
    empty=[],
    fan_out=costs.order_resources,
)


@strawberry.type(
    description=(
        "A yearly/monthly cloud resource bought through CBC: a primary resource "
        "(e.g. a server) or one attached to a primary (e.g. its disk)."
    )
)
class CloudResource:
    id: strawberry.ID = strawberry.field(description="CBC's internal id of the provisioning.")
    resource_id: strawberry.ID = strawberry.field(
        description="The resource's id in its cloud service (e.g. the ECS server id)."
    )
    name: str | None = strawberry.field(description="Resource instance name.")
    region_code: str | None = strawberry.field(description="Region, e.g. cn-north-1.")
    service_type_code: str | None = strawberry.field(
        description="Cloud service type, e.g. hws.service.type.ebs."
    )
    resource_type_code: str | None = strawberry.field(
        description="Resource type, e.g. hws.resource.type.volume."
    )
    spec_code: str | None = strawberry.field(
        description="Resource specification, e.g. s2.small.1.linux."
    )
    project_id: str | None = strawberry.field(description="Project the resource belongs to.")
    product_id: str | None = strawberry.field(description="Product id.")
    is_main_resource: bool = strawberry.field(
        description="True for a primary resource, false for one attached to a primary."
    )
    status: ResourceStatus | None = strawberry.field(description="Resource state.")
    effective_at: datetime | None = strawberry.field(description="When the resource took effect.")
    expires_at: datetime | None = strawberry.field(description="When the resource expires.")
    expire_policy: ExpirePolicy | None = strawberry.field(
        description="What happens when it expires."
    )
    auto_renew: bool = strawberry.field(
        description="True when the resource renews itself on expiry (expirePolicy AUTO_RENEW)."
    )
    parent_resource_id: strawberry.ID | None = strawberry.field(
        description="The primary resource this one is attached to, if any."
    )

    # Answered by their links (schema.links): at once when there is nothing to load (a
    # primary has no parent, an attached resource no attachments) or when the lookahead
    # has loaded it already, an awaitable otherwise.
    @PARENT.field(description="The primary resource this one is attached to.")
    def parent(self, info: Info[GatewayContext, None]) -> CloudResource | None:
        """The link's."""

    @ATTACHED.field(
        description="The resources attached to this primary one. "
        "Null, with an error, when CBC fails."
    )
    def attached_resources(self, info: Info[GatewayContext, None]) -> list[CloudResource] | None:
        """The link's."""


@strawberry.type(description="A business software mall subscription, as OMA stores it.")
class SoftwareSubscription:
    id: strawberry.ID = strawberry.field(description="Subscription id.")
    order_id: str = strawberry.field(
        description="The order that bought it; also the CBC order of its cloud resources."
    )
    status: SubscriptionStatus | None = strawberry.field(description="Subscription state.")
    created_at: datetime | None = strawberry.field(description="When it was subscribed.")
    modified_at: datetime | None = strawberry.field(description="When it last changed.")
    expires_at: datetime | None = strawberry.field(description="When it expires.")
    cec_expires_at: datetime | None = strawberry.field(
        description="Expiry as calculated manually by the CEC."
    )
    sku_name: str | None = strawberry.field(description="Product type, e.g. telemarketing agent.")
    sku_code: str | None = strawberry.field(description="SKU code.")
    charging_mode: str | None = strawberry.field(
        description="Charging mode, e.g. monthly (OMA's `procutName`)."
    )
    product_id: str | None = strawberry.field(description="Charging mode code.")
    order_amount: str | None = strawberry.field(
        description="Order amount, as OMA writes it (a decimal string)."
    )
    quantity: int | None = strawberry.field(description="Number of subscriptions (`amount`).")
    period_number: int | None = strawberry.field(description="Number of subscription periods.")
    period_type: str | None = strawberry.field(description="Subscription unit, e.g. month.")
    operation_type: str | None = strawberry.field(description="Operation, e.g. newInstance.")
    remark: str | None = strawberry.field(description="Remarks.")
    customer_id: str | None = strawberry.field(description="Customer id.")
    customer_name: str | None = strawberry.field(description="Customer name.")
    company: str | None = strawberry.field(description="Company.")
    vdn_id: str | None = strawberry.field(description="VDN id.")
    cec_tenant_id: str | None = strawberry.field(description="CEC tenant id.")
    cec_tenant_name: str | None = strawberry.field(description="CEC tenant name.")
    cec_feature_type: str | None = strawberry.field(description="Feature type.")
    create_source: str | None = strawberry.field(description="Where the order came from.")
    manual_status: str | None = strawberry.field(description="Manual processing status.")
    auto_status: str | None = strawberry.field(description="Automatic processing status.")
    trial: bool | None = strawberry.field(description="True for a trial subscription.")
    retry_times: int | None = strawberry.field(description="Maximum number of retries.")

    @ORDER_RESOURCES.field(
        description="The CBC resources bought by this subscription's order. Null, with an error, "
        "when CBC fails: the subscription itself still answers."
    )
    def resources(
        self,
        info: Info[GatewayContext, None],
        only_main_resources: Annotated[
            bool | None, strawberry.argument(description="Only primary resources.")
        ] = None,
        statuses: Annotated[
            list[ResourceStatus] | None,
            strawberry.argument(description="Only resources in these states."),
        ] = None,
    ) -> list[CloudResource] | None:
        """The link's."""


def auto_renews(record: ResourceRecord) -> bool:
    return record.expire_policy == AUTO_RENEW_POLICY


# Each type from its record: the record's fields by name (ids as they are: strawberry.ID
# is str), codes as enums (schema.objects).
resource_from_record = record_maker(
    CloudResource,
    ResourceRecord._fields,
    converted={"status": resource_status, "expire_policy": expire_policy},
    derived={"auto_renew": auto_renews},
)
subscription_from_record = record_maker(
    SoftwareSubscription, SubscriptionRecord._fields, converted={"status": subscription_status}
)
# Objects of records seen twice are kept with them and handed out again (schema.views).
resource_objects = ObjectsByRecord(resource_from_record)
subscription_objects = ObjectsByRecord(subscription_from_record)


@strawberry.type(description="Where a page of a connection stands.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="More items follow this page.")
    has_previous_page: bool = strawberry.field(description="Items precede this page.")
    start_cursor: str | None = strawberry.field(description="Cursor of the first item.")
    end_cursor: str | None = strawberry.field(
        description="Cursor of the last item: pass it as `after` for the next page."
    )


@strawberry.type(description="An item of a page and its cursor.")
class Edge(Generic[T]):
    cursor: str = strawberry.field(description="Pass as `after` to continue after this item.")
    node: T = strawberry.field(description="The item.")


@strawberry.type(description="A page of items.")
class Connection(Generic[T]):
    total_count: int = strawberry.field(description="All items matching, on every page.")
    page_info: PageInfo = strawberry.field(description="Where this page stands.")
    nodes: Sequence[T] = strawberry.field(description="The items alone.")
    connection: strawberry.Private[str]
    offset: strawberry.Private[int]

    @strawberry.field(description="The items with their cursors.")
    def edges(self) -> list[Edge[T]]:
        # Edges are built only when asked for: a cursor costs a hash, and most clients
        # want nodes alone.
        return [
            Edge(cursor=encode_cursor(self.connection, self.offset + index), node=node)
            for index, node in enumerate(self.nodes)
        ]

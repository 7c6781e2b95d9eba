"""Input types of the schema."""

from __future__ import annotations

from datetime import datetime

import strawberry

from gateway.errors import InvalidRequest
from schema.enums import ResourceStatus


@strawberry.input(description="A span of time; either end may be open.")
class TimeWindow:
    from_: datetime | None = strawberry.field(
        default=None, name="from", description="Earliest instant, inclusive."
    )
    to: datetime | None = strawberry.field(default=None, description="Latest instant, inclusive.")

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        """The window's ends; refuses one that starts after it ends."""
        if self.from_ is not None and self.to is not None and self.from_ > self.to:
            raise InvalidRequest("TimeWindow: `from` is after `to`")
        return self.from_, self.to


@strawberry.input(description="Which cloud resources to list; every part is optional.")
class ResourceFilter:
    order_id: str | None = strawberry.field(
        default=None, description="Only the resources bought by this order (at most 64 characters)."
    )
    resource_ids: list[strawberry.ID] | None = strawberry.field(
        default=None,
        description=(
            "Only these resources (and, unless onlyMainResources, those attached to them). "
            "An empty list matches none."
        ),
    )
    only_main_resources: bool | None = strawberry.field(
        default=None, description="Only primary resources, not attached ones."
    )
    statuses: list[ResourceStatus] | None = strawberry.field(
        default=None, description="Only resources in these states (PROVISIONED, FROZEN, EXPIRED)."
    )
    expiring: TimeWindow | None = strawberry.field(
        default=None, description="Only resources whose expiry falls in this window."
    )

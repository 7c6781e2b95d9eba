"""Enums instead of the upstreams' magic numbers."""

from __future__ import annotations

import enum
import logging

import strawberry

logger = logging.getLogger("gateway.schema")


@strawberry.enum(description="State of a software subscription (OMA `status`).")
class SubscriptionStatus(enum.Enum):
    EFFECTIVE = strawberry.enum_value(2, description="In effect.")
    EXPIRED = strawberry.enum_value(8, description="Expired.")
    HISTORICAL = strawberry.enum_value(9, description="Superseded; kept as history.")


@strawberry.enum(description="State of a cloud resource (CBC `status`).")
class ResourceStatus(enum.Enum):
    PROVISIONED = strawberry.enum_value(2, description="Provisioned and in use.")
    CLOSED = strawberry.enum_value(3, description="Closed; not visible to customers.")
    FROZEN = strawberry.enum_value(4, description="Frozen.")
    EXPIRED = strawberry.enum_value(5, description="Expired.")


@strawberry.enum(
    description="What happens when a yearly/monthly resource expires (CBC `expire_policy`)."
)
class ExpirePolicy(enum.Enum):
    GRACE_PERIOD = strawberry.enum_value(0, description="Enters the grace period.")
    TO_PAY_PER_USE = strawberry.enum_value(1, description="Turns into pay-per-use.")
    DELETE = strawberry.enum_value(2, description="Deleted at once on expiry.")
    AUTO_RENEW = strawberry.enum_value(3, description="Renewed automatically.")
    FREEZE = strawberry.enum_value(4, description="Frozen on expiry.")
    DELETE_FROM_RETENTION = strawberry.enum_value(
        5, description="Deleted from the retention period on expiry."
    )


_SUBSCRIPTION_STATUSES = {member.value: member for member in SubscriptionStatus}
_RESOURCE_STATUSES = {member.value: member for member in ResourceStatus}
_EXPIRE_POLICIES = {member.value: member for member in ExpirePolicy}


def _lookup(table: dict[int, enum.Enum], value: int | None, what: str) -> enum.Enum | None:
    if value is None:
        return None
    member = table.get(value)
    if member is None:
        # A value the documentation does not list: null is honest, a crash is not.
        logger.warning("undocumented enum value", extra={"field": what, "value": value})
    return member


def subscription_status(value: int | None) -> SubscriptionStatus | None:
    return _lookup(_SUBSCRIPTION_STATUSES, value, "status")  # type: ignore[return-value]


def resource_status(value: int | None) -> ResourceStatus | None:
    return _lookup(_RESOURCE_STATUSES, value, "status")  # type: ignore[return-value]


def expire_policy(value: int | None) -> ExpirePolicy | None:
    return _lookup(_EXPIRE_POLICIES, value, "expire_policy")  # type: ignore[return-value]

"""Enums instead of the upstreams' magic numbers."""

from __future__ import annotations

import enum
import logging
from typing import TypeVar

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


# The upstreams' codes, both ways. Explicit tables: the codes are the contract.
SUBSCRIPTION_STATUS_CODES: dict[SubscriptionStatus, int] = {
    SubscriptionStatus.EFFECTIVE: 2,
    SubscriptionStatus.EXPIRED: 8,
    SubscriptionStatus.HISTORICAL: 9,
}
RESOURCE_STATUS_CODES: dict[ResourceStatus, int] = {
    ResourceStatus.PROVISIONED: 2,
    ResourceStatus.CLOSED: 3,
    ResourceStatus.FROZEN: 4,
    ResourceStatus.EXPIRED: 5,
}
EXPIRE_POLICY_CODES: dict[ExpirePolicy, int] = {
    ExpirePolicy.GRACE_PERIOD: 0,
    ExpirePolicy.TO_PAY_PER_USE: 1,
    ExpirePolicy.DELETE: 2,
    ExpirePolicy.AUTO_RENEW: 3,
    ExpirePolicy.FREEZE: 4,
    ExpirePolicy.DELETE_FROM_RETENTION: 5,
}
_SUBSCRIPTION_STATUSES = {code: member for member, code in SUBSCRIPTION_STATUS_CODES.items()}
_RESOURCE_STATUSES = {code: member for member, code in RESOURCE_STATUS_CODES.items()}
_EXPIRE_POLICIES = {code: member for member, code in EXPIRE_POLICY_CODES.items()}

E = TypeVar("E", bound=enum.Enum)


# Undocumented values already reported: once each, not once per record per request (a
# connection's nodes are converted from their records on every request). Bounded: past
# it, every sighting is reported again.
_REPORTED: set[tuple[int, int]] = set()  # (id of the enum's table, value)
_MAX_REPORTED = 1024


def _lookup(table: dict[int, E], value: int | None, what: str) -> E | None:
    if value is None:
        return None
    member = table.get(value)
    if member is None and (id(table), value) not in _REPORTED:
        # A value the documentation does not list: null is honest, a crash is not.
        logger.warning("undocumented enum value", extra={"field": what, "value": value})
        if len(_REPORTED) < _MAX_REPORTED:
            _REPORTED.add((id(table), value))
    return member


def subscription_status(value: int | None) -> SubscriptionStatus | None:
    return _lookup(_SUBSCRIPTION_STATUSES, value, "status")


def resource_status(value: int | None) -> ResourceStatus | None:
    return _lookup(_RESOURCE_STATUSES, value, "status")


def expire_policy(value: int | None) -> ExpirePolicy | None:
    return _lookup(_EXPIRE_POLICIES, value, "expire_policy")


def resource_status_codes(statuses: list[ResourceStatus] | None) -> tuple[int, ...]:
    if not statuses:
        return ()  # the usual case, once per subscription: no filter
    return tuple(sorted({RESOURCE_STATUS_CODES[s] for s in statuses}))

"""The ``DateTime`` scalar: one form of time for every client.

Output is ISO-8601 UTC with ``Z`` (milliseconds only when not zero). Input also
accepts epoch milliseconds, as an Int or a numeric string, and ISO-8601 strings
with any offset, because clients of OMA think in epoch ms and clients of CBC in
UTC strings.
"""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types.scalar import ScalarDefinition

from gateway.times import format_iso, parse_client_time

DATETIME_DESCRIPTION = (
    "An instant, always UTC, written as ISO-8601 with Z: 2023-03-23T08:07:34Z "
    "(milliseconds only when not zero). As input it also accepts epoch milliseconds "
    "(an Int, or a numeric string) and ISO-8601 strings with any offset."
)


def serialize_datetime(value: object) -> str:
    if not isinstance(value, datetime):
        raise TypeError("DateTime cannot represent a non-datetime value")
    return format_iso(value)


def parse_datetime(value: object) -> datetime:
    try:
        return parse_client_time(value)
    except ValueError as exc:
        raise ValueError(f"DateTime: {exc}") from None


DATETIME_SCALAR: ScalarDefinition = strawberry.scalar(
    name="DateTime",
    description=DATETIME_DESCRIPTION,
    serialize=serialize_datetime,
    parse_value=parse_datetime,
)

SCALAR_MAP: dict[object, ScalarDefinition] = {datetime: DATETIME_SCALAR}

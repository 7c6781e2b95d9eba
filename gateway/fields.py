"""Tolerant readers for upstream record fields.

The upstreams' examples contradict their own tables: numbers arrive as strings,
strings as numbers, ``null`` where a field is "mandatory", and documented
fields go missing. A reader turns what arrived into the documented type, or
``None`` with a warning, so one odd field never fails a whole page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

logger = logging.getLogger("gateway.upstream")


def read_text(record: Mapping[str, Any], name: str) -> str | None:
    value = record.get(name)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    logger.warning("unexpected field type", extra={"field": name, "type": type(value).__name__})
    return None


def read_int(record: Mapping[str, Any], name: str) -> int | None:
    value = record.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    logger.warning("field is not an integer", extra={"field": name, "value": repr(value)[:40]})
    return None


def read_time(
    record: Mapping[str, Any], name: str, parse: Callable[[object], datetime]
) -> datetime | None:
    """A time field; an unparseable time becomes ``None`` and a warning, never a failed page."""
    value = record.get(name)
    if value is None or value == "":
        return None
    try:
        return parse(value)
    except (ValueError, OverflowError):
        logger.warning("unparseable time", extra={"field": name, "value": repr(value)[:40]})
        return None

"""Tolerant readers for upstream record fields.

The upstreams' examples contradict their own tables: numbers arrive as strings,
strings as numbers, ``null`` where a field is "mandatory", and documented
fields go missing. A reader turns what arrived into the documented type, or
``None`` with a warning, so one odd field never fails a whole page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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


def json_objects(items: list[Any]) -> Sequence[Mapping[str, Any]]:
    """The objects of a JSON list, skipping anything else in it. Usually all are dicts,
    found by one pass in C: an ``isinstance`` against ``Mapping`` per item is a Python
    call (an ABC's check), a millisecond over a thousand records."""
    if set(map(type, items)) <= {dict}:
        return items
    return [item for item in items if isinstance(item, Mapping)]


new_record = tuple.__new__
"""``new_record(RecordType, values)``: a record (a NamedTuple) from its values in field
order, as ``_make`` builds it, without ``_make``'s Python frame: one per record read."""

Reader = Callable[[Mapping[str, Any], str], Any]


@dataclass(frozen=True, slots=True)
class FieldKind:
    """How one kind of field is read: the tolerant ``read``, the value types it returns
    as they are (``kept``), and quicker conversions for some other types (``quick``).
    A quick conversion must give what ``read`` gives, or raise so that ``read`` decides."""

    read: Reader
    kept: frozenset[type]
    quick: Mapping[type, Callable[[Any], Any]]


TEXT = FieldKind(read_text, frozenset({str, type(None)}), {})
# int() strips whitespace as read_int does; "" and anything else it refuses go to read_int.
INT = FieldKind(read_int, frozenset({int, type(None)}), {str: int})


def time_kind(
    parse: Callable[[object], datetime], quick: Mapping[type, Callable[[Any], datetime]]
) -> FieldKind:
    """A time field read by ``parse``, with quicker conversions for some value types."""

    def read(record: Mapping[str, Any], name: str) -> datetime | None:
        return read_time(record, name, parse)

    return FieldKind(read, frozenset({type(None)}), quick)


_Plan = tuple[tuple[int, Callable[[Any], Any] | None], ...]
_MAX_PLANS = 64


class RecordFields:
    """Reads a record's fields, each by its kind, in one pass.

    Each field through its reader costs a call or more per field, 12 µs for a record
    of OMA's 29 fields. Records of one upstream arrive with the same value types field
    after field, so the work is planned once per combination of types: which fields
    are kept as they are, which have a quick conversion, which need their reader.
    The answer is always what the readers would give (tests check it).
    """

    def __init__(self, fields: Sequence[tuple[str, FieldKind]]) -> None:
        self.names = tuple(name for name, _ in fields)
        self._kinds = tuple(kind for _, kind in fields)
        # A bounded number: an upstream with ever new combinations is read without plans.
        self._plans: dict[tuple[type, ...], _Plan] = {}

    def read(self, record: Mapping[str, Any]) -> list[Any]:
        """The fields' values in the order they were declared."""
        values = list(map(record.get, self.names))
        signature = tuple(map(type, values))
        plan = self._plans.get(signature)
        if plan is None:
            plan = self._plan(signature)
        for index, quick in plan:
            if quick is not None:
                try:
                    values[index] = quick(values[index])
                    continue
                except (ValueError, TypeError, OverflowError):
                    pass
            name = self.names[index]
            values[index] = self._kinds[index].read(record, name)
        return values

    def _plan(self, signature: tuple[type, ...]) -> _Plan:
        plan = tuple(
            (index, kind.quick.get(value_type))
            for index, (kind, value_type) in enumerate(zip(self._kinds, signature, strict=True))
            if value_type not in kind.kept
        )
        if len(self._plans) < _MAX_PLANS:
            self._plans[signature] = plan
        return plan

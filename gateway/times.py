"""The one form of time inside the gateway: timezone-aware UTC ``datetime``.

OMA speaks epoch milliseconds (numbers or numeric strings), CBC speaks
``yyyy-MM-ddTHH:mm:ssZ`` strings. These functions translate both ways at the
upstream boundary, and parse what GraphQL clients send.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import repeat
from operator import attrgetter, is_

import orjson

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_SECOND = timedelta(seconds=1)
# Years 0001..9999 only: what datetime can hold, in epoch milliseconds.
_MIN_MS = -62_135_596_800_000
_MAX_MS = 253_402_300_799_999
# Below 2**32 seconds (years 1833..2106) ``value / 1000`` is within 0.24 µs of the exact
# instant (half a float's spacing there), and ``fromtimestamp`` rounds to the nearest
# microsecond: the exact millisecond, half the cost of adding a timedelta to the epoch.
FLOAT_EXACT_MS = 2**32 * 1000
"""Epoch milliseconds strictly within this bound are read exactly as
``datetime.fromtimestamp(value / 1000, UTC)`` (``gateway.oma`` has its reader write
that out)."""
_from_timestamp = datetime.fromtimestamp
_NUMERIC = re.compile(r"^[+-]?\d+(\.0*)?$")
_CBC_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_CBC_EXACT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_TO_SECONDS = orjson.OPT_UTC_Z | orjson.OPT_OMIT_MICROSECONDS
_TIME_ZONE = attrgetter("tzinfo")


def from_epoch_ms(value: int) -> datetime:
    """Epoch milliseconds to an aware UTC datetime; ``ValueError`` outside years 1..9999."""
    if -FLOAT_EXACT_MS < value < FLOAT_EXACT_MS:
        return _from_timestamp(value / 1000, UTC)
    if not _MIN_MS <= value <= _MAX_MS:
        raise ValueError(f"epoch milliseconds out of range: {value}")
    # Positional (days, seconds, microseconds, milliseconds): a third cheaper than keywords.
    return _EPOCH + timedelta(0, 0, 0, value)


def from_epoch_ms_digits(value: str) -> datetime:
    """Epoch milliseconds written as ASCII digits alone (how OMA often sends them): what
    ``parse_epoch_ms`` gives for such text, without its pattern. ``ValueError`` for any
    other text, which ``parse_epoch_ms`` then reads."""
    if not (value.isascii() and value.isdigit()):
        raise ValueError(f"not plain digits: {value!r}")
    return from_epoch_ms(int(value))


def to_epoch_ms(moment: datetime, *, round_up: bool = False) -> int:
    """An aware datetime to epoch milliseconds (what OMA expects for startDate/endDate):
    the millisecond it falls in, or with ``round_up`` the first one not before it."""
    delta = moment.astimezone(UTC) - _EPOCH
    ms, micro = divmod(delta.microseconds, 1000)
    return delta.days * 86_400_000 + delta.seconds * 1000 + ms + (1 if round_up and micro else 0)


def whole_second(moment: datetime, *, round_up: bool = False) -> datetime | None:
    """The UTC second ``moment`` falls in, or with ``round_up`` the first whole second
    not before it; None when that is past the last one a datetime holds. In UTC, not in
    the moment's own zone: wall-clock arithmetic across a DST change is an hour off."""
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        # Beyond what a UTC datetime holds (year 1 or 9999 in another zone): clamped.
        if moment.year == 1:
            return datetime.min.replace(tzinfo=UTC)
        return None if round_up else datetime.max.replace(microsecond=0, tzinfo=UTC)
    floor = moment.replace(microsecond=0)
    if not round_up or floor == moment:
        return floor
    try:
        return floor + _ONE_SECOND
    except OverflowError:
        return None


def parse_epoch_ms(value: object) -> datetime:
    """OMA's time fields: a number or a numeric string of epoch milliseconds."""
    if type(value) is int:
        return from_epoch_ms(value)
    if isinstance(value, bool):
        raise ValueError("a boolean is not a time")
    if isinstance(value, int):
        return from_epoch_ms(value)
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ValueError(f"not whole epoch milliseconds: {value!r}")
        return from_epoch_ms(int(value))
    if isinstance(value, str) and _NUMERIC.match(value.strip()):
        return from_epoch_ms(int(value.strip().split(".")[0]))
    raise ValueError(f"not epoch milliseconds: {value!r}")


def parse_cbc_time(value: object) -> datetime:
    """CBC's time fields: ``yyyy-MM-ddTHH:mm:ssZ`` in UTC."""
    if not isinstance(value, str):
        raise ValueError(f"not a UTC time string: {value!r}")
    if _CBC_EXACT.fullmatch(value):
        # The documented form exactly: fromisoformat reads it (Z included) twenty times
        # faster than strptime, which stays for the looser forms it also accepts.
        return datetime.fromisoformat(value)
    return datetime.strptime(value, _CBC_FORMAT).replace(tzinfo=UTC)


def format_cbc_time(moment: datetime) -> str:
    """An aware datetime as CBC expects it; sub-second parts are dropped (CBC has none)."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def format_iso(moment: datetime) -> str:
    """The gateway's output form: ISO-8601 UTC with ``Z``, milliseconds only when not zero."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    # orjson writes RFC 3339 in C, years padded to four digits: five times cheaper than
    # ``isoformat`` (about 0.3 against 1.5 µs), which thousands of times per large answer
    # is milliseconds. Sub-millisecond digits are dropped.
    if moment.microsecond < 1000:
        return orjson.dumps(moment, option=_TO_SECONDS)[1:-1].decode()
    return orjson.dumps(moment, option=orjson.OPT_UTC_Z)[1:24].decode() + "Z"


def format_iso_many(moments: Sequence[datetime | None]) -> list[str | None]:
    """``format_iso`` of each (None stays None), for a column of a large answer.

    One ``orjson.dumps`` of the whole column and one split: about half the cost of
    ``format_iso`` on each value (a frame and three calls each). Only a column of plain
    datetimes at ``UTC`` itself takes that way: orjson writes an offset from the days and
    seconds of ``utcoffset()`` alone (half a second would read as ``Z``), and crashes on a
    ``tzinfo`` whose ``utcoffset`` raises. Whole seconds and whole milliseconds (all that
    either upstream holds) are written so; a sub-millisecond digit sends the column, as
    anything else does, through ``format_iso`` value by value. Types and zones are
    compared by identity: a class or a tzinfo can make itself equal to another."""
    if any(map(is_, moments, repeat(None))):
        present = iter(format_iso_many([moment for moment in moments if moment is not None]))
        return [None if moment is None else next(present) for moment in moments]
    if all(map(is_, map(type, moments), repeat(datetime))) and all(
        map(is_, map(_TIME_ZONE, moments), repeat(UTC))
    ):
        # orjson writes six fraction digits when there are any: a whole millisecond
        # ends in "000Z". After that each value is 20 characters, 24 with a fraction.
        text = orjson.dumps(moments, option=orjson.OPT_UTC_Z).decode().replace("000Z", "Z")
        if len(text) == 23 * len(moments) + 1 + 4 * text.count("."):
            return text[2:-2].split('","')  # type: ignore[return-value]
    return [format_iso(moment) for moment in moments]  # type: ignore[arg-type]


def parse_client_time(value: object) -> datetime:
    """What a GraphQL client may send for a ``DateTime``.

    Epoch milliseconds as an integer or numeric string, or an ISO-8601 string with
    an offset (``Z`` or ``+hh:mm``). A string without an offset is refused: it
    would silently mean the server's idea of local time.
    """
    if isinstance(value, bool):
        raise ValueError("a boolean is not a time")
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMERIC.match(value.strip())):
        return parse_epoch_ms(value)
    if not isinstance(value, str):
        raise ValueError(f"not a time: {value!r}")
    text = value.strip()
    if not text or len(text) > 64:
        raise ValueError("not an ISO-8601 time")
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO-8601 time: {value!r}") from None
    if moment.tzinfo is None or "T" not in text.upper():
        raise ValueError(f"an ISO-8601 time needs a date, a time and an offset: {value!r}")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"time out of range: {value!r}") from None

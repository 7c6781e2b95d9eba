"""Tolerant readers for upstream record fields.

The upstreams' examples contradict their own tables: numbers arrive as strings,
strings as numbers, ``null`` where a field is "mandatory", and documented
fields go missing. A reader turns what arrived into the documented type, or
``None`` with a warning, so one odd field never fails a whole page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import msgspec

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
    except (ValueError, OverflowError, OSError):  # OSError: fromtimestamp, on some platforms
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
class Scaled:
    """A quick conversion the generated reader writes out instead of calling, which
    saves a frame per value (0.1 µs; four times a record for OMA's times):
    ``function(value / divisor, argument)`` for a value strictly between ``-bound`` and
    ``bound``; the reader decides any other."""

    function: Callable[[float, Any], Any]
    divisor: int
    argument: Any
    bound: int


@dataclass(frozen=True, slots=True)
class FieldKind:
    """How one kind of field is read: the tolerant ``read``, the value types it returns
    as they are (``kept``), and quicker conversions for some other types (``quick``).
    A quick conversion must give what ``read`` gives, or raise so that ``read`` decides."""

    read: Reader
    kept: frozenset[type]
    quick: Mapping[type, Callable[[Any], Any] | Scaled]


_TEXT_ONLY: frozenset[type] = frozenset({str, type(None)})
TEXT = FieldKind(read_text, _TEXT_ONLY, {})
# int() strips whitespace as read_int does; "" and anything else it refuses go to read_int.
INT = FieldKind(read_int, frozenset({int, type(None)}), {str: int})


def time_kind(
    parse: Callable[[object], datetime], quick: Mapping[type, Callable[[Any], datetime] | Scaled]
) -> FieldKind:
    """A time field read by ``parse``, with quicker conversions for some value types."""

    def read(record: Mapping[str, Any], name: str) -> datetime | None:
        return read_time(record, name, parse)

    return FieldKind(read, frozenset({type(None)}), quick)


class RecordFields:
    """Reads a record's fields, each by its kind, in one pass.

    Each field through its reader costs a call or more per field, 12 µs for a record
    of OMA's 29 fields. Most values arrive as a type the kind keeps as it is, or one
    with a quick conversion, so the fields are read by one function generated for the
    list, as ``dataclasses`` generates ``__init__``: per field, a test of the value's
    type, and a call only where a conversion or the reader is needed. The answer is
    always what the readers would give (tests check it). Field names and conversions
    are the function's arguments, never its source.
    """

    def __init__(self, fields: Sequence[tuple[str, FieldKind]]) -> None:
        self.fields = tuple(fields)
        self.names = tuple(name for name, _ in fields)
        self.read: Callable[[Mapping[str, Any]], list[Any]] = _reader(fields)
        """The fields' values in the order they were declared."""
        self.read_values: Callable[[Sequence[Any]], list[Any]] = _reader(fields, positional=True)
        """The same, from the values as they arrived, in that order (``page_decoder``)."""
        self._read_typed_values = _reader(fields, positional=True, typed=True)

    def read_all(self, records: list[Any]) -> Iterator[list[Any]]:
        """Each record's values: of a ``RecordValues`` (``page_decoder``), or of the
        objects of a JSON list (anything else in it skipped)."""
        if type(records) is RecordValues:
            read = self._read_typed_values if records.typed else self.read_values
            return map(read, records)
        return map(self.read, json_objects(records))

    def page_decoder(
        self, list_key: str, others: Sequence[str]
    ) -> Callable[[bytes], dict[str, Any] | None]:
        """``decode(content)``: an answer of records under ``list_key`` as general JSON
        decoding gives it, except that the records come as ``RecordValues``: the values of
        these fields, in order, for ``read_values``.

        One pass of msgspec, in C, puts each record's values in place: orjson's dicts and
        a dict lookup per field (0.9 µs a record of 29 fields) are not made. The answer
        is None (the general decoding then decides) for anything but the plain case: not
        an object, no list of objects under ``list_key``, a field holding an array or an
        object, an integer beyond signed 64 bits (which orjson may read as a float), or a
        key other than these fields and ``others``: msgspec would skip its value without
        checking it as orjson does (its UTF-8, its numbers' range, its depth)."""
        # Tried first, the text fields typed as text: when msgspec finds them so, their
        # reader has nothing to test (a field of a text-only kind keeps a str or None).
        typed = _page_decoder(
            list_key,
            others,
            [str | None if kind.kept == _TEXT_ONLY else _Scalar for _, kind in self.fields],
            self.names,
        )
        loose = _page_decoder(list_key, others, [_Scalar] * len(self.names), self.names)
        astuple = msgspec.structs.astuple

        def decode(content: bytes) -> dict[str, Any] | None:
            try:
                decoded, text_typed = typed.decode(content), True
            except (msgspec.MsgspecError, RecursionError):  # RecursionError: deep nesting
                try:
                    decoded, text_typed = loose.decode(content), False
                except (msgspec.MsgspecError, RecursionError):
                    return None
            answer = {
                name: value
                for name in others
                if (value := getattr(decoded, name)) is not msgspec.UNSET
            }
            answer[list_key] = RecordValues(
                map(astuple, getattr(decoded, list_key)), typed=text_typed
            )
            return answer

        return decode


class RecordValues(list[tuple[Any, ...]]):
    """A list of records as ``RecordFields.page_decoder`` decodes them: each the values
    of the fields in order, as they arrived, for ``RecordFields.read_values``; ``typed``
    when every text field is known to hold a str or None."""

    __slots__ = ("typed",)

    def __init__(self, records: Iterable[tuple[Any, ...]] = (), *, typed: bool = False) -> None:
        super().__init__(records)
        self.typed = typed


def _page_decoder(
    list_key: str, others: Sequence[str], types: Sequence[Any], names: Sequence[str]
) -> msgspec.json.Decoder[Any]:
    record = msgspec.defstruct(
        f"{list_key}_record",
        [(name, field_type, None) for name, field_type in zip(names, types, strict=True)],
        forbid_unknown_fields=True,
        gc=False,
    )
    page = msgspec.defstruct(
        f"{list_key}_page",
        [(list_key, list[record]), *((name, _Scalar, msgspec.UNSET) for name in others)],  # type: ignore[valid-type]
        forbid_unknown_fields=True,
        gc=False,
    )
    return msgspec.json.Decoder(page)


# What a field may hold on the quick way: integers within 64 bits, signed, which orjson
# (the general decoding) also reads as integers; beyond them it reads some as floats.
_Scalar = str | Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)] | float | bool | None


_QUICK_FAILS = (ValueError, TypeError, OverflowError, OSError)


def _reader(
    fields: Sequence[tuple[str, FieldKind]], *, positional: bool = False, typed: bool = False
) -> Callable[[Any], list[Any]]:
    """``read(record)`` for fields of these kinds, named by the arguments ``N0``...:
    each value kept when its type is one of ``kept``, converted by ``quick`` for its
    type (or by the reader where that raises), else read by the kind's reader.
    ``positional``: ``read(values)``, the fields' values in order; a kind's reader
    then reads its value from a record of that one field. ``typed``: each value of a
    text-only kind is known to be a str or None, kept without a test."""
    parameters: list[str] = []
    arguments: list[Any] = []
    if positional:
        body = [f"    ({''.join(f'v{index}, ' for index in range(len(fields)))}) = record"]
    else:
        body = ["    get = record.get"]
    for index, (name, kind) in enumerate(fields):
        v = f"v{index}"
        parameters += [f"N{index}", f"R{index}"]
        arguments += [name, kind.read]
        if typed and kind.kept == _TEXT_ONLY:
            continue
        kept = [f"{v} is not None"] if type(None) in kind.kept else []
        for number, value_type in enumerate(t for t in kind.kept if t is not type(None)):
            parameters.append(f"K{index}_{number}")
            arguments.append(value_type)
            kept.append(f"type({v}) is not K{index}_{number}")
        if not positional:
            body.append(f"    {v} = get(N{index})")
        record = "{" + f"N{index}: {v}" + "}" if positional else "record"
        by_reader = f"R{index}({record}, N{index})"
        body.append(f"    if {' and '.join(kept) or 'True'}:")
        branch = "if"
        for number, (value_type, quick) in enumerate(kind.quick.items()):
            q = f"{index}_{number}"
            parameters += [f"T{q}", f"Q{q}"]
            test, call = f"type({v}) is T{q}", f"Q{q}({v})"
            if isinstance(quick, Scaled):
                parameters += [f"B{q}", f"D{q}", f"Z{q}"]
                arguments += [
                    value_type,
                    quick.function,
                    quick.bound,
                    quick.divisor,
                    quick.argument,
                ]
                test += f" and -B{q} < {v} < B{q}"
                call = f"Q{q}({v} / D{q}, Z{q})"
            else:
                arguments += [value_type, quick]
            body += [
                f"        {branch} {test}:",
                "            try:",
                f"                {v} = {call}",
                "            except QUICK_FAILS:",
                f"                {v} = {by_reader}",
            ]
            branch = "elif"
        if branch == "elif":
            body += ["        else:", f"            {v} = {by_reader}"]
        else:
            body.append(f"        {v} = {by_reader}")
    values = ", ".join(f"v{index}" for index in range(len(fields)))
    source = "\n".join(
        [
            f"def make({', '.join([*parameters, 'QUICK_FAILS'])}):",
            "  def read(record):",
            *(f"  {line}" for line in body),
            f"      return [{values}]",
            "  return read",
        ]
    )
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<reader of {len(fields)} fields>", "exec"), namespace)  # noqa: S102
    read: Callable[[Any], list[Any]] = namespace["make"](*arguments, _QUICK_FAILS)
    return read

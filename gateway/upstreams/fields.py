"""Tolerant readers for upstream record fields, and the records' declarations.

The upstreams' examples contradict their own tables: numbers arrive as strings,
strings as numbers, ``null`` where a field is "mandatory", and documented
fields go missing. A reader turns what arrived into the documented type, or
``None`` with a warning, so one odd field never fails a whole page.

A record is a NamedTuple whose every attribute names, in its annotation, the upstream
field it is read from and how: ``order_id: Annotated[str, Upstream("orderId", TEXT)]``.
``RecordFields.declared_by`` makes the record's reader and page decoder from that one
declaration, and ``record_version`` a short hash of it for the cache keys of its pages.
"""

from __future__ import annotations

import hashlib
import logging
import typing
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

    name: str
    """What the kind is called in a record's version (``record_version``)."""
    read: Reader
    kept: frozenset[type]
    quick: Mapping[type, Callable[[Any], Any] | Scaled]


_TEXT_ONLY: frozenset[type] = frozenset({str, type(None)})
TEXT = FieldKind("text", read_text, _TEXT_ONLY, {})
# int() strips whitespace as read_int does; "" and anything else it refuses go to read_int.
INT = FieldKind("int", read_int, frozenset({int, type(None)}), {str: int})


def time_kind(
    name: str,
    parse: Callable[[object], datetime],
    quick: Mapping[type, Callable[[Any], datetime] | Scaled],
) -> FieldKind:
    """A time field read by ``parse``, with quicker conversions for some value types."""

    def read(record: Mapping[str, Any], field: str) -> datetime | None:
        return read_time(record, field, parse)

    return FieldKind(name, read, frozenset({type(None)}), quick)


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where a record's attribute comes from: the upstream's field ``name``, read as
    ``kind``. Written in the attribute's annotation, with its type:
    ``order_id: Annotated[str, Upstream("orderId", TEXT)]``."""

    name: str
    kind: FieldKind


@dataclass(frozen=True, slots=True)
class DeclaredField:
    attribute: str
    type: Any
    """The attribute's type, without its ``Upstream``."""
    upstream: Upstream


def declared_fields(record: type[tuple[Any, ...]]) -> list[DeclaredField]:
    """The attributes of a record (a NamedTuple) in order, each with its type and its
    upstream field.

    Raises ``TypeError``, naming the attribute, when one declares no upstream field or
    more than one, or two declare the same: a declaration that would read a value into
    the wrong attribute, or none, is refused when the record is defined."""
    hints = typing.get_type_hints(record, include_extras=True)
    declared: list[DeclaredField] = []
    read_by: dict[str, str] = {}
    for attribute in record._fields:  # type: ignore[attr-defined]
        hint = hints.get(attribute)
        sources = [item for item in getattr(hint, "__metadata__", ()) if isinstance(item, Upstream)]
        where = f"{record.__name__}.{attribute}"
        if len(sources) != 1:
            raise TypeError(
                f"{where} declares {len(sources)} upstream fields, not one: annotate it "
                "Annotated[its type, Upstream(upstream field name, kind)]"
            )
        (source,) = sources
        if source.name in read_by:
            raise TypeError(f"{where} reads {source.name!r}, as {read_by[source.name]} does")
        read_by[source.name] = attribute
        declared.append(DeclaredField(attribute, typing.get_args(hint)[0], source))
    return declared


def record_version(record: type[tuple[Any, ...]]) -> str:
    """A short hash of the record's declaration: each attribute in order, its type, its
    upstream field and kind. A record declared otherwise (an attribute added, removed,
    renamed, moved or retyped, or read from another field or as another kind) has
    another; the same declaration has the same in every process (no ``id`` or ``hash``
    goes in: a type's repr is its qualified name)."""
    description = "\n".join(
        f"{field.attribute}: {field.type!r} <- {field.upstream.name!r} "
        f"as {field.upstream.kind.name}"
        for field in declared_fields(record)
    )
    return hashlib.sha256(description.encode()).hexdigest()[:16]


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

    @classmethod
    def declared_by(cls, record: type[tuple[Any, ...]]) -> RecordFields:
        """The fields of a record's declaration (``declared_fields``), in its order."""
        return cls(
            [(field.upstream.name, field.upstream.kind) for field in declared_fields(record)]
        )

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
            [
                (name, str | None if kind.kept == _TEXT_ONLY else _Scalar)
                for name, kind in self.fields
            ],
        )
        loose = _page_decoder(list_key, others, [(name, _Scalar) for name in self.names])
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

    def __init__(self, records: Iterable[tuple[Any, ...]], *, typed: bool) -> None:
        super().__init__(records)
        self.typed = typed


def _page_decoder(
    list_key: str, others: Sequence[str], fields: Sequence[tuple[str, Any]]
) -> msgspec.json.Decoder[Any]:
    """A decoder of pages whose records hold these fields (name, type), each None when
    missing, and nothing else."""
    record = msgspec.defstruct(
        f"{list_key}_record",
        [(name, field_type, None) for name, field_type in fields],
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
    """``read(record)`` for fields of these kinds: each value kept when its type is one of
    ``kept``, converted by ``quick`` for its type (or by the reader where that raises),
    else read by the kind's reader. ``positional``: ``read(values)``, the fields' values
    in order; a kind's reader then reads its value from a record of that one field.
    ``typed``: each value of a text-only kind is known to be a str or None, kept without a
    test. Field names, readers, types and conversions are arguments of the function that
    makes ``read`` (``name_0``, ``read_0``, ``kept_0_0``...), never its source."""
    arguments: dict[str, Any] = {"QUICK_FAILS": _QUICK_FAILS}

    def argument(name: str, value: Any) -> str:
        arguments[name] = value
        return name

    values = [f"value_{index}" for index in range(len(fields))]
    if positional:
        body = [f"    ({''.join(f'{value}, ' for value in values)}) = record"]
    else:
        body = ["    get = record.get"]
    for index, (field, kind) in enumerate(fields):
        value = values[index]
        name = argument(f"name_{index}", field)
        read = argument(f"read_{index}", kind.read)
        if typed and kind.kept == _TEXT_ONLY:
            continue
        if not positional:
            body.append(f"    {value} = get({name})")
        kept = [f"{value} is not None"] if type(None) in kind.kept else []
        for number, kept_type in enumerate(t for t in kind.kept if t is not type(None)):
            kept.append(f"type({value}) is not {argument(f'kept_{index}_{number}', kept_type)}")
        # A kind's reader reads a record: with the values in order, one of this field alone.
        by_reader = (
            f"{read}({{{name}: {value}}}, {name})" if positional else f"{read}(record, {name})"
        )
        body.append(f"    if {' and '.join(kept) or 'True'}:")
        branch = "if"
        for number, (value_type, quick) in enumerate(kind.quick.items()):
            which = f"{index}_{number}"
            test = f"type({value}) is {argument(f'quick_type_{which}', value_type)}"
            if isinstance(quick, Scaled):
                bound = argument(f"bound_{which}", quick.bound)
                divisor = argument(f"divisor_{which}", quick.divisor)
                scaled = argument(f"scaled_{which}", quick.function)
                scaled_argument = argument(f"scaled_argument_{which}", quick.argument)
                test += f" and -{bound} < {value} < {bound}"
                call = f"{scaled}({value} / {divisor}, {scaled_argument})"
            else:
                call = f"{argument(f'quick_{which}', quick)}({value})"
            body += [
                f"        {branch} {test}:",
                "            try:",
                f"                {value} = {call}",
                "            except QUICK_FAILS:",
                f"                {value} = {by_reader}",
            ]
            branch = "elif"
        if branch == "elif":
            body += ["        else:", f"            {value} = {by_reader}"]
        else:
            body.append(f"        {value} = {by_reader}")
    source = "\n".join(
        [
            f"def make({', '.join(arguments)}):",
            "  def read(record):",
            *(f"  {line}" for line in body),
            f"      return [{', '.join(values)}]",
            "  return read",
        ]
    )
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<reader of {len(fields)} fields>", "exec"), namespace)  # noqa: S102
    reader: Callable[[Any], list[Any]] = namespace["make"](**arguments)
    return reader

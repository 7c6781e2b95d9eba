"""Bytes for the shared cache: parsed pages of frozen records, and back.

Pages are frozen dataclasses and records NamedTuples, whose fields are ``str``,
``int``, ``bool``, ``datetime`` (aware UTC), ``None`` or tuples of nested records. JSON keeps the
shared cache readable and safe to load (no pickle: a compromised Redis must not
become code execution in the gateway), and each value is checked against its field's
type on the way back, so an entry that breaks the records' types is a miss.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import datetime
from typing import Any, Generic, TypeVar

import orjson

from gateway.times import from_epoch_ms, to_epoch_ms

T = TypeVar("T")


_SCALARS = (str, int, bool, float)


def _encode_default(value: object) -> object:
    if isinstance(value, datetime):
        return {"$ms": to_epoch_ms(value)}
    raise TypeError(f"cannot cache {type(value).__name__}")


class RecordCodec(Generic[T]):
    """Encodes a tree of frozen dataclasses and NamedTuples to JSON bytes and rebuilds it
    from its type hints."""

    def __init__(self, root: type[T]) -> None:
        self._root = root
        self._hints: dict[type[Any], dict[str, Any]] = {}

    def encode(self, value: T) -> bytes:
        # Dataclasses become lists in field order: compact, and decoding is positional.
        return orjson.dumps(
            self._to_plain(value),
            default=_encode_default,
            option=orjson.OPT_PASSTHROUGH_DATETIME,
        )

    def decode(self, data: bytes) -> T:
        value: T = self._build(self._root, orjson.loads(data))
        return value

    def _to_plain(self, value: object) -> object:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return [self._to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)]
        if isinstance(value, tuple):
            return [self._to_plain(item) for item in value]
        return value

    def _field_hints(self, cls: type[Any]) -> dict[str, Any]:
        hints = self._hints.get(cls)
        if hints is None:
            hints = typing.get_type_hints(cls)
            self._hints[cls] = hints
        return hints

    def _build(self, hint: Any, raw: Any) -> Any:
        if raw is None:
            return None
        origin = typing.get_origin(hint)
        if origin in (typing.Union, types.UnionType):
            inner = [a for a in typing.get_args(hint) if a is not type(None)]
            return self._build(inner[0], raw)
        if origin is tuple:
            item = typing.get_args(hint)[0]
            return tuple(self._build(item, entry) for entry in raw)
        if hint is datetime:
            return from_epoch_ms(raw["$ms"])
        if hint in _SCALARS:
            # Exactly the type the record declares (JSON gives no subclass; a bool is not
            # an int here): what the upstream readers guarantee, and what the schema
            # reads from records relies on, holds for a shared entry too.
            if type(raw) is not hint:
                raise ValueError(f"a cached {type(raw).__name__} where {hint.__name__} belongs")
            return raw
        if isinstance(hint, type) and issubclass(hint, tuple) and hasattr(hint, "_fields"):
            hints = self._field_hints(hint)
            return hint._make(  # type: ignore[attr-defined]
                self._build(hints[name], entry)
                for name, entry in zip(hint._fields, raw, strict=True)
            )
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            hints = self._field_hints(hint)
            names = [f.name for f in dataclasses.fields(hint) if f.init]
            return hint(
                **{
                    name: self._build(hints[name], entry)
                    for name, entry in zip(names, raw, strict=True)
                }
            )
        return raw

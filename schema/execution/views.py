"""Each upstream record's GraphQL object, made once while the record is in use.

A warm request reads the very record objects the requests before it read: the in-memory
cache hands back what it stored. Making their GraphQL objects again each time (a dict
of 16 or 29 fields and the enum conversions per record) was about a fifth of a warm
linked query's work. So the object made from a record seen a second time is kept with
the record, and handed out again while both are kept.

Only from the second time: a record of a cold answer is seen once and dies with its
request, and keeping it (and its object) alive any longer made the collector walk them,
which cost cold answers more than the objects themselves. The first sighting keeps no
object alive: it notes the record's id and its first field, a string kept in the note.
A new record may reuse a dead one's address, but it would have to hold that very string
to pass for a second sighting. And the object kept is always made from the record at
hand, so the note decides only what is kept, never what an object says.

Keyed by identity: a record hashes by all its fields, dearer than making the object.
Objects are never changed once made, so requests may share them, and callers never
can: a record comes from its own caller's cache entries. Both tables are bounded, and
start over when full.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar, overload

from schema.execution.objects import Access, record_layout

R = TypeVar("R", bound=Sequence[Any])
T = TypeVar("T")

MAX_OBJECTS = 4096
"""Objects kept per type: a warm dashboard query of 100 subscriptions with their resources,
parents and attached resources keeps 100 of one type and about 370 of the other. An
object, its record and their entries take about 1.6 KB, so the bound is about 6.5 MB a
type. (At 10,000, a soak over 5,000 callers held 40 MB more.)"""

_UNSEEN: Any = object()


class ObjectsByRecord(Generic[R, T]):
    """``make(record)``, kept for a record seen before, while it is kept."""

    __slots__ = ("_kept", "_layout", "object_of")

    def __init__(self, make: Callable[[R], T], max_objects: int = MAX_OBJECTS) -> None:
        self._kept: dict[int, tuple[R, T]] = {}
        self._layout = record_layout(make)
        # The first-sighting notes, id(record) -> its first field, live in the closure.
        self.object_of = _object_of(make, max_objects, self._kept, {})

    def __len__(self) -> int:
        """Objects kept."""
        return len(self._kept)

    def lazy(self, records: Sequence[R]) -> RecordObjects[R, T]:
        """The objects of ``records``, made when something asks for them."""
        return RecordObjects(records, self.object_of, self._layout)


class RecordObjects(Sequence[T], Generic[R, T]):
    """A list of the objects of records, made the first time anything reads an item.

    A connection's nodes: a list of plain fields only is completed straight from the
    records by the executor's shortcut (``schema.execution``), which reads each field
    where ``layout`` says the object would have it; 1,000 subscriptions' objects were
    about 1 ms of such an answer. Anything else (graphql-core, the lookahead, a
    resolver) reads the objects, made once and then kept in order."""

    __slots__ = ("_object_of", "_objects", "layout", "records")

    def __init__(
        self,
        records: Sequence[R],
        object_of: Callable[[R], T],
        layout: Mapping[str, Access] | None,
    ) -> None:
        self.records = records
        self.layout = layout
        self._object_of = object_of
        self._objects: list[T] | None = None

    @property
    def made(self) -> bool:
        """Whether the objects have been made (then they are what is read)."""
        return self._objects is not None

    def objects(self) -> list[T]:
        if self._objects is None:
            self._objects = list(map(self._object_of, self.records))
        return self._objects

    def __len__(self) -> int:
        return len(self.records)

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        return self.objects()[index]

    def __iter__(self) -> Iterator[T]:
        return iter(self.objects())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RecordObjects | list):
            return self.objects() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # as a list's: equal by content, mutable

    def __repr__(self) -> str:
        return f"RecordObjects({self.objects()!r})"


def _object_of(
    make: Callable[[R], T], max_objects: int, kept: dict[int, tuple[R, T]], seen: dict[int, Any]
) -> Callable[[R], T]:
    # A closure over its tables: it runs once per record of every answer, and each
    # attribute lookup it saves is a few percent of its cost.
    def object_of(record: R) -> T:
        """The object of ``record``: kept from before, or made now."""
        key = id(record)
        found = kept.get(key)
        if found is not None:
            return found[1]
        made = make(record)
        first = record[0]
        if seen.get(key, _UNSEEN) is first:
            if len(kept) >= max_objects:
                kept.clear()
            kept[key] = (record, made)
        else:
            if len(seen) >= max_objects:
                seen.clear()
            seen[key] = first
        return made

    return object_of


__all__ = ["MAX_OBJECTS", "ObjectsByRecord", "RecordObjects"]

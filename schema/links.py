"""Fields answered from a request's loaders, declared once for four readers.

A ``Link`` says which loader a field reads, the key a parent object asks for
(None when it has nothing to ask: a primary resource has no parent), how a
loaded value becomes the field's value, and how many upstream calls it fans out
to. From that one declaration come:

- the field itself and its resolver (``field``): the field is declared with only
  its arguments, and its resolver is the link's, which answers the value at once
  when the key is loaded already, an awaitable otherwise, as any DataLoader field;
- the lookahead's prefetch (``prefetch``, used by ``schema.execution.prefetch``):
  every parent's key in one batch, and the objects they load, to look further down;
- the executor's shortcut (``ready``, used by ``schema.execution.plans``): the
  value when it is loaded and good, ``NOT_READY`` otherwise, never an awaitable;
- the cost estimate (``fan_out``, used by ``schema.limits``).

Keys, loaders, conversion and cost cannot drift apart between the four, so the
lookahead asks for exactly what the resolvers will, and never more.
"""

from __future__ import annotations

import asyncio
import dis
import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import strawberry
from strawberry.dataloader import DataLoader

from schema.loaders import Loaders

S = TypeVar("S")
K = TypeVar("K")
V = TypeVar("V")
R = TypeVar("R")

LINK = "gateway.link"
"""The key of a ``Link`` in its Strawberry field's metadata (and on its resolver)."""
COST = "gateway.cost"
"""The key of a root field's ``FanOut`` in its Strawberry field's metadata."""

FanOut = Callable[[Mapping[str, Any], int], "tuple[UpstreamCalls, int]"]
"""``fan_out(arguments, parents)``: the calls a field makes for ``parents`` objects (by
its arguments as graphql-core coerced them, by GraphQL name), and how many objects its
selection then sees."""


@dataclass(frozen=True, slots=True)
class UpstreamCalls:
    """Calls to each upstream."""

    oma: int = 0
    cbc: int = 0

    @property
    def total(self) -> int:
        return self.oma + self.cbc

    def __add__(self, other: UpstreamCalls) -> UpstreamCalls:
        return UpstreamCalls(self.oma + other.oma, self.cbc + other.cbc)


NO_CALLS = UpstreamCalls()

NOT_READY: Any = object()
"""What ``Link.ready`` answers when the value is not loaded, or its load failed."""


class HasLoaders(Protocol):
    @property
    def loaders(self) -> Loaders: ...


@dataclass(frozen=True, slots=True, eq=False)
class Link(Generic[S, K, V, R]):
    loader: Callable[[Loaders], DataLoader[K, V]]
    key: Callable[[S, Mapping[str, Any]], K | None]
    """The key ``source`` asks for, given the field's arguments by Python name."""
    convert: Callable[[V], R]
    """The field's value from the loaded value; called once per key and request."""
    empty: R
    """The field's value when the source has no key."""
    fan_out: FanOut
    """The upstream calls the field makes for its parents, and the objects its selection
    then sees (``schema.limits``)."""

    def field(self, **options: Any) -> Callable[[Callable[..., Any]], Any]:
        """A Strawberry field answered by this link: ``@LINK.field(description=...)`` on a
        method that declares the field's arguments (and type) and has no body of its own
        but a docstring. ``options`` go to ``strawberry.field``."""

        def declare(prototype: Callable[..., Any]) -> Any:
            metadata = {**options.pop("metadata", {}), LINK: self}
            return strawberry.field(resolver=self.resolver(prototype), metadata=metadata, **options)

        return declare

    def resolver(self, prototype: Callable[..., Any]) -> Callable[..., Any]:
        """The resolver of a field declared by ``prototype`` (its signature: ``self``,
        ``info`` and the arguments): this link's ``resolve``, nothing else. A prototype with
        a body is refused, so the link is the one place the field's behaviour lives."""
        if not _has_no_body(prototype):
            raise TypeError(
                f"{prototype.__qualname__} is answered by its Link: it takes a docstring, "
                "not a body"
            )
        defaults = {
            name: parameter.default
            for name, parameter in inspect.signature(prototype).parameters.items()
            if name not in ("self", "info")
        }
        link = self

        def resolve(source: Any, info: Any, **arguments: Any) -> Any:
            return link.resolve(info.context, source, {**defaults, **arguments})

        # Strawberry reads the prototype's signature and annotations (through __wrapped__).
        functools.update_wrapper(resolve, prototype)
        resolve.__dict__[LINK] = self
        return resolve

    def answers(self, resolver: object) -> bool:
        """Whether ``resolver`` is this link's own (``resolver``), untouched."""
        return resolver is not None and getattr(resolver, "__dict__", {}).get(LINK) is self

    def resolve(self, context: HasLoaders, source: S, arguments: Mapping[str, Any]) -> Any:
        """The resolver's answer: ``R`` when loaded, else an awaitable of it (which also
        raises a failed load's error)."""
        key = self.key(source, arguments)
        if key is None:
            return self.empty
        loaders = context.loaders
        value = self._loaded(loaders, key)
        if value is not NOT_READY:
            return value
        loader = self.loader(loaders)
        if not loader.cache:
            return self._convert_when_loaded(loader.load(key))
        return self._when_loaded(loaders, asyncio.ensure_future(loader.load(key)))

    def ready(self, context: HasLoaders, source: S, arguments: Mapping[str, Any]) -> R:
        """The value when loaded and good, else ``NOT_READY``. Never starts a load."""
        key = self.key(source, arguments)
        if key is None:
            return self.empty
        return self._loaded(context.loaders, key)

    def prefetch(
        self, context: HasLoaders, sources: Sequence[S], arguments: Mapping[str, Any]
    ) -> Sequence[Any] | Awaitable[Sequence[Any]]:
        """Load every source's key at once (one batch, as the resolvers would make) and
        give back the objects loaded, for the lookahead to look under. A key that
        failed gives none: its error stays in the loader for its resolver to report."""
        loaders = context.loaders
        loader = self.loader(loaders)
        keys = [key for source in sources if (key := self.key(source, arguments)) is not None]
        if not keys or not loader.cache:
            # A loader that does not remember cannot be primed: its fields load as they go.
            return ()
        futures = [asyncio.ensure_future(loader.load(key)) for key in keys]
        if all(future.done() for future in futures):
            return self._children(loaders, futures)

        async def when_loaded() -> Sequence[Any]:
            # A batch resolves all its futures at once, so waiting on each one still
            # pending is one wake-up per batch, not a callback per key as
            # ``asyncio.wait(futures)`` would add. ``wait`` rather than ``await``: it
            # neither raises a failed load's error nor cancels the future if this
            # task is cancelled (the resolvers share it).
            for future in futures:
                if not future.done():
                    await asyncio.wait((future,))
            return self._children(loaders, futures)

        return when_loaded()

    def _children(self, loaders: Loaders, futures: Sequence[asyncio.Future[V]]) -> list[Any]:
        children: list[Any] = []
        for future in futures:
            if future.cancelled() or future.exception() is not None:
                continue
            value = self._converted(loaders, future)
            if isinstance(value, Sequence) and not isinstance(value, str):
                children.extend(value)  # a list of objects, a lazy one's made now
            elif value is not None:
                children.append(value)
        return children

    def _loaded(self, loaders: Loaders, key: K) -> R:
        future = _remembered(self.loader(loaders), key)
        if (
            future is None
            or not future.done()
            or future.cancelled()
            or future.exception() is not None
        ):
            return NOT_READY  # type: ignore[no-any-return]
        return self._converted(loaders, future)

    def _converted(self, loaders: Loaders, future: asyncio.Future[V]) -> R:
        memo = loaders.converted
        # The loader's cache keeps the future alive for the request, so its id is stable.
        key = (id(future), id(self))
        if key in memo:
            converted: R = memo[key]
            return converted
        converted = self.convert(future.result())
        memo[key] = converted
        return converted

    async def _when_loaded(self, loaders: Loaders, future: asyncio.Future[V]) -> R:
        await future
        return self._converted(loaders, future)

    async def _convert_when_loaded(self, pending: Awaitable[V]) -> R:
        # A loader that does not remember keeps no future alive: nothing to share.
        return self.convert(await pending)


def _remembered(loader: DataLoader[K, V], key: K) -> asyncio.Future[V] | None:
    return loader.cache_map.get(key) if loader.cache else None


def _docstring_only() -> None:
    """A function that does nothing: what a link field's prototype compiles to."""


def _instructions(function: Callable[..., Any]) -> list[tuple[str, Any]]:
    return [(i.opname, i.argval) for i in dis.get_instructions(function)]


_NOTHING = _instructions(_docstring_only)


def _has_no_body(function: Callable[..., Any]) -> bool:
    return _instructions(function) == _NOTHING


__all__ = ["COST", "LINK", "NOT_READY", "NO_CALLS", "FanOut", "HasLoaders", "Link", "UpstreamCalls"]

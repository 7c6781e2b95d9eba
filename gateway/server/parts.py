"""The payloads of an answer in parts (@defer, @stream), readable by both kinds of client.

graphql-core 3.3 writes graphql-js 17's format: the initial payload announces each part
as ``pending`` (an id and a path), and a later part names its id, with a ``subPath``
below the pending path for data, or ``items`` to append to the list there (Apollo
Client's GraphQL17Alpha9Handler). Clients of the 2022 format (urql) read a part's
``path`` instead: the whole path of its data, or, for items, the list's path and the
index of the first item. Each part carries both, so either merges it in its place.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


class PartPaths:
    """The 2022 ``path`` of each part of one answer, payload by payload: it remembers the
    items each stream has delivered so far."""

    __slots__ = ("_delivered", "_paths")

    def __init__(self) -> None:
        self._paths: dict[str, list[Any]] = {}
        self._delivered: dict[str, int] = {}

    def add_paths(self, payload: dict[str, Any]) -> None:
        """Write ``path`` on each part of ``payload`` (graphql-core's format, as formatted),
        drop a null ``label`` (Strawberry writes one on every part)."""
        announced: Sequence[Mapping[str, Any]] = payload.get("pending") or ()
        for pending in announced:
            self._paths[pending["id"]] = list(pending["path"])
        data = payload.get("data")
        if isinstance(data, dict):
            self._count_lists(announced, [], data)  # the initial payload's lists
        for part in payload.get("incremental") or ():
            base = self._paths.get(part.get("id"), [])
            if "items" in part:
                start = self._delivered.get(part["id"], 0)
                part["path"] = [*base, start]
                self._delivered[part["id"]] = start + len(part["items"])
            else:
                whole = [*base, *part.get("subPath", ())]
                part["path"] = whole
                if isinstance(part.get("data"), dict):
                    self._count_lists(announced, whole, part["data"])
            if part.get("label", ...) is None:
                del part["label"]

    def _count_lists(
        self, announced: Sequence[Mapping[str, Any]], at: list[Any], data: dict[str, Any]
    ) -> None:
        """The items each stream announced in this payload starts with: the list at its
        path within ``data`` (found at ``at``)."""
        for pending in announced:
            path = pending["path"]
            if path[: len(at)] != at:
                continue
            value: Any = data
            for key in path[len(at) :]:
                value = _child(value, key)
            if isinstance(value, list):
                self._delivered[pending["id"]] = len(value)


def _child(value: Any, key: Any) -> Any:
    """``value[key]`` on the way down a payload's data, or None where there is none."""
    if isinstance(value, dict) and isinstance(key, str):
        return value.get(key)
    if isinstance(value, list) and isinstance(key, int) and 0 <= key < len(value):
        return value[key]
    return None


class AnswerInParts:
    """The ASGI response of an answer in parts: Strawberry's streaming response, then
    ``end`` once it is sent, or abandoned by a client gone in the middle. Without it the
    parts not sent yet went on calling the upstreams for nobody."""

    __slots__ = ("_end", "_response")

    def __init__(self, response: StreamingResponse, end: Callable[[], Awaitable[None]]) -> None:
        self._response = response
        self._end = end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._response(scope, receive, send)
        finally:
            await self._end()


__all__ = ["AnswerInParts", "PartPaths"]

"""Incremental delivery (@defer, @stream) as a client sees it: payloads merged into one
answer, the way Apollo Client and urql merge them (graphql-core 3.3's format: ``pending``
names an id's path, ``incremental`` gives data at that path plus its ``subPath``, or items
to append to the list there, and ``completed`` ends an id, with errors if it failed)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import httpx
import orjson


def multipart_payloads(response: httpx.Response) -> list[dict[str, Any]]:
    """The JSON payloads of a multipart/mixed answer, in order."""
    content_type = response.headers["content-type"]
    assert content_type.startswith("multipart/mixed"), content_type
    boundary = content_type.split("boundary=", 1)[1].split(";", 1)[0].strip('"')
    payloads = []
    for part in response.content.split(f"--{boundary}".encode()):
        head, _, body = part.partition(b"\r\n\r\n")
        if b"application/json" in head:
            payloads.append(orjson.loads(body.strip()))
    return payloads


def sse_events(response: httpx.Response) -> list[tuple[str, dict[str, Any] | None]]:
    """The events of a text/event-stream answer: (event, its JSON data or None)."""
    assert response.headers["content-type"].startswith("text/event-stream")
    events: list[tuple[str, dict[str, Any] | None]] = []
    for block in response.text.split("\r\n\r\n"):
        fields = dict(
            line.split(": ", 1) for line in block.split("\r\n") if ": " in line and line[0] != ":"
        )
        if "event" in fields:
            data = fields.get("data", "")
            events.append((fields["event"], orjson.loads(data) if data else None))
    return events


def merged(payloads: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The answer the payloads add up to: ``data`` and ``errors`` (sorted, as text), or
    only ``data`` when there was no error."""
    first = payloads[0]
    data = copy.deepcopy(first.get("data"))
    errors: list[dict[str, Any]] = list(first.get("errors", []))
    paths: dict[str, list[str | int]] = {}
    for payload in payloads:
        for pending in payload.get("pending", []):
            paths[pending["id"]] = pending["path"]
        for part in payload.get("incremental", []):
            target: Any = data
            for key in [*paths[part["id"]], *part.get("subPath", [])]:
                target = target[key]
            if "items" in part:
                target.extend(copy.deepcopy(part["items"]))
            else:
                _merge_into(target, copy.deepcopy(part["data"]))
            errors.extend(part.get("errors", []))
        for completed in payload.get("completed", []):
            errors.extend(completed.get("errors", []))
    answer: dict[str, Any] = {"data": data}
    if errors:
        answer["errors"] = sorted(
            orjson.dumps(error, option=orjson.OPT_SORT_KEYS).decode() for error in errors
        )
    return answer


def delivered(payloads: Sequence[dict[str, Any]]) -> tuple[str, list[str]]:
    """What came when, whatever the grouping into payloads: the initial payload (its
    data, errors and the paths still pending), and each later part at its path, sorted."""
    first = dict(payloads[0])
    paths: dict[str, list[str | int]] = {}
    for payload in payloads:
        for pending in payload.get("pending", []):
            paths[pending["id"]] = pending["path"]
    first["pending"] = sorted(
        orjson.dumps(pending["path"]).decode() for pending in first.get("pending", [])
    )
    first.pop("hasNext", None)
    later: list[str] = []
    for payload in payloads[1:]:
        for part in payload.get("incremental", []):
            place = [*paths[part["id"]], *part.get("subPath", [])]
            content = {key: value for key, value in part.items() if key not in ("id", "subPath")}
            later.append(orjson.dumps([place, content], option=orjson.OPT_SORT_KEYS).decode())
        for completed in payload.get("completed", []):
            if "errors" in completed:
                later.append(
                    orjson.dumps(
                        [paths[completed["id"]], completed["errors"]], option=orjson.OPT_SORT_KEYS
                    ).decode()
                )
    return orjson.dumps(first, option=orjson.OPT_SORT_KEYS).decode(), sorted(later)


def merged_by_path(payloads: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The answer as a client of the 2022 format merges it (urql): by each part's
    ``path``, the whole path of its data, or the list's path and its first item's index."""
    data = copy.deepcopy(payloads[0].get("data"))
    errors: list[dict[str, Any]] = list(payloads[0].get("errors", []))
    for payload in payloads[1:]:
        for part in payload.get("incremental", []):
            *above, last = part["path"] if "items" in part else [*part["path"], None]
            target: Any = data
            for key in above:
                target = target[key]
            if "items" in part:
                assert last == len(target), (part["path"], len(target))
                target.extend(copy.deepcopy(part["items"]))
            else:
                _merge_into(target, copy.deepcopy(part["data"]))
            errors.extend(part.get("errors", []))
        for completed in payload.get("completed", []):
            errors.extend(completed.get("errors", []))
    answer: dict[str, Any] = {"data": data}
    if errors:
        answer["errors"] = sorted(
            orjson.dumps(error, option=orjson.OPT_SORT_KEYS).decode() for error in errors
        )
    return answer


def _merge_into(target: dict[str, Any], data: dict[str, Any]) -> None:
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge_into(target[key], value)
        else:
            target[key] = value


def plain(answer: dict[str, Any]) -> dict[str, Any]:
    """A non-incremental answer in ``merged``'s form."""
    result: dict[str, Any] = {"data": answer.get("data")}
    if answer.get("errors"):
        result["errors"] = sorted(
            orjson.dumps(error, option=orjson.OPT_SORT_KEYS).decode() for error in answer["errors"]
        )
    return result


__all__ = ["delivered", "merged", "merged_by_path", "multipart_payloads", "plain", "sse_events"]

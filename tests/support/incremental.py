"""Incremental delivery (@defer, @stream) as a client sees it: payloads merged into one
answer, the way Apollo Client and urql merge them (graphql-core 3.3's format: ``pending``
names an id's path, ``incremental`` gives data at that path plus its ``subPath``, or items
to append to the list there, and ``completed`` ends an id, with errors if it failed)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import orjson


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


__all__ = ["delivered", "merged", "plain"]

"""@defer and @stream as the shortcut and the lookahead see them.

graphql-core (3.3's incremental executor) runs a request's initial payload, then each
deferred fragment and each streamed item in a sub-executor of its own, whose
``defer_usage_set`` names the fragments it delivers (None: the initial payload). A
field belongs to the run whose set equals the field's filtered defer usages
(``build_execution_plan``); the shortcut and the lookahead take exactly those fields
and leave the others for the run graphql-core gives them, so a deferred field is never
loaded early, nor a field of the initial payload late.

The calls of a deferred fragment or a streamed item are made at the ``deferred``
priority: the quota serves the initial payloads that callers wait for first. They start
once the initial payload is out (graphql-core's early execution stays off): started
beside it, their loads would join its loaders' batches, and the initial payload would
wait for their calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextvars import copy_context
from typing import Any, TypeVar

from graphql.execution.collect_fields import FieldDetailsList
from graphql.execution.incremental.build_execution_plan import (
    DeferUsageSet,
    get_filtered_defer_usage_set,
)

from gateway.upstreams.resilience import CALL_PRIORITY

T = TypeVar("T")


def runs_in(details: FieldDetailsList, defer_usage_set: DeferUsageSet | None) -> bool:
    """Whether graphql-core runs the field of ``details`` in the run delivering
    ``defer_usage_set`` (None or empty: the initial payload)."""
    if all(field.defer_usage is None for field in details):
        return not defer_usage_set
    filtered = get_filtered_defer_usage_set(details)
    if not defer_usage_set:
        return not filtered  # also asked for outside any deferred fragment
    return filtered == defer_usage_set


def streamed(details: FieldDetailsList) -> bool:
    """Whether the field is under @stream: graphql-core delivers its items in parts, each
    loaded as it comes."""
    return any(
        directive.name.value == "stream"
        for field in details
        for directive in field.node.directives or ()
    )


def deferred(run: Callable[..., T], *args: Any) -> T:
    """``run(*args)`` with its upstream calls at the deferred priority, including those
    of the awaitable it returns (run as a task in the same context)."""
    context = copy_context()
    context.run(CALL_PRIORITY.set, "deferred")
    result = context.run(run, *args)
    if asyncio.iscoroutine(result):
        return asyncio.get_running_loop().create_task(result, context=context)  # type: ignore[return-value]
    return result


__all__ = ["deferred", "runs_in", "streamed"]

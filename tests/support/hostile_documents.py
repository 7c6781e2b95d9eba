"""Documents made to cost a server far more than their size: fragments spread into
``spreads ** levels`` paths in a few hundred bytes.

Each fragment spreads the next one ``spreads`` times, so a walk that follows every
spread takes ``spreads ** levels`` steps, while graphql-core's execution expands a
fragment once per selection set. ``fragment_bomb(20)`` (2^20 paths) is about 620
bytes and ``fragment_bomb(20, 8)`` (2^60 paths) about 1.1 KB; both stay far under
``GATEWAY_MAX_TOKENS``. Used by the schema's tests and by the system tests against a
real server.
"""

from __future__ import annotations

import string

# One character per fragment name keeps 2^60 paths within about 1 KB.
NAMES = string.ascii_letters


def _chain(levels: int, spreads: int, on: str, leaf: str) -> str:
    if not 1 <= levels < len(NAMES):
        raise ValueError(f"levels must be 1..{len(NAMES) - 1}, got {levels}")
    if spreads < 1:
        raise ValueError(f"spreads must be at least 1, got {spreads}")
    fragments = [
        f"fragment {NAMES[level]} on {on}{{" + f"...{NAMES[level + 1]}" * spreads + "}"
        for level in range(levels)
    ]
    fragments.append(f"fragment {NAMES[levels]} on {on}{{{leaf}}}")
    return "".join(fragments)


def fragment_bomb(levels: int, spreads: int = 2) -> str:
    """An operation whose root, through ``levels`` fragments, spreads ``__typename``
    ``spreads ** levels`` times: that many root fields by the root-field limit's count
    (execution would merge them into one), so it is refused."""
    return "{...a}" + _chain(levels, spreads, "Query", "__typename")


def alias_bomb(levels: int, spreads: int = 2) -> str:
    """One aliased field below ``subscriptions``, spread ``spreads ** levels`` times:
    that many aliases, as aliases are counted through spreads, so it is refused. It
    has one root field and is three fields deep."""
    return "{subscriptions{nodes{...a}}}" + _chain(levels, spreads, "SoftwareSubscription", "i:id")


def merged_bomb(levels: int, spreads: int = 2) -> str:
    """A field below ``subscriptions`` spread ``spreads ** levels`` times with no alias:
    within every limit, and one field once graphql-core merges the paths. Valid: it
    answers the first 20 subscriptions' ids with one OMA call."""
    return "{subscriptions{nodes{...a}}}" + _chain(levels, spreads, "SoftwareSubscription", "id")


def deep_bomb(levels: int, spreads: int = 2) -> str:
    """Fragments that each nest the next one ``spreads`` times, below a resource's
    ``attachedResources`` and ``parent`` in turn: ``levels + 1`` deep (over the depth
    limit of 10 from 10 levels), with ``spreads ** levels`` paths."""
    if not 1 <= levels < len(NAMES):
        raise ValueError(f"levels must be 1..{len(NAMES) - 1}, got {levels}")
    fragments = []
    for level in range(levels):
        field = "parent" if level % 2 else "attachedResources"
        fragments.append(
            f"fragment {NAMES[level]} on CloudResource{{{field}{{"
            + f"...{NAMES[level + 1]}" * spreads
            + "}}"
        )
    fragments.append(f"fragment {NAMES[levels]} on CloudResource{{id}}")
    return '{resource(resourceId:"x"){...a}}' + "".join(fragments)

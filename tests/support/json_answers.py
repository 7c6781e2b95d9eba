"""Hypothesis strategies for what an upstream's JSON may hold, odd forms included."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx
import orjson
from hypothesis import strategies as st

from gateway.errors import UpstreamError
from tests.support.helpers import with_warnings

# Numbers as strings, padded numbers, empty strings, booleans, out-of-range times,
# integers past 64 bits, nested values.
json_values: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", " 7 ", "12", "1.0", "x", "2023-03-23T08:07:34Z", "1679558854000"]),
    # Epoch milliseconds as text, in the forms int() and the readers may disagree on.
    st.sampled_from(["+12", "-12", " 12", "1_000", "\u0661\u0662", "00012", "12.00", "9" * 16]),
    st.integers(min_value=-(2**50), max_value=2**50).map(str),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)


def mostly(
    usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any], one_in: int
) -> st.SearchStrategy[Any]:
    """``odd`` about once in ``one_in`` draws, else ``usual``."""
    return st.integers(1, one_in).flatmap(lambda draw: odd if draw == 1 else usual)


def answer_bodies(
    list_key: str,
    names: Sequence[str],
    others: dict[str, st.SearchStrategy[Any]],
    texts: Sequence[str] = (),
    identifying: Sequence[str] = (),
) -> st.SearchStrategy[bytes]:
    """JSON answers with records under ``list_key``: mostly plain, with ``names`` from
    usual values, sometimes an odd value, an item that is not an object, a key twice, no
    list at all; and the ``others`` keys, each maybe missing. Fields in ``texts`` mostly
    hold text or null, and those in ``identifying`` (without which a record is refused)
    mostly some text. Written by ``json``, which also writes what is not JSON (NaN,
    integers past what orjson reads)."""
    usual = st.one_of(st.none(), st.text(max_size=6), st.integers(-(2**40), 2**40), st.booleans())
    # Mostly plain, so that many answers take the quick way and each odd part decides.
    value = mostly(usual, json_values, one_in=60)
    text = mostly(st.one_of(st.none(), st.text(max_size=6)), value, one_in=50)
    plain = st.fixed_dictionaries(
        {name: st.text(min_size=1, max_size=6) for name in identifying},
        optional={
            name: text if name in texts else value for name in names if name not in identifying
        },
    )
    anonymous = st.fixed_dictionaries({}, optional={name: value for name in names})
    record = mostly(plain, anonymous, one_in=20)
    # "extra": a key the upstream does not document, now and then.
    record = mostly(record, st.tuples(record, json_values).map(with_extra), one_in=30)
    item = mostly(record, json_values, one_in=20)
    listed = mostly(st.lists(item, max_size=5), json_values, one_in=10)
    answer = st.fixed_dictionaries({list_key: listed}, optional=others)
    answer = mostly(answer, st.tuples(answer, json_values).map(with_extra), one_in=10)
    as_text = answer.map(lambda value: json.dumps(value, allow_nan=True))
    # A key written twice: JSON allows it, and the last one counts.
    doubled = st.tuples(answer, st.sampled_from(names), value).map(
        lambda parts: (
            json.dumps(parts[0])[:-1]
            + ("," if len(parts[0]) else "")
            + f"{json.dumps(list_key)}: [{{{json.dumps(parts[1])}: 1, {json.dumps(parts[1])}: "
            + f"{json.dumps(parts[2])}}}]}}"
        )
    )
    return mostly(as_text, doubled, one_in=8).map(str.encode)


def with_extra(parts: tuple[dict[str, Any], Any]) -> dict[str, Any]:
    return {**parts[0], "extra": parts[1]}


def outcome(endpoint: Any, body: bytes, *, quick: bool) -> str:
    """What ``endpoint`` makes of a 200 answer, decoded the quick way (``decode``,
    falling back as the client does) or as general JSON: the page or the error, and the
    readers' warnings, as text, so that types count too (``True`` is not ``1``)."""

    def answer() -> str:
        try:
            payload = endpoint.decode(body) if quick else None
            if payload is None:
                payload = orjson.loads(body)
            return repr(endpoint.parse(200, httpx.Headers(), payload))
        except (UpstreamError, orjson.JSONDecodeError) as exc:
            return repr(exc)

    text, warnings = with_warnings(answer)
    return f"{text}\nwarnings: {warnings!r}"


# Answers orjson refuses whose odd part sits where a decoder might skip it unchecked.
ODD_BODIES = [
    b"[" * 1100 + b"]" * 1100,
    b'"\xff"',  # not UTF-8
    b"1e400",
    b"-1e400",
    b"1" * 401,
    b'"\xc0\xaf"',  # not UTF-8
    b'"\xed\xa0\x80"',  # not UTF-8
]


def with_odd_parts(list_key: str, name: str) -> list[bytes]:
    """Plain answers with each odd part under an undocumented key, at the top and in a
    record, and as a documented field's value."""
    bodies = []
    for odd in ODD_BODIES:
        record = b'{"' + name.encode() + b'": "a", "extra": ' + odd + b"}"
        bodies.append(b'{"' + list_key.encode() + b'": [' + record + b"]}")
        bodies.append(b'{"' + list_key.encode() + b'": [], "extra": ' + odd + b"}")
        bodies.append(b'{"' + list_key.encode() + b'": [{"' + name.encode() + b'": ' + odd + b"}]}")
    return bodies

"""bench.timeline's split of in-process marks into requests."""

from __future__ import annotations

from bench.timeline import render, split_requests


def test_marks_are_split_per_request_in_ms_from_its_start() -> None:
    events = [
        ("gc0", 0.5),  # before any request: not one of them
        ("start", 1.000),
        ("send", 1.001),
        ("recv", 1.021),
        ("encoded", 1.030),
        ("start", 2.000),
        ("send", 2.0005),
    ]
    first, second = split_requests(events)
    assert render(first) == "start@0.0 send@1.0 recv@21.0 encoded@30.0"
    assert render(second) == "start@0.0 send@0.5"

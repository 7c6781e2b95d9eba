"""Upstream codes to the schema's enums."""

from __future__ import annotations

import logging

import pytest

import schema.enums as enums
from schema.enums import SubscriptionStatus, resource_status, subscription_status


def test_an_undocumented_code_is_null_and_reported_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(enums, "_REPORTED", set())
    with caplog.at_level(logging.WARNING, logger="gateway.schema"):
        # A connection's nodes are converted again on every request: one warning, not one
        # per record per request.
        assert [subscription_status(99) for _ in range(3)] == [None, None, None]
        assert resource_status(99) is None  # another field: its own report
        assert subscription_status(98) is None
    reported = [(r.getMessage(), r.__dict__["field"], r.__dict__["value"]) for r in caplog.records]
    assert reported == [
        ("undocumented enum value", "status", 99),
        ("undocumented enum value", "status", 99),
        ("undocumented enum value", "status", 98),
    ]
    assert subscription_status(None) is None
    assert subscription_status(enums.SUBSCRIPTION_STATUS_CODES[SubscriptionStatus.EFFECTIVE]) is (
        SubscriptionStatus.EFFECTIVE
    )


def test_past_the_bound_every_sighting_is_reported(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(enums, "_REPORTED", set())
    monkeypatch.setattr(enums, "_MAX_REPORTED", 1)
    with caplog.at_level(logging.WARNING, logger="gateway.schema"):
        for code in (97, 96, 96, 97):
            subscription_status(code)
    assert [r.__dict__["value"] for r in caplog.records] == [97, 96, 96]

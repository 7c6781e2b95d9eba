"""Credentials checked before any call, and their keyed fingerprints."""

from __future__ import annotations

import hashlib

import pytest

from gateway.caller import Caller
from gateway.credentials import PROCESS_KEY, CredentialKey, token_problem

# The shape of a Huawei PKI token: base64 of a signed document (the CBC page's starts so).
PKI_TOKEN = "MIIPAgYJKoZIhvcNAQcCoIIO8zCCDu8CAQExDTALBglghkgBZQMEAgEwgg0U" * 250


@pytest.mark.parametrize(
    "token",
    [
        "demo-token",
        PKI_TOKEN[:12_288],
        "MIIa+/b=",
        "abc-def_ghi.jkl",  # URL-safe base64 and a JWT's dots
    ],
)
def test_tokens_of_the_shapes_iam_issues_are_accepted(token: str) -> None:
    assert token_problem(token, 12_288) is None


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        (PKI_TOKEN[:12_289], "the token is longer than 12288 characters, which no IAM token is"),
        ("a" * 17_000, "the token is longer than 12288 characters, which no IAM token is"),
        ("two words", "the token holds characters an IAM token never does"),
        ("tab\there", "the token holds characters an IAM token never does"),
        ("naïve", "the token holds characters an IAM token never does"),
        ('quote"d', "the token holds characters an IAM token never does"),
        ("semi;colon", "the token holds characters an IAM token never does"),
        ("nul\x00", "the token holds characters an IAM token never does"),
    ],
)
def test_what_no_token_can_be_is_refused_with_its_reason(token: str, problem: str) -> None:
    assert token_problem(token, 12_288) == problem


def test_the_cap_is_the_one_configured() -> None:
    assert token_problem("a" * 65, 64) is not None
    assert token_problem("a" * 64, 64) is None


def test_fingerprints_are_keyed_by_the_deployments_secret() -> None:
    token = "token-alice"
    one = CredentialKey("s" * 32).fingerprint(token)
    assert one == CredentialKey("s" * 32).fingerprint(token)  # replicas with one secret agree
    assert one != CredentialKey("t" * 32).fingerprint(token)
    assert len(one) == 32 and int(one, 16) >= 0
    # Not the unkeyed hashes a reader of logs could compute from a guessed token.
    for unkeyed in (
        hashlib.sha256(token.encode()).hexdigest(),
        hashlib.sha256(b"gateway-credential\x00" + token.encode()).hexdigest(),
    ):
        assert one != unkeyed[:32]
    assert CredentialKey("s" * 32).fingerprint("token-bob") != one


def test_a_process_without_a_secret_draws_a_key_of_its_own() -> None:
    assert CredentialKey().fingerprint("t") != CredentialKey().fingerprint("t")
    assert repr(CredentialKey("s" * 32)) == "CredentialKey(…)"  # the secret never shows


def test_a_secret_given_as_bytes_is_the_same_key() -> None:
    assert CredentialKey(b"s" * 32).fingerprint("t") == CredentialKey("s" * 32).fingerprint("t")


def test_a_caller_carries_the_fingerprint_of_its_key_and_never_shows_its_token() -> None:
    key = CredentialKey("k" * 32)
    caller = Caller("token-alice", origin="203.0.113.7", key=key)
    assert caller.fingerprint == key.fingerprint("token-alice")
    assert Caller("token-alice").fingerprint == PROCESS_KEY.fingerprint("token-alice")
    assert "token-alice" not in repr(caller)
    # A lone surrogate (JSON lets a client send one) still has a fingerprint.
    assert len(Caller("\ud800").fingerprint) == 32

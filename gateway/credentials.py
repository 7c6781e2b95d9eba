"""Credentials as the gateway sees them: checked before any call, known by a keyed fingerprint.

A caller's ``X-Auth-Token`` is forwarded to the upstreams and never stored. What the
gateway keeps of it (cache keys, the quota's turns, what the upstreams said of it, log
lines) is its fingerprint: an HMAC under a key of this deployment, so a fingerprint read
from a log or from Redis cannot confirm a guessed token without the key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

# What a Huawei IAM token is made of: base64 text (its URL-safe letters too), as the
# documented examples are; and the dots of a JWT, which some gateways' tokens are. A
# space, a control character or anything beyond ASCII is no token and is never sent on.
_TOKEN_TEXT = re.compile(r"[A-Za-z0-9+/=_.\-]+")


def token_problem(token: str, max_bytes: int) -> str | None:
    """Why ``token`` cannot be a credential the upstreams accept, or None. Checked before
    any call: a token the upstream's own gateway would refuse (over its 16 KB of headers)
    must cost no call, and answer the caller plainly."""
    if len(token) > max_bytes:
        return f"the token is longer than {max_bytes} characters, which no IAM token is"
    if _TOKEN_TEXT.fullmatch(token) is None:
        return "the token holds characters an IAM token never does"
    return None


class CredentialKey:
    """Makes fingerprints of credentials under one secret key."""

    __slots__ = ("_key",)

    def __init__(self, secret: str | bytes | None = None) -> None:
        """``secret``: the deployment's (``GATEWAY_CREDENTIAL_SECRET``), or None for a key
        of this process alone, drawn now."""
        if secret is None:
            self._key = secrets.token_bytes(32)
        else:
            self._key = secret.encode() if isinstance(secret, str) else secret

    def fingerprint(self, token: str) -> str:
        # 128 bits: enough that two tokens never share cache entries, short in keys and logs.
        digest = hmac.new(self._key, token.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return digest.hexdigest()[:32]

    def __repr__(self) -> str:
        return "CredentialKey(…)"


PROCESS_KEY = CredentialKey()
"""A key of this process alone, for callers made without the deployment's (tests, tools)."""

"""Opaque pagination cursors.

A cursor names a position (an offset) in one connection. It is checksummed so
that a cursor we did not issue, or one from another connection, is refused with
a clear error before any upstream call; it carries nothing secret, so every
replica can read every other's cursors.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from gateway.errors import InvalidRequest

_VERSION = "c1"
_MAX_OFFSET = 10_000_000
_MAX_CURSOR_LENGTH = 64


def _checksum(connection: str, offset: int) -> str:
    return hashlib.sha256(f"{_VERSION}|{connection}|{offset}".encode()).hexdigest()[:8]


def encode_cursor(connection: str, offset: int) -> str:
    raw = f"{_VERSION}|{offset}|{_checksum(connection, offset)}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(connection: str, cursor: str) -> int:
    """The offset a cursor names; ``InvalidRequest`` for anything we did not issue."""
    invalid = InvalidRequest(f"`after` is not a cursor of {connection}")
    if not cursor or len(cursor) > _MAX_CURSOR_LENGTH:
        raise invalid
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        raise invalid from None
    parts = raw.split("|")
    if len(parts) != 3 or parts[0] != _VERSION or not parts[1].isdigit():
        raise invalid
    offset = int(parts[1])
    if offset > _MAX_OFFSET or parts[2] != _checksum(connection, offset):
        raise invalid
    if encode_cursor(connection, offset) != cursor:
        raise invalid  # one canonical spelling per position
    return offset

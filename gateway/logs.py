"""Structured JSON logs: one object per line.

Fields passed with ``extra=`` land in the object. A token never reaches a log
line: callers log fingerprints, and as a last line of defence any value under
a key that names a credential is replaced. Terminal colours never do: uvicorn's
``color_message`` (the same message with ANSI escapes) is dropped, and escapes in a
message are removed.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

_STANDARD_ATTRIBUTES = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "color_message"}
)
_SECRET_KEYS = ("token", "authorization", "password", "secret", "cookie")
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_quiet_server = contextvars.ContextVar("quiet_server", default=False)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if "\x1b" in message:
            message = _ANSI_ESCAPE.sub("", message)
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": message,
        }
        for key, value in record.__dict__.items():
            if key in _STANDARD_ATTRIBUTES or key.startswith("_"):
                continue
            lowered = key.lower()
            if any(secret in lowered for secret in _SECRET_KEYS) and "fingerprint" not in lowered:
                value = "[redacted]"
            entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class _QuietServerFilter(logging.Filter):
    """Drops uvicorn's informational lines logged within ``quiet_server()``."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            _quiet_server.get()
            and record.levelno < logging.WARNING
            and record.name.startswith("uvicorn")
        )


@contextlib.contextmanager
def quiet_server() -> Iterator[None]:
    """Within this (and the tasks started within it), uvicorn's informational lines are not
    logged: a second server in the same process (the demo's simulator) would repeat the
    first's start-up lines. Its warnings and errors still are."""
    token = _quiet_server.set(True)
    try:
        yield
    finally:
        _quiet_server.reset(token)


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for the gateway's and uvicorn's loggers."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(_QuietServerFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's access log would repeat our request line without the fields that matter.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True

"""The JSON log lines: one clean object per event, whoever logs it."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator

import orjson
import pytest

from gateway.logs import JsonFormatter, configure_logging, quiet_server


def uvicorn_style(message: str, *args: object, level: int = logging.INFO) -> logging.LogRecord:
    """A record as uvicorn logs it: the message, and the same in colours as an extra."""
    record = logging.LogRecord("uvicorn.error", level, "server.py", 1, message, args, None)
    record.color_message = "Started server process [\x1b[36m%d\x1b[0m]"
    return record


def test_a_line_carries_no_colour_copy_of_its_message() -> None:
    line = JsonFormatter().format(uvicorn_style("Started server process [%d]", 42))
    entry = orjson.loads(line)
    assert entry["message"] == "Started server process [42]"
    assert "color_message" not in entry
    assert "\x1b" not in line and "\\u001b" not in line


def test_escapes_in_a_message_are_removed() -> None:
    record = logging.LogRecord("x", logging.INFO, "x.py", 1, "\x1b[1mbold\x1b[0m %s", ("y",), None)
    assert orjson.loads(JsonFormatter().format(record))["message"] == "bold y"


def test_fields_and_redaction_are_kept() -> None:
    record = logging.LogRecord("gateway.request", logging.INFO, "m.py", 1, "request", (), None)
    record.status = 400
    record.x_auth_token = "secret-token"
    entry = orjson.loads(JsonFormatter().format(record))
    assert entry["status"] == 400 and entry["x_auth_token"] == "[redacted]"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The root handler configure_logging installs, writing into a buffer."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("INFO")
    (handler,) = root.handlers
    buffer = io.StringIO()
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    yield buffer
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_a_quiet_server_repeats_no_start_up_line_but_keeps_its_warnings(
    captured: io.StringIO,
) -> None:
    uvicorn = logging.getLogger("uvicorn.error")

    async def second_server() -> None:
        uvicorn.info("Started server process [%d]", 2)
        uvicorn.warning("Invalid HTTP request received.")
        logging.getLogger("gateway.request").info("request")

    uvicorn.info("Started server process [%d]", 1)
    with quiet_server():
        task = asyncio.create_task(second_server())
    await task
    uvicorn.info("Shutting down")
    messages = [orjson.loads(line)["message"] for line in captured.getvalue().splitlines()]
    assert messages == [
        "Started server process [1]",
        "Invalid HTTP request received.",
        "request",
        "Shutting down",
    ]

"""HTTP/1.1 by hand over loopback sockets, for what a client library will not do: send a
request a byte at a time, send nothing, keep a connection idle, send a megabyte of headers."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    """Lower-cased names; the last value of a repeated header."""
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    """A whole HTTP/1.1 request as bytes (with Host and, for a body, Content-Length)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class RawConnection:
    """One client connection. Reads wait at most ``timeout`` seconds (then TimeoutError)."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self._buffer = b""
        self._closing = threading.Event()

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._closing.set()
        self.socket.close()

    def send(self, data: bytes) -> None:
        self.socket.sendall(data)

    def trickle(self, data: bytes, interval: float) -> threading.Thread:
        """Sends ``data`` a byte every ``interval`` seconds from a thread, until it is all
        sent, the server stops taking it, or this connection closes."""

        def send_bytes() -> None:
            for index in range(len(data)):
                if self._closing.wait(interval):
                    return
                try:
                    self.socket.send(data[index : index + 1])
                except OSError:
                    return

        thread = threading.Thread(target=send_bytes, daemon=True)
        thread.start()
        return thread

    def _receive(self, deadline: float) -> bytes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("nothing more from the server in time")
        self.socket.settimeout(remaining)
        try:
            return self.socket.recv(65536)
        except TimeoutError:
            raise TimeoutError("nothing more from the server in time") from None

    def read_response(self, timeout: float = 5.0) -> RawResponse:
        """The next response (its body by Content-Length), within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self._buffer:
            chunk = self._receive(deadline)
            if not chunk:
                raise ConnectionError(f"closed before a whole response: {self._buffer!r}")
            self._buffer += chunk
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self._buffer) < length:
            chunk = self._receive(deadline)
            if not chunk:
                raise ConnectionError("closed in the middle of a response body")
            self._buffer += chunk
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        return RawResponse(int(status_line.split()[1]), headers, body)

    def wait_closed(self, timeout: float) -> bytes:
        """Reads until the server closes its end (FIN), within ``timeout`` seconds; returns
        what came before it. A reset raises ConnectionResetError, a timeout TimeoutError."""
        deadline = time.monotonic() + timeout
        received = self._buffer
        self._buffer = b""
        while chunk := self._receive(deadline):
            received += chunk
        return received

    def is_open(self, wait: float = 0.1) -> bool:
        """Whether the server still holds the connection open after ``wait`` seconds."""
        try:
            self.wait_closed(wait)
        except TimeoutError:
            return True
        return False

"""What one HTTP/1.1 connection may hold, and for how long: uvicorn's protocol with limits.

uvicorn (0.55) with httptools reads a request head of any size and waits as long as a
client likes for it and for the body; a connection that sends nothing is never closed.
``LimitedHttpToolsProtocol`` is uvicorn's httptools protocol (``Config(http=...)``) with,
per connection:

- the request head (request line and header fields) capped at ``max_header_bytes``: 431;
- the head due within ``header_timeout`` of the connection opening, or of the read that
  brought its first bytes on a kept-alive connection: 408, or a plain close when nothing
  came at all;
- the body due within ``body_timeout`` of the read that completed the head: 408;
- at most ``max_connections`` open: one more closes the connection idle longest (waiting
  for a first request, or between requests, for ``EVICTABLE_AFTER`` at least); with none
  idle that long, its request is answered 503 with ``Retry-After``.

Idle kept-alive connections close after uvicorn's ``timeout_keep_alive``. A refusal is a
JSON body in GraphQL's error shape (``extensions.code``) with ``Connection: close``. The
connection then sends its end (FIN) and drops what the client still sends for at most
``LINGER_SECONDS``: closing at once, with unread bytes, would reset the connection, and
the client, still sending its megabyte of headers, would lose the answer with it.

It relies on uvicorn's protocol internals (its parser callbacks, ``cycle``, ``flow``,
``pipeline``): ``pyproject.toml`` pins uvicorn below the next minor version.
"""

from __future__ import annotations

import asyncio
import http
import logging
from typing import Any

import httptools
import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from gateway.config import ServerSettings

logger = logging.getLogger("gateway.connections")

RETRY_AFTER_SECONDS = 1
"""Connections free up within a request or a header timeout; a second is a fair wait."""
LINGER_SECONDS = 2.0
"""How long a refused connection drains what the client still sends before it closes."""
EVICTABLE_AFTER = 1.0
"""Seconds a connection must have been idle to be closed for a newcomer: a client whose
requests come quicker keeps its connection, so a flood of new ones cannot cut it off."""

HEADERS_TOO_LARGE = "REQUEST_HEADERS_TOO_LARGE"
REQUEST_TIMEOUT = "REQUEST_TIMEOUT"
TOO_MANY_CONNECTIONS = "TOO_MANY_CONNECTIONS"


class LimitedConfig(uvicorn.Config):
    """uvicorn's configuration, serving HTTP/1.1 with ``LimitedHttpToolsProtocol`` under the
    limits of ``server``. It is pickled whole to the worker processes of ``--workers``."""

    def __init__(self, app: Any, server: ServerSettings, **options: Any) -> None:
        super().__init__(
            app,
            http=LimitedHttpToolsProtocol,
            ws="none",  # no WebSocket route: an upgrade is an ordinary request
            # uvicorn annotates whole seconds; its timer (loop.call_later) takes any number.
            timeout_keep_alive=server.keep_alive_timeout,  # type: ignore[arg-type]
            **options,
        )
        self.connection_limits = server


class _StopParsing(Exception):
    """Raised in a parser callback once the request is refused: httptools stops there."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not isinstance(config, LimitedConfig):
            raise TypeError("LimitedHttpToolsProtocol serves a LimitedConfig")
        super().__init__(config, server_state, app_state, _loop)
        limits = config.connection_limits
        self._max_header_bytes = limits.max_header_bytes
        self._header_timeout = limits.header_timeout
        self._body_timeout = limits.body_timeout
        self._max_connections = limits.max_connections
        self._cors_origins = frozenset(limits.cors_origins)
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._in_head = False
        """Some of a request head has arrived, not all of it."""
        self._head_bytes = 0
        """Bytes read while the head is incomplete, in whole reads (httptools keeps a header
        line whole until its end: this bounds what it holds)."""
        self._read_bytes = 0
        """Bytes of the read being parsed."""
        self._body_pending = False
        """The app runs a request whose body has not all arrived."""
        self._idle_since: float | None = None
        """When the connection last had no request in progress; None while it has one."""
        self._refused = False
        self._over_cap = False
        """It came while the connections were at their limit, and none could make room."""
        self._linger_timer: asyncio.TimerHandle | None = None
        self._open_cycles: list[RequestResponseCycle] = []
        """Requests not answered yet: the one the app runs, and any pipelined behind it."""

    # Connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._idle_since = self.loop.time()
        self._start_head_timer()
        # Over the limit, a connection idle a while makes room; with none, this newcomer's
        # request is refused unless room has come by then. A connection let in is never
        # refused for the ones that come after it.
        self._over_cap = self._over_the_limit() and not self._close_one_idle_connection()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # draining before the close: what the client still sends is dropped
        # uvicorn's own, but for a refusal raised from a parser callback.
        self._unset_keepalive_if_required()
        self._read_bytes = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if not self._refused:  # refused in a callback: answered already
                message = "Invalid HTTP request received."
                self.logger.warning(message)
                self.send_400_response(message)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        # The timers are set only when a read leaves a head or a body unfinished: most
        # requests come whole in one read, and then cost no timer at all.
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > self._max_header_bytes:
                self._refuse_headers_too_large()
            elif self._head_timer is None:  # a kept-alive connection's next request
                self._start_head_timer()
        elif self._body_pending:
            if self._body_timer is None:
                self._body_timer = self.loop.call_later(self._body_timeout, self._body_timed_out)
        elif self._idle_since is not None and self._head_timer is None:
            # Bytes that began no request (blank lines, which the parser skips) stopped the
            # keep-alive timer above: without a timer the connection would stay open forever.
            self._start_head_timer()

    def _start_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self._header_timeout, self._head_timed_out)

    # Parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        self._idle_since = None

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if (
            self._head_bytes + self._read_bytes > self._max_header_bytes
            and self._head_size() > self._max_header_bytes
        ):
            self._refuse_headers_too_large()
            raise _StopParsing
        if self._over_cap:
            if self._over_the_limit():
                self._refuse_too_many_connections()
                raise _StopParsing
            self._over_cap = False  # room came: it is in
        super().on_headers_complete()
        self._open_cycles = [cycle for cycle in self._open_cycles if not cycle.response_complete]
        self._open_cycles.append(self.cycle)
        # Its body is timed from the end of this read; one waiting behind a pipelined request
        # (unread, by uvicorn) is timed once that one is answered.
        self._body_pending = not (self.pipeline and self.pipeline[0][0] is self.cycle)

    def _head_size(self) -> int:
        """The request target and header fields, with their separators: the head, to within
        the method and version."""
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def on_message_complete(self) -> None:
        self._body_pending = False
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()

    def on_response_complete(self) -> None:
        waiting = self.pipeline[-1][0] if self.pipeline else None
        super().on_response_complete()  # starts the pipelined request next in line, if any
        if waiting is not None and waiting is self.cycle and waiting.more_body:
            if not (self._refused or self.transport.is_closing()) and self._body_timer is None:
                self._body_pending = True
                self._body_timer = self.loop.call_later(self._body_timeout, self._body_timed_out)
        elif self.cycle.response_complete and not self.pipeline and not self._in_head:
            self._idle_since = self.loop.time()

    # Timers

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head:
            self._refuse(
                408,
                REQUEST_TIMEOUT,
                f"the request's headers did not arrive within {self._header_timeout:g} s",
            )
        elif not self.transport.is_closing():
            self.transport.close()  # nothing was asked: nothing to answer

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self.cycle.response_complete:
            # Answered already (the app did not wait for the body): no second answer.
            self.transport.close()
            return
        self._refuse(
            408, REQUEST_TIMEOUT, f"the request body did not arrive within {self._body_timeout:g} s"
        )

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer, self._linger_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = self._linger_timer = None

    # The connection limit

    def _over_the_limit(self) -> bool:
        if len(self.connections) <= self._max_connections:
            return False
        # Over it, count again without the refused ones, closing within LINGER_SECONDS.
        open_connections = sum(
            1
            for connection in self.connections
            if not (isinstance(connection, LimitedHttpToolsProtocol) and connection._refused)
        )
        return open_connections > self._max_connections

    def _close_one_idle_connection(self) -> bool:
        """Makes room for this connection: the one idle longest closes, as uvicorn's keep-alive
        timeout would close it (a client sends its next request on a new connection). Whether
        there was one."""
        # Only a connection idle a while: a client between two quick requests would send its
        # next one into the close, and see it fail.
        idle_before = self.loop.time() - EVICTABLE_AFTER
        idle = [
            connection
            for connection in self.connections
            if isinstance(connection, LimitedHttpToolsProtocol)
            and connection is not self
            and connection._idle_since is not None
            and connection._idle_since <= idle_before
            and not connection.transport.is_closing()
        ]
        if not idle:
            return False
        oldest = min(idle, key=lambda connection: connection._idle_since or 0.0)
        oldest._cancel_timers()
        oldest.transport.close()
        return True

    def _refuse_too_many_connections(self) -> None:
        headers = [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())]
        origin = dict(self.headers).get(b"origin")
        if origin is not None and origin.decode("latin-1") in self._cors_origins:
            # Else a browser hides the answer from the page: a bare "network error".
            headers += [
                (b"access-control-allow-origin", origin),
                (b"access-control-expose-headers", b"Retry-After"),
                (b"vary", b"Origin"),
            ]
        self._refuse(
            503,
            TOO_MANY_CONNECTIONS,
            f"the gateway has {self._max_connections} connections open, its limit; "
            f"retry in {RETRY_AFTER_SECONDS} s",
            headers,
        )

    def _refuse_headers_too_large(self) -> None:
        self._refuse(
            431,
            HEADERS_TOO_LARGE,
            f"the request's headers are over {self._max_header_bytes} bytes",
        )

    # Refusing

    def _refuse(
        self,
        status: int,
        code: str,
        message: str,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        if self._refused:
            return
        self._refused = True
        self._in_head = self._body_pending = False
        self._idle_since = None
        self._cancel_timers()
        self._unset_keepalive_if_required()
        self.pipeline.clear()
        if self.transport.is_closing():
            return
        answer = True
        for cycle in self._open_cycles:
            if not cycle.response_complete:
                # The app, if it runs, hears that the client is gone (receive() returns
                # http.disconnect) and what it sends goes nowhere, as after a disconnect.
                # An answer begun on the wire leaves no room for this one.
                answer = answer and not cycle.response_started
                cycle.disconnected = True
                cycle.message_event.set()
        self._open_cycles = []
        if answer:
            self.transport.write(self._response(status, code, message, headers or []))
        log = logger.warning if status == 503 else logger.info
        log("request refused", extra={"status": status, "code": code})
        self._linger()

    def _response(
        self, status: int, code: str, message: str, headers: list[tuple[bytes, bytes]]
    ) -> bytes:
        body = orjson.dumps({"errors": [{"message": message, "extensions": {"code": code}}]})
        lines = [b"HTTP/1.1 %d %s" % (status, http.HTTPStatus(status).phrase.encode())]
        for name, value in [
            *self.server_state.default_headers,
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
            *headers,
        ]:
            lines.append(name + b": " + value)
        return b"\r\n".join(lines) + b"\r\n\r\n" + body

    def _linger(self) -> None:
        self.parser = httptools.HttpRequestParser(self)  # drops the head the old one holds
        self.flow.resume_reading()
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()  # sent once the answer is out
        # The client's own close ends it sooner (eof_received: the transport closes).
        self._linger_timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)

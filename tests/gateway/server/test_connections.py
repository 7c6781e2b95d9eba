"""The server as shipped (``gateway serve``) against clients that hold connections: heads
and bodies sent a byte at a time, silence, idle keep-alive, huge headers, a flood.

Real processes on loopback, with the timeouts at 1 s to keep the suite fast."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway.server.connections import (
    EVICTABLE_AFTER,
    HEADERS_TOO_LARGE,
    REQUEST_TIMEOUT,
    TOO_MANY_CONNECTIONS,
)
from tests.support.raw_http import RawConnection, RawResponse, request
from tests.support.redis_server import free_port

LIMIT = 1.0  # the header, body and keep-alive timeouts of the "timed" gateway, seconds
SLACK = 1.0  # what a loaded machine may add to a timer before the close is seen
CAP = 4  # connections of the "capped" gateway
SLOW_UPSTREAM = 1.5  # seconds CBC takes to answer: longer than LIMIT
ORIGIN = "https://console.example"
QUERY = '{"query": "{ subscriptions(first: 2) { totalCount nodes { id } } }"}'


@dataclass(frozen=True)
class Servers:
    timed: int
    """Port of a gateway with 1 s timeouts and the default header and connection limits."""
    capped: int
    """Port of a gateway that takes 4 connections (timeouts 5 s, so a flood stays busy)."""
    timed_pid: int
    timed_log: Path
    """What the timed gateway logged (warnings and errors)."""


def wait_until_up(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited: {log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"port {port} did not come up: {log.read_text()}")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    logs = tmp_path_factory.mktemp("connections")
    simulator_port, timed, capped = free_port(), free_port(), free_port()
    simulator = f"http://127.0.0.1:{simulator_port}"
    common = {
        **os.environ,
        "GATEWAY_OMA_BASE_URL": simulator,
        "GATEWAY_CBC_BASE_URL": simulator,
        "GATEWAY_OMA_RATE_LIMIT": "0",
        "GATEWAY_CBC_RATE_LIMIT": "0",
        "GATEWAY_LOG_LEVEL": "warning",
    }
    commands = {
        simulator_port: (
            [
                *(sys.executable, "-m", "gateway.simulator"),
                *("--port", str(simulator_port), "--cbc-latency", str(SLOW_UPSTREAM)),
            ],
            {},
        ),
        timed: (
            [sys.executable, "-m", "gateway.server.cli", "serve"],
            {
                "GATEWAY_PORT": str(timed),
                "GATEWAY_HEADER_TIMEOUT": str(LIMIT),
                "GATEWAY_BODY_TIMEOUT": str(LIMIT),
                "GATEWAY_KEEP_ALIVE_TIMEOUT": str(LIMIT),
            },
        ),
        capped: (
            [sys.executable, "-m", "gateway.server.cli", "serve"],
            {
                "GATEWAY_PORT": str(capped),
                "GATEWAY_MAX_CONNECTIONS": str(CAP),
                "GATEWAY_HEADER_TIMEOUT": "5",
                "GATEWAY_CORS_ORIGINS": ORIGIN,
            },
        ),
    }
    processes: dict[int, tuple[subprocess.Popen[bytes], Path]] = {}
    try:
        for port, (command, env) in commands.items():
            log = logs / f"{port}.log"
            with log.open("wb") as output:
                processes[port] = (
                    subprocess.Popen(command, env={**common, **env}, stdout=output, stderr=output),
                    log,
                )
        for port, (process, log) in processes.items():
            if port == simulator_port:
                continue
            wait_until_up(port, process, log)
        yield Servers(
            timed=timed,
            capped=capped,
            timed_pid=processes[timed][0].pid,
            timed_log=processes[timed][1],
        )
    finally:
        for process, _ in processes.values():
            process.terminate()
        for process, _ in processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def assert_refused(response: RawResponse, status: int, code: str) -> None:
    assert response.status == status
    assert response.headers["connection"] == "close"
    assert response.headers["content-type"] == "application/json"
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == code and error["message"]


def test_a_head_sent_a_byte_at_a_time_is_answered_408_and_closed_within_the_limit(
    servers: Servers,
) -> None:
    with RawConnection(servers.timed) as connection:
        started = time.monotonic()
        connection.trickle(request("GET", "/healthz", {"X-Slow": "a" * 10_000}), 0.05)
        response = connection.read_response(timeout=LIMIT + 3)
        assert_refused(response, 408, REQUEST_TIMEOUT)
        assert connection.wait_closed(timeout=1) == b""  # closed by the server, not reset
        assert LIMIT - 0.1 < time.monotonic() - started < LIMIT + SLACK


def test_a_body_sent_a_byte_at_a_time_is_answered_408_and_closed_within_the_limit(
    servers: Servers,
) -> None:
    body = '{"query": "{ subscriptions(first: 2) { totalCount } }", "x": "' + "a" * 5000 + '"}'
    whole = request("POST", "/graphql", {"Content-Type": "application/json"}, body.encode())
    head, _, rest = whole.partition(b"\r\n\r\n")
    with RawConnection(servers.timed) as connection:
        connection.send(head + b"\r\n\r\n")
        started = time.monotonic()
        connection.trickle(rest, 0.05)
        response = connection.read_response(timeout=LIMIT + 3)
        assert_refused(response, 408, REQUEST_TIMEOUT)
        assert connection.wait_closed(timeout=1) == b""
        assert LIMIT - 0.1 < time.monotonic() - started < LIMIT + SLACK
    # The app saw a client gone, not an error of its own: no 500, no traceback logged.
    time.sleep(0.2)
    logged = servers.timed_log.read_text()
    assert "ClientDisconnect" not in logged and "Traceback" not in logged


def test_a_body_is_timed_from_when_the_server_reads_it(servers: Servers) -> None:
    """A pipelined request waits unread behind a slow one: that wait is not the client's,
    and is no 408; its body is timed once it is read, and a slow one is still refused."""
    slow = request(
        "POST",
        "/graphql",
        {"Content-Type": "application/json", "X-Auth-Token": "pipelined"},
        b'{"query": "{ resources(first: 1) { totalCount } }"}',
    )
    whole = request("POST", "/graphql", {"Content-Type": "application/json"}, QUERY.encode())
    head, _, body = whole.partition(b"\r\n\r\n")
    with RawConnection(servers.timed) as connection:
        started = time.monotonic()
        connection.send(slow + head + b"\r\n\r\n")
        time.sleep(0.2)
        connection.send(body[:5])  # and the rest never
        first = connection.read_response(timeout=SLOW_UPSTREAM + 3)
        assert first.status == 200, first.body
        assert first.json()["data"]["resources"]["totalCount"] > 0
        assert time.monotonic() - started > SLOW_UPSTREAM
        assert_refused(connection.read_response(timeout=LIMIT + 3), 408, REQUEST_TIMEOUT)


def test_a_connection_that_sends_nothing_is_closed_within_the_header_limit(
    servers: Servers,
) -> None:
    with RawConnection(servers.timed) as connection:
        started = time.monotonic()
        assert connection.wait_closed(timeout=LIMIT + 3) == b""  # nothing asked, no answer
        assert LIMIT - 0.1 < time.monotonic() - started < LIMIT + SLACK


def test_a_slow_body_does_not_hold_up_the_drain_after_sigterm(tmp_path: Path) -> None:
    """Kubernetes' rollout waits for the drain: a client cannot stretch it past the limit."""
    port = free_port()
    env = {
        **os.environ,
        "GATEWAY_PORT": str(port),
        "GATEWAY_BODY_TIMEOUT": str(LIMIT),
        "GATEWAY_SHUTDOWN_GRACE": "10",
    }
    log = tmp_path / "gateway.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway.server.cli", "serve"],
            env=env,
            stdout=output,
            stderr=output,
        )
    try:
        wait_until_up(port, process, log)
        with RawConnection(port) as connection:
            connection.send(
                b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n"
            )
            connection.trickle(b'{"query": "' + b"a" * 4990, 0.05)
            time.sleep(0.2)
            signalled = time.monotonic()
            process.send_signal(signal.SIGTERM)
            assert_refused(connection.read_response(timeout=5), 408, REQUEST_TIMEOUT)
        # Closed on the answer, as a client does (one that does not is closed after
        # LINGER_SECONDS).
        assert process.wait(timeout=5) == 0
        assert time.monotonic() - signalled < LIMIT + SLACK
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_kept_alive_connection_serves_requests_then_closes_when_idle(
    servers: Servers,
) -> None:
    with RawConnection(servers.timed) as connection:
        connection.send(request("GET", "/healthz"))
        assert connection.read_response().status == 200
        time.sleep(LIMIT / 2)
        connection.send(request("GET", "/healthz"))  # reused: still open within the limit
        assert connection.read_response().status == 200
        answered = time.monotonic()
        assert connection.wait_closed(timeout=LIMIT + 3) == b""
        assert LIMIT - 0.1 < time.monotonic() - answered < LIMIT + SLACK


def test_blank_lines_after_a_request_do_not_keep_the_connection_open(servers: Servers) -> None:
    with RawConnection(servers.timed) as connection:
        connection.send(request("GET", "/healthz"))
        assert connection.read_response().status == 200
        connection.send(b"\r\n")  # skipped by the parser: no request begins
        sent = time.monotonic()
        assert connection.wait_closed(timeout=LIMIT + 3) == b""
        assert time.monotonic() - sent < LIMIT + SLACK


@pytest.mark.parametrize("size", [100 * 1024, 1024 * 1024])
def test_a_huge_header_is_answered_431(servers: Servers, size: int) -> None:
    with RawConnection(servers.timed) as connection:
        connection.send(request("GET", "/healthz", {"X-Huge": "a" * size}))
        assert_refused(connection.read_response(), 431, HEADERS_TOO_LARGE)
        assert connection.wait_closed(timeout=3) == b""


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def test_unfinished_megabyte_headers_on_eight_connections_are_431_and_not_kept(
    servers: Servers,
) -> None:
    """The attack review's case: 8 connections with 8 MB of headers never finished."""
    httpx.get(f"http://127.0.0.1:{servers.timed}/healthz")
    before = rss_bytes(servers.timed_pid)
    unfinished = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Huge: " + b"a" * 1024 * 1024
    answers: list[RawResponse] = []
    failures: list[Exception] = []

    def attack() -> None:
        try:
            with RawConnection(servers.timed) as connection:
                connection.send(unfinished)
                answers.append(connection.read_response())
                connection.wait_closed(timeout=3)
        except Exception as exc:
            failures.append(exc)

    threads = [threading.Thread(target=attack) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not failures and len(answers) == 8
    for answer in answers:
        assert_refused(answer, 431, HEADERS_TOO_LARGE)
    grown = rss_bytes(servers.timed_pid) - before
    assert grown < 10 * 1024 * 1024, f"the process grew by {grown / 2**20:.1f} MB"


def test_the_default_header_limit_takes_a_12_kb_token_and_refuses_a_33_kb_head(
    servers: Servers,
) -> None:
    token = ("MIIatAYJKoZIhvcNAQcCoIIapTCCGqECAQExDTALBglghkgBZQMEAgEwghjGBgkq" * 200)[:12_000]
    browser = {  # what a browser adds to an Apollo Client request
        "Content-Type": "application/json",
        "Accept": "application/graphql-response+json, application/json",
        "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0",
        "Accept-Language": "en-GB,en;q=0.9,zh-CN;q=0.8",
        "Cookie": "session=" + "c" * 1500,
        "X-Auth-Token": token,
    }
    with RawConnection(servers.timed) as connection:
        connection.send(request("POST", "/graphql", browser, QUERY.encode()))
        answer = connection.read_response()
        assert answer.status == 200, answer.body
        assert answer.json()["data"]["subscriptions"]["totalCount"] > 0
    with RawConnection(servers.timed) as connection:
        padded = {**browser, "X-Padding": "p" * 20_000}  # the head is now over 32 KB
        connection.send(request("POST", "/graphql", padded, QUERY.encode()))
        assert_refused(connection.read_response(), 431, HEADERS_TOO_LARGE)


def test_past_the_connection_limit_a_request_is_answered_503_and_served_after(
    servers: Servers,
) -> None:
    flood = [RawConnection(servers.capped) for _ in range(CAP)]
    try:
        for connection in flood:  # each busy: a request head under way
            connection.send(b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        time.sleep(0.2)
        with RawConnection(servers.capped) as extra:
            extra.send(request("GET", "/healthz", {"Origin": ORIGIN}))
            response = extra.read_response()
            assert_refused(response, 503, TOO_MANY_CONNECTIONS)
            assert response.headers["retry-after"] == "1"
            assert response.headers["access-control-allow-origin"] == ORIGIN
            assert f"{CAP} connections" in response.json()["errors"][0]["message"]
            assert extra.wait_closed(timeout=3) == b""
        assert all(connection.is_open() for connection in flood)
    finally:
        for connection in flood:
            connection.close()
    time.sleep(0.2)
    assert httpx.get(f"http://127.0.0.1:{servers.capped}/healthz").status_code == 200


def test_at_the_connection_limit_the_connection_idle_longest_makes_room(
    servers: Servers,
) -> None:
    silent = [RawConnection(servers.capped)]
    try:
        time.sleep(EVICTABLE_AFTER + 0.1)  # the first idle long enough to give way
        for _ in range(CAP - 1):
            silent.append(RawConnection(servers.capped))
        with RawConnection(servers.capped) as newcomer:
            newcomer.send(request("GET", "/healthz"))
            assert newcomer.read_response().status == 200
        assert silent[0].wait_closed(timeout=1) == b""
        assert all(connection.is_open() for connection in silent[1:])
    finally:
        for connection in silent:
            connection.close()


def test_a_connection_idle_only_a_moment_is_not_closed_for_a_newcomer(
    servers: Servers,
) -> None:
    """A client between two quick requests keeps its connection: a flood of new ones is
    refused instead of cutting it off."""
    busy = [RawConnection(servers.capped) for _ in range(CAP)]
    try:
        with RawConnection(servers.capped) as newcomer:
            newcomer.send(request("GET", "/healthz"))
            assert_refused(newcomer.read_response(), 503, TOO_MANY_CONNECTIONS)
        assert all(connection.is_open() for connection in busy)
    finally:
        for connection in busy:
            connection.close()


def test_refused_connections_do_not_count_against_the_limit_while_they_drain(
    servers: Servers,
) -> None:
    refused = [RawConnection(servers.capped) for _ in range(CAP)]
    try:
        for connection in refused:
            connection.send(request("GET", "/healthz", {"X-Huge": "a" * 40_000}))
            assert_refused(connection.read_response(), 431, HEADERS_TOO_LARGE)
        # Each is still open on this side: the server drains it for LINGER_SECONDS.
        assert httpx.get(f"http://127.0.0.1:{servers.capped}/healthz").status_code == 200
    finally:
        for connection in refused:
            connection.close()


def test_a_connection_let_in_is_not_refused_for_the_ones_after_it(servers: Servers) -> None:
    """At the limit, the newcomers are refused: the tenant already in keeps its answers."""
    with RawConnection(servers.capped) as tenant:
        tenant.send(request("GET", "/healthz"))
        assert tenant.read_response().status == 200
        flood = [RawConnection(servers.capped) for _ in range(CAP + 2)]
        try:
            for _ in range(3):
                tenant.send(request("GET", "/healthz"))
                assert tenant.read_response().status == 200
        finally:
            for connection in flood:
                connection.close()

"""The command line, and the real server process: start, answer, drain on SIGTERM."""

from __future__ import annotations

import builtins
import datetime
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.config import ServerSettings
from gateway.server.cli import main, tune_garbage_collector
from schema.build import SCHEMA_FILE
from tests.support.redis_server import free_port


def test_export_schema_prints_the_checked_in_sdl(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export-schema"]) == 0
    assert capsys.readouterr().out == SCHEMA_FILE.read_text()


def test_check_config_accepts_a_valid_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEWAY_CACHE_URL", "redis://:hunter2@cache:6379/0")
    assert main(["check-config"]) == 0
    out = capsys.readouterr().out
    assert "configuration is valid" in out and "hunter2" not in out


def test_check_config_lists_every_problem(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEWAY_PORT", "eighty")
    monkeypatch.setenv("GATEWAY_CBC_RATE_LIMIT", "-3")
    assert main(["check-config"]) == 2
    err = capsys.readouterr().err
    assert "GATEWAY_PORT" in err and "GATEWAY_CBC_RATE_LIMIT" in err


def test_check_config_lists_every_connection_limit_that_could_not_work(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEWAY_MAX_HEADER_BYTES", "100")
    monkeypatch.setenv("GATEWAY_HEADER_TIMEOUT", "0")
    monkeypatch.setenv("GATEWAY_BODY_TIMEOUT", "soon")
    monkeypatch.setenv("GATEWAY_KEEP_ALIVE_TIMEOUT", "-5")
    monkeypatch.setenv("GATEWAY_MAX_CONNECTIONS", "0")
    assert main(["check-config"]) == 2
    err = capsys.readouterr().err
    for name in (
        "GATEWAY_MAX_HEADER_BYTES",
        "GATEWAY_HEADER_TIMEOUT",
        "GATEWAY_BODY_TIMEOUT",
        "GATEWAY_KEEP_ALIVE_TIMEOUT",
        "GATEWAY_MAX_CONNECTIONS",
    ):
        assert name in err


def test_check_config_names_a_variable_nobody_reads_and_the_nearest_that_is(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEWAY_MAX_DEPHT", "3")
    monkeypatch.setenv("GATEWAY_OMA_RATELIMIT", "5")
    monkeypatch.setenv("GATEWAY_NONSENSE", "1")
    assert main(["check-config"]) == 0  # a warning: the settings themselves are valid
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "warning: GATEWAY_MAX_DEPHT is not a setting the gateway reads "
        "(did you mean GATEWAY_MAX_DEPTH?)",
        "warning: GATEWAY_NONSENSE is not a setting the gateway reads",
        "warning: GATEWAY_OMA_RATELIMIT is not a setting the gateway reads "
        "(did you mean GATEWAY_OMA_RATE_LIMIT?)",
    ]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GATEWAY_CACHE_URL", "redis://"),
        ("GATEWAY_CACHE_URL", "rediss://:secret@/0"),
        ("GATEWAY_OMA_BASE_URL", "https://"),
    ],
)
def test_check_config_says_a_url_has_no_host(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    assert main(["check-config"]) == 2
    assert capsys.readouterr().err.splitlines()[1:] == [f"  - {name}={value!r} has no host"]


def test_check_config_validates_the_persisted_documents(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    manifest = tmp_path / "persisted-documents.json"
    good = "query Total { subscriptions { totalCount } }"
    manifest.write_text(json.dumps({"a": good, "b": "{ subscriptions { nope } }", "c": "{"}))
    monkeypatch.setenv("GATEWAY_PERSISTED_DOCUMENTS", str(manifest))
    monkeypatch.setenv("GATEWAY_PERSISTED_DOCUMENTS_ONLY", "true")
    assert main(["check-config"]) == 2
    err = capsys.readouterr().err
    assert f"GATEWAY_PERSISTED_DOCUMENTS={str(manifest)!r}: document 'b' does not validate" in err
    assert f"GATEWAY_PERSISTED_DOCUMENTS={str(manifest)!r}: document 'c' does not parse" in err
    assert "document 'a'" not in err
    manifest.write_text(json.dumps({"a": good}))
    assert main(["check-config"]) == 0
    out = capsys.readouterr().out
    assert f"  persisted documents: 1 from {manifest} (only these run)" in out
    assert "  automatic persisted queries: off" in out


def test_check_config_refuses_only_persisted_documents_without_a_list(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEWAY_PERSISTED_DOCUMENTS_ONLY", "true")
    assert main(["check-config"]) == 2
    assert "GATEWAY_PERSISTED_DOCUMENTS_ONLY=true needs GATEWAY_PERSISTED_DOCUMENTS" in (
        capsys.readouterr().err
    )


def test_check_config_refuses_tracing_without_opentelemetry(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """GATEWAY_OTEL_ENABLED without the otel extra is refused here, not at the first start."""
    real_import = __import__

    def without_tracing(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "strawberry.extensions.tracing":
            raise ImportError("No module named 'opentelemetry'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setenv("GATEWAY_OTEL_ENABLED", "true")
    monkeypatch.setattr(builtins, "__import__", without_tracing)
    assert main(["check-config"]) == 2
    assert "pip install 'oma-cbc-gateway[otel]'" in capsys.readouterr().err
    monkeypatch.setattr(builtins, "__import__", real_import)
    assert main(["check-config"]) == 0  # with OpenTelemetry installed, as here


@pytest.mark.parametrize(
    "arguments",
    [
        ["serve", "--port", "99999"],
        ["serve", "--port", "http"],
        ["serve", "--workers", "0"],
        ["demo", "--simulator-port", "-1"],
    ],
)
def test_out_of_range_flags_are_refused_before_anything_starts(
    arguments: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(arguments)
    assert exited.value.code == 2  # argparse's usage error, with the reason
    assert "argument --" in capsys.readouterr().err


def test_the_demos_options_are_documented(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "--port PORT           the gateway's port (default: GATEWAY_PORT, else 8000)" in out
    assert "--simulator-port SIMULATOR_PORT" in out and "(default: 8081)" in out
    assert "a port in use is said by name (exit 2)" in out


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield held.getsockname()[1]


def test_a_taken_port_is_said_plainly_before_anything_starts(taken_port: int) -> None:
    free = free_port()
    for arguments, message in (
        (
            ["--port", str(taken_port), "--simulator-port", str(free)],
            f"gateway demo: port {taken_port} on 127.0.0.1 is taken: the gateway cannot listen "
            "there. Stop what uses it, or choose another port with --port (or GATEWAY_PORT).",
        ),
        (
            ["--port", str(free), "--simulator-port", str(taken_port)],
            f"gateway demo: port {taken_port} on 127.0.0.1 is taken: the simulator cannot listen "
            "there. Stop what uses it, or choose another port with --simulator-port.",
        ),
        (
            ["--port", str(free), "--simulator-port", str(free)],
            f"gateway demo: the gateway and the simulator cannot share port {free}: choose "
            "another with --port (or GATEWAY_PORT) or --simulator-port",
        ),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "gateway.server.cli", "demo", *arguments],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 2
        assert done.stdout == ""  # no banner for a demo that cannot run
        assert done.stderr.splitlines() == [message]  # and no traceback


def test_the_demo_takes_its_port_from_gateway_port(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], taken_port: int
) -> None:
    monkeypatch.setenv("GATEWAY_PORT", str(taken_port))
    assert main(["demo", "--simulator-port", str(free_port())]) == 2
    assert f"port {taken_port} on 127.0.0.1 is taken: the gateway" in capsys.readouterr().err


@pytest.mark.slow
def test_the_demo_serves_on_gateway_port_with_one_clean_json_line_per_event(
    tmp_path: Path,
) -> None:
    port, simulator_port = free_port(), free_port()
    env = {**os.environ, "GATEWAY_PORT": str(port), "GATEWAY_MAX_DEPHT": "3"}
    base = f"http://127.0.0.1:{port}"
    since = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=30)).date()
    with (tmp_path / "out").open("w+b") as out, (tmp_path / "err").open("w+b") as err:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "gateway.server.cli", "demo"),
                *("--simulator-port", str(simulator_port)),
            ],
            env=env,
            stdout=out,
            stderr=err,
        )
        try:
            wait_until_up(f"{base}/healthz", process)
            answer = httpx.post(
                f"{base}/graphql",
                json={
                    "query": "query($since: DateTime) { subscriptions(window: {from: $since}) "
                    "{ totalCount } }",
                    "variables": {"since": f"{since}T00:00:00Z"},
                },
                headers={"X-Auth-Token": "demo-token"},
                timeout=10,
            )
            # The simulator's data ends today: the last month has subscriptions.
            assert answer.json()["data"]["subscriptions"]["totalCount"] > 0
            refused = httpx.post(
                f"{base}/graphql", content=b"{", headers={"Content-Type": "application/json"}
            )
            assert refused.json()["errors"][0]["extensions"]["code"] == "INVALID_GRAPHQL_REQUEST"
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=15) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        out.seek(0)
        err.seek(0)
        banner, text = out.read().decode(), err.read().decode()
    assert f"GraphiQL at {base}/graphql" in banner
    assert f"Simulator of OMA and CBC at http://127.0.0.1:{simulator_port}" in banner
    assert f'{{"since": "{since}T00:00:00Z"}}' in banner
    lines = [json.loads(line) for line in text.splitlines()]  # every line is JSON
    assert "\x1b" not in text and "color_message" not in text
    messages = [line["message"] for line in lines]
    assert sum(m.startswith("Started server process") for m in messages) == 1
    assert (
        "GATEWAY_MAX_DEPHT is not a setting the gateway reads (did you mean GATEWAY_MAX_DEPTH?)"
        in messages
    )
    (request,) = [line for line in lines if line.get("status") == 400]
    assert request["error_codes"] == ["INVALID_GRAPHQL_REQUEST"]
    assert request["reason"].startswith("Unable to parse the request body as JSON")


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"process exited: {process.stderr.read() if process.stderr else ''!r}"
            )
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


@pytest.fixture
def simulator_process() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.simulator", "--port", str(port), "--oma-latency", "1.5"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/_sim/healthz", process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.slow
def test_sigterm_drains_readiness_then_lets_in_flight_requests_finish(
    simulator_process: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "GATEWAY_PROFILE": "development",
        "GATEWAY_PORT": str(port),
        "GATEWAY_OMA_BASE_URL": simulator_process,
        "GATEWAY_CBC_BASE_URL": simulator_process,
        "GATEWAY_OMA_RATE_LIMIT": "0",
        "GATEWAY_DRAIN_DELAY": "1",
        "GATEWAY_SHUTDOWN_GRACE": "10",
    }
    log = (tmp_path / "gateway.log").open("w+b")
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.server.cli", "serve"], env=env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/healthz", process)
        answers: list[httpx.Response] = []

        def ask(number: int) -> None:
            answers.append(
                httpx.post(
                    f"{base}/graphql",
                    json={"query": "query Slow { subscriptions(first: 3) { totalCount } }"},
                    headers={
                        "X-Auth-Token": f"sigterm-secret-{number}",
                        "X-Request-Id": f"slow-{number}",
                    },
                    timeout=20,
                )
            )

        # Ten requests in flight, each waiting on the slow upstream, when SIGTERM arrives.
        in_flight = [threading.Thread(target=ask, args=(n,)) for n in range(10)]
        for thread in in_flight:
            thread.start()
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        ready = httpx.get(f"{base}/readyz", timeout=2)
        assert ready.status_code == 503 and ready.json()["status"] == "draining"
        for thread in in_flight:
            thread.join(timeout=20)
        assert len(answers) == 10
        assert all(a.status_code == 200 for a in answers)
        assert all(a.json()["data"]["subscriptions"]["totalCount"] == 301 for a in answers)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log.seek(0)
    text = log.read().decode()
    log.close()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert "sigterm-secret" not in json.dumps(lines)
    (request_line,) = [line for line in lines if line.get("request_id") == "slow-1"]
    assert request_line["operation"] == "Slow"
    assert request_line["status"] == 200 and request_line["upstream_calls"] == 1
    assert any(line["message"].startswith("draining") for line in lines)


@pytest.fixture
def restore_garbage_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)
    gc.enable()


@pytest.mark.usefixtures("restore_garbage_collector")
def test_serving_freezes_what_startup_made_and_collects_young_objects_less_often() -> None:
    startup_object: list[object] = []  # a list is always tracked by the collector
    tune_garbage_collector(ServerSettings(gc_threshold=12_345))
    assert gc.get_threshold()[0] == 12_345
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0
    assert not any(o is startup_object for o in gc.get_objects())  # frozen: not walked


@pytest.mark.usefixtures("restore_garbage_collector")
def test_a_zero_threshold_turns_the_collector_off() -> None:
    tune_garbage_collector(ServerSettings(gc_threshold=0))
    assert not gc.isenabled()

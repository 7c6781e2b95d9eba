"""``python -m gateway.simulator``: its flags, without starting a server."""

from __future__ import annotations

import argparse
from typing import Any

import pytest
import uvicorn

from gateway.simulator import Simulator
from gateway.simulator import __main__ as cli


def test_the_defaults() -> None:
    args = cli.build_parser().parse_args([])
    assert (args.host, args.port, args.seed, args.subscriptions, args.max_tenants) == (
        "127.0.0.1",
        8081,
        7,
        300,
        512,
    )
    assert (args.oma_latency, args.cbc_latency) == (0.0, 0.0)


def test_every_flag_reaches_the_simulator() -> None:
    args = cli.build_parser().parse_args(
        [
            "--host", "0.0.0.0", "--port", "9999", "--seed", "5", "--subscriptions", "10",
            "--max-tenants", "4", "--oma-latency", "0.02", "--cbc-latency", "0.5",
        ]
    )  # fmt: skip
    simulator = cli.simulator_from_args(args)
    assert (args.host, args.port) == ("0.0.0.0", 9999)
    assert simulator.config.seed == 5 and simulator.config.max_tenants == 4
    assert simulator.knobs.oma.latency == 0.02 and simulator.knobs.cbc.latency == 0.5
    assert len(simulator.dataset("t").subscriptions) == 11  # the seed example on top


def test_help_lists_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    usage = capsys.readouterr().out
    for flag in (
        "--host", "--port", "--seed", "--subscriptions", "--max-tenants",
        "--oma-latency", "--cbc-latency",
    ):  # fmt: skip
        assert flag in usage


@pytest.mark.parametrize(
    "argv",
    [
        ["--port", "-1"],
        ["--port", "http"],
        ["--subscriptions", "-3"],
        ["--max-tenants", "0"],
        ["--oma-latency", "-0.5"],
        ["--cbc-latency", "nan"],
        ["--unknown"],
    ],
)
def test_bad_flags_exit_with_usage(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_main_serves_the_simulator_with_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[Simulator] = []
    served: dict[str, Any] = {}

    def build(args: argparse.Namespace) -> Simulator:
        built.append(make_simulator(args))
        return built[-1]

    def fake_run(app: Any, **options: Any) -> None:
        served.update(app=app, **options)

    make_simulator = cli.simulator_from_args
    monkeypatch.setattr(cli, "simulator_from_args", build)
    monkeypatch.setattr(uvicorn, "run", fake_run)
    assert cli.main(["--port", "18081", "--cbc-latency", "0.25"]) == 0
    (simulator,) = built
    assert served["app"] is simulator.app and simulator.knobs.cbc.latency == 0.25
    assert (served["host"], served["port"]) == ("127.0.0.1", 18081)

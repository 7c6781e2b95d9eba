"""``python -m gateway.simulator``: serve both simulated upstreams on one port."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

import uvicorn

from gateway.simulator.app import Simulator
from gateway.simulator.data import SimulatorConfig


def _at_least(minimum: float, convert: type[int] | type[float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = convert(text)
        if not value >= minimum:  # also refuses NaN
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}, got {text}")
        return value

    parse.__name__ = convert.__name__  # argparse names the type in its messages
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.simulator",
        description="Simulate the OMA subscription and CBC resource APIs on one port.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=_at_least(0, int), default=8081, help="port to listen on")
    parser.add_argument("--seed", type=int, default=7, help="seed of every tenant's data")
    parser.add_argument(
        "--subscriptions", type=_at_least(0, int), default=300, help="subscriptions per token"
    )
    parser.add_argument(
        "--max-tenants", type=_at_least(1, int), default=512, help="tenants kept generated"
    )
    parser.add_argument(
        "--oma-latency", type=_at_least(0, float), default=0.0, help="seconds added to OMA answers"
    )
    parser.add_argument(
        "--cbc-latency", type=_at_least(0, float), default=0.0, help="seconds added to CBC answers"
    )
    return parser


def simulator_from_args(args: argparse.Namespace) -> Simulator:
    simulator = Simulator(
        SimulatorConfig(
            seed=args.seed, subscriptions=args.subscriptions, max_tenants=args.max_tenants
        )
    )
    simulator.knobs.oma.latency = args.oma_latency
    simulator.knobs.cbc.latency = args.cbc_latency
    return simulator


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    simulator = simulator_from_args(args)
    uvicorn.run(
        simulator.app, host=args.host, port=args.port, log_level="warning", access_log=False
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

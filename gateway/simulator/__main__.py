"""``python -m gateway.simulator``: serve both simulated upstreams on one port."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import uvicorn

from gateway.simulator.app import Simulator
from gateway.simulator.data import SimulatorConfig


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.simulator",
        description="Simulate the OMA subscription and CBC resource APIs on one port.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--subscriptions", type=int, default=300, help="per tenant (token)")
    parser.add_argument(
        "--oma-latency", type=float, default=0.0, help="seconds added to OMA answers"
    )
    parser.add_argument(
        "--cbc-latency", type=float, default=0.0, help="seconds added to CBC answers"
    )
    return parser


def simulator_from_args(args: argparse.Namespace) -> Simulator:
    simulator = Simulator(SimulatorConfig(seed=args.seed, subscriptions=args.subscriptions))
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

"""What a µs of work per upstream call costs s2: ``python -m bench.pace``.

s2's level 2 is 99 concurrent order lookups. This replays that level as the floor does
(aiohttp alone, on core 0, against the simulator on core 1 with 20 ms latency) and adds
CPU work to each call: before it is sent, or after its answer is read. The median
duration of the level for each amount says how much of the gateway's own per-call work
lands on s2's critical path. Work before the send delays every later send, so it adds
up over the level; work after the answer overlaps with the answers still to come, up to
the pace at which the simulator produces them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from typing import Any

import aiohttp

from bench.run import TOKEN, free_port, plan_linked, start_simulator, wait_up

# (µs of work before each send, µs of work after each answer)
DEFAULT_LOADS = [(0, 0), (20, 0), (40, 0), (60, 0), (0, 50), (0, 100), (40, 50)]


def busy(microseconds: float) -> None:
    """Spend the CPU time a layer of the gateway would, without giving up the loop."""
    end = time.perf_counter() + microseconds / 1e6
    while time.perf_counter() < end:
        pass


async def level_durations(
    session: aiohttp.ClientSession,
    url: str,
    level: list[tuple[str, dict[str, Any]]],
    before: float,
    after: float,
    rounds: int,
) -> list[float]:
    """Seconds each round of the level takes with the extra work per call."""

    async def call(path: str, body: dict[str, Any]) -> None:
        busy(before)
        async with session.post(f"{url}{path}", json=body, headers={"X-Auth-Token": TOKEN}) as r:
            await r.read()
        busy(after)

    durations = []
    for _ in range(rounds):
        started = time.perf_counter()
        await asyncio.gather(*(call(path, body) for path, body in level))
        durations.append(time.perf_counter() - started)
    return durations


async def measure(url: str, loads: list[tuple[float, float]], rounds: int) -> list[str]:
    level = plan_linked(url, 100)[1]
    os.sched_setaffinity(0, {0})  # where the gateway runs
    lines = [
        f"level 2 of s2: {len(level)} order lookups, median of {rounds} rounds",
        "| µs before each send | µs after each answer | level ms | added ms |",
        "|---|---|---|---|",
    ]
    async with aiohttp.ClientSession() as session:
        await level_durations(session, url, level, 0, 0, 3)  # connections, warm code
        base = None
        for before, after in loads:
            median = statistics.median(
                await level_durations(session, url, level, before, after, rounds)
            )
            base = median if base is None else base
            lines.append(
                f"| {before:g} | {after:g} | {median * 1000:.1f} | {(median - base) * 1000:+.1f} |"
            )
    return lines


def load_pair(text: str) -> tuple[float, float]:
    before, _, after = text.partition(":")
    return float(before), float(after or 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.02, help="simulator latency, seconds")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument(
        "--loads",
        type=load_pair,
        nargs="+",
        default=DEFAULT_LOADS,
        help="BEFORE:AFTER µs of work per call (the first is the baseline)",
    )
    args = parser.parse_args()
    port = free_port()
    simulator = start_simulator(port, subscriptions=1200, latency=args.latency)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(f"{url}/_sim/healthz")
        print("\n".join(asyncio.run(measure(url, args.loads, args.rounds))))
    finally:
        simulator.terminate()
        simulator.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

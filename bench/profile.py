"""Where a scenario's gateway CPU goes: ``python -m bench.profile s3``.

Starts the simulator and one gateway process as ``bench.run`` does (20 ms upstream
latency, rate limit off; ``--warm`` for a cache that stays warm), samples the gateway
with py-spy while one client replays the scenario, and prints the functions with the
most samples: their own time, and the time under them for the project's code.
Needs py-spy (``pip install -e '.[bench]'``) and the right to trace a child process.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.run import (
    HERE,
    TOKEN,
    cache_env,
    cpu_seconds,
    free_port,
    gateway_env,
    start_gateway,
    start_simulator,
    wait_up,
)
from gateway.upstreams.cbc import PATH as CBC_PATH

OPERATIONS = {
    "s1": "s1_subscriptions_100",
    "s2": "s2_linked_depth3",
    "s3": "s3_subscriptions_1000",
    "s5": "s5_resources_by_ids_200",
}


def operation_query(scenario: str) -> str:
    """The GraphQL text of a scenario's checked-in operation."""
    return (HERE / "operations" / f"{OPERATIONS[scenario]}.graphql").read_text()


OWN_CODE = re.compile(r"\((gateway|schema)/")


def summarise(raw: Path, top: int) -> str:
    """py-spy's raw output (one ``frame;frame;... count`` line per stack) as two tables."""
    own: collections.Counter[str] = collections.Counter()
    under: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        total += samples
        frames = [re.sub(r":\d+\)", ")", frame) for frame in stack.split(";")]
        own[frames[-1]] += samples
        for frame in set(frames):
            if OWN_CODE.search(frame):
                under[frame] += samples
    lines = [f"{total} samples", "", "own time:"]
    lines += [f"  {n / total:6.1%}  {frame}" for frame, n in own.most_common(top)]
    lines += ["", "time under the project's functions:"]
    lines += [f"  {n / total:6.1%}  {frame}" for frame, n in under.most_common(top)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("scenario", choices=sorted(OPERATIONS))
    parser.add_argument("--warm", action="store_true", help="cache on and warm (s2 warm is s4)")
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        print("py-spy is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2

    sim_port, port = free_port(), free_port()
    sim = f"http://127.0.0.1:{sim_port}"
    env = {**gateway_env(sim), **cache_env(args.warm), "GATEWAY_PORT": str(port)}
    simulator = start_simulator(sim_port, subscriptions=1200, latency=args.latency)
    gateway = start_gateway(env)
    try:
        wait_up(f"{sim}/_sim/healthz")
        wait_up(f"http://127.0.0.1:{port}/healthz")
        variables = {}
        if args.scenario == "s5":
            answer = httpx.post(
                f"{sim}{CBC_PATH}", json={"limit": 200}, headers={"X-Auth-Token": TOKEN}
            )
            variables = {"ids": [r["resource_id"] for r in answer.json()["data"]]}
        body = {"query": operation_query(args.scenario), "variables": variables}
        url = f"http://127.0.0.1:{port}/graphql"
        with httpx.Client(timeout=120, headers={"X-Auth-Token": TOKEN}) as client:
            for _ in range(3):  # parser and validation caches, connections, the page cache
                client.post(url, json=body).raise_for_status()
            with tempfile.TemporaryDirectory() as scratch:
                raw = Path(scratch) / "samples.txt"
                command = [py_spy, "record", "-p", str(gateway.pid), "-r", "500", "-f", "raw"]
                recorder = subprocess.Popen(
                    [*command, "-o", str(raw)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(1)
                cpu_before = cpu_seconds(gateway.pid)
                started = time.perf_counter()
                for _ in range(args.requests):
                    client.post(url, json=body).raise_for_status()
                elapsed = time.perf_counter() - started
                cpu = (cpu_seconds(gateway.pid) - cpu_before) / args.requests
                recorder.send_signal(2)  # py-spy writes its samples on SIGINT
                recorder.wait(timeout=30)
                report = summarise(raw, args.top)
        print(
            json.dumps(
                {
                    "scenario": args.scenario,
                    "warm": args.warm,
                    "requests": args.requests,
                    "mean_ms": round(elapsed / args.requests * 1000, 1),
                    "gateway_cpu_ms_per_request": round(cpu * 1000, 1),
                }
            )
        )
        print(report)
    finally:
        gateway.terminate()
        simulator.terminate()
        gateway.wait(timeout=20)
        simulator.wait(timeout=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())

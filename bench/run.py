"""The benchmark suite: ``python -m bench.run`` (see the README).

Starts the simulator with a fixed added latency, the gateway (cold: caching off;
warm: caching on) and the naive build, all with the rate limit off; drives each
scenario from a separate load process; and writes ``bench/results.json`` and
``bench/RESULTS.md``. Processes are pinned: the gateway under test on core 0,
the simulator and the load generator on core 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from gateway.upstreams.cbc import MAX_PAGE_SIZE as CBC_PAGE
from gateway.upstreams.cbc import MAX_RESOURCE_IDS
from gateway.upstreams.cbc import PATH as CBC_PATH
from gateway.upstreams.oma import MAX_PAGE_SIZE as OMA_PAGE
from gateway.upstreams.oma import PATH as OMA_PATH
from gateway.upstreams.paging import chunks, page_spans

HERE = Path(__file__).parent
TOKEN = "bench"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
Call = tuple[str, dict[str, Any]]


@dataclass
class Scenario:
    name: str
    title: str
    operation: str
    variables: dict[str, Any] = field(default_factory=dict)
    warm: bool = False
    plan: list[list[Call]] = field(default_factory=list)
    """The fewest upstream calls that answer it, level by level (each level needs the last)."""

    @property
    def minimum_calls(self) -> int:
        return 0 if self.warm else sum(len(level) for level in self.plan)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def pinned(core: int, command: list[str]) -> list[str]:
    return (
        ["taskset", "-c", str(core), *command] if os.cpu_count() and os.cpu_count() > 1 else command
    )  # type: ignore[operator]


def start(command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_simulator(
    port: int, *, subscriptions: int = 300, latency: float = 0.0, seed: int = 7
) -> subprocess.Popen[bytes]:
    """The simulator of both upstreams in its own process, pinned to core 1."""
    return start(
        pinned(
            1,
            [
                sys.executable,
                "-m",
                "gateway.simulator",
                "--port",
                str(port),
                "--seed",
                str(seed),
                "--subscriptions",
                str(subscriptions),
                "--oma-latency",
                str(latency),
                "--cbc-latency",
                str(latency),
            ],
        )
    )


def gateway_env(sim: str) -> dict[str, str]:
    """The settings every benchmarked gateway shares: the simulator for both upstreams, the
    rate limit off, room for the scenarios' fan-out and size."""
    return {
        "GATEWAY_PROFILE": "production",
        "GATEWAY_OMA_BASE_URL": sim,
        "GATEWAY_CBC_BASE_URL": sim,
        "GATEWAY_OMA_RATE_LIMIT": "0",
        "GATEWAY_CBC_RATE_LIMIT": "0",
        "GATEWAY_OMA_MAX_CONCURRENCY": "128",
        "GATEWAY_CBC_MAX_CONCURRENCY": "128",
        "GATEWAY_MAX_COST": "1000",
        "GATEWAY_LOG_LEVEL": "warning",
        "GATEWAY_MAX_BODY_BYTES": "1048576",
    }


def cache_env(warm: bool) -> dict[str, str]:
    """Page caching as the scenarios run it: off when cold, an hour when warm."""
    ttl = "3600" if warm else "0"
    return {"GATEWAY_OMA_CACHE_TTL": ttl, "GATEWAY_CBC_CACHE_TTL": ttl}


def start_gateway(
    env: dict[str, str], module: str = "gateway.server.cli"
) -> subprocess.Popen[bytes]:
    """``gateway serve`` (or a build of it, such as ``bench.naive``) pinned to core 0."""
    command = [sys.executable, "-m", module] + (["serve"] if module == "gateway.server.cli" else [])
    return start(pinned(0, command), env)


def wait_up(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


# -- the minimum: computed from the simulator's answers, not typed in ---------------


def upstream(sim: str, path: str, body: dict[str, Any]) -> Any:
    response = httpx.post(f"{sim}{path}", json=body, headers={"X-Auth-Token": TOKEN}, timeout=30)
    response.raise_for_status()
    return response.json()


def plan_subscriptions(first: int) -> list[list[Call]]:
    return [[(OMA_PATH, {"limit": n, "offset": o}) for o, n in page_spans(0, first, OMA_PAGE)]]


def plan_linked(sim: str, first: int) -> list[list[Call]]:
    level1 = plan_subscriptions(first)[0]
    subscriptions = [r for _, body in level1 for r in upstream(sim, OMA_PATH, body)["result"]]
    orders = list(dict.fromkeys(s["orderId"] for s in subscriptions))
    level2 = [
        (CBC_PATH, {"order_id": o, "only_main_resource": 0, "offset": 0, "limit": CBC_PAGE})
        for o in orders
    ]
    resources = [r for _, body in level2 for r in upstream(sim, CBC_PATH, body)["data"]]
    # Parents of attached resources and attachments of primaries: one lookup by id each,
    # 50 ids a call (the API's limit); an order's answer cannot stand in for them, since
    # a resource attached later may belong to another order.
    ids = list(
        dict.fromkeys(
            [r["resource_id"] for r in resources if r["is_main_resource"] == 1]
            + [
                r["parent_resource_id"]
                for r in resources
                if r["is_main_resource"] == 0 and r.get("parent_resource_id")
            ]
        )
    )
    level3 = [
        (
            CBC_PATH,
            {"resource_ids": list(chunk), "only_main_resource": 0, "offset": 0, "limit": CBC_PAGE},
        )
        for chunk in chunks(ids, MAX_RESOURCE_IDS)
    ]
    return [level1, level2, level3]


def plan_by_ids(ids: list[str]) -> list[list[Call]]:
    return [
        [
            (
                CBC_PATH,
                {"resource_ids": list(c), "only_main_resource": 0, "offset": 0, "limit": CBC_PAGE},
            )
            for c in chunks(ids, MAX_RESOURCE_IDS)
        ]
    ]


async def replay(sim: str, plan: list[list[Call]], rounds: int) -> list[float]:
    """Rounds of the critical-path floor: the plan's calls, each level concurrent, levels in
    turn. Run on core 0, where the gateway runs: the floor gets the resources the gateway
    gets, and the simulator keeps core 1 to itself as when the gateway is measured."""
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {0})
    try:
        return await _replay_rounds(sim, plan, rounds)
    finally:
        os.sched_setaffinity(0, affinity)


async def _replay_rounds(sim: str, plan: list[list[Call]], rounds: int) -> list[float]:
    headers = {"X-Auth-Token": TOKEN}
    timings = []
    async with aiohttp.ClientSession() as session:

        async def call(path: str, body: dict[str, Any]) -> None:
            async with session.post(f"{sim}{path}", json=body, headers=headers) as response:
                await response.read()

        for _ in range(rounds):
            started = time.perf_counter()
            for level in plan:
                await asyncio.gather(*(call(path, body) for path, body in level))
            timings.append(time.perf_counter() - started)
    return timings


# -- measuring ---------------------------------------------------------------------


def drive(
    url: str, scenario: Scenario, concurrency: int, requests: int, body_file: Path
) -> dict[str, Any]:
    output = subprocess.run(
        pinned(
            1,
            [
                sys.executable,
                "-m",
                "bench.load",
                "--url",
                f"{url}/graphql",
                "--body",
                str(body_file),
                "--token",
                TOKEN,
                "--concurrency",
                str(concurrency),
                "--requests",
                str(requests),
            ],
        ),
        capture_output=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(output.stdout)
    return result


def sim_calls(sim: str) -> int:
    return sum(httpx.get(f"{sim}/_sim/stats").json().values())


def count_fields(value: Any) -> int:
    if isinstance(value, dict):
        return sum(count_fields(v) for v in value.values())
    if isinstance(value, list):
        return sum(count_fields(v) for v in value)
    return 1


def measure(
    url: str,
    pid: int,
    sim: str,
    scenario: Scenario,
    body_file: Path,
    requests_c1: int,
    requests_c32: int,
) -> dict[str, Any]:
    body = json.loads(body_file.read_text())
    response = httpx.post(f"{url}/graphql", json=body, headers={"X-Auth-Token": TOKEN}, timeout=120)
    fields = count_fields(response.json().get("data"))
    if scenario.warm:
        httpx.post(f"{url}/graphql", json=body, headers={"X-Auth-Token": TOKEN}, timeout=120)
    httpx.post(f"{sim}/_sim/reset")
    cpu_before = cpu_seconds(pid)
    single = drive(url, scenario, 1, requests_c1, body_file)
    cpu_after = cpu_seconds(pid)
    calls = sim_calls(sim) / requests_c1
    loaded = drive(url, scenario, 32, requests_c32, body_file)
    return {
        "upstream_calls_per_request": calls,
        "fields": fields,
        "c1": {
            k: percentile(single["latencies"], q) * 1000
            for k, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
        },
        "c32": {
            k: percentile(loaded["latencies"], q) * 1000
            for k, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
        },
        "rps_c32": len(loaded["latencies"]) / loaded["elapsed"],
        "failures": single["failures"] + loaded["failures"],
        "cpu_s_per_request": (cpu_after - cpu_before) / requests_c1,
        "cpu_us_per_field": (cpu_after - cpu_before) / requests_c1 / max(fields, 1) * 1e6,
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run")
    parser.add_argument(
        "--latency", type=float, default=0.02, help="added upstream latency, seconds"
    )
    parser.add_argument(
        "--requests", type=int, default=30, help="requests per scenario at concurrency 1"
    )
    parser.add_argument(
        "--loaded-requests", type=int, default=320, help="requests at concurrency 32"
    )
    parser.add_argument("--naive-requests", type=int, default=3, help="naive build, concurrency 1")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument(
        "--render-only", action="store_true", help="rewrite RESULTS.md from results.json"
    )
    parser.add_argument(
        "--only",
        help="comma-separated scenarios (e.g. s2,s4), without the naive build: printed and "
        "written to OUT/partial.json; RESULTS.md and results.json stay as they are",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.render_only:
        (HERE / "RESULTS.md").write_text(render(json.loads((HERE / "results.json").read_text())))
        return 0

    sim_port, cold_port, warm_port, naive_port = (free_port() for _ in range(4))
    sim = f"http://127.0.0.1:{sim_port}"
    common = gateway_env(sim)
    processes = {
        "simulator": start_simulator(sim_port, subscriptions=1200, latency=args.latency),
        "gateway": start_gateway({**common, **cache_env(False), "GATEWAY_PORT": str(cold_port)}),
        "gateway_warm": start_gateway(
            {**common, **cache_env(True), "GATEWAY_PORT": str(warm_port)}
        ),
        "naive": start_gateway(
            {**common, **cache_env(False), "GATEWAY_PORT": str(naive_port)}, module="bench.naive"
        ),
    }
    try:
        wait_up(f"{sim}/_sim/healthz")
        for port in (cold_port, warm_port, naive_port):
            wait_up(f"http://127.0.0.1:{port}/healthz")
        ids = [r["resource_id"] for r in upstream(sim, CBC_PATH, {"limit": 200})["data"]]
        scenarios = [
            Scenario(
                "s1",
                "subscriptions(first: 100), every scalar",
                "s1_subscriptions_100.graphql",
                plan=plan_subscriptions(100),
            ),
            Scenario(
                "s2",
                "linked depth 3: 100 subscriptions, resources, parent, attached",
                "s2_linked_depth3.graphql",
                plan=plan_linked(sim, 100),
            ),
            Scenario(
                "s3",
                "subscriptions(first: 1000), every scalar",
                "s3_subscriptions_1000.graphql",
                plan=plan_subscriptions(1000),
            ),
            Scenario(
                "s4",
                "scenario 2 with a warm cache",
                "s2_linked_depth3.graphql",
                warm=True,
                plan=plan_linked(sim, 100),
            ),
            Scenario(
                "s5",
                "resourcesByIds with 200 ids",
                "s5_resources_by_ids_200.graphql",
                variables={"ids": ids},
                plan=plan_by_ids(ids),
            ),
        ]
        if args.only:
            chosen = set(args.only.split(","))
            scenarios = [scenario for scenario in scenarios if scenario.name in chosen]
        results: dict[str, Any] = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}",
            "latency_ms": args.latency * 1000,
            "scenarios": {},
        }
        with tempfile.TemporaryDirectory() as scratch:
            for scenario in scenarios:
                body_file = Path(scratch) / f"{scenario.name}.json"
                body_file.write_text(
                    json.dumps(
                        {
                            "query": (HERE / "operations" / scenario.operation).read_text(),
                            "variables": scenario.variables,
                        }
                    )
                )
                # The floor is replayed before and after the gateway is measured, and its
                # median taken over both: the host's noise drifts over a run's minutes.
                floor_rounds = [] if scenario.warm else asyncio.run(replay(sim, scenario.plan, 10))
                url, pid = (
                    (f"http://127.0.0.1:{warm_port}", processes["gateway_warm"].pid)
                    if scenario.warm
                    else (f"http://127.0.0.1:{cold_port}", processes["gateway"].pid)
                )
                print(f"{scenario.name}: gateway", flush=True)
                ours = measure(
                    url, pid, sim, scenario, body_file, args.requests, args.loaded_requests
                )
                if not scenario.warm:
                    floor_rounds += asyncio.run(replay(sim, scenario.plan, 10))
                floor = statistics.median(floor_rounds) if floor_rounds else 0.0
                if args.only:  # a quick look: the naive build is the slow half of a run
                    results["scenarios"][scenario.name] = {
                        "minimum_calls": scenario.minimum_calls,
                        "floor_ms": floor * 1000,
                        "gateway": ours,
                    }
                    continue
                print(f"{scenario.name}: naive", flush=True)
                naive = measure(
                    f"http://127.0.0.1:{naive_port}",
                    processes["naive"].pid,
                    sim,
                    scenario,
                    body_file,
                    args.naive_requests,
                    32,
                )
                results["scenarios"][scenario.name] = {
                    "title": scenario.title,
                    "minimum_calls": scenario.minimum_calls,
                    "floor_ms": floor * 1000,
                    "gateway": ours,
                    "naive": naive,
                }
        results["peak_rss_mb"] = {
            name: peak_rss_mb(p.pid) for name, p in processes.items() if name != "simulator"
        }
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.wait(timeout=20)
    if args.only:
        (args.out / "partial.json").write_text(json.dumps(results, indent=2))
        print(json.dumps(results["scenarios"], indent=1))
        return 0
    table = render(results)
    (HERE / "results.json").write_text(json.dumps(results, indent=2))
    (HERE / "RESULTS.md").write_text(table)
    print(table)
    return 0


def render(results: dict[str, Any]) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Run {results['date']} on {results['machine']}; simulator latency {results['latency_ms']:.0f} ms per upstream call;",
        "rate limit off; gateway pinned to core 0, simulator and load generator to core 1.",
        "Regenerate with `.venv/bin/python -m bench.run` (figures below are written by it).",
        "",
        "| scenario | upstream calls / request (min) | floor ms | p50 / p90 / p99 c=1 ms | p50 / p99 c=32 ms | req/s c=32 | CPU ms / req | failures | naive: calls, p50 c=1 ms, req/s c=32 | ratio p50 naive/ours |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in results["scenarios"].items():
        g, n = s["gateway"], s["naive"]
        lines.append(
            f"| {name}: {s['title']} | {g['upstream_calls_per_request']:.1f} ({s['minimum_calls']}) | {s['floor_ms']:.1f} "
            f"| {g['c1']['p50']:.1f} / {g['c1']['p90']:.1f} / {g['c1']['p99']:.1f} | {g['c32']['p50']:.1f} / {g['c32']['p99']:.1f} "
            f"| {g['rps_c32']:.1f} | {g['cpu_s_per_request'] * 1000:.1f} | {g['failures']} "
            f"| {n['upstream_calls_per_request']:.1f}, {n['c1']['p50']:.0f}, {n['rps_c32']:.2f} | {n['c1']['p50'] / max(g['c1']['p50'], 0.001):.1f}x |"
        )
    lines += ["", "## Targets", ""]
    s = results["scenarios"]
    checks = []
    for name, sc in s.items():
        g = sc["gateway"]
        checks.append(
            (
                f"{name}: upstream calls = minimum ({sc['minimum_calls']})",
                abs(g["upstream_calls_per_request"] - sc["minimum_calls"]) < 1e-9,
                f"{g['upstream_calls_per_request']:.2f}",
            )
        )
        if sc["floor_ms"]:
            bound = sc["floor_ms"] * 1.15 + 10
            checks.append(
                (
                    f"{name}: p50 c=1 within 15% + 10 ms of the floor ({bound:.1f} ms)",
                    g["c1"]["p50"] <= bound,
                    f"{g['c1']['p50']:.1f} ms",
                )
            )
        checks.append(
            (
                f"{name}: c=32 no failure, p99 < 5 x p50",
                g["failures"] == 0 and g["c32"]["p99"] < 5 * g["c32"]["p50"],
                f"{g['failures']} failures, p99/p50 {g['c32']['p99'] / max(g['c32']['p50'], 0.001):.1f}",
            )
        )
    s3 = s["s3"]["gateway"]
    checks.append(
        (
            "s3: at most 8 µs gateway CPU per field",
            s3["cpu_us_per_field"] <= 8,
            f"{s3['cpu_us_per_field']:.1f} µs over {s3['fields']} fields",
        )
    )
    ratio = s["s4"]["gateway"]["rps_c32"] / max(s["s2"]["gateway"]["rps_c32"], 0.001)
    checks.append(("s4 warm >= 4 x s2 cold req/s", ratio >= 4, f"{ratio:.1f}x"))
    peak = max(results["peak_rss_mb"][k] for k in ("gateway", "gateway_warm"))
    checks.append(("peak RSS of a gateway process < 250 MB", peak < 250, f"{peak:.0f} MB"))
    lines += ["| target | met | measured |", "|---|---|---|"]
    lines += [f"| {label} | {'yes' if ok else '**no**'} | {value} |" for label, ok, value in checks]
    lines.append("")
    notes = HERE / "notes.md"
    if notes.exists():  # the analysis of the figures, kept by hand beside them
        lines += [notes.read_text()]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

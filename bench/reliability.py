"""Reliability runs: ``python -m bench.reliability`` (bounded; loopback only; stops by itself).

1. The fault, hostile-input and security suites (pytest), counted.
2. Attacks (``bench.attacks``): for each attack of one caller on the others, a victim
   tenant's p50 and errors while it runs, against its p50 alone.
3. Load: 64 concurrent clients for 60 s, mixed queries, 1,000 distinct tokens; every
   answer checked against the simulator's data for its own token.
4. Soak: steady load for 10 minutes; memory and open file descriptors sampled, the
   cache's size checked against its bound.

Writes RELIABILITY.md at the top of the repository.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from bench.attacks import Outcome
from bench.attacks import run_all as run_attacks
from bench.attacks import table as attack_table
from bench.run import free_port, start_gateway, start_simulator, wait_up
from gateway.simulator import Simulator, SimulatorConfig

ROOT = Path(__file__).resolve().parents[1]
SEED = 7
SUBSCRIPTIONS = 300
CACHE_BOUND = 5000
SUITES = [
    "tests/system/test_faults.py",
    "tests/system/test_redis_faults.py",
    "tests/system/test_hostile_input.py",
    "tests/system/test_one_caller.py",
    "tests/system/test_replicas.py",
    "tests/system/test_graphql_over_http.py",
    "tests/schema/test_errors.py",
    "tests/gateway/cache/test_pages.py",
    "tests/gateway/server/test_cli.py",
    "tests/gateway/server/test_connections.py",
]

QUERIES = {
    "subscriptions": "query($n: Int) { subscriptions(first: $n) { totalCount nodes { id orderId } } }",
    "resources": "query($n: Int) { resources(first: $n) { totalCount nodes { resourceId } } }",
    "linked": "query($n: Int) { subscriptions(first: $n) { nodes { id resources { resourceId } } } }",
}


class Expected:
    """The simulator's data, generated here from the same seed: the truth for each token."""

    def __init__(self) -> None:
        self.simulator = Simulator(
            SimulatorConfig(seed=SEED, subscriptions=SUBSCRIPTIONS, max_tenants=2000)
        )

    def check(self, kind: str, n: int, token: str, data: dict[str, Any]) -> bool:
        tenant = self.simulator.dataset(token)
        if kind == "subscriptions":
            nodes = data["subscriptions"]["nodes"]
            return [x["id"] for x in nodes] == [s["id"] for s in tenant.subscriptions[:n]]
        if kind == "resources":
            visible = [r for r in tenant.resources if r["status"] != 3]
            return [x["resourceId"] for x in data["resources"]["nodes"]] == [
                r["resource_id"] for r in visible[:n]
            ]
        for node, subscription in zip(
            data["subscriptions"]["nodes"], tenant.subscriptions[:n], strict=True
        ):
            order = [
                r["resource_id"]
                for r in tenant.by_order.get(subscription["orderId"], [])
                if r["status"] != 3
            ]
            if (
                node["id"] != subscription["id"]
                or [r["resourceId"] for r in node["resources"]] != order
            ):
                return False
        return True


async def drive(
    url: str, clients: int, seconds: float, tokens: int, expected: Expected | None
) -> dict[str, Any]:
    latencies: list[float] = []
    failures = 0
    mismatches = 0
    deadline = time.monotonic() + seconds
    rng = random.Random(11)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:

        async def client() -> None:
            nonlocal failures, mismatches
            while time.monotonic() < deadline:
                token = f"load-token-{rng.randrange(tokens)}"
                kind = rng.choice(list(QUERIES))
                n = rng.choice((5, 10, 20))
                started = time.perf_counter()
                try:
                    async with session.post(
                        url,
                        json={"query": QUERIES[kind], "variables": {"n": n}},
                        headers={"X-Auth-Token": token},
                    ) as response:
                        body = await response.json()
                except (aiohttp.ClientError, ValueError):
                    failures += 1
                    continue
                latencies.append(time.perf_counter() - started)
                if response.status != 200 or body.get("errors"):
                    failures += 1
                elif expected is not None and not expected.check(kind, n, token, body["data"]):
                    mismatches += 1

        await asyncio.gather(*(client() for _ in range(clients)))
    ordered = sorted(latencies)
    return {
        "requests": len(latencies),
        "failures": failures,
        "mismatches": mismatches,
        "rps": len(latencies) / seconds,
        "p50_ms": statistics.median(ordered) * 1000 if ordered else 0,
        "p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000 if ordered else 0,
    }


def sample(pid: int) -> tuple[float, int]:
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    return rss, len(list(Path(f"/proc/{pid}/fd").iterdir()))


async def soak(url: str, base: str, pid: int, seconds: float) -> dict[str, Any]:
    samples: list[tuple[float, float, int]] = []
    load = asyncio.create_task(drive(url, 16, seconds, 5000, None))
    started = time.monotonic()
    while not load.done():
        rss, fds = sample(pid)
        samples.append((time.monotonic() - started, rss, fds))
        await asyncio.sleep(max(1.0, seconds / 60))
    result = await load
    async with httpx.AsyncClient() as http:
        entries = (await http.get(f"{base}/readyz")).json()["cache"]["entries"]
    warm = [s for s in samples if s[0] >= seconds * 0.2] or samples
    return {
        **result,
        "seconds": seconds,
        "rss_after_warmup_mb": warm[0][1],
        "rss_end_mb": samples[-1][1],
        "rss_growth_pct": (samples[-1][1] - warm[0][1]) / warm[0][1] * 100,
        "fds_after_warmup": warm[0][2],
        "fds_end": samples[-1][2],
        "cache_entries": entries,
    }


def run_suites() -> list[tuple[str, int, int]]:
    report = ROOT / "bench" / "out" / "reliability-junit.xml"
    report.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
            *SUITES,
        ],
        cwd=ROOT,
        check=False,
        stdout=subprocess.DEVNULL,
    )
    rows = []
    suites: dict[str, list[int]] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        name = case.get("classname", "").rsplit(".", 1)[-1]
        failed = any(child.tag in ("failure", "error") for child in case)
        counts = suites.setdefault(name, [0, 0])
        counts[0] += 1
        counts[1] += int(failed)
    for name, (total, failed) in suites.items():
        rows.append((name, total, failed))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reliability")
    parser.add_argument("--load-seconds", type=float, default=60)
    parser.add_argument("--soak-seconds", type=float, default=600)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--attack-seconds", type=float, default=10)
    args = parser.parse_args()

    suites = run_suites()
    attacks = asyncio.run(run_attacks(args.attack_seconds))
    sim_port, port = free_port(), free_port()
    sim = f"http://127.0.0.1:{sim_port}"
    base = f"http://127.0.0.1:{port}"
    processes = [
        start_simulator(sim_port, subscriptions=SUBSCRIPTIONS, latency=0.005, seed=SEED),
        start_gateway(
            {
                "GATEWAY_PORT": str(port),
                "GATEWAY_OMA_BASE_URL": sim,
                "GATEWAY_CBC_BASE_URL": sim,
                "GATEWAY_OMA_RATE_LIMIT": "0",
                "GATEWAY_CBC_RATE_LIMIT": "0",
                "GATEWAY_LOG_LEVEL": "warning",
                "GATEWAY_CACHE_MAX_ENTRIES": str(CACHE_BOUND),
                "GATEWAY_OMA_CACHE_TTL": "30",
                "GATEWAY_CBC_CACHE_TTL": "30",
            },
        ),
    ]
    try:
        wait_up(f"{sim}/_sim/healthz")
        wait_up(f"{base}/healthz")
        url = f"{base}/graphql"
        load = asyncio.run(drive(url, args.clients, args.load_seconds, args.tokens, Expected()))
        soaked = asyncio.run(soak(url, base, processes[1].pid, args.soak_seconds))
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=20)
    write_report(suites, attacks, load, soaked, args)
    return 0 if not load["failures"] and not load["mismatches"] else 1


def write_report(
    suites: list[tuple[str, int, int]],
    attacks: list[Outcome],
    load: dict[str, Any],
    soaked: dict[str, Any],
    args: argparse.Namespace,
) -> None:
    ok = lambda good: "yes" if good else "**no**"  # noqa: E731
    lines = [
        "# Reliability",
        "",
        f"Regenerated by `.venv/bin/python -m bench.reliability` on {datetime.now(UTC).isoformat(timespec='seconds')}"
        " (2 cores; loopback only; simulator latency 5 ms).",
        "",
        "## Fault, hostile-input and security suites",
        "",
        "| suite | tests | failed |",
        "|---|---|---|",
        *[f"| {name} | {total} | {failed} |" for name, total, failed in suites],
        "",
        "They cover: an upstream slow past its deadline, 5xx, reset connections, non-JSON, a wrong shape,",
        "throttling with Retry-After, a redirect (never followed); the breaker opening, failing fast and",
        "closing after one probe; Redis stopped, frozen and restarted under load; SIGTERM with ten requests in flight;",
        "a killed replica; every hostile input the issue lists; token isolation under interleaving; no",
        "token in logs, errors, metrics or cache keys; graphql-http's conformance audit.",
        "",
        f"## Attacks: one caller against the others, {args.attack_seconds:.0f} s each",
        "",
        "A simulator with 20 ms latency and a production gateway at the default quota (10 calls/s",
        "per upstream); a victim tenant asks one fresh page every 200 ms (`bench.attacks`).",
        "",
        attack_table(attacks),
        "",
        f"Every victim answer right during every attack: {ok(all(not o.during.errors for o in attacks))}. "
        "Victim p50 within 2x (or +300 ms) of alone: "
        f"{ok(all(o.during.p50_ms <= max(2 * o.alone.p50_ms, o.alone.p50_ms + 300) for o in attacks))}. "
        f"Breakers closed after each: {ok(all(set(o.breakers_after.values()) == {'closed'} for o in attacks))}.",
        "",
        f"## Load: {args.clients} clients for {args.load_seconds:.0f} s, {args.tokens} tokens, mixed queries",
        "",
        "| requests | req/s | failed | answers not matching the caller's own data | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|",
        f"| {load['requests']} | {load['rps']:.0f} | {load['failures']} | {load['mismatches']} | {load['p50_ms']:.1f} | {load['p99_ms']:.1f} |",
        "",
        f"Zero failed requests: {ok(load['failures'] == 0)}. Every answer its own token's data: {ok(load['mismatches'] == 0)}.",
        "",
        f"## Soak: 16 clients for {soaked['seconds']:.0f} s, 5,000 tokens",
        "",
        "| requests | failed | RSS after warm-up MB | RSS at end MB | growth | open fds after warm-up | at end | cache entries (bound) |",
        "|---|---|---|---|---|---|---|---|",
        f"| {soaked['requests']} | {soaked['failures']} | {soaked['rss_after_warmup_mb']:.0f} | {soaked['rss_end_mb']:.0f} "
        f"| {soaked['rss_growth_pct']:.1f} % | {soaked['fds_after_warmup']} | {soaked['fds_end']} | {soaked['cache_entries']} ({CACHE_BOUND}) |",
        "",
        f"Memory growth under 10 % after warm-up: {ok(soaked['rss_growth_pct'] < 10)}. "
        f"File descriptors flat: {ok(soaked['fds_end'] <= soaked['fds_after_warmup'] * 1.1 + 2)}. "
        f"Cache within its bound: {ok(soaked['cache_entries'] is not None and soaked['cache_entries'] <= CACHE_BOUND)}.",
        "",
    ]
    (ROOT / "RELIABILITY.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())

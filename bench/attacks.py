"""What one caller can do to the others: each attack against real processes, and what a
tenant meets while it runs.

``python -m bench.attacks`` (about two minutes): a simulator of both upstreams and a gateway
in production settings (the quota at its default 10 calls/s, 20 ms of upstream latency), a
victim tenant asking one fresh page every 200 ms, and each attack in turn: the victim's p50
and errors while it runs against its p50 alone, and what the attack cost the upstreams.
``tests/system/test_one_caller.py`` runs the same attacks, shorter, and asserts on them;
``python -m bench.reliability`` writes the table into RELIABILITY.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.run import free_port, pinned, wait_up
from tests.support.hostile_documents import fragment_bomb

VICTIM = "victim-tenant"
VICTIM_QUERY = {"query": "query Victim { subscriptions(first: 1) { totalCount } }"}
VICTIM_TOTAL = 301  # the simulator's subscriptions of every tenant, the seed's own included
GIANT_TOKEN = "M" * 17_000
LEAKED_HOST = "db01.internal.corp:5432"
UPSTREAM_TEXT = (
    f"PSQLException: connection to {LEAKED_HOST} refused "
    "at com.huawei.bss.cbc.ResourceDao.query(ResourceDao.java:212)"
)


@dataclass
class Deployment:
    """A simulator and a gateway on loopback, with what the tests need of both."""

    gateway: str
    simulator: str
    log: Path
    http: httpx.AsyncClient

    async def post(
        self,
        body: Any,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        within: float = 30,
    ) -> httpx.Response:
        sent = dict(headers or {})
        if token is not None:
            sent["X-Auth-Token"] = token
        return await self.http.post(
            f"{self.gateway}/graphql", json=body, headers=sent, timeout=within
        )

    async def knobs(self, **upstreams: dict[str, Any]) -> None:
        answer = await self.http.post(f"{self.simulator}/_sim/knobs", json=upstreams)
        answer.raise_for_status()

    async def calls(self) -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = (await self.http.get(f"{self.simulator}/_sim/calls")).json()
        return calls

    async def reset(self) -> None:
        await self.http.post(f"{self.simulator}/_sim/reset")

    async def breakers(self) -> dict[str, str]:
        ready = (await self.http.get(f"{self.gateway}/readyz")).json()
        breakers: dict[str, str] = ready["breakers"]
        return breakers

    async def metrics(self) -> str:
        return (await self.http.get(f"{self.gateway}/metrics")).text


@contextlib.contextmanager
def running(
    workdir: Path, *, latency: float = 0.02, env: dict[str, str] | None = None
) -> Iterator[tuple[str, str, Path]]:
    """A simulator (``latency`` s on every answer) and a gateway in production settings, the
    quota at its default; the gateway believes X-Forwarded-For from loopback, so a test can
    play many clients. Their URLs and the gateway's log; both stop when the block ends."""
    sim_port, gateway_port = free_port(), free_port()
    simulator_url = f"http://127.0.0.1:{sim_port}"
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    log = workdir / "gateway.log"
    simulator = [sys.executable, "-m", "gateway.simulator", "--port", str(sim_port)]
    simulator += ["--oma-latency", str(latency), "--cbc-latency", str(latency)]
    gateway_env = {
        **os.environ,
        "GATEWAY_PROFILE": "production",
        "GATEWAY_PORT": str(gateway_port),
        "GATEWAY_OMA_BASE_URL": simulator_url,
        "GATEWAY_CBC_BASE_URL": simulator_url,
        "GATEWAY_TRUSTED_PROXIES": "127.0.0.1",
        "GATEWAY_LOG_LEVEL": "info",
        **(env or {}),
    }
    processes: list[subprocess.Popen[bytes]] = []
    with log.open("wb") as log_file:
        try:
            processes.append(
                subprocess.Popen(
                    pinned(1, simulator), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            )
            processes.append(
                subprocess.Popen(
                    pinned(0, [sys.executable, "-m", "gateway.server.cli", "serve"]),
                    env=gateway_env,
                    stdout=log_file,
                    stderr=log_file,
                )
            )
            wait_up(f"{simulator_url}/_sim/healthz")
            wait_up(f"{gateway_url}/healthz")
            yield gateway_url, simulator_url, log
        finally:
            for process in processes:
                if process.poll() is None:
                    process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()


@contextlib.asynccontextmanager
async def deployment(
    workdir: Path, *, latency: float = 0.02, env: dict[str, str] | None = None
) -> AsyncIterator[Deployment]:
    """``running``'s processes, with a client for them."""
    with running(workdir, latency=latency, env=env) as (gateway_url, simulator_url, log):
        async with httpx.AsyncClient(timeout=30) as http:
            yield Deployment(gateway_url, simulator_url, log, http)


@dataclass
class Sample:
    """The victim's requests while something ran: each latency, and the wrong answers."""

    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies) * 1000 if self.latencies else float("nan")


async def victim(dep: Deployment, seconds: float, *, interval: float = 0.2) -> Sample:
    """The victim tenant: one fresh page every ``interval`` s (``Cache-Control: no-cache``:
    each costs an upstream call), each answer checked."""
    sample = Sample()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            answer = await dep.post(
                VICTIM_QUERY, token=VICTIM, headers={"Cache-Control": "no-cache"}, within=15
            )
            body = answer.json()
            if answer.status_code != 200 or "errors" in body:
                sample.errors.append(f"{answer.status_code} {body.get('errors')}")
            elif body["data"]["subscriptions"]["totalCount"] != VICTIM_TOTAL:
                sample.errors.append(f"wrong data: {body['data']}")
        except (httpx.HTTPError, ValueError) as exc:
            sample.errors.append(type(exc).__name__)
        sample.latencies.append(time.perf_counter() - started)
        await asyncio.sleep(max(0.0, interval - (time.perf_counter() - started)))
    return sample


@dataclass
class Report:
    """What an attack did, as it counts it itself."""

    requests: int = 0
    notes: list[str] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)
    """What the tests assert on, by name."""


Attack = Callable[[Deployment, asyncio.Event], Awaitable[Report]]


async def _repeat(
    stop: asyncio.Event, workers: int, once: Callable[[int, int], Awaitable[None]]
) -> int:
    """``once(worker, n)`` in a loop on ``workers`` tasks until ``stop``; how many ran."""
    done = 0

    async def work(worker: int) -> None:
        nonlocal done
        n = 0
        while not stop.is_set():
            with contextlib.suppress(httpx.HTTPError):
                await once(worker, n)
            n += 1
            done += 1

    await asyncio.gather(*(work(worker) for worker in range(workers)))
    return done


async def giant_tokens(dep: Deployment, stop: asyncio.Event) -> Report:
    """Requests with a 17,000-character X-Auth-Token (the upstreams' API gateway answers
    431 to headers over 16 KB): they once opened both breakers in six requests."""
    report = Report()
    query = {"query": "{ subscriptions(first: 1) { totalCount } resources { totalCount } }"}
    codes: set[str] = set()

    async def once(worker: int, n: int) -> None:
        body = (await dep.post(query, token=GIANT_TOKEN)).json()
        codes.update(e["extensions"]["code"] for e in body.get("errors", ()))

    report.requests = await _repeat(stop, 4, once)
    report.notes.append(f"codes {sorted(codes)}")
    return report


async def invented_failing(dep: Deployment, stop: asyncio.Event) -> Report:
    """Invented tokens whose calls the upstreams answer with 5xx: each token is a caller
    of its own, so once enough of them opened the breakers for everyone."""
    await dep.knobs(oma={"failing_tokens": "boom-"}, cbc={"failing_tokens": "boom-"})
    query = {"query": "{ subscriptions(first: 1) { totalCount } resources { totalCount } }"}

    async def once(worker: int, n: int) -> None:
        await dep.post(query, token=f"boom-{worker}-{n}")

    try:
        return Report(requests=await _repeat(stop, 4, once))
    finally:
        await dep.knobs(oma={"failing_tokens": None}, cbc={"failing_tokens": None})


async def verified_failing(dep: Deployment, stop: asyncio.Event) -> Report:
    """A real tenant who found an input the upstream answers with a 500, sending it again
    and again: one caller, however verified, is one source of failures."""
    token = "boom-verified"
    query = {"query": "{ subscriptions(first: 1) { totalCount } resources { totalCount } }"}
    answer = (await dep.post(query, token=token)).json()  # answered: verified
    assert "errors" not in answer, answer
    await dep.knobs(oma={"failing_tokens": "boom-"}, cbc={"failing_tokens": "boom-"})

    async def once(worker: int, n: int) -> None:
        await dep.post(query, token=token, headers={"Cache-Control": "no-cache"})

    try:
        return Report(requests=await _repeat(stop, 4, once))
    finally:
        await dep.knobs(oma={"failing_tokens": None}, cbc={"failing_tokens": None})


async def invented_flood(dep: Deployment, stop: asyncio.Event) -> Report:
    """24 clients, each from an address of its own, sending requests with made-up tokens
    (which the upstream refuses, each refusal once costing a slot of the shared quota)."""

    async def once(worker: int, n: int) -> None:
        await dep.post(
            {"query": "{ subscriptions(first: 1) { totalCount } }"},
            token=f"invalid-{worker}-{n}",
            headers={"X-Forwarded-For": f"198.51.100.{worker + 1}"},
        )

    return Report(requests=await _repeat(stop, 24, once))


async def upstream_text(dep: Deployment, stop: asyncio.Event) -> Report:
    """A caller whose calls CBC answers with a 500 that names a database host and a Java
    frame: that text once came back as the GraphQL error message."""
    await dep.knobs(cbc={"failing_tokens": "leak-", "error_text": UPSTREAM_TEXT})
    leaks = 0

    async def once(worker: int, n: int) -> None:
        nonlocal leaks
        answer = await dep.post({"query": "{ resources { totalCount } }"}, token=f"leak-{worker}")
        leaks += LEAKED_HOST in answer.text or "ResourceDao" in answer.text

    try:
        report = Report(requests=await _repeat(stop, 2, once))
    finally:
        await dep.knobs(cbc={"failing_tokens": None, "error_text": None})
    report.notes.append(f"{leaks} answers with the upstream's text")
    return report


async def junk_operation_names(dep: Deployment, stop: asyncio.Event) -> Report:
    """Operations with ever new names from callers no upstream has answered: they once used
    up the 100 operation-name series of /metrics."""

    async def once(worker: int, n: int) -> None:
        name = f"Junk{worker}x{n}"
        await dep.post(
            {"query": f"query {name} {{ __typename }}", "operationName": name},
            token=f"stranger-{worker}-{n}",
        )

    report = Report(requests=await _repeat(stop, 4, once))
    series = (await dep.metrics()).count('operation="Junk')
    report.notes.append(f"{series} series of junk names")
    return report


async def fragment_bombs(dep: Deployment, stop: asyncio.Event) -> Report:
    """Documents of about 1 KB whose fragments spread twice per level: 2^20 and 2^60 paths.
    Walked once per path, one blocked the event loop for 6.6 s, /healthz included."""
    documents = [fragment_bomb(20), fragment_bomb(30, spreads=4)]  # 2^20 and 4^30 = 2^60
    refusals: list[float] = []
    health: list[float] = []

    async def once(worker: int, n: int) -> None:
        if worker == 0:  # one prober of /healthz beside the bombs
            started = time.perf_counter()
            await dep.http.get(f"{dep.gateway}/healthz")
            health.append(time.perf_counter() - started)
            await asyncio.sleep(0.05)
            return
        started = time.perf_counter()
        answer = await dep.post({"query": documents[n % 2]}, token=f"bomber-{worker}")
        refusals.append(time.perf_counter() - started)
        codes = {e["extensions"]["code"] for e in answer.json()["errors"]}
        assert codes == {"GRAPHQL_VALIDATION_FAILED"}, codes

    report = Report(requests=await _repeat(stop, 3, once) - len(health))
    report.figures = {
        "refusal_p50_ms": statistics.median(refusals) * 1000,
        "healthz_p50_ms": statistics.median(health) * 1000,
        "healthz_max_ms": max(health) * 1000,
    }
    report.notes.append(
        f"refused in p50 {statistics.median(refusals) * 1000:.1f} ms; "
        f"/healthz p50 {statistics.median(health) * 1000:.1f} ms, max {max(health) * 1000:.1f}"
    )
    return report


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def _hold(
    port: int,
    stop: asyncio.Event,
    *,
    first: bytes,
    trickle: bytes = b"",
    every: float = 0.5,
) -> tuple[bool, float]:
    """One connection that sends ``first``, then ``trickle`` a byte every ``every`` s, until
    the server closes it or ``stop``; whether the server closed it, and after how long."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    closed = False
    try:
        if first:
            writer.write(first)
        for byte in trickle or b"\0" * 10_000:
            if stop.is_set():
                break
            if trickle:
                writer.write(bytes([byte]))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(every):
                    while await reader.read(65536):
                        pass  # the server's answer (a 408, a 431): read on to its close
                    closed = True
                    break
    except (ConnectionError, OSError):
        closed = True
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
    return closed, time.monotonic() - started


def _connections(
    count: int, *, first: bytes, trickle: bytes = b"", every: float = 0.5, size: int = 0
) -> Attack:
    async def attack(dep: Deployment, stop: asyncio.Event) -> Report:
        port = _port(dep.gateway)
        held = await asyncio.gather(
            *(_hold(port, stop, first=first, trickle=trickle, every=every) for _ in range(count)),
            return_exceptions=True,
        )
        ended = [h for h in held if isinstance(h, tuple)]
        closed = [seconds for was_closed, seconds in ended if was_closed]
        report = Report(requests=count, figures={"closed": len(closed), "ended": len(ended)})
        report.notes.append(
            f"{len(closed)} of {count} closed by the server"
            + (f", the last after {max(closed):.1f} s" if closed else "")
        )
        return report

    return attack


_HEAD = b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
_BODY = b'{"query": "{ subscriptions(first: 1) { totalCount } }"}' + b" " * 2000
slow_headers = _connections(50, first=b"", trickle=_HEAD + b"X-Auth-Token: slow\r\n\r\n")
slow_bodies = _connections(
    50, first=_HEAD + b"Content-Length: %d\r\n\r\n" % len(_BODY), trickle=_BODY
)
silent = _connections(200, first=b"")
huge_headers = _connections(8, first=_HEAD + b"X-Junk: " + b"j" * 8 * 1024 * 1024)
flood = _connections(600, first=b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", every=5.0)


ATTACKS: dict[str, Attack] = {
    "fragment bombs (2^20 and 2^60 paths)": fragment_bombs,
    "50 connections sending headers a byte each 0.5 s": slow_headers,
    "50 connections sending a body a byte each 0.5 s": slow_bodies,
    "200 connections that send nothing": silent,
    "8 connections sending 8 MB of headers": huge_headers,
    "600 connections kept open (the cap is 500)": flood,
    "a 17,000-character token": giant_tokens,
    "invented tokens the upstreams answer with 5xx": invented_failing,
    "a verified tenant's input the upstreams answer with 5xx": verified_failing,
    "24 clients flooding with invented tokens": invented_flood,
    "an upstream 500 naming hosts and stack frames": upstream_text,
    "junk operation names": junk_operation_names,
}


@dataclass
class Outcome:
    attack: str
    alone: Sample
    during: Sample
    report: Report
    attacker_calls: int
    breakers_after: dict[str, str]


async def measure(dep: Deployment, name: str, attack: Attack, seconds: float) -> Outcome:
    """The victim alone, then while ``attack`` runs for ``seconds``: its latencies, errors,
    and the upstream calls the attack cost (every call not made for the victim)."""
    alone = await victim(dep, seconds / 2)
    await dep.reset()
    stop = asyncio.Event()
    running = asyncio.create_task(attack(dep, stop))
    during = await victim(dep, seconds)
    stop.set()
    report = await running
    calls = await dep.calls()
    attacker_calls = sum(1 for call in calls if call["token"] != VICTIM)
    return Outcome(name, alone, during, report, attacker_calls, await dep.breakers())


async def prove_victim(dep: Deployment) -> None:
    """The victim is a tenant the upstreams have answered, before any attack."""
    for _ in range(50):
        answer = await dep.post(VICTIM_QUERY, token=VICTIM)
        if answer.status_code == 200 and "errors" not in answer.json():
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the victim is not answered: {answer.text}")


def table(outcomes: list[Outcome]) -> str:
    lines = [
        "| attack | victim p50 alone ms | victim p50 during ms | victim errors | attack requests "
        "| its upstream calls | breakers after | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for outcome in outcomes:
        breakers = ", ".join(f"{k} {v}" for k, v in sorted(outcome.breakers_after.items()))
        lines.append(
            f"| {outcome.attack} | {outcome.alone.p50_ms:.1f} | {outcome.during.p50_ms:.1f} "
            f"| {len(outcome.during.errors)} of {len(outcome.during.latencies)} "
            f"| {outcome.report.requests} | {outcome.attacker_calls} | {breakers} "
            f"| {'; '.join(outcome.report.notes)} |"
        )
    return "\n".join(lines)


async def run_all(seconds: float, only: str = "") -> list[Outcome]:
    outcomes = []
    with tempfile.TemporaryDirectory() as workdir:
        async with deployment(Path(workdir)) as dep:
            await prove_victim(dep)
            for name, attack in ATTACKS.items():
                if only not in name:
                    continue
                outcomes.append(await measure(dep, name, attack, seconds))
                await asyncio.sleep(1)  # the quota's burst back before the next
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.attacks", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="each attack's duration")
    parser.add_argument("--only", default="", help="the attacks whose name holds this")
    args = parser.parse_args(argv)
    print(table(asyncio.run(run_all(args.seconds, args.only))))
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["ATTACKS", "Deployment", "deployment", "measure", "prove_victim", "table"]

"""The gateway's own work per request, as a count that does not drift:
``python -m bench.instructions s3``.

On a shared VM, CPU time per request for the same code moves by a third between runs,
so a 5 % change cannot be seen. An instruction count moves by less than 0.1 %. This
records the upstream answers a scenario needs from the simulator (in this process,
seed 7, 1,200 subscriptions as ``bench.run`` starts it), then runs the scenario
through the gateway's ASGI app in-process under valgrind's callgrind, with a transport
that serves the recorded answers: once with 1 request and once with 1 + ``--requests``,
and reports the difference per request. That is the gateway's own work (parsing, the
cache, resilience, execution, encoding), with no simulator, network or aiohttp in it.

``--cpu`` skips valgrind and reports the CPU time per request of the same replay (best
of five rounds of ten), for a quick look. valgrind comes from apt: ``apt-get install valgrind``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

from bench.profile import operation_query
from bench.run import TOKEN, cache_env, gateway_env
from gateway.config import Settings
from gateway.server.app import create_app
from gateway.server.cli import tune_garbage_collector
from gateway.server.runtime import Gateway
from gateway.simulator import Simulator
from gateway.simulator.data import SimulatorConfig

FIXED_DAY = datetime.date(2025, 6, 1)

# The upstream answers of a scenario: (path, request body) -> (status, headers, body).
Answers = dict[tuple[str, bytes], tuple[int, list[tuple[bytes, bytes]], bytes]]
REPLAYABLE = ["s1", "s2", "s3", "s4"]  # s5's ids come from the simulator at run time
_COLLECTED = re.compile(r"Collected : (\d+)")


class Recording(httpx.AsyncBaseTransport):
    """Passes calls to ``transport`` and keeps each answer."""

    def __init__(self, transport: httpx.AsyncBaseTransport, answers: Answers) -> None:
        self._transport = transport
        self.answers = answers

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._transport.handle_async_request(request)
        content = await response.aread()
        key = (request.url.path, request.content)
        self.answers[key] = (response.status_code, response.headers.raw, content)
        return httpx.Response(response.status_code, headers=response.headers.raw, content=content)


class Replaying(httpx.AsyncBaseTransport):
    """Answers each call as it was recorded; a call that was not recorded is an error,
    so a replay never measures something other than the recorded scenario."""

    def __init__(self, answers: Answers) -> None:
        self._answers = answers

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        key = (request.url.path, request.content)
        if key not in self._answers:
            raise LookupError(f"no recorded answer for {request.url.path} {request.content!r}")
        status, headers, content = self._answers[key]
        return httpx.Response(status, headers=headers, content=content)


def settings(warm: bool) -> Settings:
    return Settings.from_env({**gateway_env("http://simulator"), **cache_env(warm)})


def operation(scenario: str) -> bytes:
    # s4 is s2's operation with a warm cache.
    return json.dumps({"query": operation_query("s2" if scenario == "s4" else scenario)}).encode()


async def post(client: httpx.AsyncClient, body: bytes) -> bytes:
    response = await client.post(
        "/graphql",
        content=body,
        headers={"X-Auth-Token": TOKEN, "Content-Type": "application/json"},
    )
    return response.content


def checked(answer: bytes) -> bytes:
    data = orjson.loads(answer)
    if not isinstance(data, dict) or "data" not in data or data.get("errors"):
        raise RuntimeError(f"the scenario failed: {answer[:300]!r}")
    return answer


async def run_gateway(
    transport: httpx.AsyncBaseTransport,
    scenario: str,
    requests: int,
    answers: list[bytes] | None = None,
) -> float:
    """``requests`` requests of the scenario after one to warm up; CPU seconds of those.
    ``answers`` gets the first answer's bytes, to compare two versions by."""
    warm = scenario == "s4"
    configured = settings(warm)
    gateway = Gateway.build(configured, transports={"oma": transport, "cbc": transport})
    tune_garbage_collector(configured.server)  # as ``gateway serve`` does
    body = operation(scenario)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(gateway)), base_url="http://gateway"
        ) as client:
            # The first answer is read and checked; the counted ones must be the same bytes
            # (decoding a large answer here would count the client's work too).
            first = checked(await post(client, body))
            if answers is not None:
                answers.append(first)
            started = time.process_time()
            for _ in range(requests):
                if await post(client, body) != first:
                    raise RuntimeError("an answer differs from the first")
            return time.process_time() - started
    finally:
        await gateway.aclose()


def record(scenario: str, answer: Path | None = None) -> Answers:
    # A fixed day: the simulator's data moves with the clock, the counts must not.
    simulator = Simulator(SimulatorConfig(seed=7, subscriptions=1200, today=FIXED_DAY))
    recording = Recording(httpx.ASGITransport(app=simulator.app), {})
    first: list[bytes] = []
    asyncio.run(run_gateway(recording, scenario, 0, first))
    if answer is not None:
        answer.write_bytes(first[0])
    return recording.answers


def collected(valgrind_output: str) -> int:
    """callgrind's total instruction count from its report on stderr."""
    match = _COLLECTED.search(valgrind_output)
    if match is None:
        raise RuntimeError(f"no instruction count in valgrind's output: {valgrind_output[-500:]}")
    return int(match.group(1))


def count(answers_file: Path, scenario: str, requests: int, scratch: Path) -> int:
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={scratch / f'callgrind.{requests}'}",
        sys.executable,
        "-m",
        "bench.instructions",
        scenario,
        "--replay",
        str(answers_file),
        "--requests",
        str(requests),
    ]
    # A fixed hash seed: dict and set layouts, so the count, do not change between runs.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return collected(done.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions")
    parser.add_argument("scenario", choices=REPLAYABLE)
    parser.add_argument("--requests", type=int, default=2, help="requests counted (after one)")
    parser.add_argument("--cpu", action="store_true", help="CPU time instead, without valgrind")
    parser.add_argument("--replay", type=Path, help=argparse.SUPPRESS)  # the run under valgrind
    parser.add_argument(
        "--answer", type=Path, help="write the scenario's answer here (compare two versions)"
    )
    args = parser.parse_args()
    if args.replay is not None:
        answers = pickle.loads(args.replay.read_bytes())  # our own file, just written
        asyncio.run(run_gateway(Replaying(answers), args.scenario, args.requests))
        return 0
    answers = record(args.scenario, args.answer)
    if args.cpu:
        rounds = [asyncio.run(run_gateway(Replaying(answers), args.scenario, 10)) for _ in range(5)]
        print(f"{args.scenario}: {min(rounds) * 100:.2f} ms CPU per request (best of 5 x 10)")
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: apt-get install valgrind (or use --cpu)")
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        answers_file = Path(scratch) / "answers.pickle"
        answers_file.write_bytes(pickle.dumps(answers))
        base = count(answers_file, args.scenario, 1, Path(scratch))
        more = count(answers_file, args.scenario, 1 + args.requests, Path(scratch))
    per_request = (more - base) / args.requests
    print(f"{args.scenario}: {per_request / 1e6:.1f} M instructions per request")
    return 0


if __name__ == "__main__":
    sys.exit(main())

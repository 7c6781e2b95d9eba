"""One caller cannot hurt the others: each attack against real processes (a simulator of both
upstreams and a gateway in production settings, the quota at its default 10 calls/s), a
victim tenant asking fresh pages while it runs, and the victim answered correctly after.

The attacks themselves are ``bench.attacks``'s, which ``python -m bench.attacks`` runs longer
for the table in RELIABILITY.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from bench.attacks import (
    ATTACKS,
    GIANT_TOKEN,
    UPSTREAM_TEXT,
    VICTIM,
    Deployment,
    Outcome,
    deployment,
    measure,
    prove_victim,
    running,
)

pytestmark = pytest.mark.slow
SECONDS = 3.0


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """One simulator and one gateway for the module's attacks (each leaves them as it
    found them: the breakers closed, the simulator's knobs off)."""
    # Heads and bodies due within 2 s (10 s by default): the slow clients are seen closed
    # within the tests' few seconds.
    limits = {"GATEWAY_HEADER_TIMEOUT": "2", "GATEWAY_BODY_TIMEOUT": "2"}
    with running(tmp_path_factory.mktemp("one-caller"), env=limits) as urls:
        yield urls


@pytest.fixture
async def dep(processes: tuple[str, str, Path]) -> AsyncIterator[Deployment]:
    gateway, simulator, log = processes
    async with httpx.AsyncClient(timeout=30) as http:
        here = Deployment(gateway, simulator, log, http)
        await prove_victim(here)
        yield here


def unharmed(outcome: Outcome) -> None:
    """The victim got every answer right while the attack ran, about as fast as alone,
    and the breakers are closed."""
    assert outcome.during.errors == []
    alone, during = outcome.alone.p50_ms, outcome.during.p50_ms
    assert during <= max(2 * alone, alone + 300), (alone, during)
    assert outcome.breakers_after == {"oma": "closed", "cbc": "closed"}


async def run(dep: Deployment, name: str) -> Outcome:
    outcome = await measure(dep, name, ATTACKS[name], SECONDS)
    await prove_victim(dep)
    return outcome


async def test_giant_tokens_cost_no_call_and_open_no_breaker(dep: Deployment) -> None:
    outcome = await run(dep, "a 17,000-character token")
    unharmed(outcome)
    assert outcome.report.requests > 20
    assert outcome.attacker_calls == 0
    assert outcome.report.notes == ["codes ['UNAUTHENTICATED']"]


async def test_invented_tokens_failing_upstream_open_no_breaker(dep: Deployment) -> None:
    outcome = await run(dep, "invented tokens the upstreams answer with 5xx")
    unharmed(outcome)
    assert outcome.attacker_calls > 5  # the failures happened: they were not counted


async def test_one_verified_tenants_failing_input_opens_no_breaker(dep: Deployment) -> None:
    outcome = await run(dep, "a verified tenant's input the upstreams answer with 5xx")
    unharmed(outcome)
    assert outcome.attacker_calls > 5


async def test_a_flood_of_invented_tokens_leaves_the_tenant_its_pace(dep: Deployment) -> None:
    outcome = await run(dep, "24 clients flooding with invented tokens")
    unharmed(outcome)
    assert outcome.report.requests > 24


async def test_what_the_upstream_writes_never_reaches_the_caller(dep: Deployment) -> None:
    outcome = await run(dep, "an upstream 500 naming hosts and stack frames")
    unharmed(outcome)
    assert outcome.report.notes == ["0 answers with the upstream's text"]
    assert outcome.report.requests > 0
    await dep.knobs(cbc={"failing_tokens": "leak-", "error_text": UPSTREAM_TEXT})
    try:
        answer = await dep.post({"query": "{ resources { totalCount } }"}, token="leak-0")
    finally:
        await dep.knobs(cbc={"failing_tokens": None, "error_text": None})
    (error,) = answer.json()["errors"]
    assert error["message"] == "CBC failed to answer (500, CBC.0999)"
    assert error["extensions"] == {
        "code": "UPSTREAM_UNAVAILABLE",
        "upstream": "cbc",
        "upstreamCode": "CBC.0999",
    }
    # The operators can still read what the upstream said, in the log, cut short.
    assert UPSTREAM_TEXT[:200] in dep.log.read_text()


async def test_junk_operation_names_take_no_series(dep: Deployment) -> None:
    outcome = await run(dep, "junk operation names")
    assert outcome.during.errors == []
    assert outcome.report.notes == ["0 series of junk names"]
    assert outcome.report.requests > 100
    # The tenant's own operation keeps a series of its own.
    assert 'operation="Victim"' in await dep.metrics()


async def test_fragment_bombs_are_refused_at_once_and_health_stays_quick(
    dep: Deployment,
) -> None:
    outcome = await run(dep, "fragment bombs (2^20 and 2^60 paths)")
    unharmed(outcome)
    assert outcome.attacker_calls == 0
    assert outcome.report.requests > 20
    figures = outcome.report.figures
    # Wall time on a loaded two-core machine, the HTTP round trip included.
    assert figures["refusal_p50_ms"] < 50, figures
    assert figures["healthz_max_ms"] < 100, figures


@pytest.mark.parametrize(
    "name",
    [
        "50 connections sending headers a byte each 0.5 s",
        "50 connections sending a body a byte each 0.5 s",
        "200 connections that send nothing",
        "8 connections sending 8 MB of headers",
    ],
)
async def test_slow_silent_and_huge_clients_are_closed(dep: Deployment, name: str) -> None:
    outcome = await run(dep, name)
    unharmed(outcome)
    assert outcome.attacker_calls == 0
    assert outcome.report.figures["closed"] == outcome.report.requests, outcome.report.notes


async def test_a_flood_of_connections_leaves_the_tenant_its_connection(dep: Deployment) -> None:
    outcome = await run(dep, "600 connections kept open (the cap is 500)")
    unharmed(outcome)
    # The hundred past the cap were refused (503) and closed; the rest held.
    assert outcome.report.figures["closed"] >= 100


async def test_the_log_carries_no_token_and_no_fingerprint_a_guess_can_confirm(
    tmp_path: Path,
) -> None:
    token = "guessable-token"
    async with deployment(tmp_path, env={"GATEWAY_LOG_LEVEL": "debug"}) as debug:
        for _ in range(2):
            await debug.post({"query": "{ subscriptions(first: 1) { totalCount } }"}, token=token)
        await debug.post({"query": "{ resources { totalCount } }"}, token=GIANT_TOKEN)
        await prove_victim(debug)
    log = debug.log.read_text()
    assert "upstream call" in log  # the debug lines are there
    for secret in (token, GIANT_TOKEN[:64], VICTIM):
        assert secret not in log
    for unkeyed in (
        hashlib.sha256(token.encode()).hexdigest(),
        hashlib.sha256(b"gateway-credential\x00" + token.encode()).hexdigest(),
    ):
        assert unkeyed[:8] not in log


async def test_a_forged_forwarded_for_is_believed_from_no_one_but_a_trusted_proxy(
    tmp_path: Path,
) -> None:
    async with deployment(tmp_path, env={"GATEWAY_TRUSTED_PROXIES": ""}) as untrusting:
        await untrusting.post(
            {"query": "{ __typename }"}, headers={"X-Forwarded-For": "192.0.2.66"}
        )
    lines = [line for line in untrusting.log.read_text().splitlines() if '"/graphql"' in line]
    assert lines and all('"client":"127.0.0.1"' in line for line in lines)
    assert "192.0.2.66" not in untrusting.log.read_text()

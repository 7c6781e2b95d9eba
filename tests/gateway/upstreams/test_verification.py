"""What an upstream said of credentials: verified, refused for a while, shared through Redis."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from gateway.config import SecuritySettings
from gateway.errors import ErrorKind, UpstreamError
from gateway.upstreams.verification import CredentialBook, Refusal
from tests.support.redis_server import RedisServer, free_port

START = 1000.0


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def refusal(kind: ErrorKind = ErrorKind.UNAUTHENTICATED, status: int = 401) -> UpstreamError:
    return UpstreamError(
        kind, "cbc", "CBC did not accept the token", status=status, upstream_code="APIGW.0301"
    )


def book(clock: Clock, *, client: redis.Redis | None = None, **security: float) -> CredentialBook:
    settings = SecuritySettings(**{"verified_ttl": 60.0, "rejected_ttl": 5.0, **security})  # type: ignore[arg-type]
    return CredentialBook("cbc", settings, client=client, clock=clock)


async def test_an_answered_credential_is_verified_until_its_time_is_up() -> None:
    clock = Clock()
    credentials = book(clock)
    assert await credentials.look_up("alice") == (False, None)
    await credentials.answered("alice")
    assert credentials.verified_here("alice")
    assert await credentials.look_up("alice") == (True, None)
    assert not credentials.verified_here("bob")
    clock.now += 60
    assert not credentials.verified_here("alice")


async def test_a_refused_credential_is_refused_the_same_way_for_a_while() -> None:
    clock = Clock()
    credentials = book(clock)
    await credentials.answered("alice")
    await credentials.refused("alice", refusal())
    assert not credentials.verified_here("alice")  # a revoked token is no longer vouched for
    remembered = credentials.refusal_here("alice")
    assert remembered == Refusal(ErrorKind.UNAUTHENTICATED, 401, "APIGW.0301")
    error = remembered.error("cbc")
    assert (error.kind, error.upstream, error.status, error.upstream_code) == (
        ErrorKind.UNAUTHENTICATED,
        "cbc",
        401,
        "APIGW.0301",
    )
    assert error.message.startswith("CBC did not accept the token a moment ago")
    assert await credentials.look_up("alice") == (False, remembered)
    clock.now += 5
    assert credentials.refusal_here("alice") is None


@pytest.mark.parametrize(
    "kind", [ErrorKind.UNAVAILABLE, ErrorKind.BAD_REQUEST, ErrorKind.THROTTLED, ErrorKind.REFUSED]
)
async def test_only_a_refusal_of_the_credential_itself_is_remembered(kind: ErrorKind) -> None:
    credentials = book(Clock())
    await credentials.answered("alice")
    await credentials.refused("alice", refusal(kind, 500))
    assert credentials.refusal_here("alice") is None
    assert credentials.verified_here("alice")


async def test_a_rejected_ttl_of_zero_remembers_no_refusal() -> None:
    credentials = book(Clock(), rejected_ttl=0)
    await credentials.refused("alice", refusal(ErrorKind.FORBIDDEN, 403))
    assert credentials.refusal_here("alice") is None


async def test_the_memory_is_bounded_and_the_oldest_go_first() -> None:
    settings = SecuritySettings()
    credentials = CredentialBook("cbc", settings, max_entries=3)
    for name in ("a", "b", "c", "d"):
        await credentials.refused(name, refusal())
    assert credentials.refusal_here("a") is None
    assert all(credentials.refusal_here(name) is not None for name in ("b", "c", "d"))


@pytest.mark.parametrize(
    "raw",
    [b"FORBIDDEN|403|CBC.0151", "UNAUTHENTICATED||"],
)
def test_refusals_keep_their_form_through_redis(raw: bytes | str) -> None:
    decoded = Refusal.decode(raw)
    assert decoded is not None
    assert Refusal.decode(decoded.encode()) == decoded


@pytest.mark.parametrize(
    "raw", [b"UNAVAILABLE|500|", b"NOPE|1|x", b"garbage", b"UNAUTHENTICATED|four|"]
)
def test_a_tampered_refusal_is_no_refusal(raw: bytes) -> None:
    assert Refusal.decode(raw) is None


async def test_the_first_call_of_a_stranger_tries_it_while_the_others_wait() -> None:
    credentials = book(Clock())
    assert await credentials.await_trial("stranger", 5) is True
    waiting = [asyncio.create_task(credentials.await_trial("stranger", 5)) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert not any(task.done() for task in waiting)
    assert await credentials.await_trial("another", 5) is True  # each credential its own
    credentials.end_trial("stranger")
    assert await asyncio.gather(*waiting) == [False, False, False]
    assert await credentials.await_trial("stranger", 5) is True  # the trial is over


async def test_a_trial_waited_for_too_long_lets_the_call_go_as_it_is() -> None:
    credentials = book(Clock())
    assert await credentials.await_trial("slow", 5) is True
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await credentials.await_trial("slow", 0.05) is False
    assert loop.time() - started < 1


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    yield connection
    await connection.aclose()


async def test_replicas_agree_through_redis(client: redis.Redis) -> None:
    first, second = book(Clock(), client=client), book(Clock(), client=client)
    await first.answered("alice")
    assert not second.verified_here("alice")
    assert await second.look_up("alice") == (True, None)
    assert second.verified_here("alice")  # kept here after one round trip
    await first.refused("bob", refusal(ErrorKind.FORBIDDEN, 403))
    verified, refused = await second.look_up("bob")
    assert not verified and refused == Refusal(ErrorKind.FORBIDDEN, 403, "APIGW.0301")
    assert second.refusal_here("bob") == refused
    # A refusal seen by one replica ends what Redis vouched for the credential.
    await first.answered("carol")
    await first.refused("carol", refusal())
    third = book(Clock(), client=client)
    assert (await third.look_up("carol"))[0] is False
    # Only fingerprints and verdicts are kept, under the gateway's own prefix.
    keys = sorted(key.decode() for key in await client.keys("*"))
    assert keys == [
        "gw:v2:credential:cbc:no:bob",
        "gw:v2:credential:cbc:no:carol",
        "gw:v2:credential:cbc:ok:alice",
    ]


async def test_a_stranger_unknown_to_redis_is_not_looked_up_again_at_once(
    client: redis.Redis,
) -> None:
    clock = Clock()
    credentials = book(clock, client=client)
    calls = 0
    mget = client.mget

    async def counted(*keys: str) -> object:
        nonlocal calls
        calls += 1
        return await mget(*keys)

    client.mget = counted  # type: ignore[method-assign]
    for _ in range(20):
        assert await credentials.look_up("invented") == (False, None)
    assert calls == 1
    clock.now += 2
    await credentials.look_up("invented")
    assert calls == 2


async def test_redis_down_leaves_this_process_in_charge_and_says_so_once(
    tmp_path_factory: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture
) -> None:
    dead = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.1)
    clock = Clock()
    credentials = book(clock, client=dead)
    with caplog.at_level(logging.WARNING, logger="gateway.credentials"):
        await credentials.answered("alice")
        assert await credentials.look_up("alice") == (True, None)
        assert await credentials.look_up("bob") == (False, None)
        await credentials.refused("bob", refusal())
        assert credentials.refusal_here("bob") is not None
    warnings = [r for r in caplog.records if r.name == "gateway.credentials"]
    assert len(warnings) == 1
    await dead.aclose()


async def test_redis_coming_back_is_used_again(
    tmp_path_factory: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with RedisServer(tmp_path_factory.mktemp("verdicts")) as server:
        connection = redis.Redis.from_url(server.url, socket_timeout=0.2)
        clock = Clock()
        credentials = book(clock, client=connection)
        server.stop()
        await credentials.answered("alice")  # Redis down: kept here only
        server.start()
        clock.now += 1.5
        with caplog.at_level(logging.INFO, logger="gateway.credentials"):
            await credentials.refused("bob", refusal())
        assert any("back" in r.getMessage() for r in caplog.records)
        assert await connection.exists("gw:v2:credential:cbc:no:bob") == 1
        await connection.aclose()

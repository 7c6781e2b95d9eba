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
from tests.support.redis_server import RedisServer

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
    return CredentialBook("cbc", settings, client=client, timeout=0.2, clock=clock)


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
    credentials = CredentialBook("cbc", settings, timeout=0.1, max_entries=3)
    for name in ("a", "b", "c", "a", "d"):  # "a" again: kept the longest now
        await credentials.refused(name, refusal())
    assert credentials.refusal_here("b") is None
    assert all(credentials.refusal_here(name) is not None for name in ("a", "c", "d"))


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
    async with asyncio.timeout(1):  # at once, not after their five seconds of patience
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
    # Each verdict lives in Redis as long as its kind is believed.
    assert 59_000 < await client.pttl("gw:v2:credential:cbc:ok:alice") <= 60_000
    assert 4_000 < await client.pttl("gw:v2:credential:cbc:no:bob") <= 5_000
    assert await client.get("gw:v2:credential:cbc:ok:alice") == b"1"
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


async def test_answering_a_verified_credential_again_costs_no_round_trip(
    client: redis.Redis,
) -> None:
    credentials = book(Clock(), client=client)
    writes = 0
    set_ = client.set

    async def counted(*args: object, **kwargs: object) -> object:
        nonlocal writes
        writes += 1
        return await set_(*args, **kwargs)  # type: ignore[arg-type]

    client.set = counted  # type: ignore[method-assign]
    for _ in range(5):
        await credentials.answered("alice")
    assert writes == 1


async def test_a_verdict_read_from_redis_is_believed_here_for_a_minute(
    client: redis.Redis,
) -> None:
    clock = Clock()
    first, second = book(Clock(), client=client), book(clock, client=client)
    await first.answered("alice")
    assert await second.look_up("alice") == (True, None)
    await first.refused("alice", refusal())  # another replica sees it revoked
    clock.now += 59.9
    assert await second.look_up("alice") == (True, None)  # still believed here...
    clock.now += 0.1
    verified, refused = await second.look_up("alice")  # ...and asked again after 60 s
    assert not verified and refused is not None


async def test_a_frozen_redis_costs_a_lookup_no_more_than_the_timeout(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with RedisServer(tmp_path_factory.mktemp("frozen")) as server:
        connection = redis.Redis.from_url(server.url)
        credentials = book(Clock(), client=connection)
        server.freeze()
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            assert await credentials.look_up("alice") == (False, None)
        finally:
            server.thaw()
        assert loop.time() - started < 1.0  # the 0.2 s timeout, not Redis's silence
        await connection.aclose()


class DeadRedis:
    """A Redis client whose every command fails, counting them."""

    def __init__(self) -> None:
        self.commands = 0

    async def mget(self, *keys: str) -> object:
        self.commands += 1
        raise ConnectionError("Redis is down")

    async def set(self, *args: object, **kwargs: object) -> object:
        self.commands += 1
        raise ConnectionError("Redis is down")


async def test_redis_down_is_skipped_for_a_second_and_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    dead = DeadRedis()
    credentials = book(clock, client=dead)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="gateway.credentials"):
        await credentials.answered("alice")
        assert await credentials.look_up("alice") == (True, None)  # kept here
        assert await credentials.look_up("bob") == (False, None)
        assert dead.commands == 1  # the others skipped Redis
        clock.now += 0.999
        await credentials.look_up("carol")
        assert dead.commands == 1
        clock.now += 0.001
        await credentials.look_up("dave")
        assert dead.commands == 2  # a second after, Redis is tried again
    (warning,) = [r for r in caplog.records if r.name == "gateway.credentials"]
    assert warning.getMessage() == "shared credential verdicts unavailable; keeping them in-process"
    assert (warning.upstream, warning.error) == ("cbc", "ConnectionError")  # type: ignore[attr-defined]


async def test_redis_coming_back_is_used_again_and_said_once(
    client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    flaky = DeadRedis()
    credentials = book(clock, client=flaky)  # type: ignore[arg-type]
    await credentials.answered("alice")
    credentials._client = client  # Redis answers again
    clock.now += 1
    with caplog.at_level(logging.INFO, logger="gateway.credentials"):
        await credentials.refused("bob", refusal())
        await credentials.refused("carol", refusal())
        assert await credentials.look_up("dave") == (False, None)
    back = [r for r in caplog.records if r.levelno == logging.INFO]
    assert [r.getMessage() for r in back] == ["shared credential verdicts are back"]
    assert back[0].upstream == "cbc"  # type: ignore[attr-defined]
    assert await client.exists("gw:v2:credential:cbc:no:bob", "gw:v2:credential:cbc:no:carol") == 2

"""Redis fixtures: one real redis-server per test module, emptied before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.redis_server import RedisServer


@pytest.fixture(scope="module")
def redis_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_server(redis_module: RedisServer) -> Iterator[RedisServer]:
    """A running, empty Redis; a test may stop or freeze it, the next one gets it back."""
    if redis_module.process is None:
        redis_module.start()
    redis_module.thaw()
    redis_module.command("FLUSHALL")
    yield redis_module
    redis_module.thaw()
    if redis_module.process is None:
        redis_module.start()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url

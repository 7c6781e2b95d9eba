from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.redis_server import RedisServer


@pytest.fixture(scope="module")
def redis_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_server(redis_module: RedisServer) -> Iterator[RedisServer]:
    """A running Redis, empty at the start of each test (restarted if a test stopped it)."""
    if redis_module.process is None:
        redis_module.start()
    redis_module.command("FLUSHALL")
    yield redis_module
    if redis_module.process is None:
        redis_module.start()
    else:
        redis_module.thaw()

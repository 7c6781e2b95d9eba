"""bench.load: every request timed, and an answer with errors counted as a failure."""

from __future__ import annotations

import asyncio
import socket

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.load import run


async def test_each_request_is_timed_and_answers_with_errors_fail() -> None:
    answered = 0

    async def graphql(request: Request) -> Response:
        nonlocal answered
        answered += 1
        await request.body()
        # Every third answer carries an error, as a failed GraphQL answer does.
        body = b'{"errors":[{"message":"no"}]}' if answered % 3 == 0 else b'{"data":{"a":1}}'
        return Response(body, media_type="application/json")

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=[Route("/graphql", graphql, methods=["POST"])]),
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
        )
    )
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn has a flag for this, not an event
            await asyncio.sleep(0.01)
        result = await run(f"http://127.0.0.1:{port}/graphql", b"{}", "token", 2, 9)
    finally:
        server.should_exit = True
        await serving
    latencies = result["latencies"]
    assert isinstance(latencies, list) and len(latencies) == 9
    assert all(0 < latency < 5 for latency in latencies)
    assert result["failures"] == 3
